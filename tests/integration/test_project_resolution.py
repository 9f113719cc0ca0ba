"""Differential: the project we resolve is the one plain ``docker compose`` resolves.

For every case (a folder of files, a working directory, compose's global flags and an
environment), plain ``docker compose [flags] config --format json`` is the oracle. Our
``resolve_project`` must agree on failing or not, and when compose loads the project, the
command our engine builds from our resolution (``-p``, ``-f``, ``--project-directory``,
``--env-file``, ``--profile``) must render the identical model: the same name, the same files
(each file leaves its own ``x-f-*`` key and the last one the ``last`` label), the same project
directory (a bind mount is resolved against it), the same environment (labels interpolated from
the env files) and the same profiles (services that only a profile enables).

Only ``config`` calls: no container is created, so the whole table runs in seconds.
"""

from __future__ import annotations

import json
import shutil
import subprocess
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import gates_helpers
import pytest
import robust_helpers
import test_install
import test_shim

from compose_rollback.engine import Engine
from compose_rollback.errors import BadInput
from compose_rollback.plugin import split_argv
from compose_rollback.project import ComposeOptions, Project, resolve_project, working_directory
from support.compose_project import REPO_ROOT
from support.helpers import clean_env

pytestmark = pytest.mark.docker


def main(fid: str = "main", *, name: str | None = None) -> str:
    """A compose file whose rendering shows it was read (``x-f-<fid>``), and where from."""
    head = f"name: {name}\n" if name is not None else ""
    return head + f"""\
x-f-{fid}: true
services:
  s:
    image: crt-never-pulled:1
    volumes: [./data:/data]
    labels: {{last: {fid}, mark: "${{MARK:-none}}", other: "${{OTHER:-none}}"}}
  dbg:
    image: crt-never-pulled:1
    profiles: [debug]
  extra:
    image: crt-never-pulled:1
    profiles: [extra]
"""


def override(fid: str, *, name: str | None = None) -> str:
    head = f"name: {name}\n" if name is not None else ""
    return head + f"x-f-{fid}: true\nservices:\n  s:\n    labels: {{last: {fid}}}\n"


@dataclass(frozen=True)
class Case:
    id: str
    files: Mapping[str, str]  # path under the case's folder -> text
    cwd: str = "app"
    flags: tuple[str, ...] = ()
    env: Mapping[str, str] = field(default_factory=dict)
    links: Mapping[str, str] = field(default_factory=dict)  # symlink -> its target
    copy: str | None = None  # a folder of the repository copied to "app" first
    rename: tuple[str, str] | None = None  # then this file moved (to a name only a flag finds)


C = Case
APP = {"app/compose.yaml": main()}
TWO = {"app/a.yaml": main("a"), "app/b.yaml": override("b"), "app/c.yaml": override("c")}

GENERATED = [
    # -- the name --------------------------------------------------------------------------
    C("dir-name", {"My_App.1/compose.yaml": main()}, cwd="My_App.1"),
    C("flag-p", APP, flags=("-p", "flagged")),
    C("flag-p-invalid", APP, flags=("-p", "Bad")),
    C("env-name", APP, env={"COMPOSE_PROJECT_NAME": "fromenv"}),
    C("env-name-invalid", APP, env={"COMPOSE_PROJECT_NAME": "Shop"}),
    C("env-name-empty", APP, env={"COMPOSE_PROJECT_NAME": ""}),
    C("dotenv-name", {**APP, "app/.env": "COMPOSE_PROJECT_NAME=shop\n"}),
    C("dotenv-name-export-quoted", {**APP, "app/.env":
        "# the stack\nexport COMPOSE_PROJECT_NAME=\"shop\" # prod\n"}),
    C("dotenv-name-yaml-style", {**APP, "app/.env": "COMPOSE_PROJECT_NAME: shop\n"}),
    C("dotenv-name-single-quotes", {**APP, "app/.env": "COMPOSE_PROJECT_NAME='shop'\n"}),
    C("dotenv-name-crlf-bom", {**APP, "app/.env": "\ufeffA=1\r\nCOMPOSE_PROJECT_NAME=shop\r\n"}),
    C("dotenv-name-interpolated", {**APP, "app/.env": "COMPOSE_PROJECT_NAME=${BASE:-x}-prod\n"},
      env={"BASE": "shop"}),
    C("dotenv-name-from-earlier-line", {**APP, "app/.env":
        "BASE=shop\nCOMPOSE_PROJECT_NAME=${BASE}-${ENV:-dev}\n"}),
    C("dotenv-name-invalid", {**APP, "app/.env": "COMPOSE_PROJECT_NAME=Shop\n"}),
    C("dotenv-bad-line", {**APP, "app/.env": "COMPOSE_PROJECT_NAME=shop\nnot valid!\n"}),
    C("dotenv-unterminated", {**APP, "app/.env": "COMPOSE_PROJECT_NAME=\"shop\n"}),
    C("env-beats-dotenv", {**APP, "app/.env": "COMPOSE_PROJECT_NAME=shop\n"},
      env={"COMPOSE_PROJECT_NAME": "fromenv"}),
    C("flag-beats-env", {**APP, "app/.env": "COMPOSE_PROJECT_NAME=shop\n"},
      flags=("-p", "flagged"), env={"COMPOSE_PROJECT_NAME": "fromenv"}),
    C("yaml-name", {"app/compose.yaml": main(name="literal")}),
    C("yaml-name-normalised", {"app/compose.yaml": main(name='"Shop App.2"')}),
    C("yaml-name-single-quoted", {"app/compose.yaml": main(name="'shop' # the shop")}),
    C("yaml-name-default", {"app/compose.yaml": main(name="${APP:-shop}")}),
    C("yaml-name-from-env", {"app/compose.yaml": main(name="${APP:-shop}")},
      env={"APP": "fromenv"}),
    C("yaml-name-from-dotenv", {"app/compose.yaml": main(name="${APP:-shop}"),
                                "app/.env": "APP=fromdotenv\n"}),
    C("yaml-name-nested", {"app/compose.yaml": main(name="${APP:-${TEAM:-t}-shop}")},
      env={"TEAM": "blue"}),
    C("yaml-name-alternative", {"app/compose.yaml": main(name="shop${STAGING:+-staging}")},
      env={"STAGING": "1"}),
    C("yaml-name-unset", {"app/compose.yaml": main(name="${UNSET_NAME}")}),
    C("yaml-name-required", {"app/compose.yaml": main(name="${UNSET_NAME:?set it}")}),
    C("yaml-name-block-scalar", {"app/compose.yaml": main(name=">-\n  Folded\n  Name")}),
    C("yaml-name-override-wins", {"app/compose.yaml": main(name="first"),
                                  "app/compose.override.yaml": override("o", name="second")}),
    C("yaml-name-empty-in-override", {"app/compose.yaml": main(name="first"),
                                      "app/compose.override.yaml": override("o", name='""')}),
    C("dotenv-beats-yaml-name", {"app/compose.yaml": main(name="literal"),
                                 "app/.env": "COMPOSE_PROJECT_NAME=shop\n"}),
    # -- the files -------------------------------------------------------------------------
    C("default-with-override", {**APP, "app/compose.override.yaml": override("o")}),
    C("docker-compose-names", {"app/docker-compose.yml": main("dc"),
                               "app/docker-compose.override.yml": override("dco")}),
    C("compose-yaml-beats-docker-compose", {"app/compose.yaml": main(),
                                            "app/docker-compose.yml": main("dc")}),
    C("yml-before-yaml", {"app/docker-compose.yaml": main("yaml"),
                          "app/docker-compose.yml": main("yml"),
                          "app/compose.override.yaml": override("oyaml"),
                          "app/compose.override.yml": override("oyml")}),
    C("flag-files", TWO, flags=("-f", "a.yaml", "-f", "c.yaml")),
    C("env-files", TWO, env={"COMPOSE_FILE": "a.yaml:b.yaml"}),
    C("env-files-separator", TWO, env={"COMPOSE_FILE": "a.yaml;c.yaml;b.yaml",
                                       "COMPOSE_PATH_SEPARATOR": ";"}),
    C("dotenv-files", {**TWO, "app/.env": "COMPOSE_FILE=a.yaml:c.yaml\n"}),
    C("dotenv-files-separator", {**TWO, "app/.env":
        "COMPOSE_PATH_SEPARATOR=,\nCOMPOSE_FILE=a.yaml,b.yaml\n"}),
    C("dotenv-files-env-separator", {**TWO, "app/.env": "COMPOSE_FILE=a.yaml|b.yaml\n"},
      env={"COMPOSE_PATH_SEPARATOR": "|"}),
    C("flag-beats-env-files", TWO, flags=("-f", "a.yaml", "-f", "c.yaml"),
      env={"COMPOSE_FILE": "a.yaml:b.yaml"}),
    C("env-files-missing", TWO, env={"COMPOSE_FILE": "a.yaml:nope.yaml"}),
    C("dotenv-files-missing", {**TWO, "app/.env": "COMPOSE_FILE=nope.yaml\n"}),
    C("flag-file-missing", TWO, flags=("-f", "nope.yaml")),
    C("no-compose-file", {"app/.env": "A=1\n"}),
    C("upward-search", {**APP, "app/.env": "MARK=parent\n", "app/deep/sub/x": ""},
      cwd="app/deep/sub"),
    C("upward-search-cwd-dotenv", {**APP, "app/sub/.env": "MARK=cwd\nCOMPOSE_PROJECT_NAME=sub\n"},
      cwd="app/sub"),
    C("upward-search-both-dotenvs", {**APP, "app/.env": "MARK=parent\nOTHER=parent\n",
                                     "app/sub/.env": "MARK=cwd\n"}, cwd="app/sub"),
    C("flag-file-elsewhere", {"app/stack/compose.yaml": main(), "app/stack/.env": "MARK=stack\n",
                              "app/.env": "MARK=cwd\nCOMPOSE_PROJECT_NAME=cwd\n"},
      flags=("-f", "stack/compose.yaml")),
    C("flag-file-elsewhere-cwd-dotenv-only", {"app/stack/compose.yaml": main(),
                                              "app/.env": "MARK=cwd\n"},
      flags=("-f", "stack/compose.yaml")),
    C("dotenv-files-elsewhere", {"app/stack/compose.yaml": main(), "app/.env":
        "COMPOSE_FILE=stack/compose.yaml\nMARK=cwd\n", "app/stack/.env": "OTHER=stack\n"}),
    # -- the project directory -------------------------------------------------------------
    C("project-directory", {"app/other/compose.yaml": main("other"),
                            "app/other/.env": "MARK=other\n", "app/.env": "MARK=cwd\n"},
      flags=("--project-directory", "other")),
    C("project-directory-with-file", {"app/compose.yaml": main(), "app/other/.env":
        "MARK=other\nCOMPOSE_PROJECT_NAME=other\n"},
      flags=("-f", "compose.yaml", "--project-directory", "other")),
    C("project-directory-absolute-workdir", {"app/other/compose.yaml": main("other")},
      flags=("--workdir", "{root}/app/other")),
    # -- env files -------------------------------------------------------------------------
    C("env-file-replaces-dotenv", {**APP, "app/.env": "MARK=dotenv\nOTHER=dotenv\n",
                                   "app/custom.env": "MARK=custom\nCOMPOSE_PROJECT_NAME=custom\n"},
      flags=("--env-file", "custom.env")),
    C("env-file-twice", {**APP, "app/a.env": "MARK=a\nOTHER=a\n", "app/b.env": "MARK=b\n"},
      flags=("--env-file", "a.env", "--env-file", "b.env")),
    C("env-files-variable", {**APP, "app/a.env": "MARK=a\n", "app/b.env": "OTHER=${MARK}-b\n"},
      env={"COMPOSE_ENV_FILES": "a.env,b.env"}),
    C("env-files-variable-in-dotenv-ignored", {**APP, "app/a.env": "MARK=a\n",
                                               "app/.env": "COMPOSE_ENV_FILES=a.env\n"}),
    C("env-file-missing", APP, flags=("--env-file", "nope.env")),
    C("env-file-cross-reference", {**APP, "app/.env": "OTHER=x${MARK}\n"}, env={"MARK": "m"}),
    C("disable-dotenv", {**APP, "app/.env": "MARK=dotenv\nCOMPOSE_PROJECT_NAME=shop\n"},
      env={"COMPOSE_DISABLE_ENV_FILE": "true"}),
    C("disable-dotenv-from-dotenv", {**APP, "app/.env":
        "COMPOSE_DISABLE_ENV_FILE=1\nMARK=dotenv\nCOMPOSE_PROJECT_NAME=shop\n"}),
    C("disable-dotenv-not-a-bool", {**APP, "app/.env": "MARK=1\n"},
      env={"COMPOSE_DISABLE_ENV_FILE": "yes"}),
    # -- profiles --------------------------------------------------------------------------
    C("flag-profile", APP, flags=("--profile", "debug")),
    C("env-profiles", APP, env={"COMPOSE_PROFILES": "debug,extra"}),
    C("env-profiles-spaces", APP, env={"COMPOSE_PROFILES": " extra , "}),
    C("dotenv-profiles", {**APP, "app/.env": "COMPOSE_PROFILES=extra\n"}),
    C("flag-beats-env-profiles", APP, flags=("--profile", "debug"),
      env={"COMPOSE_PROFILES": "extra"}),
    C("all-profiles", APP, flags=("--profile", "*")),
    # -- the working directory -------------------------------------------------------------
    C("symlinked-directory", {"real/compose.yaml": main()}, cwd="shop-link",
      links={"shop-link": "real"}),
    C("symlinked-directory-with-dotenv", {"real/compose.yaml": main(), "real/.env": "MARK=r\n"},
      cwd="shop-link", links={"shop-link": "real"}),
]


def _corpus() -> list[Case]:
    """The compose projects of the repository: the examples, and what the tests' helpers write,
    each as is, run from a subfolder, named by a ``.env``, found through ``COMPOSE_FILE`` in a
    ``.env`` and named by ``-p``."""
    class Recorder:
        def __init__(self) -> None:
            self.text = ""

        def write_file(self, _name: str, text: str) -> None:
            self.text = text

    gate = Recorder()
    gates_helpers.write_compose(gate, {"web": "image: crt-never-pulled:1"})
    texts = {
        "robust": robust_helpers.compose_text("crt-never-pulled:1"),
        "robust-env": robust_helpers.compose_text("crt-never-pulled:1", env={"A": "${A:-1}"},
                                                  extra="ports: ['127.0.0.1::8080']"),
        "gates": gate.text,
        "install": test_install.COMPOSE_FILE,
        "shim": test_shim.COMPOSE_FILE,
    }
    cases: list[Case] = []
    sources: list[tuple[str, dict[str, str], str | None]] = [
        (name, {"app/compose.yaml": text}, None) for name, text in texts.items()]
    sources += [(f"example-{d.name}", {}, f"examples/{d.name}")
                for d in sorted((REPO_ROOT / "examples").iterdir())
                if (d / "compose.yaml").is_file()]
    for name, files, copy in sources:
        cases += [
            C(f"{name}", files, copy=copy),
            C(f"{name}-from-subfolder", {**files, "app/sub/x": ""}, cwd="app/sub", copy=copy),
            C(f"{name}-dotenv-name", {**files, "app/.env": "COMPOSE_PROJECT_NAME=shop\n"},
              copy=copy),
            C(f"{name}-flag-name", files, flags=("-p", "flagged"), copy=copy),
            C(f"{name}-dotenv-file", {**files, "app/.env": "COMPOSE_FILE=stack.yaml\n"},
              copy=copy, rename=("app/compose.yaml", "app/stack.yaml")),
        ]
    return cases


CASES = GENERATED + _corpus()


def _build(case: Case, root: Path) -> Path:
    if case.copy:
        shutil.copytree(REPO_ROOT / case.copy, root / "app")
    for relative, text in case.files.items():
        path = root / relative
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if case.rename:
        (root / case.rename[0]).rename(root / case.rename[1])
    for link, target in case.links.items():
        (root / link).symlink_to(root / target)
    return root / case.cwd


def _config(command: list[str], *, cwd: Path, env: Mapping[str, str]
            ) -> subprocess.Popen[str]:
    """Start ``<command> config --format json`` (read it with ``_finish``)."""
    return subprocess.Popen([*command, "config", "--format", "json"], cwd=cwd, env=dict(env),
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)


def _finish(started: subprocess.Popen[str]) -> subprocess.CompletedProcess[str]:
    stdout, stderr = started.communicate(timeout=60)
    return subprocess.CompletedProcess(started.args, started.returncode, stdout, stderr)


def _ours(case: Case, cwd: Path, env: Mapping[str, str], root: Path) -> Project:
    flags = [f.replace("{root}", str(root)) for f in case.flags]
    options = ComposeOptions.from_flags(split_argv([*flags, "history"], as_plugin=False).compose)
    return resolve_project(options=options, cwd=working_directory(env), environ=env)


@pytest.mark.parametrize("case", CASES, ids=[c.id for c in CASES])
def test_we_resolve_the_project_compose_resolves(
    case: Case, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cwd = _build(case, tmp_path)
    env = clean_env({"PWD": str(cwd), **case.env})  # PWD: as a shell sets it (symlinks kept)
    flags = [f.replace("{root}", str(tmp_path)) for f in case.flags]
    started = _config(["docker", "compose", *flags], cwd=cwd, env=env)  # beside our work
    monkeypatch.chdir(cwd)
    try:
        project = _ours(case, cwd, env, tmp_path)
    except BadInput as error:
        plain = _finish(started)
        assert plain.returncode != 0, (
            f"compose loads the project but we refused it: {error.one_line()}\n"
            f"compose says name={json.loads(plain.stdout).get('name')!r}")
        assert "\n" not in error.one_line()
        return
    engine = Engine()
    ours = _finish(_config(engine.compose_cmd(project), cwd=cwd,
                           env={**env, **engine.compose_env()}))
    plain = _finish(started)
    assert plain.returncode == 0, (
        f"compose refuses the project ({plain.stderr.strip()}) but we resolved {project}")
    assert ours.returncode == 0, f"{ours.args}\n{ours.stderr}"
    expected: dict[str, Any] = json.loads(plain.stdout)
    rendered: dict[str, Any] = json.loads(ours.stdout)
    assert project.name == expected["name"]
    assert rendered == expected, f"{ours.args}: renders another project than plain compose"
