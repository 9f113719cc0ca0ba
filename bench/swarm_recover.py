"""Time to recover on Docker Swarm: ours (``--orchestrator swarm``) versus Swarm's own rollback.

Same single-node swarm, same images (pushed to a loopback registry: both sides deploy the same
digests), same healthcheck, ``monitor`` equal to our ``--min-healthy``, 1 replica, stop-first.
A good release runs; a broken one (``unhealthy``, ``crash``) is deployed over it. From the
start of the deploy:

- ``good_again``: every running task of the service runs the good digest again and there are as
  many as the replicas (polled every 0.1 s through ``docker service ps``; both sides alike);
- ours: ``exit``, when the CLI exits 1 (after the restored revision passed its gates and soak);
- Swarm: ``rollback_completed``, when its ``UpdateStatus`` says so.

Runs alternate (ours, Swarm, ours, Swarm, ...). Usage::

    python3 bench/swarm_recover.py [--reps 3] [--soak 5] [--out FILE]

The swarm is created only if the engine's is inactive, and left again only then; everything
else it makes (stacks, registry, images) is removed at the end. Nothing is published.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path[:0] = [str(ROOT / "tests"), str(ROOT)]

from support.compose_project import ComposeProject  # noqa: E402
from support.helpers import docker  # noqa: E402
from support.registry import Registry, registry_binary  # noqa: E402
from support.swarm import Stack, Swarm  # noqa: E402
from support.testimages import AppImages, find_busybox  # noqa: E402

CASES = ("unhealthy", "crash")


def _compose(image: str, *, soak: int, action: str, orchestrator: bool) -> str:
    lines = ["services:", "  app:", f"    image: {image}",
             f"    deploy: {{replicas: 1, update_config: {{parallelism: 1, order: stop-first, "
             f"monitor: {soak}s, failure_action: {action}}}}}"]
    if orchestrator:
        lines.append("x-rollback: {orchestrator: swarm}")
    return "\n".join(lines) + "\n"


class GoodAgain:
    """Polls the service until every running task runs the good digest (in a thread)."""

    def __init__(self, stack: Stack, good: str, start: float) -> None:
        self.stack, self.good, self.start = stack, good.rsplit("@", 1)[1], start
        self.left_good = False
        self.at: float | None = None
        self._thread = threading.Thread(target=self._poll, daemon=True)
        self._thread.start()

    def _poll(self) -> None:
        deadline = time.time() + 300
        while time.time() < deadline:
            running = [i.rsplit("@", 1)[-1] for i in self.stack.running("app")]
            good = running == [self.good]
            if not good:
                self.left_good = True
            elif self.left_good:
                self.at = time.time() - self.start
                return
            time.sleep(0.1)

    def wait(self) -> float | None:
        self._thread.join(timeout=310)
        return self.at


def ours(project: ComposeProject, stack: Stack, images: AppImages, repo: str, good: str,
         case: str, soak: int) -> dict[str, float | None]:
    images.push(case, repo, "live")
    start = time.time()
    watch = GoodAgain(stack, good, start)
    result = project.run("up", "--min-healthy", f"{soak}s", "--timeout", "120s")
    exit_at = time.time() - start
    if result.returncode != 1:
        raise RuntimeError(f"ours/{case}: exit {result.returncode}:\n{result.stderr}")
    images.push("healthy", repo, "live")  # the tag back on the good release for the next run
    return {"exit": exit_at, "good_again": watch.wait()}


def swarms(stack_dir: Path, stack: Stack, good: str, bad: str, soak: int
           ) -> dict[str, float | None]:
    path = stack_dir / "stack.yaml"
    path.write_text(_compose(bad, soak=soak, action="rollback", orchestrator=False))
    service = f"{stack.name}_app"
    before = json.loads(docker("service", "inspect", "--format", "{{json .UpdateStatus}}",
                               service).stdout or "null") or {}
    start = time.time()
    watch = GoodAgain(stack, good, start)
    docker("stack", "deploy", "--resolve-image", "never", "--compose-file", str(path),
           stack.name)
    done: float | None = None
    while time.time() - start < 300:
        status = json.loads(docker("service", "inspect", "--format", "{{json .UpdateStatus}}",
                                   service).stdout or "null") or {}
        if status.get("StartedAt") != before.get("StartedAt") \
                and status.get("State") == "rollback_completed":
            done = time.time() - start
            break
        time.sleep(0.1)
    return {"rollback_completed": done, "good_again": watch.wait()}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--reps", type=int, default=3)
    parser.add_argument("--soak", type=int, default=5)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    work = Path(tempfile.mkdtemp(prefix="crbench-swarm-"))
    registry = Registry(work / "registry", binary=registry_binary() or "docker-registry")
    registry.start()
    images = AppImages(registry=registry, workdir=work / "images",
                       busybox=find_busybox() or Path("/bin/busybox"))
    swarm = Swarm.ensure()
    samples: dict[str, list[dict[str, float | None]]] = {}
    project = ComposeProject(work)
    ours_stack, peer = Stack(project.name), Stack(f"{project.name}-swarm")
    try:
        repo = registry.new_repo()
        good = images.push("healthy", repo, "good")
        bad = {case: images.push(case, repo, case) for case in CASES}
        images.push("healthy", repo, "live")
        project.write(_compose(registry.ref(repo, "live"), soak=args.soak, action="rollback",
                               orchestrator=True))
        project.run("up", "--min-healthy", "0", check=True)
        peer_dir = work / "peer"
        peer_dir.mkdir()
        (peer_dir / "stack.yaml").write_text(_compose(good, soak=args.soak, action="rollback",
                                                      orchestrator=False))
        docker("stack", "deploy", "--resolve-image", "never", "--compose-file",
               str(peer_dir / "stack.yaml"), peer.name)
        time.sleep(args.soak + 3)  # the peer's first update settles (no broken release yet)
        for rep in range(args.reps):
            for case in CASES:
                print(f"rep {rep + 1}/{args.reps} {case}", file=sys.stderr, flush=True)
                samples.setdefault(f"ours.{case}", []).append(
                    ours(project, ours_stack, images, repo, good, case, args.soak))
                samples.setdefault(f"swarm.{case}", []).append(
                    swarms(peer_dir, peer, good, bad[case], args.soak))
                (peer_dir / "stack.yaml").write_text(_compose(
                    good, soak=args.soak, action="rollback", orchestrator=False))
    finally:
        for stack in (ours_stack, peer):
            stack.remove()
        project.cleanup()
        swarm.restore()
        images.cleanup()
        registry.stop()
    report = {"soak_and_monitor_s": args.soak, "reps": args.reps, "figures": {
        key: {name: statistics.median(v) for name in runs[0]
              if (v := [x for r in runs if (x := r[name]) is not None])}
        for key, runs in samples.items()}, "samples": samples}
    text = json.dumps(report, indent=2, sort_keys=True)
    if args.out:
        args.out.write_text(text + "\n")
    print(text)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
