"""Exit codes never lie: one table maps outcomes and errors; a bug is 70, never "rolled back";
an error no gate foresaw during apply or gate still puts the last good revision back."""

from __future__ import annotations

import dataclasses
import importlib
import json
import pkgutil
from collections.abc import Sequence
from pathlib import Path
from typing import Any, get_args

import pytest

import compose_rollback
from compose_rollback import cli, deploy, errors, plugin
from compose_rollback.context import Context
from compose_rollback.dockerdata import ImageInfo
from compose_rollback.errors import Crashed, ExitCode, RollbackError
from compose_rollback.project import Project
from compose_rollback.revisions import RevisionStore

from .fake_engine import FakeEngine

GOOD = ImageInfo("sha256:" + "1" * 64, ("reg/app:latest",), ("reg/app@sha256:" + "a" * 64,))
BAD = ImageInfo("sha256:" + "2" * 64, ("reg/app:latest",), ("reg/app@sha256:" + "b" * 64,))
FAST = deploy.Overrides(timeout=5.0, min_healthy=0.0)


# -- the one table ------------------------------------------------------------------------------
def _all_error_classes() -> list[type[RollbackError]]:
    for info in pkgutil.walk_packages(compose_rollback.__path__, "compose_rollback."):
        if info.name != "compose_rollback.__main__":
            importlib.import_module(info.name)
    found: list[type[RollbackError]] = []
    todo = [RollbackError]
    while todo:
        cls = todo.pop()
        found.append(cls)
        todo.extend(cls.__subclasses__())
    return found


def test_every_error_class_lives_in_errors_and_is_mapped_by_the_cli() -> None:
    for cls in _all_error_classes():
        assert cls.__module__ == "compose_rollback.errors", f"{cls.__name__} outside errors.py"
        assert "exit_code" not in vars(cls), f"{cls.__name__} decides its own exit code"
        if cls is RollbackError:
            continue
        nearest = next(c for c in cls.__mro__ if c in cli.ERROR_CODES)
        assert nearest is not RollbackError, f"{cls.__name__} has no exit code of its own"


def test_every_outcome_has_a_code_and_results_carry_none() -> None:
    assert {o: cli.exit_code(o) for o in get_args(deploy.Outcome)} == {
        "deployed": ExitCode.OK, "dry_run": ExitCode.OK, "rolled_back": ExitCode.ROLLED_BACK,
        "failed": ExitCode.ROLLED_BACK, "unrestored": ExitCode.NEEDS_PERSON,
        "watch_interrupted": ExitCode.INTERRUPTED}
    names = {f.name for f in dataclasses.fields(deploy.DeployResult)}
    assert "exit_code" not in names


def test_the_table_in_the_readme_lists_every_code() -> None:
    readme = (Path(compose_rollback.__file__).parents[1] / "README.md").read_text()
    section = readme.split("### Exit codes", 1)[1].split("\n## ", 1)[0]
    for code in ExitCode:
        assert f"\n| {int(code)} |" in section, f"exit code {int(code)} is not in the README"


def test_unexpected_errors_and_interrupts_have_codes_of_their_own() -> None:
    assert cli.exit_code(ValueError("x")) == ExitCode.INTERNAL == 70
    assert cli.exit_code(KeyboardInterrupt()) == ExitCode.INTERRUPTED == 130
    assert ExitCode.INTERNAL not in range(6)


# -- a bug through the CLI ------------------------------------------------------------------------
def _broken_history(*_: Any, **__: Any) -> Any:
    raise ValueError("boom in history")


@pytest.mark.parametrize("debug", [False, True])
def test_a_bug_is_70_with_one_line_and_the_way_to_the_traceback(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str], tmp_path: Path,
        debug: bool) -> None:
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.setattr("compose_rollback.context.history", _broken_history)
    args = ["-p", "shop", *(["--debug"] if debug else []), "history"]
    code = plugin.main(args)
    err = capsys.readouterr().err
    assert code == 70
    lines = err.strip().splitlines()
    assert lines[-1].startswith("compose-rollback: unexpected error: ValueError: boom in history")
    if debug:
        assert "Traceback (most recent call last)" in err
    else:
        assert len(lines) == 1, err
        assert "compose-rollback --debug history" in lines[0]
        assert "nothing was changed" in lines[0]


def test_debug_keeps_the_exit_code_of_a_known_error(
        monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str],
        tmp_path: Path) -> None:
    monkeypatch.chdir(tmp_path)
    code = plugin.main(["-p", "shop", "--debug", "up", "--pull", "sometimes"])
    err = capsys.readouterr().err
    assert code == ExitCode.BAD_INPUT, err
    assert "Traceback" in err and err.strip().splitlines()[-1] == (
        "compose-rollback: --pull: expected always, missing or never, got 'sometimes'")


def test_a_usage_error_of_the_global_flags_goes_through_the_same_table(
        capsys: pytest.CaptureFixture[str]) -> None:
    assert plugin.main(["-f"]) == ExitCode.BAD_INPUT
    assert capsys.readouterr().err == "compose-rollback: flag -f needs a value\n"


# -- the transaction, engine seam replaced --------------------------------------------------------
@pytest.fixture
def ctx(tmp_path: Path) -> tuple[Context, FakeEngine]:
    model = {"name": "shop", "services": {"web": {"image": "reg/app:latest"}}}
    engine = FakeEngine(model=model, images={"reg/app:latest": GOOD})
    compose_file = tmp_path / "compose.yaml"
    compose_file.write_text("services: {}\n")
    project = Project(name="shop", directory=tmp_path, files=(compose_file,))
    context = Context(project=project, store=RevisionStore(tmp_path / ".rollback" / "shop"),
                      progress=lambda line: None,
                      engine_factory=lambda: engine)  # type: ignore[arg-type,return-value]
    return context, engine


def _up(context: Context) -> deploy.DeployResult:
    return deploy.up(context, services=[], build=False, pull=None, message="m",
                     overrides=FAST, rollback=True, dry_run=False)


def _gate_raises(engine: FakeEngine, error: Exception, *, also_on_restore: bool) -> None:
    """Looking at the containers raises once the bad image runs: that once only (the gate of
    the new revision), or from then on (the restore's gate too)."""
    original = engine.containers
    raised: list[Exception] = []

    def containers(project_name: str, *, known: Sequence[str] = (),
                   limit: float = 30.0) -> list[Any]:
        if (engine.running.get("web") == BAD.id and not raised) or (raised and also_on_restore):
            raised.append(error)
            raise error
        return original(project_name, known=known, limit=limit)

    engine.containers = containers  # type: ignore[method-assign]


def _journal(context: Context) -> list[dict[str, Any]]:
    lines = (context.store.root / "journal.jsonl").read_text().splitlines()
    return [json.loads(line) for line in lines if line.strip()]


def test_an_oserror_in_the_gate_is_a_failed_gate_and_the_good_revision_comes_back(
        ctx: tuple[Context, FakeEngine]) -> None:
    context, engine = ctx
    _up(context)
    engine.images["reg/app:latest"] = BAD
    _gate_raises(engine, OSError(24, "Too many open files"), also_on_restore=False)
    result = _up(context)
    assert (result.outcome, result.restored) == ("rolled_back", 1), result.message
    assert engine.applied == ["0001.yaml", "0002.yaml", "0001.yaml"]
    second = context.store.get(2)
    assert (second.status, second.restored_to) == ("failed", 1)
    assert "unexpected error: OSError: [Errno 24] Too many open files" in second.reason
    last = _journal(context)[-1]
    assert (last["step"], last["outcome"], last["restores"]) == ("end", "rolled_back", 1)


def test_a_bug_in_the_gate_and_in_the_restore_needs_a_person(
        ctx: tuple[Context, FakeEngine]) -> None:
    context, engine = ctx
    _up(context)
    engine.images["reg/app:latest"] = BAD
    _gate_raises(engine, RuntimeError("no luck"), also_on_restore=True)
    result = _up(context)
    assert result.outcome == "unrestored"
    assert cli.exit_code(result) == ExitCode.NEEDS_PERSON
    assert "restoring revision 1 failed too: unexpected error: RuntimeError: no luck" \
        in result.message
    assert context.store.get(2).status == "failed"  # not left pending
    assert _journal(context)[-1]["outcome"] == "unrestored"


def test_a_bug_after_recording_marks_the_revision_and_ends_the_journal(
        ctx: tuple[Context, FakeEngine]) -> None:
    context, engine = ctx

    def tag(source: str, target: str) -> None:
        raise ValueError("cannot tag")

    engine.tag = tag  # type: ignore[method-assign]
    with pytest.raises(Crashed) as caught:
        _up(context)
    crash = caught.value
    assert cli.exit_code(crash) == ExitCode.INTERNAL
    assert (crash.revision, crash.step, crash.applied) == (1, "recorded", False)
    assert crash.one_line() == (
        "unexpected error: ValueError: cannot tag; revision 1 stopped during 'recorded' and is "
        "marked interrupted; no container was changed")
    first = context.store.get(1)
    assert first.status == "interrupted" and "ValueError: cannot tag" in first.reason
    last = _journal(context)[-1]
    assert last["step"] == "end" and last["crashed"] == "ValueError: cannot tag"
    assert (last["during"], last["revision"], last["applied"]) == ("recorded", 1, False)
    assert engine.applied == []


def test_crashed_keeps_its_data() -> None:
    crash = errors.Crashed(KeyError("k"), state="s", revision=3, step="gate", applied=True)
    assert (crash.error_type, crash.detail, crash.state) == ("KeyError", "'k'", "s")


def test_common_errors_carry_their_data(ctx: tuple[Context, FakeEngine]) -> None:
    context, _engine = ctx
    with pytest.raises(errors.UnknownService) as unknown:
        deploy.up(context, services=["nosuch"], build=False, pull=None, message="",
                  overrides=FAST, rollback=True, dry_run=False)
    assert (unknown.value.unknown, unknown.value.known) == (["nosuch"], ["web"])
    assert unknown.value.one_line() == "no such service: nosuch; services in this project: web"
    with pytest.raises(errors.NoEarlierRevision) as earlier:
        deploy.revert(context, to=None, message="", overrides=FAST)
    assert earlier.value.current is None
    hook = errors.HookFailed("pre_up", "check ${TOKEN}", 3)
    assert (hook.hook, hook.command, hook.code) == ("pre_up", "check ${TOKEN}", 3)
    with pytest.raises(errors.UsageError) as usage:
        plugin.split_argv(["compose", "-Dp"], as_plugin=True)
    assert usage.value.flag == ""  # -D is docker's, not compose's: no flag of this level
    with pytest.raises(errors.UsageError) as needs:
        plugin.split_argv(["compose", "-vp"], as_plugin=True)
    assert needs.value.flag == "-p"
