"""Bad-input rows: the compose file, ``x-rollback`` settings, flags and commands, and the
revisions a command names.
"""

from __future__ import annotations

from bad_input_table import Row, compose_with, only, raw_compose, with_compose, with_directory
from robust_helpers import FAST

from compose_rollback.errors import ExitCode

BILLION_LAUGHS = "\n".join([
    'a: &a ["lol","lol","lol","lol","lol","lol","lol","lol","lol"]',
    *(f"{chr(c)}: &{chr(c)} [{','.join([f'*{chr(c - 1)}'] * 9)}]" for c in range(98, 106)),
    "services:",
    "  app:",
    "    image: *i",
    "",
])



INPUT_ROWS: list[Row] = [
    # -- the compose file -----------------------------------------------------------------------
    Row("yaml-malformed", "one", ExitCode.BAD_INPUT, ("yaml|compose",),
        with_compose("services:\n  app: [\n    image: x\n")),
    Row("yaml-alias-bomb", "one", ExitCode.BAD_INPUT, ("alias",),
        with_compose(BILLION_LAUGHS)),
    Row("yaml-duplicate-key", "one", ExitCode.BAD_INPUT, ("app",),
        with_compose("services:\n  app:\n    image: a\n  app:\n    image: b\n")),
    Row("yaml-not-utf8", "one", ExitCode.BAD_INPUT, ("utf|encod|compose",),
        raw_compose(b"services:\n  app:\n    image: caf\xe9\xff\n")),
    Row("yaml-python-tag", "one", ExitCode.BAD_INPUT, ("services|python|tag",),
        with_compose("services: !!python/object/apply:os.system ['touch pwned']\n")),
    Row("compose-empty", "one", ExitCode.BAD_INPUT, ("empty|no services",),
        with_compose("")),
    Row("compose-no-services", "one", ExitCode.BAD_INPUT, ("service",),
        with_compose("x-rollback: {timeout: 60s}\nservices: {}\n")),
    Row("compose-rejects-ports", "one", ExitCode.BAD_INPUT, ("ports",),
        with_compose("services: {app: {image: x, ports: \"notalist\"}}\n")),
    Row("compose-required-variable", "one", ExitCode.BAD_INPUT, ("NEEDED_VAR",),
        with_compose("services:\n  app:\n    image: \"${NEEDED_VAR:?set NEEDED_VAR}\"\n")),
    Row("compose-missing-file", "one", ExitCode.BAD_INPUT, ("nope\\.yaml",),
        only("-f", "nope.yaml", "up", *FAST)),
    Row("compose-file-is-a-directory", "one", ExitCode.BAD_INPUT, ("somedir",),
        with_directory("somedir", ("-f", "somedir", "up", *FAST))),
    Row("compose-missing-env-file", "one", ExitCode.BAD_INPUT, ("nope\\.env",),
        only("--env-file", "nope.env", "up", *FAST)),
    Row("compose-bad-project-name", "one", ExitCode.BAD_INPUT, ("Bad_Name",),
        only("-p", "Bad_Name!", "history")),
    Row("unknown-service", "one", ExitCode.BAD_INPUT, ("nosuch",), only("up", "nosuch", *FAST)),
    # -- x-rollback settings --------------------------------------------------------------------
    Row("x-rollback-unknown-key", "one", ExitCode.BAD_INPUT, (r"x-rollback\.bogus",),
        compose_with("x-rollback: {bogus: 1}")),
    Row("x-rollback-unknown-service-key", "one", ExitCode.BAD_INPUT,
        (r"services\.app\.x-rollback\.bogus",),
        compose_with("", "x-rollback: {bogus: 1}")),
    Row("x-rollback-bad-timeout", "one", ExitCode.BAD_INPUT, (r"x-rollback\.timeout", "soon"),
        compose_with("x-rollback: {timeout: soon}")),
    Row("x-rollback-bad-service-soak", "one", ExitCode.BAD_INPUT,
        (r"services\.app\.x-rollback\.min_healthy",),
        compose_with("", "x-rollback: {min_healthy: -5s}")),
    Row("x-rollback-not-a-mapping", "one", ExitCode.BAD_INPUT, ("x-rollback",),
        compose_with("x-rollback: [1, 2]")),
    Row("x-rollback-keep-zero", "one", ExitCode.BAD_INPUT, (r"x-rollback\.keep",),
        compose_with("x-rollback: {keep: 0}")),
    Row("x-rollback-dir-not-a-path", "one", ExitCode.BAD_INPUT, (r"x-rollback\.dir",),
        compose_with("x-rollback: {dir: 5}")),
    # -- flags and commands ---------------------------------------------------------------------
    Row("flag-timeout-soon", "one", ExitCode.BAD_INPUT, ("--timeout", "soon"),
        only("up", "--timeout", "soon")),
    Row("flag-min-healthy-negative", "one", ExitCode.BAD_INPUT, ("--min-healthy",),
        only("up", "--min-healthy", "-1s")),
    Row("flag-wait-lock-bad", "one", ExitCode.BAD_INPUT, ("--wait-lock",),
        only("up", "--wait-lock", "forever", *FAST)),
    Row("flag-keep-zero", "one", ExitCode.BAD_INPUT, ("--keep",), only("prune", "--keep", "0")),
    Row("flag-keep-zero-fresh", "fresh", ExitCode.BAD_INPUT, ("--keep",),
        only("prune", "--keep", "0")),
    Row("flag-keep-not-a-number", "one", ExitCode.BAD_INPUT, ("--keep|many",),
        only("prune", "--keep", "many")),
    Row("flag-pull-bad", "one", ExitCode.BAD_INPUT, ("--pull", "sometimes"),
        only("up", "--pull", "sometimes", *FAST)),
    Row("unknown-command", "one", ExitCode.BAD_INPUT, ("frobnicate",), only("frobnicate")),
    Row("unknown-option", "one", ExitCode.BAD_INPUT, ("--frobnicate",),
        only("up", "--frobnicate")),
    Row("global-flag-without-value", "one", ExitCode.BAD_INPUT, ("-f",), only("-f")),
    # -- revisions ------------------------------------------------------------------------------
    Row("revert-to-missing", "one", ExitCode.BAD_INPUT, ("99",), only("revert", "--to", "99")),
    Row("revert-to-missing-fresh", "fresh", ExitCode.BAD_INPUT, ("99",),
        only("revert", "--to", "99")),
    Row("revert-to-path", "one", ExitCode.BAD_INPUT, (r"\.\./\.\./etc/passwd",),
        only("revert", "--to", "../../etc/passwd")),
    Row("revert-to-negative", "one", ExitCode.BAD_INPUT, ("-1",), only("revert", "--to=-1")),
    Row("revert-nothing-earlier", "one", ExitCode.BAD_INPUT, ("earlier|no .*revision",),
        only("revert", *FAST)),
    Row("diff-missing", "one", ExitCode.BAD_INPUT, ("99",), only("diff", "1", "99")),
    Row("diff-path", "one", ExitCode.BAD_INPUT, (r"\.\./\.\./etc/passwd",),
        only("diff", "../../etc/passwd", "1")),
    Row("diff-needs-two", "one", ExitCode.BAD_INPUT, ("two|fewer",), only("diff")),
]
