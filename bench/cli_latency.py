"""4. CLI latency: ``history`` with 1,000 revisions, ``status``, ``--help``; ``docker compose ps``
as the reference; and the shim's cost on ordinary ``docker compose`` commands.

The store: one real ``up`` (revision 1), then revisions 2..N written directly with the
``revisions``/``overlay`` APIs (copies of revision 1's overlay with their own header, checksum
and history entry; every tenth one failed with a reason), the last one ``deployed`` and copied
to ``current.yaml`` — so ``status`` finds the running container matching the current revision.

Commands run round-robin (one of each per round, the order rotated), output to /dev/null.
``python -m compose_rollback`` runs from the working tree; the ``docker compose rollback``
figures and the shim go through a real ``./install.sh`` into a temporary ``HOME``,
``DOCKER_CONFIG`` and ``COMPOSE_ROLLBACK_HOME`` (the real Compose plugin symlinked into that
config's ``cli-plugins``); the user's own ``~/.docker`` is never touched.
"""

from __future__ import annotations

import dataclasses
import json
import os
import statistics
import subprocess
import time
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any

from bench.common import (
    PYTHON,
    REPO,
    BenchError,
    Workspace,
    cli_env,
    compose,
    compose_text,
    log,
    ours,
    summarize,
    timed,
)
from support.compose_project import ComposeProject
from support.plugins import locate_real_compose, plugin_dirs


def build_store(project: ComposeProject, count: int) -> Path:
    """Grow the project's store to ``count`` revisions (revision 1 must exist)."""
    from compose_rollback.revisions import RevisionStore, atomic_write, checksum

    store = RevisionStore(project.state_dir)
    revisions = store.revisions()
    if len(revisions) != 1:
        raise BenchError(f"expected one real revision, found {len(revisions)}")
    first = revisions[0]
    text = store.overlay_text(first)
    made = [dataclasses.replace(first, status="superseded")]
    for number in range(2, count + 1):
        body = text.replace("# compose-rollback revision 1\n",
                            f"# compose-rollback revision {number}\n", 1)
        failed = number % 10 == 0 and number != count
        rel = f"revisions/{number:04d}.yaml"
        (store.root / rel).write_text(body, encoding="utf-8")
        made.append(dataclasses.replace(
            first, number=number, file=rel, sha256=checksum(body),
            status="failed" if failed else "superseded",
            message=f"bench release {number}",
            reason="app (crbench-app-1): exited with code 3" if failed else "",
            restored_to=number - 1 if failed else None))
    made[-1] = dataclasses.replace(made[-1], status="deployed")
    store.save(made)
    atomic_write(store.current_path, store.overlay_text(made[-1]))
    return store.root


def round_robin(commands: Mapping[str, tuple[Sequence[str], Mapping[str, str], Path]],
                runs: int, *, warmup: int = 1,
                cpu: dict[str, list[float]] | None = None) -> dict[str, list[float]]:
    """Run every command ``warmup`` + ``runs`` times, one of each per round, order rotated.

    Returns wall seconds per command; ``cpu`` (if given) receives the CPU seconds (user +
    system of the process tree), which background load disturbs far less than wall time.
    """
    names = list(commands)
    times: dict[str, list[float]] = {name: [] for name in names}
    for index in range(warmup + runs):
        shift = index % len(names)
        for name in names[shift:] + names[:shift]:
            args, env, cwd = commands[name]
            out = timed(args, env=env, cwd=cwd, quiet=True, expect=None, timeout=120)
            if out.returncode != 0:
                detail = timed(args, env=env, cwd=cwd, expect=None, timeout=120)
                raise BenchError(f"{name}: exit {out.returncode}\n{detail.describe(args)}")
            if index >= warmup:
                times[name].append(out.seconds)
                if cpu is not None:
                    cpu.setdefault(name, []).append(out.cpu)
    return times


# -- install into a throwaway HOME -----------------------------------------------------------
def real_compose() -> Path:
    found = locate_real_compose()
    if found is None:
        raise BenchError(f"no Docker Compose plugin found in {plugin_dirs()}")
    return found


@dataclasses.dataclass(frozen=True)
class Install:
    shim_env: dict[str, str]
    plain_env: dict[str, str]
    seconds: float
    real_compose: Path
    shim: Path


def install(root: Path) -> Install:
    compose_bin = real_compose()
    envs = {}
    for name in ("shim", "plain"):
        config = root / name / "docker-config"
        (config / "cli-plugins").mkdir(parents=True)
        (config / "cli-plugins" / "docker-compose").symlink_to(compose_bin)
        if name == "plain":  # the shim's config.json, minus our plugin dir
            (config / "config.json").write_text("{}\n")
        home = root / name / "home"
        home.mkdir()
        env = {k: v for k, v in cli_env().items()
               if k not in ("DOCKER_CONTEXT", "PYTHONPATH", "VIRTUAL_ENV")}
        env.update(HOME=str(home), DOCKER_CONFIG=str(config),
                   PIP_CACHE_DIR=os.environ.get("PIP_CACHE_DIR",
                                                str(Path.home() / ".cache" / "pip")))
        if name == "shim":
            env["COMPOSE_ROLLBACK_HOME"] = str(root / name / "cr-home")
        envs[name] = env
    log("cli: ./install.sh into a temporary HOME (venv + pip install)")
    start = time.perf_counter()
    out = subprocess.run(["bash", str(REPO / "install.sh")], env=envs["shim"],
                         capture_output=True, text=True, timeout=900, check=False)
    if out.returncode != 0:
        raise BenchError(f"install.sh failed:\n{out.stdout[-2000:]}\n{out.stderr[-2000:]}")
    shim = root / "shim" / "cr-home" / "cli-plugins" / "docker-compose"
    return Install(envs["shim"], envs["plain"], time.perf_counter() - start, compose_bin, shim)


def shim_cost(inst: Install, cwd: Path, runs: int) -> dict[str, Any]:
    """``docker compose version`` through the docker CLI with and without the shim, and the
    plugin executable run directly (the shim script versus the real binary): paired runs."""
    pairs = {
        "docker compose version": ["docker", "compose", "version"],
        # Run standalone (no docker CLI in front): compose takes the plain argv.
        "plugin direct: compose version": ["version"],
    }
    commands: dict[str, tuple[Sequence[str], Mapping[str, str], Path]] = {}
    for label, args in pairs.items():
        if label.startswith("plugin direct"):
            commands[f"{label} (plain)"] = ([str(inst.real_compose), *args], inst.plain_env, cwd)
            commands[f"{label} (shim)"] = ([str(inst.shim), *args], inst.plain_env, cwd)
        else:
            commands[f"{label} (plain)"] = (args, inst.plain_env, cwd)
            commands[f"{label} (shim)"] = (args, inst.shim_env, cwd)
    log(f"cli: shim cost, {len(commands)} commands x {runs} runs, round-robin")
    cpu: dict[str, list[float]] = {}
    times = round_robin(commands, runs, warmup=2, cpu=cpu)
    result: dict[str, Any] = {"commands": {n: summarize(v) for n, v in times.items()},
                              "cpu": {n: summarize(v) for n, v in cpu.items()}}
    for label in pairs:
        plain, shimmed = times[f"{label} (plain)"], times[f"{label} (shim)"]
        result[f"added: {label}"] = summarize([s - p for s, p in zip(shimmed, plain,
                                                                     strict=True)])
        result[f"added fastest: {label}"] = round(min(shimmed) - min(plain), 4)
        result[f"added cpu: {label}"] = round(
            statistics.median(cpu[f"{label} (shim)"])
            - statistics.median(cpu[f"{label} (plain)"]), 4)
    return result


def installed_versions(inst: Install) -> dict[str, str]:
    """Library versions pip chose for the installed venv (they differ from the harness's)."""
    python = Path(inst.shim_env["COMPOSE_ROLLBACK_HOME"]) / "venv" / "bin" / "python"
    code = ("import json; from importlib import metadata as m; names = ['typer', 'click', "
            "'pydantic', 'python-on-whales', 'ruamel.yaml']; found = {}\n"
            "for n in names:\n    try: found[n] = m.version(n)\n"
            "    except m.PackageNotFoundError: found[n] = '-'\nprint(json.dumps(found))")
    out = subprocess.run([str(python), "-c", code], capture_output=True, text=True, timeout=60,
                         check=False)
    try:
        data = json.loads(out.stdout)
    except ValueError:
        return {}
    return {str(k): str(v) for k, v in data.items()}


def import_profile(project: ComposeProject, args: Sequence[str]) -> list[dict[str, Any]]:
    """``python -X importtime``: the ten costliest top-level imports of one command."""
    out = subprocess.run([PYTHON, "-X", "importtime", "-m", "compose_rollback", "-p",
                          project.name, *args], cwd=project.dir, env=cli_env(),
                         capture_output=True, text=True, timeout=120, check=False)
    top: list[tuple[str, float]] = []
    for line in out.stderr.splitlines():
        if not line.startswith("import time:"):
            continue
        parts = line.split(":", 1)[1].split("|")
        if len(parts) != 3 or not parts[1].strip().isdigit():
            continue
        name = parts[2]
        if name.startswith("  "):  # nested import: counted in its parent's cumulative time
            continue
        top.append((name.strip(), int(parts[1]) / 1000))
    top.sort(key=lambda item: -item[1])
    return [{"module": module, "cumulative_ms": ms} for module, ms in top[:10]]


def run(space: Workspace, *, revisions: int, runs: int, shim: bool,
        warmup: int = 1) -> dict[str, Any]:
    project = space.project(compose_text({"app": space.images.local("healthy")},
                                         healthcheck=space.healthcheck))
    first = project.run("up", "--min-healthy", "0", env=cli_env(), timeout=300)
    if first.returncode != 0:
        raise BenchError(f"cli: first deploy failed:\n{first.stderr}")
    log(f"cli: writing a store of {revisions} revisions")
    build_store(project, revisions)
    env, cwd = cli_env(), project.dir
    commands: dict[str, tuple[Sequence[str], Mapping[str, str], Path]] = {
        "history": (ours(project, "history"), env, cwd),
        "history --json": (ours(project, "history", "--json"), env, cwd),
        "status": (ours(project, "status"), env, cwd),
        "--help": ([PYTHON, "-m", "compose_rollback", "--help"], env, cwd),
        "docker compose ps": (compose(project, "ps"), env, cwd),
        "python -c pass": ([PYTHON, "-c", "pass"], env, cwd),
    }
    result: dict[str, Any] = {"revisions": revisions, "runs": runs}
    if shim:
        try:
            inst = install(space.root / "install")
        except BenchError as error:
            result["install_error"] = str(error)[-1500:]
            log(f"cli: install failed, no shim figures: {str(error)[:200]}")
        else:
            result["install_seconds"] = round(inst.seconds, 1)
            result["installed_libraries"] = installed_versions(inst)
            commands.update({
                "docker compose rollback history": (
                    ["docker", "compose", "-p", project.name, "rollback", "history"],
                    inst.shim_env, cwd),
                "docker compose rollback --help": (
                    ["docker", "compose", "rollback", "--help"], inst.shim_env, cwd),
            })
    log(f"cli: {len(commands)} commands x {runs} runs, round-robin")
    cpu: dict[str, list[float]] = {}
    times = round_robin(commands, runs, warmup=warmup, cpu=cpu)
    result["commands"] = {name: summarize(values) for name, values in times.items()}
    result["cpu"] = {name: summarize(values) for name, values in cpu.items()}
    if shim and "install_error" not in result:
        result["shim"] = shim_cost(inst, cwd, max(3 * runs, 3))
    result["import_profile"] = {"history": import_profile(project, ["history"]),
                                "--help": import_profile(project, ["--help"])}
    space.close_project(project)
    return result
