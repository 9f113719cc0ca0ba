"""The CLI's help strings, and the top-level help page drawn without importing typer.

``cli`` gives typer these strings; ``render`` draws the page typer's click formatter draws
for ``--help`` (usage, the description, options, commands with their first sentence cut to
the width), so ``docker compose rollback --help`` needs no option parser. The unit test
``test_quick.py`` holds ``render`` to typer's own page at every width and program name.
"""

import os
import sys

APP = ("Deploy a Compose project with every image pinned to an immutable reference, gate it on "
       "health, and put the last good revision back when a gate fails.")
DEBUG = "Show tracebacks."
#: Each command's help, in the order ``--help`` lists them.
COMMANDS = {
    "up": "Deploy with pinned images and health gates; revert to the last good revision on "
          "failure.",
    "watch": "Keep every gate of the current revision running; revert to the previous good "
             "one on a failure. A revert or up started meanwhile ends the watch.",
    "revert": "Go back to the last good revision, or to any kept revision (recorded as a new "
              "one).",
    "history": "List revisions: number, time, status, message, images, and why failed ones "
               "failed.",
    "status": "Show the current revision and, per service, what runs, its health and any "
              "drift.",
    "diff": "Show image and configuration changes between two revisions.",
    "pin": "Record what runs now as a revision, without deploying anything.",
    "prune": "Drop old revisions and their retention tags (never the current or last good "
             "one).",
    "version": "Print the versions of compose-rollback, Compose and the Docker engine.",
    "schema": "Print the JSON Schema of the --json output of COMMAND (or of every command).",
}
#: typer's ``max_content_width``: the page is never wider.
MAX_WIDTH = 100
_OPTIONS = (("--debug", DEBUG), ("-h, --help", "Show this message and exit."))


def formatter_width() -> int:
    """The width click's formatter takes: the terminal's (``COLUMNS`` first, 80 off a
    terminal, as ``shutil.get_terminal_size``), at most ``MAX_WIDTH``, less 2, at least 50."""
    try:
        columns = int(os.environ["COLUMNS"])
    except (KeyError, ValueError):
        columns = 0
    if columns <= 0:
        try:
            columns = os.get_terminal_size(sys.__stdout__.fileno()).columns  # type: ignore[union-attr]
        except (AttributeError, ValueError, OSError):
            columns = 0
        columns = columns or 80
    return max(min(columns, MAX_WIDTH) - 2, 50)


def render(prog: str, width: int) -> str:
    """The ``--help`` page of ``prog`` for a formatter ``width`` wide, without the last
    newline (as click's ``get_help``). Every option and command name here fits its column
    (click's limit is 30), so a name is never put on a line of its own."""
    prefix = f"Usage: {prog} "
    usage = "[OPTIONS] COMMAND [ARGS]..."
    if width >= len(prefix) + 20:
        out = [_wrap(usage, width, prefix, " " * len(prefix)), "\n"]
    else:  # the arguments go on a line of their own (a long program name, a narrow page)
        out = [prefix, "\n", _wrap(usage, width, " " * 11, " " * 11), "\n"]
    out += ["\n", _wrap(APP, width, "  ", "  "), "\n"]
    out += ["\n", "Options:\n", *_definitions(_OPTIONS, width)]
    limit = width - 6 - max(map(len, COMMANDS))
    rows = tuple((name, _short(text, limit)) for name, text in COMMANDS.items())
    out += ["\n", "Commands:\n", *_definitions(rows, width)]
    return "".join(out).rstrip("\n")


def _wrap(text: str, width: int, first: str, rest: str) -> str:
    import textwrap

    return textwrap.TextWrapper(width, initial_indent=first, subsequent_indent=rest,
                                replace_whitespace=False).fill(text)


def _definitions(rows: tuple[tuple[str, str], ...], width: int) -> list[str]:
    """click's definition list, two columns indented by 2 (``HelpFormatter.write_dl``)."""
    first_col = max(len(first) for first, _ in rows) + 2
    out = []
    for first, second in rows:
        lines = _wrap(second, width - first_col - 2, "", "").splitlines()
        out.append(f"  {first:<{first_col}}{lines[0]}\n")
        out += [f"{'':>{first_col + 2}}{line}\n" for line in lines[1:]]
    return out


def _short(text: str, limit: int) -> str:
    """The first sentence of ``text``, cut to ``limit`` with ``...`` (click's
    ``make_default_short_help``)."""
    words = text.split()
    total = 0
    for i, word in enumerate(words):
        total += len(word) + (i > 0)
        if total > limit:
            break
        if word.endswith("."):
            return " ".join(words[:i + 1])
        if total == limit and i != len(words) - 1:
            break
    else:
        return " ".join(words)
    total += 3
    while i > 0:
        total -= len(words[i]) + (i > 0)
        if total <= limit:
            break
        i -= 1
    return " ".join(words[:i]) + "..."
