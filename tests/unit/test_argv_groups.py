"""Global flags spelled every way docker and compose (spf13/pflag) accept them: combined short
booleans (``-Dc ctx``, ``-vf x``), ``-p=x``, booleans with a value (``--dry-run=false``).
The shim reads the same argv: tests/integration/test_shim_flags.py runs both together."""

from __future__ import annotations

import pytest

from compose_rollback.plugin import UsageError, split_argv


@pytest.mark.parametrize(("argv", "docker", "compose"), [
    (["-Dc", "ctx", "compose", "rollback", "up"], {"context": "ctx"}, {}),
    (["-DH", "unix:///x.sock", "compose", "rollback", "up"], {"host": "unix:///x.sock"}, {}),
    (["-Dl", "error", "compose", "rollback", "up"], {"log_level": "error"}, {}),
    (["-DDc", "ctx", "compose", "rollback", "up"], {"context": "ctx"}, {}),
    (["-Dcctx", "compose", "rollback", "up"], {"context": "ctx"}, {}),
    (["-Dc=ctx", "compose", "rollback", "up"], {"context": "ctx"}, {}),
    (["-c=ctx", "compose", "rollback", "up"], {"context": "ctx"}, {}),
    (["-D=true", "compose", "rollback", "up"], {}, {}),
    (["--tls=false", "--tlsverify=1", "compose", "rollback", "up"],
     {"tls": False, "tlsverify": True}, {}),
    (["compose", "-vf", "x.yaml", "rollback", "up"], {}, {"files": ["x.yaml"]}),
    (["compose", "-vfx.yaml", "rollback", "up"], {}, {"files": ["x.yaml"]}),
    (["compose", "-vp", "shop", "rollback", "up"], {}, {"project_name": "shop"}),
    (["compose", "-pshop", "rollback", "up"], {}, {"project_name": "shop"}),
    (["compose", "-p=shop", "rollback", "up"], {}, {"project_name": "shop"}),
    (["compose", "-f=a.yaml", "--file=b.yaml", "rollback", "up"], {},
     {"files": ["a.yaml", "b.yaml"]}),
    (["compose", "-f", "-vf", "rollback", "up"], {}, {"files": ["-vf"]}),
    (["compose", "--dry-run=true", "rollback", "up"], {}, {"dry_run": True}),
    (["compose", "--dry-run=false", "rollback", "up"], {}, {"dry_run": False}),
], ids=lambda v: " ".join(v) if isinstance(v, list) else None)
def test_spellings_pflag_accepts(argv: list[str], docker: dict[str, object],
                                 compose: dict[str, object]) -> None:
    inv = split_argv(argv, as_plugin=True)
    assert (inv.prog, inv.args) == ("docker compose rollback", ["up"])
    assert inv.docker == docker
    assert inv.compose == compose


@pytest.mark.parametrize("argv", [["-Dc"], ["compose", "-vf"], ["compose", "--dry-run=maybe"]],
                         ids=" ".join)
def test_broken_spellings_are_usage_errors(argv: list[str]) -> None:
    with pytest.raises(UsageError):
        split_argv(argv, as_plugin=True)


def test_an_unknown_letter_in_a_group_is_not_taken_for_flags() -> None:
    with pytest.raises(UsageError, match="expected the word 'rollback'"):
        split_argv(["compose", "-vx", "rollback", "up"], as_plugin=True)
