"""The invocations answered without the option parser: the top-level ``--help``,
``history [--json]`` and ``status [--json]``, each optionally after ``--debug``.

Only these exact argument lists: anything else (another option, a typo, ``history --help``)
goes to typer, which parses it and reports its errors. The answers are the ones typer gives:
``tests/unit/test_quick.py`` holds each one to typer's output, text and exit code.
"""

from collections.abc import Callable, Sequence

from compose_rollback import runner


def answer(args: Sequence[str]) -> Callable[[], None] | None:
    """The command for ``args``, or None when typer must parse them."""
    words = list(args)
    debug = words[:1] == ["--debug"]
    if debug:
        words = words[1:]
    if words in (["--help"], ["-h"]):
        return _help
    if words[:1] in (["history"], ["status"]) and words[1:] in ([], ["--json"]):
        command = runner.history if words[0] == "history" else runner.status
        as_json = len(words) == 2

        def run() -> None:
            runner.state["debug"] = debug
            command(as_json=as_json)

        return run
    return None


def _help() -> None:
    from compose_rollback import helptext

    prog: str = runner.state["invocation"].prog
    print(helptext.render(prog, helptext.formatter_width()))
