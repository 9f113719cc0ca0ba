"""Shell completion's candidate logic (``compose_rollback.completion``), no docker involved.

Commands and flags are compared with the click command Typer builds of the app, so a command
or option added later is covered by these tests without a change here.
"""

from __future__ import annotations

import enum
import subprocess
import sys
from pathlib import Path
from typing import Annotated, Any

import pytest
import typer
from typer.main import get_command

from compose_rollback.cli import app
from compose_rollback.completion import (
    KEEP_ORDER,
    NO_FILE_COMP,
    Answer,
    Candidate,
    Values,
    answer,
    complete,
    compose_services,
    revision_candidates,
)
from compose_rollback.pins import Pin
from compose_rollback.project import Project
from compose_rollback.revisions import Revision, RevisionStore, checksum

ROOT = get_command(app)
COMMANDS: dict[str, Any] = {n: c for n, c in ROOT.commands.items()  # type: ignore[attr-defined]
                            if not c.hidden}
REVISIONS = [Candidate("12", "deployed 2026-11-30 12:04 release 12"),
             Candidate("3", "failed 2026-11-29 08:00"), Candidate("1", "superseded")]
FAKE = Values(revisions=lambda: list(REVISIONS), services=lambda: ["db", "web", "worker"])


def values(words: list[str], incomplete: str) -> list[str]:
    return [c.value for c in complete(words, incomplete, values=FAKE).candidates]


def option_names(command: Any) -> set[str]:
    return {name for p in command.params if p.param_type_name == "option" and not p.hidden
            for name in (*p.opts, *p.secondary_opts)}


def test_every_command_of_the_app_is_offered_with_its_short_help() -> None:
    found = complete([], "", values=FAKE)
    assert {c.value for c in found.candidates} == set(COMMANDS)
    assert {"up", "revert", "history", "status", "diff", "pin", "prune"} <= set(COMMANDS)
    helps = {c.value: c.description for c in found.candidates}
    assert all(helps[name] == cmd.get_short_help_str(limit=80) and helps[name]
               for name, cmd in COMMANDS.items())
    assert found.directive == NO_FILE_COMP


@pytest.mark.parametrize("name", sorted(COMMANDS))
def test_every_option_of_every_command_is_offered(name: str) -> None:
    command = COMMANDS[name]
    offered = complete([name], "-", values=FAKE).candidates
    assert {c.value for c in offered} == option_names(command) | {"-h", "--help"}
    helps = {c.value: c.description for c in offered}
    for param in command.params:
        if param.param_type_name == "option" and param.help:
            assert helps[param.opts[0]] == param.help


def test_the_root_options_before_a_command() -> None:
    assert set(values([], "-")) == option_names(ROOT) | {"-h", "--help"}
    assert "--debug" in values([], "--")
    assert values(["--debug"], "re") == ["revert"]


def test_a_prefix_filters_commands_and_options() -> None:
    assert values([], "re") == ["revert"]
    assert values([], "p") == ["pin", "prune"]
    assert values(["up"], "--no-") == ["--no-commit", "--no-rollback"]
    assert values([], "zzz") == []


def test_an_option_given_once_is_not_offered_again() -> None:
    assert "--build" not in values(["up", "--build"], "--")
    assert "--message" not in values(["up", "-m", "x"], "--")
    assert "--json" in values(["up", "-m", "x"], "--")


def test_revisions_newest_first_for_revert_to() -> None:
    found = complete(["revert", "--to"], "", values=FAKE)
    assert found.candidates == REVISIONS
    assert found.directive == NO_FILE_COMP | KEEP_ORDER  # the shell keeps newest first
    assert values(["revert", "--to"], "1") == ["12", "1"]
    assert values(["revert", "-m", "why", "--to"], "3") == ["3"]


def test_revisions_after_an_equals_sign() -> None:
    # cobra's scripts send `--to=` whole and put the flag back in front of each value
    assert values(["revert"], "--to=") == ["12", "3", "1"]
    assert values(["revert"], "--to=1") == ["12", "1"]
    assert values(["revert"], "--message=") == []


def test_revisions_for_both_diff_arguments_then_flags() -> None:
    assert values(["diff"], "") == ["12", "3", "1"]
    assert values(["diff", "3"], "") == ["12", "3", "1"]
    assert values(["diff", "3", "12"], "") == ["--help", "--json", "-h"]
    assert values(["diff", "--json", "3"], "1") == ["12", "1"]


def test_services_for_up_each_once() -> None:
    assert values(["up"], "") == ["db", "web", "worker"]
    assert values(["up", "web"], "") == ["db", "worker"]
    assert values(["up", "--build", "-m", "msg", "db"], "w") == ["web", "worker"]
    assert values(["up", "--"], "") == ["db", "web", "worker"]
    assert values(["up", "--"], "-") == []  # after `--` a dash is no flag


def test_values_nobody_can_guess_complete_to_nothing() -> None:
    assert values(["up", "--message"], "") == []
    assert values(["up", "-m"], "") == []
    assert values(["up", "--timeout"], "5") == []
    assert values(["revert", "--message"], "--") == []  # a value, even one with dashes


def test_no_flags_offered_without_a_dash_where_values_are_expected() -> None:
    assert values(["history"], "") == ["--help", "--json", "-h"]
    assert values(["up"], "") == ["db", "web", "worker"]


def test_an_unknown_command_completes_nothing() -> None:
    assert values(["bogus"], "") == []
    assert values(["bogus"], "-") == []


def test_values_are_read_only_when_wanted() -> None:
    def boom() -> list[Any]:
        raise AssertionError("read although no value was wanted")

    lazy = Values(revisions=boom, services=boom)
    assert complete([], "", values=lazy).candidates
    assert complete(["up"], "--", values=lazy).candidates


def test_the_wire_format_is_cobras() -> None:
    found = Answer([Candidate("3", "deployed\t2026-11-30\nmore"), Candidate("up")], 36)
    assert found.render(descriptions=True) == "3\tdeployed 2026-11-30 more\nup\n:36\n"
    assert found.render(descriptions=False) == "3\nup\n:36\n"
    assert Answer([]).render(descriptions=True) == ":4\n"


def write_project(tmp_path: Path) -> Path:
    (tmp_path / "compose.yaml").write_text(
        "name: shop\nservices:\n  web:\n    image: a\n  db:\n    image: b\n")
    return tmp_path


@pytest.mark.parametrize("words", [
    ["__complete", "compose", "rollback", "up", ""],  # docker -> the compose shim
    ["__complete", "rollback", "up", ""],  # docker -> docker-rollback
    ["__completeNoDesc", "rollback", "up", ""],  # Debian's bash completion -> the compose shim
    ["__completeNoDesc", "up", ""],  # Debian's bash completion -> docker-rollback
], ids=repr)
def test_every_way_a_request_arrives(tmp_path: Path, words: list[str]) -> None:
    assert answer(words, environ={}, cwd=write_project(tmp_path)) == "db\nweb\n:4\n"


def test_compose_globals_choose_the_project(tmp_path: Path) -> None:
    other = tmp_path / "elsewhere"
    other.mkdir()
    (other / "prod.yaml").write_text("services:\n  api:\n    image: a\n")
    words = ["__complete", "compose", "-f", str(other / "prod.yaml"), "rollback", "up", ""]
    assert answer(words, environ={}, cwd=write_project(tmp_path)) == "api\n:4\n"
    words = ["__complete", "compose", "--project-directory", str(other), "-f", "prod.yaml",
             "rollback", "up", "a"]
    assert answer(words, environ={}, cwd=other) == "api\n:4\n"


def test_descriptions_off(tmp_path: Path) -> None:
    words = ["__complete", "compose", "rollback", "hi"]
    with_help = answer(words, environ={}, cwd=tmp_path)
    assert with_help.startswith("history\tList revisions")
    assert answer(["__completeNoDesc", *words[1:]], environ={}, cwd=tmp_path) == "history\n:4\n"
    off = {"DOCKER_COMPLETION_DESCRIPTIONS": "false"}
    assert answer(words, environ=off, cwd=tmp_path) == "history\n:4\n"


def test_without_a_project_commands_still_complete(tmp_path: Path) -> None:
    # no compose file here: nothing to offer as a service, but no error either
    assert answer(["__complete", "compose", "rollback", "up", ""], environ={},
                  cwd=tmp_path) == ":4\n"
    assert "revert" in answer(["__complete", "compose", "rollback", ""], environ={},
                              cwd=tmp_path)


def test_a_global_flag_without_its_value_is_an_error_directive(tmp_path: Path) -> None:
    # the shim sends this to compose itself; answered anyway, as cobra answers what it
    # cannot parse: no candidates, the error directive
    assert answer(["__complete", "compose", "-f"], environ={}, cwd=tmp_path) == ":1\n"


def test_services_of_included_files(tmp_path: Path) -> None:
    (tmp_path / "sub").mkdir()
    (tmp_path / "sub" / "db.yaml").write_text("services:\n  db: {image: b}\n")
    (tmp_path / "sub" / "cache.yaml").write_text(
        "include: [more.yaml]\nservices:\n  cache: {image: c}\n")
    (tmp_path / "sub" / "more.yaml").write_text("services:\n  queue: {image: q}\n")
    (tmp_path / "compose.yaml").write_text(
        "include:\n  - sub/db.yaml\n  - path: [sub/cache.yaml, missing.yaml]\n"
        "  - path: ${NOT_READ}.yaml\n  - oci://example/x\n"
        "services:\n  web: {image: a}\n  db: !reset {}\n")
    (tmp_path / "override.yaml").write_text("services:\n  web: {ports: !override []}\n"
                                            "  extra: {image: e}\n")
    files = (tmp_path / "compose.yaml", tmp_path / "override.yaml")
    assert compose_services(files) == ["cache", "db", "extra", "queue", "web"]


def test_broken_or_odd_compose_files_give_no_services(tmp_path: Path) -> None:
    (tmp_path / "bad.yaml").write_text("services: [\n")
    (tmp_path / "list.yaml").write_text("- a\n")
    (tmp_path / "loop.yaml").write_text("include: [loop.yaml]\nservices: {x: {}}\n")
    assert compose_services((tmp_path / "bad.yaml", tmp_path / "list.yaml",
                             tmp_path / "gone.yaml")) == []
    assert compose_services((tmp_path / "loop.yaml",)) == ["x"]


def _revision(number: int, status: str, message: str) -> tuple[Revision, str]:
    text = f"services:\n  web:\n    image: sha256:{'d' * 64}\n# {number}\n"
    pin = Pin("web", "app:1", "sha256:" + "d" * 64, "sha256:" + "d" * 64, local=True,
              retention="app:rollback-p-dddddddddddd")
    return Revision(number=number, status=status, kind="up",
                    created=f"2026-11-{number:02d}T12:0{number}:30Z",
                    file=f"revisions/{number:04d}.yaml", sha256=checksum(text),
                    pins={"web": pin}, message=message, services=("web",)), text


def test_revision_candidates_from_the_store(tmp_path: Path) -> None:
    project = Project(name="shop", directory=tmp_path, files=(tmp_path / "compose.yaml",))
    assert revision_candidates(project, environ={}) == []  # no store yet
    store = RevisionStore(tmp_path / ".rollback" / "shop")
    for number, status, message in ((1, "superseded", ""), (2, "failed", "bad build"),
                                    (3, "deployed", "release 3")):
        store.add(*_revision(number, status, message))
    assert revision_candidates(project, environ={}) == [
        Candidate("3", "deployed 2026-11-03 12:03 release 3"),
        Candidate("2", "failed 2026-11-02 12:02 bad build"),
        Candidate("1", "superseded 2026-11-01 12:01"),
    ]
    moved = {"COMPOSE_ROLLBACK_DIR": str(tmp_path / "elsewhere")}
    assert revision_candidates(project, environ=moved) == []


def test_a_corrupt_history_completes_nothing(tmp_path: Path) -> None:
    project = Project(name="shop", directory=tmp_path, files=(tmp_path / "compose.yaml",))
    (tmp_path / ".rollback" / "shop").mkdir(parents=True)
    (tmp_path / ".rollback" / "shop" / "history.json").write_text("{not json")
    assert revision_candidates(project, environ={}) == []


def test_the_completion_path_imports_nothing_heavy(tmp_path: Path) -> None:
    """It runs on every TAB: no python-on-whales, pydantic or rich (each costs tens of ms)."""
    store = write_project(tmp_path) / ".rollback" / "shop"
    RevisionStore(store).add(*_revision(1, "deployed", "first"))
    code = ("import sys\n"
            "from compose_rollback.plugin import main\n"
            "main(['__complete', 'compose', 'rollback', 'up', ''])\n"
            "main(['__complete', 'compose', 'rollback', 'revert', '--to', ''])\n"
            "heavy = {'python_on_whales', 'pydantic', 'rich', 'compose_rollback.engine'}\n"
            "print(sorted(m for m in sys.modules if m.split('.')[0] in heavy or m in heavy))\n")
    done = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True,
                          text=True, check=False)
    assert done.returncode == 0, done.stderr
    assert done.stdout.splitlines() == ["db", "web", ":4", "1\tdeployed 2026-11-01 12:01 first",
                                        ":36", "[]"]


class Mode(str, enum.Enum):
    fast = "fast"
    careful = "careful"


def test_any_typer_app_completes_nested_groups_and_choices() -> None:
    """What a command added later gets with no change here: a sub-group, a choice option."""
    other = typer.Typer()
    schema = typer.Typer(help="JSON schemas.")
    other.add_typer(schema, name="schema")

    @schema.command()
    def show(*, mode: Annotated[Mode, typer.Option(help="How.")] = Mode.fast,
             commit: Annotated[bool, typer.Option("--commit/--no-commit")] = False) -> None:
        """Print a schema."""

    @other.command()
    def watch(*, for_: Annotated[str, typer.Option("--for", metavar="DURATION")] = "") -> None:
        """Keep watching."""

    root = get_command(other)

    def found(words: list[str], incomplete: str) -> list[str]:
        return [c.value for c in complete(words, incomplete, values=FAKE, root=root).candidates]

    assert found([], "") == ["schema", "watch"]
    assert found(["schema"], "") == ["show"]
    assert set(found(["schema", "show"], "--")) == {"--mode", "--commit", "--no-commit",
                                                    "--help"}
    assert found(["schema", "show", "--mode"], "") == ["fast", "careful"]
    assert found(["schema", "show"], "--mode=c") == ["careful"]
    assert found(["watch"], "--f") == ["--for"]
    assert found(["watch", "--for"], "") == []
