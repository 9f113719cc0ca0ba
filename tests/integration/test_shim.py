"""The ``docker-compose`` shim, driven through the real docker CLI.

Each test gets its own docker config dir (``DOCKER_CONFIG``): ``cli-plugins/docker-compose`` is a
symlink to the real Compose plugin of this machine and ``cliPluginsExtraDirs`` puts a dir holding
the rendered shim in front of it, exactly as ``install.sh`` does for a user. The shim's
``@ENTRY@`` is a recorder script, so these tests do not need compose-rollback's Python side.
A second config dir without the shim gives the "before" behaviour to compare with.
"""

from __future__ import annotations

import json
import os
import re
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.plugins import find_real_compose

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
SHIM_TEMPLATE = REPO / "compose_rollback" / "shim" / "docker-compose"

# Writes who ran, whether/how DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND was set, and its argv.
RECORDER = """#!/bin/sh
{{
    printf 'who=%s\\n' '{who}'
    printf 'envset=%s\\n' "${{DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND+yes}}"
    printf 'env=%s\\n' "${{DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND-}}"
    for a do printf 'arg=%s\\n' "$a"; done
}} >"{record}"
exit 0
"""

# A stand-in for the real compose: answers the metadata probe, records everything else.
FAKE_COMPOSE = """#!/bin/sh
if [ "$1" = docker-cli-plugin-metadata ]; then
    echo '{{"SchemaVersion":"0.1.0","Vendor":"Docker Inc.","Version":"v0.0.0-fake"}}'
    exit 0
fi
""" + RECORDER.split("\n", 1)[1]

COMPOSE_FILE = "services:\n  app:\n    image: compose-rollback-test/shim-app:never-pulled\n"


@dataclass(frozen=True)
class Record:
    who: str
    env_set: bool
    env: str
    args: list[str]


@dataclass(frozen=True)
class Setup:
    """Two docker config dirs: ``shim_env`` routes through the shim, ``plain_env`` does not."""

    tmp: Path
    shim: Path
    record: Path
    shim_env: dict[str, str]
    plain_env: dict[str, str]

    def recorded(self) -> Record | None:
        if not self.record.exists():
            return None
        fields: dict[str, str] = {}
        args: list[str] = []
        for line in self.record.read_text().splitlines():
            key, _, value = line.partition("=")
            if key == "arg":
                args.append(value)
            else:
                fields[key] = value
        return Record(fields["who"], fields["envset"] == "yes", fields["env"], args)


def sh_double_quoted(value: str) -> str:
    return re.sub(r'([\\"$`])', r"\\\1", value)


def render_shim(dest: Path, *, entry: Path, real_compose: Path) -> Path:
    text = SHIM_TEMPLATE.read_text()
    text = text.replace("@ENTRY@", sh_double_quoted(str(entry)))
    text = text.replace("@REAL_COMPOSE@", sh_double_quoted(str(real_compose)))
    assert not re.search(r"@[A-Z_]+@", text), "unfilled placeholder in the shim template"
    dest.parent.mkdir(parents=True, exist_ok=True)
    dest.write_text(text)
    dest.chmod(0o755)
    return dest


def write_script(path: Path, text: str) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(0o755)
    return path


def docker_config(path: Path, real_compose: Path, *, extra_dirs: Sequence[Path] = ()) -> Path:
    (path / "cli-plugins").mkdir(parents=True)
    (path / "cli-plugins" / "docker-compose").symlink_to(real_compose)
    config = {"cliPluginsExtraDirs": [str(d) for d in extra_dirs]} if extra_dirs else {}
    (path / "config.json").write_text(json.dumps(config))
    return path


def make_setup(tmp: Path, *, real_compose: Path, fake_real: bool = False) -> Setup:
    record = tmp / "record.txt"
    quoted_record = sh_double_quoted(str(record))
    entry = write_script(tmp / "bin" / "entry", RECORDER.format(who="entry", record=quoted_record))
    target = real_compose
    if fake_real:
        fake = FAKE_COMPOSE.format(who="real", record=quoted_record)
        target = write_script(tmp / "bin" / "real", fake)
    shim = render_shim(tmp / "plugins" / "docker-compose", entry=entry, real_compose=target)
    # DOCKER_CONTEXT would name a context that only the user's own config has.
    dropped = {"DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND", "DOCKER_CONTEXT"}
    base = {k: v for k, v in os.environ.items() if k not in dropped}
    shim_config = docker_config(tmp / "config-shim", real_compose, extra_dirs=[shim.parent])
    plain_config = docker_config(tmp / "config-plain", real_compose)
    return Setup(
        tmp=tmp,
        shim=shim,
        record=record,
        shim_env={**base, "DOCKER_CONFIG": str(shim_config)},
        plain_env={**base, "DOCKER_CONFIG": str(plain_config)},
    )


def docker(
    args: Sequence[str], env: dict[str, str], cwd: Path | None = None
) -> subprocess.CompletedProcess[bytes]:
    return subprocess.run(
        ["docker", *args], env=env, cwd=cwd, capture_output=True, timeout=120, check=False
    )


@pytest.fixture(scope="module")
def real_compose() -> Path:
    return find_real_compose()


@pytest.fixture
def setup(tmp_path: Path, real_compose: Path) -> Setup:
    return make_setup(tmp_path, real_compose=real_compose)


@pytest.fixture
def fake_setup(tmp_path: Path, real_compose: Path) -> Setup:
    return make_setup(tmp_path, real_compose=real_compose, fake_real=True)


def test_docker_runs_the_shim_as_its_compose_plugin(setup: Setup) -> None:
    out = docker(["info", "--format", "{{json .ClientInfo.Plugins}}"], setup.shim_env)
    assert out.returncode == 0, out.stderr.decode()
    plugins = {p["Name"]: p for p in json.loads(out.stdout)}
    assert plugins["compose"]["Path"] == str(setup.shim)
    assert plugins["compose"].get("Err") is None


ROLLBACK_CALLS = [
    "compose rollback up",
    "compose -f a.yaml -f b.yaml -p shop --env-file prod.env --profile web rollback up",
    "--context default compose rollback history",
    "compose --file=x.yaml rollback status",
    "compose -fx.yaml rollback status",
    "--log-level error compose --progress plain --dry-run rollback up",
    "-D compose --project-directory rollback rollback revert 3",
]


@pytest.mark.parametrize("call", ROLLBACK_CALLS)
def test_rollback_goes_to_the_entry_with_the_whole_argv(setup: Setup, call: str) -> None:
    args = call.split()
    out = docker(args, setup.shim_env)
    assert out.returncode == 0, out.stderr.decode()
    record = setup.recorded()
    assert record is not None, "the entry point was not run"
    assert record.who == "entry"
    assert record.args == args
    assert record.env_set and record.env, "DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND was lost"


PASSTHROUGH_CALLS = [
    "compose -p rollback config",
    "compose ps",
    "compose ps rollback",
    "compose --project-directory rollback ls",
    "compose --env-file=rollback -prollback up -d",
    "--context default compose version",
    "compose",
    "compose --help",
    "compose --dry-run",
]


@pytest.mark.parametrize("call", PASSTHROUGH_CALLS)
def test_everything_else_reaches_compose_unchanged(fake_setup: Setup, call: str) -> None:
    """With a recording stand-in for compose: exact argv and the plugin env var survive."""
    args = call.split()
    out = docker(args, fake_setup.shim_env)
    assert out.returncode == 0, out.stderr.decode()
    record = fake_setup.recorded()
    assert record is not None, "the stand-in compose was not run"
    assert record.who == "real"
    assert record.args == args
    assert record.env_set and record.env, "DOCKER_CLI_PLUGIN_ORIGINAL_CLI_COMMAND was lost"


def test_project_named_rollback_is_compose_business(setup: Setup) -> None:
    project = setup.tmp / "project"
    project.mkdir()
    (project / "compose.yaml").write_text(COMPOSE_FILE)
    args = ["compose", "-p", "rollback", "config"]
    with_shim = docker(args, setup.shim_env, cwd=project)
    without = docker(args, setup.plain_env, cwd=project)
    assert with_shim.returncode == 0, with_shim.stderr.decode()
    assert setup.recorded() is None, "the entry point was run for a project named 'rollback'"
    assert b"name: rollback" in with_shim.stdout
    assert (with_shim.stdout, with_shim.stderr) == (without.stdout, without.stderr)


def test_version_is_byte_identical(setup: Setup) -> None:
    with_shim = docker(["compose", "version"], setup.shim_env)
    without = docker(["compose", "version"], setup.plain_env)
    assert with_shim.returncode == without.returncode == 0
    assert (with_shim.stdout, with_shim.stderr) == (without.stdout, without.stderr)
    assert setup.recorded() is None


def test_ps_in_an_empty_project(setup: Setup) -> None:
    project = setup.tmp / "empty-project"
    project.mkdir()
    (project / "compose.yaml").write_text(COMPOSE_FILE)
    with_shim = docker(["compose", "ps"], setup.shim_env, cwd=project)
    without = docker(["compose", "ps"], setup.plain_env, cwd=project)
    assert with_shim.returncode == 0, with_shim.stderr.decode()
    assert (with_shim.stdout, with_shim.stderr) == (without.stdout, without.stderr)
    assert b"NAME" in with_shim.stdout
    assert setup.recorded() is None


def test_metadata_is_the_real_composes(setup: Setup, real_compose: Path) -> None:
    shim = subprocess.run(
        [str(setup.shim), "docker-cli-plugin-metadata"], capture_output=True, check=False
    )
    real = subprocess.run(
        [str(real_compose), "docker-cli-plugin-metadata"], capture_output=True, check=False
    )
    assert shim.returncode == real.returncode == 0
    assert (shim.stdout, shim.stderr) == (real.stdout, real.stderr)
    assert json.loads(shim.stdout)["SchemaVersion"] == "0.1.0"


@pytest.mark.parametrize(
    "words",
    # `compose ''` gains `rollback`: test_completion.py::test_compose_offers_rollback_too
    [["compose", "--fi"], ["compose", "up", "--"], ["compose", "-p", "x", "ps", ""]],
    ids=repr,
)
def test_completion_is_identical(setup: Setup, words: list[str]) -> None:
    with_shim = docker(["__complete", *words], setup.shim_env)
    without = docker(["__complete", *words], setup.plain_env)
    assert (with_shim.returncode, with_shim.stdout, with_shim.stderr) == (
        without.returncode,
        without.stdout,
        without.stderr,
    )
    assert with_shim.stdout, "completion printed nothing"
    assert setup.recorded() is None


def test_paths_with_spaces_and_shell_characters(tmp_path: Path, real_compose: Path) -> None:
    odd = tmp_path / 'we ird $HOME `x` "q" \\ dir'
    setup = make_setup(odd, real_compose=real_compose)
    out = docker(["compose", "rollback", "up"], setup.shim_env)
    assert out.returncode == 0, out.stderr.decode()
    record = setup.recorded()
    assert record is not None
    assert (record.who, record.args) == ("entry", ["compose", "rollback", "up"])
    version = docker(["compose", "version"], setup.shim_env)
    assert version.returncode == 0, version.stderr.decode()


def _seconds(args: list[str], env: dict[str, str]) -> float:
    start = time.perf_counter()
    out = docker(args, env)
    elapsed = time.perf_counter() - start
    assert out.returncode == 0, out.stderr.decode()
    return elapsed


def test_shim_overhead_is_measured(setup: Setup) -> None:
    """Prints the shim's added latency; the benchmark suite will judge it, not this test.

    Runs alternate between the two configs so that load from elsewhere hits both alike.
    """
    runs = 20
    args = ["compose", "version"]
    plain: list[float] = []
    shim: list[float] = []
    _seconds(args, setup.plain_env)  # warm the page cache
    for _ in range(runs):
        plain.append(_seconds(args, setup.plain_env))
        shim.append(_seconds(args, setup.shim_env))
    median = (statistics.median(shim) - statistics.median(plain)) * 1000
    fastest = (min(shim) - min(plain)) * 1000
    print(
        f"\nshim overhead on 'docker compose version' over {runs} runs: "
        f"median {median:+.1f} ms, fastest {fastest:+.1f} ms "
        f"(plain median {statistics.median(plain) * 1000:.1f} ms)"
    )


def test_a_vanished_real_compose_is_reported(tmp_path: Path) -> None:
    gone = tmp_path / "moved-away" / "docker-compose"
    shim = render_shim(tmp_path / "docker-compose", entry=tmp_path / "entry", real_compose=gone)
    out = subprocess.run([str(shim), "compose", "version"], capture_output=True, check=False)
    assert out.returncode == 127
    assert out.stderr.decode().strip() == (
        f"compose-rollback: the Compose plugin {gone} is gone; run install.sh again"
    )
