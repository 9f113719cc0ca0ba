"""Shell completion through docker's own, with the plugin installed as the README installs it.

The run's one real ``install.sh`` (``support.installed``: a throwaway HOME, DOCKER_CONFIG and
COMPOSE_ROLLBACK_HOME, the machine's real Compose plugin symlinked into that docker config),
seen from a HOME and docker config of each test's own; a second docker config without the
install gives compose's own answers to compare with. The docker CLI is asked as its
completion scripts ask it (``docker __complete …``), and the real shells run those scripts:
bash (``docker completion bash``, and Debian's own bash completion), zsh (its line editor, in
a pseudo-terminal) and fish (``complete --do-complete``).
"""

from __future__ import annotations

import resource
import shutil
import statistics
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest
from core_helpers import fresh_image, service, services, up, write_compose
from typer.main import get_command

from compose_rollback.cli import app
from support.compose_project import ComposeProject
from support.installed import PluginUser, base_env
from support.plugins import find_real_compose
from support.prereq import need
from support.testimages import AppImages

pytestmark = pytest.mark.docker

COMMANDS = {n for n, c in get_command(app).commands.items()  # type: ignore[attr-defined]
            if not c.hidden}
DEBIAN_BASH_COMPLETION = Path("/usr/share/bash-completion/completions/docker")
BASH_COMPLETION = Path("/usr/share/bash-completion/bash_completion")
COMPOSE_FILE = "services:\n  web:\n    image: a\n  db:\n    image: b\n  worker:\n    image: c\n"

# COMP_WORDS/COMP_CWORD as bash sets them for the line in $1, then the function that
# `complete -F` registered for docker; prints COMPREPLY.
BASH_HARNESS = """
source {bash_completion}
{load}
compopt() {{ :; }}  # only valid while bash itself runs a completion
COLUMNS=120  # a terminal's width: with several candidates, cobra's script adds "  (help)"
line=$1
read -ra COMP_WORDS <<< "$line"
[[ $line == *' ' ]] && COMP_WORDS+=('')
COMP_CWORD=$((${{#COMP_WORDS[@]}} - 1))
COMP_LINE=$line
COMP_POINT=${{#line}}
$(complete -p docker | sed 's/.* -F \\([^ ]*\\) .*/\\1/') docker "${{COMP_WORDS[COMP_CWORD]}}"
printf '%s\\n' "${{COMPREPLY[@]}}"
"""

# An interactive zsh in a pseudo-terminal: the line in $1, a TAB (zsh's own completion
# widget), then Ctrl-X, bound to print the edited line; the read waits for that print.
ZSH_HARNESS = r"""
zmodload zsh/zpty
zpty -b z zsh -f -i
zpty -w z 'autoload -Uz compinit && compinit -u -D && eval "$(docker completion zsh)"'
zpty -w z 'dump() { zle -I; print -r -- "DUMP""=[${BUFFER}]"; BUFFER=; zle accept-line }'
zpty -w z 'zle -N dump; bindkey "^X" dump'
zpty -w -n z "$1"$'\t\x18'
zpty -r z line '*DUMP=\[*\]*' || exit 1
zpty -d z
print -r -- "${${line##*DUMP=\[}%%\]*}"
"""


@dataclass(frozen=True)
class Docker:
    env: dict[str, str]  # through the installed plugins
    plain_env: dict[str, str]  # the same machine without the install

    def run(self, args: Sequence[str], *, cwd: Path, plain: bool = False,
            timeout: float = 60) -> subprocess.CompletedProcess[str]:
        return subprocess.run(list(args), env=self.plain_env if plain else self.env, cwd=cwd,
                              capture_output=True, text=True, timeout=timeout, check=False)

    def complete(self, *words: str, cwd: Path, plain: bool = False) -> list[str]:
        """``docker __complete WORDS``: the candidate lines, the directive last."""
        out = self.run(["docker", "__complete", *words], cwd=cwd, plain=plain)
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()


def values(lines: Sequence[str]) -> list[str]:
    assert lines and lines[-1].startswith(":"), f"no directive last: {lines}"
    return [line.split("\t", 1)[0] for line in lines[:-1]]


@pytest.fixture
def docker(plugin_user: PluginUser, tmp_path_factory: pytest.TempPathFactory) -> Docker:
    """The run's real install (``support.installed``), in a HOME and docker config of this
    test's own, beside a docker config of the same machine without it."""
    plain = tmp_path_factory.mktemp("plain-config")
    (plain / "config" / "cli-plugins").mkdir(parents=True)
    (plain / "config" / "cli-plugins" / "docker-compose").symlink_to(find_real_compose())
    (plain / "home").mkdir()
    plain_env = {**base_env(), "HOME": str(plain / "home"), "DOCKER_CONFIG": str(plain / "config")}
    return Docker(env=plugin_user.env, plain_env=plain_env)


@pytest.fixture
def project_dir(tmp_path: Path) -> Path:
    (tmp_path / "shop").mkdir()
    (tmp_path / "shop" / "compose.yaml").write_text(COMPOSE_FILE)
    return tmp_path / "shop"


# -- the docker CLI's protocol -------------------------------------------------------------------

@pytest.mark.parametrize("words", [["compose", "rollback"], ["rollback"],
                                   ["compose", "-p", "shop", "rollback"]], ids=" ".join)
def test_our_commands(docker: Docker, project_dir: Path, words: list[str]) -> None:
    lines = docker.complete(*words, "", cwd=project_dir)
    assert set(values(lines)) == COMMANDS
    assert lines[-1] == ":4"
    assert "revert\tGo back to the last good revision" in "\n".join(lines)
    assert values(docker.complete(*words, "re", cwd=project_dir)) == ["revert"]


def test_our_flags(docker: Docker, project_dir: Path) -> None:
    up_command: Any = get_command(app).commands["up"]  # type: ignore[attr-defined]
    flags = {o for p in up_command.params if p.param_type_name == "option"
             for o in [*p.opts, *p.secondary_opts] if o.startswith("--")}  # --commit/--no-commit
    assert {"--build", "--dry-run", "--no-rollback", "--json"} <= flags
    lines = docker.complete("compose", "rollback", "up", "--", cwd=project_dir)
    assert set(values(lines)) == flags | {"--help"}
    assert "--dry-run\tPrint the revision and the plan; change nothing." in lines


def test_service_names_of_the_project(docker: Docker, project_dir: Path) -> None:
    lines = docker.complete("compose", "rollback", "up", "", cwd=project_dir)
    assert lines == ["db", "web", "worker", ":4"]
    lines = docker.complete("compose", "rollback", "up", "web", "w", cwd=project_dir)
    assert lines == ["worker", ":4"]
    (project_dir / "other.yaml").write_text("services:\n  api:\n    image: x\n")
    lines = docker.complete("compose", "-f", "other.yaml", "rollback", "up", "", cwd=project_dir)
    assert lines == ["api", ":4"]


def test_revision_numbers_with_their_status(docker: Docker, project: ComposeProject,
                                            images: AppImages) -> None:
    for version in ("v1", "v2", "v3"):
        ref, _ = fresh_image(images, project, version)
        write_compose(project, services(app=service(ref)))
        up(project, "-m", f"release {version}")
    for words in (["compose", "rollback", "revert", "--to"], ["rollback", "revert", "--to"],
                  ["compose", "rollback", "diff"], ["compose", "rollback", "diff", "3"]):
        lines = docker.complete(*words, "", cwd=project.dir)
        assert values(lines) == ["3", "2", "1"], (words, lines)
        assert lines[-1] == ":36"  # no files, and keep this order: newest first
        assert lines[0].startswith("3\tdeployed 20") and lines[0].endswith(" release v3")
        assert lines[2].startswith("1\tsuperseded ")
    assert values(docker.complete("compose", "rollback", "revert", "--to=", cwd=project.dir)) \
        == ["3", "2", "1"]


@pytest.mark.parametrize("words", [
    ["compose", "up", ""], ["compose", "up", "--"], ["compose", "-p", "x", "ps", ""],
    ["compose", "--fi"], ["compose", "-f", ""], ["compose", "u"],
    ["compose", "logs", "rollback", ""], ["compose", "-p", "rollback", "ps", ""],
], ids=repr)
def test_everything_else_is_composes_own_answer(docker: Docker, project_dir: Path,
                                                words: list[str]) -> None:
    ours = docker.run(["docker", "__complete", *words], cwd=project_dir)
    theirs = docker.run(["docker", "__complete", *words], cwd=project_dir, plain=True)
    assert (ours.returncode, ours.stdout, ours.stderr) == (
        theirs.returncode, theirs.stdout, theirs.stderr)
    assert theirs.stdout.strip(), "compose answered nothing"


@pytest.mark.parametrize("words", [["compose", ""], ["compose", "-p", "x", "r"],
                                   ["compose", "--dry-run", "rollback"]], ids=repr)
def test_compose_offers_rollback_too(docker: Docker, project_dir: Path,
                                     words: list[str]) -> None:
    """Completing compose's command word: compose's own answer, and `rollback` with it."""
    ours = docker.complete(*words, cwd=project_dir)
    theirs = docker.complete(*words, cwd=project_dir, plain=True)
    assert "rollback" not in values(theirs)
    added = [line for line in ours if line.startswith("rollback")]
    assert added == ["rollback\tDeploy pinned and gated, revert to any revision "
                     "(compose-rollback)"]
    assert [line for line in ours if line not in added] == theirs


# -- the real shells -----------------------------------------------------------------------------

def bash_complete(docker: Docker, line: str, *, cwd: Path, load: str) -> list[str]:
    need(BASH_COMPLETION if BASH_COMPLETION.is_file() else None,
         "bash-completion is not installed (Debian package bash-completion)")
    script = BASH_HARNESS.format(bash_completion=BASH_COMPLETION, load=load)
    out = docker.run(["bash", "-c", script, "harness", line], cwd=cwd)
    assert out.returncode == 0, out.stderr
    # One candidate a line; beside several, cobra's script shows each one's help after two
    # spaces, in parentheses (bash lists them; none is inserted): the candidate is before it.
    return [line.split("  (", 1)[0].strip() for line in out.stdout.splitlines() if line.strip()]


def test_bash_with_dockers_completion_script(docker: Docker, project_dir: Path) -> None:
    load = 'eval "$(docker completion bash)"'
    assert bash_complete(docker, "docker compose rollback re", cwd=project_dir,
                         load=load) == ["revert"]
    assert sorted(bash_complete(docker, "docker compose rollback ", cwd=project_dir,
                                load=load)) == sorted(COMMANDS)
    assert bash_complete(docker, "docker compose rollback up ", cwd=project_dir,
                         load=load) == ["db", "web", "worker"]
    assert bash_complete(docker, "docker rollback up --dry", cwd=project_dir,
                         load=load) == ["--dry-run"]
    assert bash_complete(docker, "docker compose up --dry", cwd=project_dir,
                         load=load) == ["--dry-run"]  # compose's own flag, still there
    assert bash_complete(docker, "docker compose rol", cwd=project_dir,
                         load=load) == ["rollback"]


def test_bash_with_debians_completion_script(docker: Docker, project_dir: Path) -> None:
    """Debian's docker.io ships docker's older bash completion, which runs plugins itself."""
    need(DEBIAN_BASH_COMPLETION if DEBIAN_BASH_COMPLETION.is_file() else None,
         "no Debian docker bash completion (Debian package docker.io)")
    load = f"source {DEBIAN_BASH_COMPLETION}"
    assert bash_complete(docker, "docker compose rollback re", cwd=project_dir,
                         load=load) == ["revert"]
    assert bash_complete(docker, "docker compose rollback up ", cwd=project_dir,
                         load=load) == ["db", "web", "worker"]
    assert bash_complete(docker, "docker rollback re", cwd=project_dir, load=load) == ["revert"]
    assert bash_complete(docker, "docker compose up ", cwd=project_dir,
                         load=load) == ["db", "web", "worker"]
    assert bash_complete(docker, "docker compose rol", cwd=project_dir,
                         load=load) == ["rollback"]


def test_zsh_line_editor(docker: Docker, project_dir: Path) -> None:
    zsh = need(shutil.which("zsh"), "zsh is not installed (Debian package zsh)")

    def completed(line: str) -> str:
        out = docker.run([zsh, "-f", "-c", ZSH_HARNESS, "harness", line], cwd=project_dir)
        assert out.returncode == 0, out.stderr
        return out.stdout.rstrip("\n")

    assert completed("docker compose rollback re") == "docker compose rollback revert "
    assert completed("docker compose rollback up --dry") == "docker compose rollback up --dry-run "
    assert completed("docker compose rollback up wo") == "docker compose rollback up worker "
    assert completed("docker rollback hi") == "docker rollback history "
    assert completed("docker compose up --dry") == "docker compose up --dry-run "
    assert completed("docker compose rol") == "docker compose rollback "


def test_fish(docker: Docker, project_dir: Path) -> None:
    fish = need(shutil.which("fish"), "fish is not installed (Debian package fish)")

    def candidates(line: str) -> list[str]:
        script = f"docker completion fish | source; complete --do-complete {line!r}"
        out = docker.run([fish, "--no-config", "-c", script], cwd=project_dir)
        assert out.returncode == 0, out.stderr
        return out.stdout.splitlines()

    assert candidates("docker compose rollback re") == [
        "revert\tGo back to the last good revision, or to any kept revision (recorded as a "
        "new..."]
    assert {c.split("\t")[0] for c in candidates("docker compose rollback ")} == COMMANDS
    assert candidates("docker compose rollback up ") == ["db", "web", "worker"]
    assert candidates("docker compose rol") == [
        "rollback\tDeploy pinned and gated, revert to any revision (compose-rollback)"]
    assert candidates("docker rollback up --no-r") == [
        "--no-rollback\tLeave a failed revision in place instead of reverting."]


# -- speed: it runs on every TAB -----------------------------------------------------------------

def _best(run: Any, runs: int) -> str:
    """Wall time (fastest, median) and CPU time of the processes started (fastest): the CPU
    figure is what a busy machine (other suites on the same 2 cores) does not inflate much."""
    walls, cpus = [], []
    for _ in range(runs):
        before, start = resource.getrusage(resource.RUSAGE_CHILDREN), time.perf_counter()
        run()
        walls.append(time.perf_counter() - start)
        after = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpus.append(after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime)
    return (f"wall fastest {min(walls) * 1000:.0f} ms, median "
            f"{statistics.median(walls) * 1000:.0f} ms; CPU {min(cpus) * 1000:.0f} ms")


def test_latency_is_measured(docker: Docker, project: ComposeProject, images: AppImages) -> None:
    """Prints the figures (the README quotes them); asserts only that each answer is right."""
    ref, _ = fresh_image(images, project, "v1")
    write_compose(project, services(app=service(ref)))
    up(project)
    shim = Path(docker.env["COMPOSE_ROLLBACK_HOME"]) / "cli-plugins" / "docker-compose"
    cases = {
        "plugin alone, up SERVICE": [str(shim), "__complete", "compose", "rollback", "up", ""],
        "plugin alone, revert --to REV": [str(shim), "__complete", "compose", "rollback",
                                          "revert", "--to", ""],
        "docker __complete compose rollback up ''": ["docker", "__complete", "compose",
                                                     "rollback", "up", ""],
    }
    report = []
    for name, argv in cases.items():
        def run(argv: list[str] = argv) -> None:
            out = docker.run(argv, cwd=project.dir)
            assert out.returncode == 0 and values(out.stdout.splitlines())[0] in ("app", "1"), out
        report.append(f"{name}: {_best(run, 10)}")

    def compose_own() -> None:
        out = docker.run(["docker", "__complete", "compose", "up", ""], cwd=project.dir,
                         plain=True)
        assert out.stdout.splitlines()[0] == "app", out
    report.append(f"compose's own docker __complete compose up '' (no install): "
                  f"{_best(compose_own, 10)}")
    print("\ncompletion latency over 10 runs each:\n  " + "\n  ".join(report))
