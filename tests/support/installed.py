"""One real ``./install.sh`` per test run, shared by every test that only needs the plugin
installed (loaded by ``tests/conftest.py``).

``shared_install`` (session)
    ``install.sh`` run as the README runs it, into a throw-away ``HOME``, ``DOCKER_CONFIG``
    (the machine's real Compose plugin symlinked under ``cli-plugins``, no ``config.json``
    before) and ``COMPOSE_ROLLBACK_HOME``: the installed plugin, not this working tree. It is
    made once per run, not once per worker, holding a file lock (``fcntl.flock``) in the run's
    temp dir: the first xdist worker whose selection needs it starts it in the background as
    soon as it has collected, and a test that needs it waits on that lock (without workers,
    the first test installs). Its directory is named after the run (the xdist run id, else
    one of this process) and a hash of the source tree that ``install.sh`` copies, so two
    runs never share one and a changed tree is installed again. Read-only for the tests: its
    files' listing (path, mode, size, mtime, link target) is recorded once installed and
    checked again after every test that used it; a test that wrote into it fails. Removed at
    the end of the run (by the xdist controller, or by the only process).
``plugin_user`` (function)
    ``PluginUser``: the plugin as one user sees it: a ``HOME`` and a ``DOCKER_CONFIG`` of the
    test's own (a byte copy of the docker config ``install.sh`` wrote: ``cliPluginsExtraDirs``
    naming the shared install's plugin dir), with ``.env``, ``.run()`` and ``.docker()``.

``tests/integration/test_install.py`` keeps installs of its own: it tests ``install.sh``
itself (reinstall, uninstall, the config it edits).
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import os
import shutil
import subprocess
import threading
import uuid
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import IO

import pytest

from .compose_project import REPO_ROOT
from .plugins import find_real_compose, locate_real_compose

INSTALL_SH = REPO_ROOT / "install.sh"
#: What install.sh's copy-source leaves out of the tree it builds from (kept in step with it).
NOT_COPIED = (".git", ".venv", "venv", "build", "dist", "*.egg-info", "__pycache__",
              ".mypy_cache", ".pytest_cache", ".ruff_cache", ".rollback", ".hypothesis")
PREFIX = "installed-"
LOCK_NAME = "installed.lock"
READY = "ready.json"
INSTALL_DIRS = ("home", "docker-config", "cr-home")
FAILED = "failed.txt"
#: This process's run id when it is no xdist worker (one session, one id).
_OWN_RUN_ID = uuid.uuid4().hex


def base_env() -> dict[str, str]:
    """This environment without what would point docker or compose elsewhere: plugin
    variables, compose's project variables, a context only the user's own config has."""
    return {k: v for k, v in os.environ.items()
            if not k.startswith(("DOCKER_CLI_PLUGIN_", "COMPOSE_")) and k != "DOCKER_CONTEXT"}


def run(args: Sequence[str], *, env: dict[str, str], cwd: Path | None = None,
        timeout: float = 120) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), env=env, cwd=cwd, capture_output=True, text=True,
                          timeout=timeout, check=False)


def source_hash() -> str:
    """Hash of the files ``install.sh`` copies to build from (paths, modes, contents)."""
    digest = hashlib.sha256()
    ignore = shutil.ignore_patterns(*NOT_COPIED)
    for top, dirs, files in os.walk(REPO_ROOT):
        left_out = ignore(top, [*dirs, *files])
        dirs[:] = sorted(d for d in dirs if d not in left_out)
        for name in sorted(set(files) - left_out):
            path = Path(top, name)
            digest.update(str(path.relative_to(REPO_ROOT)).encode() + b"\0")
            if path.is_symlink():
                digest.update(b"link\0" + str(path.readlink()).encode())
            else:
                digest.update(oct(path.stat().st_mode).encode() + b"\0" + path.read_bytes())
            digest.update(b"\0")
    return digest.hexdigest()[:16]


def listing(root: Path) -> dict[str, str]:
    """Every file, dir and link of the install under ``root`` (not its markers): what a
    write would change."""
    found: dict[str, str] = {}
    stack = [str(root / name) for name in INSTALL_DIRS]
    while stack:  # os.scandir: the stat of each entry comes with it, 3,000+ of them
        with os.scandir(stack.pop()) as entries:
            for entry in entries:
                st = entry.stat(follow_symlinks=False)
                link = str(Path(entry.path).readlink()) if entry.is_symlink() else ""
                found[entry.path] = f"{st.st_mode:o} {st.st_size} {st.st_mtime_ns} {link}"
                if entry.is_dir(follow_symlinks=False):
                    stack.append(entry.path)
    return found


@dataclass(frozen=True)
class PluginUser:
    """One user of the shared install: HOME and DOCKER_CONFIG of their own."""

    home: Path
    config_dir: Path
    cr_home: Path  # the shared install's COMPOSE_ROLLBACK_HOME: read only
    env: dict[str, str]

    @property
    def entry(self) -> Path:
        return self.cr_home / "venv" / "bin" / "compose-rollback"

    def run(self, args: Sequence[str], *, cwd: Path | None = None,
            timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return run(args, env=self.env, cwd=cwd, timeout=timeout)

    def docker(self, *args: str, cwd: Path | None = None,
               timeout: float = 240) -> subprocess.CompletedProcess[str]:
        return self.run(["docker", *args], cwd=cwd, timeout=timeout)


@dataclass(frozen=True)
class SharedInstall:
    root: Path  # home/, docker-config/, cr-home/ of the install
    files: dict[str, str]  # listing(root) right after install.sh

    @property
    def cr_home(self) -> Path:
        return self.root / "cr-home"

    @property
    def config_dir(self) -> Path:
        """The docker config install.sh edited: copied for each user, never used itself."""
        return self.root / "docker-config"

    def new_user(self, where: Path) -> PluginUser:
        """A HOME and a copy of the installed docker config under ``where`` (made here)."""
        home, config_dir = where / "home", where / "docker-config"
        home.mkdir(parents=True)
        shutil.copytree(self.config_dir, config_dir, symlinks=True)
        env = {**base_env(), "HOME": str(home), "DOCKER_CONFIG": str(config_dir),
               "COMPOSE_ROLLBACK_HOME": str(self.cr_home)}
        return PluginUser(home=home, config_dir=config_dir, cr_home=self.cr_home, env=env)

    def assert_unchanged(self) -> None:
        now = listing(self.root)
        changed = sorted(p for p in self.files.keys() | now.keys()
                         if self.files.get(p) != now.get(p))
        assert not changed, (
            f"a test wrote into the shared install {self.root} (every test sees it): "
            f"{changed[:20]}")


def _worker_run_root(config: pytest.Config) -> Path | None:
    """The run's temp dir, the same for every worker of the run: an xdist worker's basetemp is
    ``<the controller's basetemp>/popen-gw<n>``. None in a process that is no such worker."""
    basetemp = config.option.basetemp
    if os.environ.get("PYTEST_XDIST_WORKER") and basetemp:
        base = Path(basetemp)
        if base.name.startswith("popen-"):
            return base.parent
    return None


def _target(root: Path) -> Path:
    run_id = os.environ.get("PYTEST_XDIST_TESTRUNUID") or _OWN_RUN_ID
    return root / f"{PREFIX}{run_id[:16]}-{source_hash()}"


def _install(target: Path, real_compose: Path) -> None:
    """install.sh into ``target`` (made here, empty), as test_install.py's scenarios do; then
    ``READY`` (the listing of what it made) or ``FAILED`` (its output) next to it. Called with
    the lock held."""
    shutil.rmtree(target, ignore_errors=True)  # a half-made one (an interrupted run)
    config_dir = target / "docker-config"
    (config_dir / "cli-plugins").mkdir(parents=True)
    (config_dir / "cli-plugins" / "docker-compose").symlink_to(real_compose)
    (target / "home").mkdir()
    env = {**base_env(), "HOME": str(target / "home"), "DOCKER_CONFIG": str(config_dir),
           "COMPOSE_ROLLBACK_HOME": str(target / "cr-home"),
           # pip's download cache of the real user: the install stays isolated, just faster
           "PIP_CACHE_DIR": os.environ.get("PIP_CACHE_DIR",
                                           str(Path.home() / ".cache" / "pip"))}
    try:
        out = run(["bash", str(INSTALL_SH)], env=env, timeout=900)
    except subprocess.TimeoutExpired as e:
        (target / FAILED).write_text(f"install.sh did not finish in {e.timeout} s")
        return
    if out.returncode != 0:
        (target / FAILED).write_text(
            f"install.sh failed (exit {out.returncode}):\n{out.stdout}{out.stderr}")
        return
    (target / READY).write_text(json.dumps(listing(target)))


def _install_holding(lock: IO[str], target: Path, real_compose: Path) -> None:
    """``_install`` in the background, then let go of the lock the caller took for it."""
    try:
        _install(target, real_compose)
    except BaseException as e:
        (target / FAILED).write_text(f"the install in the background failed: {e!r}")
    finally:
        lock.close()  # releases the flock: the tests waiting for the install go on


#: The background installs this process started (joined when its session ends).
_BACKGROUND: list[threading.Thread] = []


@pytest.hookimpl(trylast=True)  # after -k, -m and --phase have chosen the items
def pytest_collection_finish(session: pytest.Session) -> None:
    """An xdist worker whose selection uses ``plugin_user`` starts the install now, in the
    background, unless another worker already has: no worker then waits idle for it."""
    root = _worker_run_root(session.config)
    if root is None or not any("plugin_user" in getattr(item, "fixturenames", ())
                               for item in session.items):
        return
    real = locate_real_compose()
    if real is None:
        return  # the fixture skips or fails, saying why
    target = _target(root)
    lock = open(root / LOCK_NAME, "a")  # noqa: SIM115 (the installing thread closes it)
    try:
        fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:  # another worker is installing right now
        lock.close()
        return
    if (target / READY).exists() or (target / FAILED).exists():
        lock.close()
        return
    thread = threading.Thread(target=_install_holding, args=(lock, target, real),
                              name="install.sh")
    thread.start()
    _BACKGROUND.append(thread)


@pytest.fixture(scope="session")
def shared_install(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory
                   ) -> Iterator[SharedInstall]:
    """The run's install for this source tree: made (or being made) by the first process to
    ask, under the lock; the others wait on the lock and read what it recorded."""
    real = find_real_compose()
    worker_root = _worker_run_root(request.config)
    target = _target(worker_root or tmp_path_factory.getbasetemp())
    with open(target.parent / LOCK_NAME, "a") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)  # waits while a worker installs
        if not (target / READY).is_file() and not (target / FAILED).is_file():
            _install(target, real)
    if (target / FAILED).is_file():  # one failed install is reported, not repeated
        pytest.fail((target / FAILED).read_text(), pytrace=False)
    installed = SharedInstall(root=target, files=json.loads((target / READY).read_text()))
    yield installed
    installed.assert_unchanged()
    if worker_root is None:  # the only process of the run: nobody else needs it
        shutil.rmtree(target, ignore_errors=True)


@pytest.fixture
def plugin_user(shared_install: SharedInstall, tmp_path_factory: pytest.TempPathFactory
                ) -> Iterator[PluginUser]:
    yield shared_install.new_user(tmp_path_factory.mktemp("plugin-user"))
    shared_install.assert_unchanged()


def pytest_sessionfinish(session: pytest.Session) -> None:
    """A worker waits for the install it started; the xdist controller, once every worker is
    done, removes the run's install."""
    for thread in _BACKGROUND:
        thread.join()
    config = session.config
    if hasattr(config, "workerinput") or config.pluginmanager.getplugin("dsession") is None:
        return  # a worker, or no workers at all (the fixture removed it)
    # The factory of the controller's basetemp, which xdist itself reads the same way.
    factory = getattr(config, "_tmp_path_factory", None)
    if factory is None:
        return
    root: Path = factory.getbasetemp()
    for target in root.glob(f"{PREFIX}*"):
        if target.is_dir():
            shutil.rmtree(target, ignore_errors=True)
