"""``compose_rollback.whales``: python-on-whales' runner without its typed client.

Each case runs in a fresh interpreter: what is imported is the point, and this process may
have imported python-on-whales already.
"""

from __future__ import annotations

import json
import subprocess
import sys
import textwrap

CLIENT = "python_on_whales.docker_client"


def _python(code: str) -> dict[str, object]:
    done = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], capture_output=True,
                          text=True, timeout=60, check=False)
    assert done.returncode == 0, done.stderr
    result: dict[str, object] = json.loads(done.stdout.splitlines()[-1])
    return result


def test_the_runner_comes_without_the_client_and_runs_commands() -> None:
    seen = _python(f"""
        import json, sys
        from compose_rollback import whales
        utils = whales.utils()
        out = utils.run(["echo", "hello"], capture_stdout=True, capture_stderr=True)
        try:
            utils.run(["sh", "-c", "echo oops >&2; exit 3"], capture_stderr=True)
            failed = None
        except utils.DockerException as error:
            failed = [error.return_code, error.stderr]
        print(json.dumps({{"out": out, "failed": failed, "client": "{CLIENT}" in sys.modules,
                          "models": sum(".models" in name for name in sys.modules
                                        if name.startswith("python_on_whales"))}}))
    """)
    assert seen == {"out": "hello", "failed": [3, "oops\n"], "client": False, "models": 0}


def test_the_whole_package_still_imports_afterwards_with_the_same_classes() -> None:
    seen = _python("""
        import json
        from compose_rollback import whales
        utils = whales.utils()
        from python_on_whales import DockerClient, DockerException, docker
        import python_on_whales, python_on_whales.exceptions, python_on_whales.utils
        print(json.dumps({
            "same_error": DockerException is utils.DockerException
                          is python_on_whales.exceptions.DockerException,
            "same_utils": python_on_whales.utils is utils,
            "client": DockerClient.__name__,
            "default": type(docker).__name__,
            "hook_gone": "__getattr__" not in vars(python_on_whales),
            "missing": not hasattr(python_on_whales, "no_such_name"),
        }))
    """)
    assert seen == {"same_error": True, "same_utils": True, "client": "DockerClient",
                    "default": "DockerClient", "hook_gone": True, "missing": True}


def test_a_package_imported_before_is_used_as_it_is() -> None:
    seen = _python(f"""
        import json, sys
        import python_on_whales
        from compose_rollback import whales
        utils = whales.utils()
        print(json.dumps({{"same": sys.modules["python_on_whales"] is python_on_whales,
                          "client": "{CLIENT}" in sys.modules,
                          "utils": utils is sys.modules["python_on_whales.utils"]}}))
    """)
    assert seen == {"same": True, "client": True, "utils": True}


def test_the_engine_does_not_load_the_client_for_a_failing_command() -> None:
    seen = _python(f"""
        import json, sys
        from compose_rollback.engine import _exception
        import subprocess
        done = subprocess.run(["sh", "-c", "exit 2"], capture_output=True, text=True)
        error = _exception(done)
        print(json.dumps({{"code": error.return_code, "client": "{CLIENT}" in sys.modules}}))
    """)
    assert seen == {"code": 2, "client": False}
