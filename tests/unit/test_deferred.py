"""``compose_rollback.deferred``: a module in ``sys.modules`` whose code runs on first use.

Each case runs in a fresh interpreter: what is loaded is the point, and this process has
imported most modules already.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]


def _python(code: str, *, cwd: Path | None = None) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60, check=False, cwd=cwd,
                          env={"PATH": "/usr/bin:/bin", "PYTHONPATH": f"{REPO}:{cwd or ''}"})
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_a_deferred_module_runs_its_code_on_first_use_only() -> None:
    seen = _python("""
        import json, sys
        from compose_rollback.deferred import defer
        defer("inspect")
        import inspect
        from inspect import isclass            # a name it lacks: loads it
        before = "__getattr__" in vars(inspect)
        print(json.dumps({
            "same": sys.modules["inspect"] is inspect,
            "works": str(inspect.signature(lambda a, b=1: None)),
            "isclass": isclass is inspect.isclass,
            "hook_gone": not before and "__getattr__" not in vars(inspect),
            "missing": not hasattr(inspect, "no_such_name"),
            "file": inspect.__file__.endswith("inspect.py"),
        }))
    """)
    assert seen == {"same": True, "works": "(a, b=1)", "isclass": True, "hook_gone": True,
                    "missing": True, "file": True}


def test_import_statements_leave_it_unloaded() -> None:
    """``import inspect`` (as ``dataclasses`` does) and reading what the import system reads
    (``__spec__``, ``__name__``) do not run it: the 3.11 ``LazyLoader`` would."""
    seen = _python("""
        import json, sys
        from compose_rollback.deferred import defer
        defer("inspect")
        import dataclasses
        import inspect

        @dataclasses.dataclass(frozen=True)
        class Documented:
            \"\"\"A docstring: dataclasses does not ask inspect for a signature.\"\"\"
            x: int

        unloaded = ["ast" not in sys.modules, "__getattr__" in vars(inspect),
                    inspect.__spec__.name == "inspect", inspect.__name__ == "inspect"]

        @dataclasses.dataclass
        class Bare:
            x: int

        print(json.dumps({"unloaded": unloaded, "doc": Bare.__doc__,
                          "loaded": "ast" in sys.modules and "__getattr__" not in vars(inspect),
                          "value": Documented(3).x}))
    """)
    assert seen == {"unloaded": [True, True, True, True], "doc": "Bare(x: int)",
                    "loaded": True, "value": 3}


def test_a_module_imported_before_is_left_as_it_is() -> None:
    seen = _python("""
        import inspect, json, sys
        from compose_rollback.deferred import defer
        defer("inspect")
        print(json.dumps({"same": sys.modules["inspect"] is inspect,
                          "hook": "__getattr__" in vars(inspect)}))
    """)
    assert seen == {"same": True, "hook": False}


def test_a_missing_module_fails_as_its_import_does() -> None:
    seen = _python("""
        import json
        from compose_rollback.deferred import defer
        try:
            defer("no_such_module_here")
            error = None
        except ModuleNotFoundError as caught:
            error = str(caught)
        print(json.dumps({"error": error}))
    """)
    assert seen == {"error": "No module named 'no_such_module_here'"}


def test_a_module_whose_code_fails_fails_again_on_the_next_use(tmp_path: Path) -> None:
    (tmp_path / "crt_fails_once.py").write_text(textwrap.dedent("""
        import os
        COUNT = int(os.environ.get("CRT_RUNS", "0")) + 1
        os.environ["CRT_RUNS"] = str(COUNT)
        if COUNT == 1:
            raise RuntimeError("first run fails")
        VALUE = COUNT
    """))
    seen = _python("""
        import json, os
        from compose_rollback.deferred import defer
        defer("crt_fails_once")
        import crt_fails_once
        try:
            crt_fails_once.VALUE
            first = None
        except RuntimeError as error:
            first = str(error)
        print(json.dumps({"first": first, "then": crt_fails_once.VALUE,
                          "runs": os.environ["CRT_RUNS"]}))
    """, cwd=tmp_path)
    assert seen == {"first": "first run fails", "then": 2, "runs": "2"}
