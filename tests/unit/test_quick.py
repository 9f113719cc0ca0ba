"""The invocations answered without typer (``quick``) answer exactly as typer does: the same
help page at every width and program name, the same history and status, the same error line
and exit code; every other argument list still goes to typer."""

from __future__ import annotations

import dataclasses
import io
import json
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout
from pathlib import Path
from typing import Any

import pytest

from compose_rollback import cli, deploy, helptext, plugin, quick, runner
from compose_rollback.argv import Invocation
from compose_rollback.context import Context
from compose_rollback.dockerdata import ImageInfo
from compose_rollback.errors import DockerFailed
from compose_rollback.pins import Pin
from compose_rollback.project import Project
from compose_rollback.revisions import Revision, RevisionStore, checksum

from .fake_engine import FakeEngine

PROGS = ("compose-rollback", "docker compose rollback", "docker rollback")
DIGEST = "sha256:" + "ab" * 32
GOOD = ImageInfo("sha256:" + "1" * 64, ("reg/app:v1",), ("reg/app@sha256:" + "a" * 64,))


def _typer_page(prog: str, width: int) -> str:
    command = cli.click_command()
    ctx = command.make_context(prog, [], terminal_width=width, resilient_parsing=True)
    return str(command.get_help(ctx))


def test_the_help_page_is_typers_at_every_width() -> None:
    """Every width ``formatter_width`` can give (50 to ``MAX_WIDTH`` - 2), and the three
    program names at the narrowest, the usual and the widest."""
    for width in range(50, helptext.MAX_WIDTH - 1):
        assert helptext.render(PROGS[0], width) == _typer_page(PROGS[0], width), width
    for prog in PROGS[1:]:
        for width in (50, 51, 78, helptext.MAX_WIDTH - 2):
            assert helptext.render(prog, width) == _typer_page(prog, width), (prog, width)


def test_the_help_page_cuts_long_command_help_with_an_ellipsis() -> None:
    narrow = helptext.render("compose-rollback", 50)
    assert "  up       Deploy with pinned images and..." in narrow.splitlines()
    wide = helptext.render("compose-rollback", 120)
    assert f"  up       {helptext.COMMANDS['up']}" in wide.splitlines()


@pytest.mark.parametrize("columns", ["20", "52", "80", "99", "100", "101", "300", "", "x"])
def test_the_width_is_the_one_click_takes(monkeypatch: pytest.MonkeyPatch,
                                          columns: str) -> None:
    from typer._click.formatting import HelpFormatter

    monkeypatch.setenv("COLUMNS", columns)
    assert helptext.formatter_width() == HelpFormatter(max_width=helptext.MAX_WIDTH).width


def test_each_command_gets_the_help_text_of_the_table() -> None:
    command = cli.click_command()
    assert list(command.commands) == list(helptext.COMMANDS)
    for name, text in helptext.COMMANDS.items():
        assert command.commands[name].help == text
    assert command.help == helptext.APP


# -- the same answer by either path -----------------------------------------------------------
def _both(args: list[str], prog: str = "compose-rollback"
          ) -> tuple[tuple[int, str, str], tuple[int, str, str]]:
    """(quick's answer, typer's answer): exit code, stdout, stderr."""
    known = quick.answer(args)
    assert known is not None, args
    answers = []
    for run in (lambda inv: runner.execute(inv, known), cli.run):
        out, err = io.StringIO(), io.StringIO()
        with redirect_stdout(out), redirect_stderr(err):
            code = run(Invocation(compose={"project_name": "shop"}, args=list(args), prog=prog))
        answers.append((code, out.getvalue(), err.getvalue()))
    return answers[0], answers[1]


@pytest.fixture
def project(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: app:v1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COMPOSE_ROLLBACK_DIR", raising=False)
    return tmp_path / ".rollback" / "shop"


def _store(root: Path, count: int) -> None:
    store = RevisionStore(root)
    made = []
    for number in range(1, count + 1):
        text = f"# compose-rollback revision {number}\nservices: {{}}\n"
        (root / "revisions").mkdir(parents=True, exist_ok=True)
        (root / f"revisions/{number:04d}.yaml").write_text(text)
        pin = Pin("web", "app:v1", f"app@{DIGEST}", DIGEST, local=True, retention="")
        made.append(Revision(
            number=number, status="failed" if number == 2 else "superseded", kind="up",
            created=f"2026-12-0{number}T10:00:00Z", file=f"revisions/{number:04d}.yaml",
            sha256=checksum(text), pins={"web": pin}, message=f"release {number}",
            reason="web: exited with code 3" if number == 2 else "",
            restored_to=1 if number == 2 else None))
    made[-1] = dataclasses.replace(made[-1], status="deployed")
    store.save(made)


@pytest.mark.parametrize("args", [["--help"], ["-h"], ["--debug", "--help"]])
@pytest.mark.parametrize("prog", PROGS)
def test_help_by_either_path(args: list[str], prog: str,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("COLUMNS", "90")
    fast, typer = _both(args, prog)
    assert fast == typer
    assert fast[1].startswith(f"Usage: {prog} [OPTIONS] COMMAND [ARGS]...\n")


@pytest.mark.parametrize("args", [["history"], ["history", "--json"], ["--debug", "history"]])
@pytest.mark.parametrize("count", [0, 3])
def test_history_by_either_path(args: list[str], count: int, project: Path) -> None:
    if count:
        _store(project, count)
    fast, typer = _both(args)
    assert fast == typer
    code, out, err = fast
    assert (code, err) == (0, "")
    if "--json" in args:
        assert [r["number"] for r in json.loads(out)] == list(range(1, count + 1))
    elif count:
        assert "reason: web: exited with code 3; restored 1" in out
    else:
        assert out == "no revisions yet: run `docker compose rollback up`\n"


@pytest.mark.parametrize("debug", [[], ["--debug"]])
def test_a_corrupt_history_by_either_path(debug: list[str], project: Path) -> None:
    _store(project, 2)
    (project / "history.json").write_text('{"format": 1, "revisions": [{"number": "x"}]}')
    fast, typer = _both([*debug, "history"])
    code, out, err = fast
    if debug:  # the tracebacks' frames differ; what follows them does not
        assert "Traceback (most recent call last)" in err and "Traceback" in typer[2]
        fast, typer = (code, out, err.splitlines()[-1]), (*typer[:2], typer[2].splitlines()[-1])
    assert fast == typer
    assert (code, out) == (2, "")
    assert err.strip().splitlines()[-1].startswith("compose-rollback: ")
    assert "history.json" in err


def test_a_bug_by_either_path(project: Path,
                              monkeypatch: pytest.MonkeyPatch) -> None:
    def broken(*_: Any, **__: Any) -> Any:
        raise ValueError("boom in history")

    monkeypatch.setattr("compose_rollback.context.history", broken)
    fast, typer = _both(["history"])
    assert fast == typer
    assert fast[0] == 70 and "unexpected error: ValueError: boom in history" in fast[2]


def test_an_interrupt_by_either_path(project: Path,
                                     monkeypatch: pytest.MonkeyPatch) -> None:
    def interrupted(*_: Any, **__: Any) -> Any:
        raise KeyboardInterrupt

    monkeypatch.setattr("compose_rollback.context.history", interrupted)
    fast, typer = _both(["history", "--json"])
    assert fast == typer == (130, "", "compose-rollback: interrupted\n")


@pytest.fixture
def deployed(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> FakeEngine:
    """A project deployed once through the fake engine, which every Engine made returns."""
    engine = FakeEngine(model={"name": "shop", "services": {"web": {"image": "reg/app:v1"}}},
                        images={"reg/app:v1": GOOD})
    (tmp_path / "compose.yaml").write_text("services:\n  web:\n    image: reg/app:v1\n")
    monkeypatch.chdir(tmp_path)
    monkeypatch.delenv("COMPOSE_ROLLBACK_DIR", raising=False)
    monkeypatch.setattr("compose_rollback.engine.Engine", lambda **_: engine)
    project = Project(name="shop", directory=tmp_path, files=(tmp_path / "compose.yaml",))
    context = Context(project=project, store=RevisionStore(tmp_path / ".rollback" / "shop"),
                      progress=lambda line: None,
                      engine_factory=lambda: engine)  # type: ignore[arg-type,return-value]
    deploy.up(context, services=[], build=False, pull=None, message="m",
              overrides=deploy.Overrides(timeout=5.0, min_healthy=0.0), rollback=True,
              dry_run=False)
    return engine


@pytest.mark.parametrize("args", [["status"], ["status", "--json"], ["--debug", "status"]])
def test_status_by_either_path(args: list[str], deployed: FakeEngine) -> None:
    fast, typer = _both(args)
    assert fast == typer
    code, out, err = fast
    assert (code, err) == (0, "")
    if "--json" in args:
        assert json.loads(out)["current"] == 1
    else:
        assert "web" in out and "revision 1" in out


def test_status_with_docker_down_by_either_path(deployed: FakeEngine,
                                                monkeypatch: pytest.MonkeyPatch) -> None:
    def down(project_name: str, **kw: Any) -> list[Any]:
        raise DockerFailed(["docker", "ps"], "Cannot connect to the Docker daemon")

    monkeypatch.setattr(deployed, "containers", down)
    fast, typer = _both(["status"])
    assert fast == typer
    assert fast[0] == 3 and "Cannot connect to the Docker daemon" in fast[2]


# -- everything else is typer's --------------------------------------------------------------
@pytest.mark.parametrize("args", [
    [], ["--debug"], ["history", "--help"], ["--help", "history"], ["history", "--json", "--json"],
    ["history", "-j"], ["history", "--json=true"], ["history", "x"], ["history", "--debug"],
    ["status", "--orchestrator", "swarm"], ["status", "--json", "x"], ["up"], ["diff"],
    ["--debug", "--debug", "history"], ["History"],
])
def test_other_arguments_are_left_to_typer(args: list[str]) -> None:
    assert quick.answer(args) is None


def test_typer_still_reports_what_it_parses(project: Path,
                                            capsys: pytest.CaptureFixture[str]) -> None:
    code = plugin.main(["-p", "shop", "history", "--jsn"])
    err = capsys.readouterr().err
    assert code == 2
    assert err.startswith("compose-rollback: No such option: --jsn")
    assert err.rstrip().endswith("see 'compose-rollback --help'")


def _fresh_interpreter(code: str, cwd: Path) -> subprocess.CompletedProcess[str]:
    """``code`` run by a new interpreter in ``cwd``, with the working tree's package."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                          cwd=cwd, check=False,
                          env={"PATH": "/usr/bin:/bin",
                               "PYTHONPATH": str(Path(__file__).resolve().parents[2])})


def test_the_plugin_answers_help_without_importing_typer(tmp_path: Path) -> None:
    """In a fresh interpreter: ``--help`` and ``history`` never import typer (or click)."""
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    code = ("import sys\nfrom compose_rollback import plugin\n"
            "codes = [plugin.main(['--help']), plugin.main(['-p', 'shop', 'history'])]\n"
            "loaded = sorted(m for m in sys.modules if m.split('.')[0] in ('typer', 'click'))\n"
            "print(codes, loaded, file=sys.stderr)\n")
    done = _fresh_interpreter(code, tmp_path)
    assert done.stderr.strip() == "[0, 0] []", done.stderr


def test_the_quick_answers_leave_inspect_unloaded_and_typer_gets_it_loaded(
        tmp_path: Path) -> None:
    """In a fresh interpreter: ``inspect`` (deferred by ``plugin``, ~7 ms) stays unloaded
    through ``--help`` and ``history``; an argument list for typer loads it first, in the
    main thread, before any thread of the command can meet it half-loaded."""
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    code = ("import sys\nfrom compose_rollback import plugin\n"
            "loaded = lambda: '__getattr__' not in vars(sys.modules['inspect'])\n"
            "codes = [plugin.main(['--help']), plugin.main(['-p', 'shop', 'history']),\n"
            "         plugin.main(['-p', 'shop', 'history', '--json'])]\n"
            "quick = [loaded(), 'ast' in sys.modules]\n"
            "seen = []\n"
            "def hook(event, args):\n"
            "    if event == 'import' and args[0] == 'compose_rollback.cli':\n"
            "        seen.append(loaded())\n"
            "sys.addaudithook(hook)\n"
            "codes.append(plugin.main(['-p', 'shop', 'history', '--jsn']))\n"
            "print(codes, quick, seen, file=sys.stderr)\n")
    done = _fresh_interpreter(code, tmp_path)
    assert done.stderr.strip().splitlines()[-1] == "[0, 0, 0, 2] [False, False] [True]", \
        done.stderr
