"""install.sh end to end: a real install from this working tree into a throwaway HOME.

``HOME``, ``DOCKER_CONFIG`` and ``COMPOSE_ROLLBACK_HOME`` all point into a tmp dir, whose docker
config has the machine's real Compose plugin symlinked under ``cli-plugins``; the user's own
docker config is never written. One install (a venv and a pip install) per scenario.
The tests of the main scenario run in file order: the last one reinstalls and uninstalls.
"""

from __future__ import annotations

import json
import os
import re
import subprocess
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest

from support.plugins import SYSTEM_PLUGIN_DIRS, find_real_compose

pytestmark = pytest.mark.docker
#: The main scenario's tests share one worker, in file order: their module fixture (a real
#: install) is built once, and the last of them reinstalls and uninstalls. The scenarios
#: with an install of their own run on any worker, beside it.
MAIN_SCENARIO = pytest.mark.xdist_group("install")

REPO = Path(__file__).resolve().parents[2]
INSTALL_SH = REPO / "install.sh"
ORIGINAL_CONFIG = b'{"auths": {}, "detachKeys": "ctrl-e,e"}\n'
COMPOSE_FILE = "services:\n  app:\n    image: compose-rollback-test/install-app:never-pulled\n"


def package_version() -> str:
    text = (REPO / "compose_rollback" / "__init__.py").read_text()
    match = re.search(r'^__version__ = "([^"]+)"$', text, re.MULTILINE)
    assert match is not None
    return match.group(1)


@dataclass(frozen=True)
class Install:
    root: Path
    config_dir: Path
    cr_home: Path
    real_compose: Path
    env: dict[str, str]

    @property
    def config_json(self) -> Path:
        return self.config_dir / "config.json"

    @property
    def plugin_dir(self) -> Path:
        return self.cr_home / "cli-plugins"

    def run(
        self, args: Sequence[str], *, cwd: Path | None = None, timeout: float = 120
    ) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            list(args),
            env=self.env,
            cwd=cwd,
            capture_output=True,
            text=True,
            timeout=timeout,
            check=False,
        )

    def docker(self, *args: str, cwd: Path | None = None) -> subprocess.CompletedProcess[str]:
        return self.run(["docker", *args], cwd=cwd)

    def install_sh(self, *args: str) -> subprocess.CompletedProcess[str]:
        out = self.run(["bash", str(INSTALL_SH), *args], timeout=900)
        assert out.returncode == 0, f"install.sh {' '.join(args)} failed:\n{out.stdout}{out.stderr}"
        return out

    def extra_dirs(self) -> list[str]:
        dirs = json.loads(self.config_json.read_text())["cliPluginsExtraDirs"]
        assert isinstance(dirs, list)
        return [str(d) for d in dirs]


def make_install(root: Path, real_compose: Path, *, config: bytes | None) -> Install:
    config_dir = root / "docker-config"
    (config_dir / "cli-plugins").mkdir(parents=True)
    (config_dir / "cli-plugins" / "docker-compose").symlink_to(real_compose)
    if config is not None:
        (config_dir / "config.json").write_bytes(config)
    home = root / "home"
    home.mkdir()
    env = {
        k: v
        for k, v in os.environ.items()
        # DOCKER_CONTEXT would name a context that only the user's own config has.
        if not k.startswith(("DOCKER_CLI_PLUGIN_", "COMPOSE_ROLLBACK_")) and k != "DOCKER_CONTEXT"
    }
    # Keep pip's download cache of the real user: the install stays isolated, just faster.
    pip_cache = os.environ.get("PIP_CACHE_DIR", str(Path.home() / ".cache" / "pip"))
    env.update(
        HOME=str(home),
        DOCKER_CONFIG=str(config_dir),
        COMPOSE_ROLLBACK_HOME=str(root / "cr-home"),
        PIP_CACHE_DIR=pip_cache,
    )
    return Install(
        root=root,
        config_dir=config_dir,
        cr_home=root / "cr-home",
        real_compose=real_compose,
        env=env,
    )


def _pip_can_target(inst: Install, python: str = "python3") -> bool:
    """Whether ``python``'s pip (on the install's PATH) is 22.3 or newer (``--python``): what
    install.sh decides on."""
    found = inst.run([python, "-c", "import importlib.metadata as m; print(m.version('pip'))"])
    if found.returncode != 0:
        return False
    return tuple(int(p) for p in found.stdout.strip().split(".")[:2]) >= (22, 3)


def _venv_has_pip(inst: Install) -> bool:
    venv_python = inst.cr_home / "venv" / "bin" / "python"
    return inst.run([str(venv_python), "-c", "import pip"]).returncode == 0


def _python3_without_pip(inst: Install) -> None:
    """Put a ``python3`` that has no pip first on the install's PATH (a venv made without one:
    ensurepip is still in its standard library, as on Debian with python3-venv alone)."""
    bare = inst.root / "bare-python"
    made = inst.run(["python3", "-m", "venv", "--without-pip", str(bare)])
    assert made.returncode == 0, made.stderr
    wrapper = inst.root / "bin" / "python3"
    wrapper.parent.mkdir()
    wrapper.write_text(f'#!/bin/sh\nexec {bare}/bin/python3 "$@"\n')
    wrapper.chmod(0o755)
    inst.env["PATH"] = f"{wrapper.parent}:{inst.env['PATH']}"
    assert not _pip_can_target(inst)


@pytest.fixture(scope="module")
def real_compose() -> Path:
    return find_real_compose()


@dataclass(frozen=True)
class Installed:
    inst: Install
    version_before: subprocess.CompletedProcess[str]
    install_output: str


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory, real_compose: Path) -> Iterator[Installed]:
    inst = make_install(tmp_path_factory.mktemp("install"), real_compose, config=ORIGINAL_CONFIG)
    version_before = inst.docker("compose", "version")
    assert version_before.returncode == 0, version_before.stderr
    out = inst.install_sh()
    yield Installed(inst, version_before, out.stdout + out.stderr)
    if inst.cr_home.exists():  # a test failed before the uninstall one: clean up anyway
        inst.run(["bash", str(INSTALL_SH), "--uninstall"])


@MAIN_SCENARIO
def test_config_gets_our_dir_first_and_keeps_other_keys(installed: Installed) -> None:
    inst = installed.inst
    config = json.loads(inst.config_json.read_text())
    assert config["cliPluginsExtraDirs"] == [str(inst.plugin_dir)]
    assert config["auths"] == {}
    assert config["detachKeys"] == "ctrl-e,e"
    for name in ("docker-compose", "docker-rollback"):
        plugin = inst.plugin_dir / name
        assert os.access(plugin, os.X_OK), f"{plugin} is not executable"
        assert not re.search(r"@[A-Z_]+@", plugin.read_text()), f"placeholder left in {plugin}"
    assert os.access(inst.cr_home / "venv" / "bin" / "compose-rollback", os.X_OK)


@MAIN_SCENARIO
def test_the_venv_has_no_pip_of_its_own_when_python3s_pip_can_install_into_it(
    installed: Installed,
) -> None:
    """ensurepip (~7 s of CPU, a third of an install) only where python3's pip is too old."""
    assert _venv_has_pip(installed.inst) is not _pip_can_target(installed.inst)


@MAIN_SCENARIO
def test_install_says_how_to_use_it(installed: Installed) -> None:
    assert "docker compose rollback --help" in installed.install_output


@MAIN_SCENARIO
def test_docker_compose_version_is_unchanged(installed: Installed) -> None:
    after = installed.inst.docker("compose", "version")
    before = installed.version_before
    assert (after.returncode, after.stdout, after.stderr) == (
        before.returncode,
        before.stdout,
        before.stderr,
    )


@MAIN_SCENARIO
def test_docker_compose_ps_works(installed: Installed) -> None:
    project = installed.inst.root / "ps-project"
    project.mkdir()
    (project / "compose.yaml").write_text(COMPOSE_FILE)
    out = installed.inst.docker("compose", "ps", cwd=project)
    assert out.returncode == 0, out.stderr
    assert "NAME" in out.stdout


@MAIN_SCENARIO
def test_docker_info_lists_both_plugins(installed: Installed) -> None:
    inst = installed.inst
    out = inst.docker("info", "--format", "{{json .ClientInfo.Plugins}}")
    assert out.returncode == 0, out.stderr
    plugins = {p["Name"]: p for p in json.loads(out.stdout)}
    rollback = plugins["rollback"]
    assert rollback.get("Err") is None, rollback
    assert rollback["Vendor"] == "compose-rollback"
    assert rollback["Version"] == package_version()
    assert rollback["Path"] == str(inst.plugin_dir / "docker-rollback")
    compose = plugins["compose"]
    assert compose.get("Err") is None, compose
    assert compose["Path"] == str(inst.plugin_dir / "docker-compose")
    assert str(inst.config_dir / "cli-plugins" / "docker-compose") in compose["ShadowedPaths"]


@MAIN_SCENARIO
def test_docker_rollback_metadata_is_json(installed: Installed) -> None:
    plugin = installed.inst.plugin_dir / "docker-rollback"
    out = installed.inst.run([str(plugin), "docker-cli-plugin-metadata"])
    assert out.returncode == 0
    assert json.loads(out.stdout) == {
        "SchemaVersion": "0.1.0",
        "Vendor": "compose-rollback",
        "Version": package_version(),
        "ShortDescription": "Pinned, gated, revertible Compose deploys",
    }


@MAIN_SCENARIO
@pytest.mark.parametrize(
    "args", [["compose", "rollback", "--help"], ["rollback", "--help"]], ids=" ".join
)
def test_rollback_help(installed: Installed, args: list[str]) -> None:
    """Needs compose_rollback.plugin:main (the console script) to answer --help."""
    out = installed.inst.docker(*args)
    assert out.returncode == 0, out.stdout + out.stderr
    assert re.search(r"\bup\b", out.stdout), out.stdout
    assert re.search(r"\brevert\b", out.stdout), out.stdout


@MAIN_SCENARIO
def test_reinstall_then_uninstall_restores_the_config(installed: Installed) -> None:
    """Runs last in this module: it removes the installation the tests above share."""
    inst = installed.inst
    state_before = (inst.cr_home / "install-state.json").read_bytes()

    inst.install_sh()
    assert inst.extra_dirs() == [str(inst.plugin_dir)], "second install duplicated the entry"
    state = json.loads((inst.cr_home / "install-state.json").read_text())
    assert state["original"] == json.loads(state_before)["original"], "backup was overwritten"
    assert inst.docker("compose", "version").stdout == installed.version_before.stdout

    out = inst.install_sh("--uninstall")
    assert inst.config_json.read_bytes() == ORIGINAL_CONFIG, out.stdout
    assert not inst.cr_home.exists()
    after = inst.docker("compose", "version")
    assert (after.returncode, after.stdout) == (0, installed.version_before.stdout)
    plugins = inst.docker("info", "--format", "{{json .ClientInfo.Plugins}}")
    names = {p["Name"] for p in json.loads(plugins.stdout)}
    assert "rollback" not in names


def test_without_a_prior_config_uninstall_removes_it(tmp_path: Path, real_compose: Path) -> None:
    inst = make_install(tmp_path, real_compose, config=None)
    inst.install_sh()
    assert inst.extra_dirs() == [str(inst.plugin_dir)]
    assert inst.docker("compose", "version").returncode == 0

    inst.install_sh("--uninstall")
    assert not inst.config_json.exists()
    assert not inst.cr_home.exists()


def test_uninstall_after_the_user_edited_the_config_removes_only_our_entry(
    tmp_path: Path, real_compose: Path
) -> None:
    """Installed by a ``python3`` without pip: the venv gets a pip of its own (ensurepip)."""
    inst = make_install(tmp_path, real_compose, config=None)
    _python3_without_pip(inst)
    inst.install_sh()
    assert _venv_has_pip(inst)
    version = inst.docker("compose", "rollback", "version")
    assert version.returncode == 0 and package_version() in version.stdout, version.stderr
    config = json.loads(inst.config_json.read_text())
    config["detachKeys"] = "ctrl-x,x"
    config["cliPluginsExtraDirs"].append("/opt/other-plugins")
    inst.config_json.write_text(json.dumps(config))

    inst.install_sh("--uninstall")
    assert json.loads(inst.config_json.read_text()) == {
        "detachKeys": "ctrl-x,x",
        "cliPluginsExtraDirs": ["/opt/other-plugins"],
    }
    assert not inst.cr_home.exists()


def test_no_compose_anywhere_is_a_clear_error(tmp_path: Path, real_compose: Path) -> None:
    if any((Path(d) / "docker-compose").exists() for d in SYSTEM_PLUGIN_DIRS):
        pytest.skip("this machine has a system-wide Compose plugin, so one is always found")
    inst = make_install(tmp_path, real_compose, config=ORIGINAL_CONFIG)
    (inst.config_dir / "cli-plugins" / "docker-compose").unlink()
    out = inst.run(["bash", str(INSTALL_SH)])
    assert out.returncode == 5, out.stdout + out.stderr
    errors = [line for line in out.stderr.splitlines() if line.strip()]
    assert len(errors) == 1 and "--with-docker" in errors[0], out.stderr
    assert inst.config_json.read_bytes() == ORIGINAL_CONFIG
    assert not inst.cr_home.exists()
