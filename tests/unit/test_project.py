"""Project resolution without docker: compose's ``.env`` rules, ``${}`` grammar, precedence.

The expected values of the parser and substitution tables were printed by Compose v2.40.3
itself (``docker compose config --environment`` and ``config --format json``); the
integration test ``test_project_resolution.py`` checks the whole resolution against it.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from compose_rollback.context import store_dir
from compose_rollback.dotenv import EnvFileError, TemplateError, parse_env, substitute
from compose_rollback.errors import BadInput, SettingsError
from compose_rollback.project import (
    ComposeOptions,
    Project,
    _declared_name,
    _yaml_name,
    resolve_project,
    working_directory,
)

REPO_ROOT = Path(__file__).resolve().parents[2]
SERVICES = "services:\n  s:\n    image: x\n"

# What Compose v2.40.3 made of each line (with A=plain value set on the line before).
DOTENV = [
    ("A=plain value # comment", "plain value"),
    ('A="double ${A0} \\n \\t \\$x \\\\ \\" \\0101 \\012 \\c"',
     'double p \n \t $x \\ " A \\12 \\c'),
    ("A='single ${A0} \\' \\n'", "single ${A0} ' \\n"),
    ("export A=exported", "exported"),
    ("A: yaml style", "yaml style"),
    ("A=${UNSET:-def}${A0:+alt}${A0-x}$A0", "defaltpp"),
    ('A="multi\nline"', "multi\nline"),
    ("A=trailing   ", "trailing"),
    ("A=a#b", "a#b"),
    ("A=${A0:-${B:-q}}x}", "px}"),
    ("A=$$literal", "$literal"),
    ('A=" spaced "', " spaced "),
    ("A=", ""),
    ('A="x" # c', "x"),
    ("A=${NOPE:+alt}", ""),
    ("A=  lead", "lead"),
    ("A=$1 $ {x}", "$1 $ {x}"),
    ("A=x\r", "x"),
]


@pytest.mark.parametrize(("line", "value"), DOTENV, ids=[d[0][:24] for d in DOTENV])
def test_dotenv_lines_read_as_compose_reads_them(line: str, value: str) -> None:
    assert parse_env(f"# c\nA0=p\n{line}\n")["A"] == value


def test_dotenv_shell_wins_inside_references_and_bare_keys_inherit() -> None:
    env = {"A0": "shell", "INHERIT": "from-shell"}
    parsed = parse_env("A0=file\nB=${A0}\nINHERIT\nNOT_SET\n", env.get)
    assert parsed == {"A0": "file", "B": "shell", "INHERIT": "from-shell"}


@pytest.mark.parametrize(("text", "message"), [  # compose's own words, line numbers included
    ("not valid!\n", """line 1: unexpected character '!' in variable name 'not valid!'"""),
    ('A="open\n', 'line 2: unterminated quoted value "open'),
    ("A B=1\n", "line 1: key cannot contain a space")])
def test_dotenv_errors_name_the_line(text: str, message: str) -> None:
    with pytest.raises(EnvFileError) as caught:
        parse_env(text)
    assert str(caught.value) == message


@pytest.mark.parametrize(("template", "expected"), [
    ("${A:-d}", "d"), ("${E:-d}", "d"), ("${E-d}", ""), ("${S-d}", "s"), ("${S:+alt}", "alt"),
    ("${E:+alt}", ""), ("${E+alt}", "alt"), ("${A+alt}", ""), ("$S-$S", "s-s"),
    ("${A:-${B:-${S}x}}", "sx"), ("${A:-a}b}", "ab}"), ("$$S", "$S"), ("${S?x}", "s"),
    ("x$", "x$"), ("$1", "$1"), ("${A:-a} and ${S-b}", "a and s"),
])
def test_substitution_follows_compose_go(template: str, expected: str) -> None:
    assert substitute(template, {"S": "s", "E": ""}.get) == expected


@pytest.mark.parametrize("template", ["${A:?needed}", "${E:?}", "${A?}", "${}", "${A:-${B:?x}}"])
def test_substitution_errors(template: str) -> None:
    with pytest.raises(TemplateError):
        substitute(template, {"E": ""}.get)


def _resolve(cwd: Path, env: dict[str, str] | None = None, **flags: object) -> Project:
    return resolve_project(options=ComposeOptions(**flags), cwd=cwd,  # type: ignore[arg-type]
                           environ={"PWD": str(cwd), **(env or {})})


def test_dotenv_names_files_profiles(tmp_path: Path) -> None:
    (tmp_path / "a.yaml").write_text(SERVICES)
    (tmp_path / "b.yaml").write_text(SERVICES)
    (tmp_path / ".env").write_text("COMPOSE_PROJECT_NAME=shop\nCOMPOSE_PATH_SEPARATOR=,\n"
                                   "COMPOSE_FILE=a.yaml,b.yaml\nCOMPOSE_PROFILES= web , db\n"
                                   "TOKEN=hunter2\n")
    project = _resolve(tmp_path)
    assert (project.name, project.files, project.profiles, project.env_files) == (
        "shop", (tmp_path / "a.yaml", tmp_path / "b.yaml"), ("web", "db"), ())
    assert project.environment["COMPOSE_FILE"] == "a.yaml,b.yaml"
    assert project.environment["TOKEN"] == "hunter2"
    assert "hunter2" not in repr(project), "the environment (secrets) stays out of reprs"


def test_flags_and_shell_beat_the_dotenv(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("name: declared\n" + SERVICES)
    (tmp_path / ".env").write_text("COMPOSE_PROJECT_NAME=dotenv\nCOMPOSE_PROFILES=a\n")
    assert _resolve(tmp_path).name == "dotenv"
    assert _resolve(tmp_path, {"COMPOSE_PROJECT_NAME": "shell"}).name == "shell"
    assert _resolve(tmp_path, {"COMPOSE_PROJECT_NAME": "shell"}, project_name="flag").name \
        == "flag"
    assert _resolve(tmp_path, profiles=("b",)).profiles == ("b",)


def test_env_files_given_to_compose_reproduce_both_dotenvs(tmp_path: Path) -> None:
    """From a subfolder compose reads the subfolder's .env first, then the project's: our
    compose commands get both, in the order that lets the first one win."""
    (tmp_path / "compose.yaml").write_text(SERVICES)
    (tmp_path / ".env").write_text("MARK=project\nOTHER=project\n")
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / ".env").write_text("MARK=cwd\n")
    project = _resolve(tmp_path / "sub")
    assert project.env_files == (tmp_path / ".env", tmp_path / "sub" / ".env")
    assert (project.environment["MARK"], project.environment["OTHER"]) == ("cwd", "project")
    assert _resolve(tmp_path).env_files == (), "compose finds the project's own .env itself"


@pytest.mark.parametrize(("dotenv", "message"), [
    ("COMPOSE_PROJECT_NAME=Shop\n", r"COMPOSE_PROJECT_NAME \(from .*\.env\): invalid project"),
    ("COMPOSE_FILE=nope.yaml\n", r"COMPOSE_FILE \(from .*\.env\): nope.yaml: no such file"),
    ("COMPOSE_FILE=compose.yaml::x\n", "COMPOSE_FILE .*empty entry"),
    ("bad line!\n", r"\.env: line 1: unexpected character"),
])
def test_bad_project_settings_are_one_line_naming_their_source(
        tmp_path: Path, dotenv: str, message: str) -> None:
    (tmp_path / "compose.yaml").write_text(SERVICES)
    (tmp_path / ".env").write_text(dotenv)
    with pytest.raises(BadInput, match=message) as caught:
        _resolve(tmp_path)
    assert "\n" not in caught.value.one_line()


NAME_SPELLINGS = ["shop", "'shop'", '"shop"', "shop # c", "'it''s'", "${APP:-shop}",
                  "${A:-x}-${B}", '"${APP}" # c', "", "~", "null", "-dash", "a:b",
                  ">-\n  folded", '"multi\n  line"', "plain\n  continued", "&anchor shop",
                  "!!str 12", "12", "a#b", "[x]"]


@pytest.mark.parametrize("spelling", NAME_SPELLINGS)
def test_quick_name_reader_agrees_with_the_yaml_parser(tmp_path: Path, spelling: str) -> None:
    text = f"x-a: 1\nname: {spelling}\n{SERVICES}"
    (tmp_path / "compose.yaml").write_text(text)
    assert _declared_name(tmp_path / "compose.yaml") == _yaml_name(text)


def test_symlinked_working_directory_keeps_its_name(tmp_path: Path,
                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "real").mkdir()
    (tmp_path / "real" / "compose.yaml").write_text(SERVICES)
    (tmp_path / "shop").symlink_to(tmp_path / "real")
    monkeypatch.chdir(tmp_path / "shop")
    cwd = working_directory({"PWD": str(tmp_path / "shop")})
    assert cwd == tmp_path / "shop"
    assert _resolve(cwd).name == "shop"
    assert working_directory({"PWD": "/"}) == Path.cwd(), "a stale PWD is not trusted"


def test_rollback_dir_is_interpolated_with_the_dotenv(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("x-rollback:\n  dir: ${RB_DIR:-.fallback}/revs\n"
                                           + SERVICES)
    (tmp_path / ".env").write_text("RB_DIR=state\n")
    project = _resolve(tmp_path)
    assert store_dir(project, {}) == tmp_path / "state" / "revs" / project.name
    (tmp_path / ".env").unlink()
    assert store_dir(_resolve(tmp_path), {}) == tmp_path / ".fallback" / "revs" / project.name
    (tmp_path / ".env").write_text("COMPOSE_ROLLBACK_DIR=/srv/revs\n")
    assert store_dir(_resolve(tmp_path), {}) == Path("/srv/revs") / project.name


@pytest.mark.parametrize("text", [
    "x-rollback:\n  dir: revs\n",
    "x-rollback:\n  timeout: 1m\n  dir : revs\n",
    "x-rollback: {timeout: 1m, dir: revs}\n",
    "x-rollback: {timeout: 1m,dir: revs}\n",
    "x-rollback:\n  'dir': revs\n",
    '{"x-rollback": {"dir": "revs"}, "services": {"s": {"image": "x"}}}\n',
    "x-rollback:\n  ? dir\n  : revs\n",
    "x-base: &base\n  dir: revs\nx-rollback: *base\n",
    "x-base: &base {dir: revs}\nx-rollback:\n  <<: *base\n  timeout: 1m\n",
])
def test_rollback_dir_is_found_in_every_yaml_spelling(tmp_path: Path, text: str) -> None:
    (tmp_path / "compose.yaml").write_text(text if text.startswith("{") else text + SERVICES)
    project = _resolve(tmp_path)
    assert store_dir(project, {}) == tmp_path / "revs" / project.name


@pytest.mark.parametrize("text", [
    "x-rollback:\n  timeout: 1m\n",
    "x-rollback: {timeout: 1m}\nservices:\n  s:\n    image: x\n    working_dir: /srv\n",
    'x-rollback:\n  timeout: 1m\nservices:\n  s:\n    image: x\n    command: ["ls", "/dir"]\n',
])
def test_a_block_without_dir_is_read_without_the_yaml_parser(tmp_path: Path, text: str) -> None:
    (tmp_path / "compose.yaml").write_text(text + ("" if "services" in text else SERVICES))
    code = ("import sys; from pathlib import Path; from compose_rollback.context import store_dir;"
            "from compose_rollback.project import ComposeOptions, resolve_project;"
            "p = resolve_project(options=ComposeOptions(), environ={}, cwd=Path(sys.argv[1]));"
            "print(store_dir(p, {}).parent.name, 'ruamel.yaml' in sys.modules)")
    done = subprocess.run([sys.executable, "-c", code, str(tmp_path)],
                          env={"PYTHONPATH": str(REPO_ROOT)},
                          capture_output=True, text=True, timeout=60, check=True)
    assert done.stdout.split() == [".rollback", "False"]


@pytest.mark.parametrize("setting", ["${RB_DIR:?set RB_DIR}", "${RB_DIR}"])
def test_rollback_dir_without_a_value_is_refused(tmp_path: Path, setting: str) -> None:
    (tmp_path / "compose.yaml").write_text(f"x-rollback:\n  dir: {setting}\n{SERVICES}")
    with pytest.raises(SettingsError, match=r"x-rollback\.dir"):
        store_dir(_resolve(tmp_path), {})


def test_rollback_dir_without_a_value_exits_2_with_one_line(tmp_path: Path) -> None:
    (tmp_path / "compose.yaml").write_text("x-rollback:\n  dir: ${RB_DIR:?set RB_DIR}\n"
                                           + SERVICES)
    env = {k: v for k, v in os.environ.items() if not k.startswith("COMPOSE_")}
    done = subprocess.run([sys.executable, "-m", "compose_rollback", "history"], cwd=tmp_path,
                          env={**env, "PYTHONPATH": str(REPO_ROOT)}, capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 2, done.stderr
    assert done.stderr.strip().splitlines() == [
        "compose-rollback: x-rollback.dir: required variable RB_DIR is missing a value: "
        "set RB_DIR"]
    assert not (tmp_path / "${RB_DIR:?set RB_DIR}").exists()
