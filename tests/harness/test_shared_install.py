"""``support.installed``: one install per test run, whatever the number of workers, a HOME and
docker config of each test's own, and a test that writes into the shared install fails.

Proved on real pytest runs (2 xdist workers, and none) of a small test folder that loads the
project's conftest, with a stand-in for ``install.sh`` that counts its runs and lays out what
the real one does (``$COMPOSE_ROLLBACK_HOME/cli-plugins``, ``cliPluginsExtraDirs`` in
``$DOCKER_CONFIG/config.json``): the real one is test_install.py's, and the integration tests
use the real one through these fixtures.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

import pytest

from support import installed

TESTS = Path(__file__).resolve().parents[1]

_CONFTEST = f"""
import importlib.util, os, sys
from pathlib import Path
sys.path.insert(0, {str(TESTS)!r})
_spec = importlib.util.spec_from_file_location("crt_conftest", {str(TESTS / "conftest.py")!r})
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
pytest_plugins = _mod.pytest_plugins
pytest_addoption = _mod.pytest_addoption
pytest_configure = _mod.pytest_configure

import support.installed
support.installed.INSTALL_SH = Path(os.environ["FAKE_INSTALL_SH"])
"""

_FAKE_INSTALL_SH = """\
#!/usr/bin/env bash
set -euo pipefail
echo "$$" >>"$INSTALLS"
sleep 1  # long enough for the other workers to ask while it runs
mkdir -p "$COMPOSE_ROLLBACK_HOME/cli-plugins"
printf '{"cliPluginsExtraDirs": ["%s"]}\\n' "$COMPOSE_ROLLBACK_HOME/cli-plugins" \\
    >"$DOCKER_CONFIG/config.json"
"""

_TESTS = """
import json, os
import pytest

@pytest.mark.parametrize("n", range(6))
def test_user(plugin_user, n):
    seen = {"worker": os.environ.get("PYTEST_XDIST_WORKER", "-"),
            "cr_home": str(plugin_user.cr_home), "home": str(plugin_user.home),
            "config_dir": str(plugin_user.config_dir),
            "env": [plugin_user.env[k] for k in ("HOME", "DOCKER_CONFIG",
                                                 "COMPOSE_ROLLBACK_HOME")],
            "config": (plugin_user.config_dir / "config.json").read_text(),
            "compose": os.readlink(plugin_user.config_dir / "cli-plugins" / "docker-compose")}
    with open(os.environ["SEEN"], "a") as out:
        out.write(json.dumps(seen) + "\\n")
    if n == 3 and os.environ.get("WRITE_INTO_IT"):
        (plugin_user.cr_home / "cli-plugins" / "stray").write_text("")
"""


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    root = tmp_path / "suite"
    root.mkdir()
    (root / "conftest.py").write_text(textwrap.dedent(_CONFTEST))
    (root / "test_users.py").write_text(_TESTS)
    (root / "pytest.ini").write_text("[pytest]\n")
    (root / "install.sh").write_text(_FAKE_INSTALL_SH)
    compose = tmp_path / "docker-config" / "cli-plugins" / "docker-compose"
    compose.parent.mkdir(parents=True)
    compose.write_text("#!/bin/sh\n")  # the machine's "real Compose plugin"
    compose.chmod(0o755)
    return root


def _run(folder: Path, *args: str, write: bool = False
         ) -> tuple[subprocess.CompletedProcess[str], list[dict[str, Any]], int]:
    """pytest in ``folder``: its result, what each test saw, and how often install.sh ran."""
    seen, installs = folder / "seen.jsonl", folder / "installs"
    seen.unlink(missing_ok=True)
    installs.unlink(missing_ok=True)
    env = {"PATH": os.environ["PATH"], "HOME": str(folder.parent),
           "DOCKER_CONFIG": str(folder.parent / "docker-config"),
           "FAKE_INSTALL_SH": str(folder / "install.sh"), "SEEN": str(seen),
           "INSTALLS": str(installs), **({"WRITE_INTO_IT": "1"} if write else {})}
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q",
         "--basetemp", str(folder.parent / "basetemp"), *args],
        cwd=folder, capture_output=True, text=True, timeout=120, check=False, env=env)
    lines = seen.read_text().splitlines() if seen.exists() else []
    runs = len(installs.read_text().split()) if installs.exists() else 0
    return done, [json.loads(line) for line in lines], runs


@pytest.mark.parametrize("workers", [["-n", "2"], []], ids=["2 workers", "no workers"])
def test_one_install_per_run_and_each_test_its_own_home_and_config(
        folder: Path, workers: list[str]) -> None:
    done, seen, runs = _run(folder, *workers)
    assert done.returncode == 0, done.stdout + done.stderr
    assert runs == 1, f"install.sh ran {runs} times"
    assert len(seen) == 6
    if workers:
        assert len({s["worker"] for s in seen}) == 2, "the tests all ran on one worker"
    cr_home = {s["cr_home"] for s in seen}
    assert len(cr_home) == 1
    plugin_dir = Path(cr_home.pop()) / "cli-plugins"
    assert len({s["home"] for s in seen}) == len({s["config_dir"] for s in seen}) == 6
    for s in seen:
        assert s["env"] == [s["home"], s["config_dir"], str(plugin_dir.parent)]
        assert json.loads(s["config"]) == {"cliPluginsExtraDirs": [str(plugin_dir)]}
        assert s["compose"] == str(folder.parent / "docker-config" / "cli-plugins" /
                                   "docker-compose")
    assert not plugin_dir.parent.parent.exists(), "the run's install was left behind"
    if workers:  # the next run installs again: a run never finds another's install
        assert _run(folder, *workers)[2] == 1


def test_a_test_that_writes_into_the_shared_install_fails(folder: Path) -> None:
    done, seen, runs = _run(folder, "-n", "2", write=True)
    assert (done.returncode, runs, len(seen)) == (1, 1, 6), done.stdout + done.stderr
    assert "a test wrote into the shared install" in done.stdout, done.stdout
    assert "cli-plugins/stray" in done.stdout, done.stdout


def test_the_source_hash_leaves_out_what_install_sh_does_not_copy() -> None:
    """The install is keyed by the tree install.sh builds from: the same names left out."""
    text = installed.INSTALL_SH.read_text()
    patterns = re.search(r"ignore_patterns\((.*?)\)", text, re.DOTALL)
    assert patterns is not None
    assert set(re.findall(r'"([^"]+)"', patterns.group(1))) == set(installed.NOT_COPIED)
