"""The parallel suite's rules (tests/conftest.py, support.helpers.free_port), proved on the
real mechanisms: ports handed out by several processes at once, and small pytest runs of a
test folder that loads the project's conftest."""

from __future__ import annotations

import json
import os
import socket
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest

from support import helpers

TESTS = Path(__file__).resolve().parents[1]

_GRAB = """
import sys
from support.helpers import free_port
print(" ".join(str(free_port()) for _ in range(int(sys.argv[1]))))
"""


def test_processes_asking_at_once_never_get_the_same_port() -> None:
    procs = [subprocess.Popen([sys.executable, "-c", _GRAB, "100"], stdout=subprocess.PIPE,
                              text=True, env={"PYTHONPATH": str(TESTS)}) for _ in range(4)]
    ports = [int(p) for proc in procs for p in proc.communicate(timeout=60)[0].split()]
    assert [proc.returncode for proc in procs] == [0] * 4
    assert len(ports) == 400
    assert len(set(ports)) == 400, "a port was handed out twice"
    # Below the kernel's ephemeral range: neither bind(port 0) nor Docker's choice of a
    # published port lands there.
    low = int(Path("/proc/sys/net/ipv4/ip_local_port_range").read_text().split()[0])
    assert all(helpers.PORTS_LOW <= port < low for port in ports), (min(ports), max(ports))


def test_a_port_something_listens_on_is_skipped(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(helpers, "PORTS_FILE", tmp_path / "ports")
    first = helpers.free_port()
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as taken:
        taken.bind(("127.0.0.1", first + 1))
        taken.listen()
        assert helpers.free_port() == first + 2
    (tmp_path / "ports").write_text("junk\n")  # a damaged counter starts again at the bottom
    assert helpers.free_port() >= helpers.PORTS_LOW


_CONFTEST = f"""
import importlib.util, sys
sys.path.insert(0, {str(TESTS)!r})
_spec = importlib.util.spec_from_file_location("crt_conftest", {str(TESTS / "conftest.py")!r})
_mod = importlib.util.module_from_spec(_spec)
_spec.loader.exec_module(_mod)
pytest_plugins = _mod.pytest_plugins
pytest_addoption = _mod.pytest_addoption
pytest_configure = _mod.pytest_configure
pytest_collection_modifyitems = _mod.pytest_collection_modifyitems
"""

_TESTS = """
import pytest

@pytest.fixture
def swarm():  # stands in for the engine's swarm: only its name matters here
    return None

@pytest.fixture
def uses_swarm(swarm):
    return swarm

def group(request):
    mark = request.node.get_closest_marker("xdist_group")
    if mark is None:
        return None
    if request.config.getoption("dist", "no") == "loadgroup":  # xdist saw it: it is scheduled
        assert request.node.nodeid.endswith(f"@{mark.args[0]}"), request.node.nodeid
    return mark.args[0]

def test_plain(request):
    assert group(request) is None

def test_swarm_fixture(request, swarm):
    assert group(request) == "swarm"

def test_swarm_through_another_fixture(request, uses_swarm):
    assert group(request) == "swarm"

@pytest.mark.swarm
def test_swarm_marker(request):
    assert group(request) == "swarm"

@pytest.mark.xdist_group("mine")
def test_own_group_kept(request, swarm):
    assert group(request) == "mine"

@pytest.mark.serial
def test_timing(request):
    assert group(request) is None
"""


def _run(folder: Path, *args: str) -> tuple[int, dict[str, int], str]:
    counts = folder / "counts.json"
    counts.unlink(missing_ok=True)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-p", "no:cacheprovider", "-q", *args],
        cwd=folder, capture_output=True, text=True, timeout=120, check=False,
        env={"PATH": "/usr/bin:/bin", "CRT_TEST_PHASE_COUNTS": str(counts)},
    )
    found = json.loads(counts.read_text()) if counts.exists() else {}
    return done.returncode, found, done.stdout + done.stderr


@pytest.fixture(scope="module")
def folder(tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("suite")
    (root / "conftest.py").write_text(textwrap.dedent(_CONFTEST))
    (root / "test_rules.py").write_text(_TESTS)
    (root / "pytest.ini").write_text("[pytest]\n")
    return root


def test_phases_split_the_selection_and_tell_their_sizes(folder: Path) -> None:
    code, counts, out = _run(folder, "--phase", "parallel", "-n", "2", "--dist", "loadgroup")
    assert (code, counts) == (0, {"parallel": 5, "serial": 1}), out
    assert "5 passed" in out, out
    # The sizes are those of the user's selection (-k applies before the phase does).
    code, counts, out = _run(folder, "--phase", "serial", "-k", "plain or timing")
    assert (code, counts) == (0, {"parallel": 1, "serial": 1}), out
    assert "1 passed, 5 deselected" in out, out


def test_loadgroup_really_groups(tmp_path: Path) -> None:
    """``--dist loadgroup`` sends an ``xdist_group``'s tests to one worker (pytest 9.2 with
    xdist 3.8 silently did not: the swarm tests then waited on each other's lock on every
    worker). A real pytest run of two grouped tests and two free ones on 2 workers."""
    (tmp_path / "test_g.py").write_text(
        "import os, pytest\n"
        "@pytest.mark.xdist_group('g')\n"
        "@pytest.mark.parametrize('n', range(4))\n"
        "def test_grouped(n):\n"
        "    open(os.environ['OUT'], 'a').write(os.environ['PYTEST_XDIST_WORKER'] + '\\n')\n"
        "@pytest.mark.parametrize('n', range(4))\n"
        "def test_free(n):\n"
        "    pass\n")
    out = tmp_path / "workers.txt"
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-n", "2", "--dist", "loadgroup",
         "-p", "no:cacheprovider", "-p", "no:randomly", str(tmp_path / "test_g.py")],
        cwd=tmp_path, capture_output=True, text=True, check=False, timeout=120,
        env={**os.environ, "OUT": str(out)})
    assert done.returncode == 0, done.stdout + done.stderr
    workers = out.read_text().split()
    assert len(workers) == 4 and len(set(workers)) == 1, workers
