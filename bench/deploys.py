"""3 and 5. Good deploys, ours versus ``docker compose up -d --wait``, and pinning at scale.

One project of N services (every service its own tag of the ``healthy`` test image, no ports).
Each deploy sets a new value of ``BENCH_ROUND`` in every service's environment, so both tools
recreate every container each time. The two tools deploy the same project turn about, the
order swapped every repetition; the first pair is a warm-up and is not counted.

Pinning (section 5): ``prepare_images`` + ``pin_services`` called in this process with a real
``Engine`` on the compose model of the project (python-on-whales already imported, so the
figure is the work itself); ``keep_alive`` (the retention tags) is reported beside it, and the
wall time of the CLI's ``up --dry-run`` (process start, compose config twice, pinning, render).
"""

from __future__ import annotations

import time
from typing import Any

from bench.common import (
    BenchError,
    Workspace,
    cli_env,
    compose,
    compose_text,
    docker,
    log,
    ours,
    paired_ratios,
    ratio,
    summarize,
    timed,
)
from support.compose_project import ComposeProject


def service_tags(space: Workspace, count: int) -> list[str]:
    """``count`` distinct tags of the healthy image (one per service), removed at the end."""
    base = space.images.local("healthy")
    repo = base.rsplit(":", 1)[0]
    tags = [f"{repo}:svc-{i:02d}" for i in range(1, count + 1)]
    for tag in tags:
        docker("image", "tag", base, tag)

    def untag() -> None:
        docker("image", "rm", "--no-prune", *tags, expect=None)

    space.cleanups.append(untag)
    return tags


#: The scale project's healthcheck: the image's probes every 1 s with a 1 s timeout, which 50
#: containers on 2 busy cores do not always answer in time (both tools then fail the deploy).
#: ``--scale-probe-interval`` sets the interval: 200 containers probing every 2 s are ~100
#: ``docker exec`` a second, more than 2 cores run (every probe then times out).
SCALE_HEALTHCHECK = {"interval": "2s", "timeout": "5s", "retries": "3"}
ATTEMPTS = 2  # a pair that failed (a probe timed out under load) is measured once more


class Pair:
    """The same project, deployed by ours and by plain compose in turn."""

    def __init__(self, space: Workspace, services: int,
                 healthcheck: dict[str, str] | None = None) -> None:
        self.tags = service_tags(space, services)
        self.healthcheck = healthcheck or space.healthcheck
        self.round = 0
        self.project: ComposeProject = space.project(self._text())
        self.space = space
        self.failures: list[str] = []

    def _text(self) -> str:
        services = {f"s{i:02d}": tag for i, tag in enumerate(self.tags, start=1)}
        return compose_text(services, env={"BENCH_ROUND": str(self.round)},
                            rollback={"timeout": "300s"}, healthcheck=self.healthcheck)

    def _next(self) -> None:
        self.round += 1
        self.project.write(self._text())

    def ours(self) -> float:
        self._next()
        out = timed([*ours(self.project), "up", "--min-healthy", "0"], cwd=self.project.dir,
                    env=cli_env(), expect=None)
        if out.returncode != 0:
            raise BenchError(f"ours: good deploy failed:\n{out.stderr[-3000:]}")
        return out.seconds

    def compose(self) -> float:
        self._next()
        out = timed([*compose(self.project), "up", "--detach", "--wait", "--wait-timeout",
                     "300"], cwd=self.project.dir, env=cli_env(), expect=None)
        if out.returncode != 0:
            raise BenchError(f"compose: good deploy failed:\n{out.stderr[-3000:]}")
        return out.seconds

    def measure(self, reps: int, label: str, *, warmup: bool = True) -> dict[str, Any]:
        if warmup:
            log(f"{label}: warm-up pair")
            try:
                self._pair(ours_first=True)
            except BenchError as error:
                self.failures.append(str(error)[-1500:])
                log(f"{label}: the warm-up pair failed; measuring anyway")
        mine: list[float] = []
        theirs: list[float] = []
        for rep in range(reps):
            for attempt in range(ATTEMPTS):
                try:
                    a, b = self._pair(ours_first=rep % 2 == 0)
                    break
                except BenchError as error:
                    self.failures.append(str(error)[-1500:])
                    log(f"{label}: rep {rep + 1}: a deploy failed (attempt {attempt + 1}): "
                        f"{str(error).splitlines()[-1][:160]}")
            else:
                raise BenchError(f"{label}: rep {rep + 1} failed {ATTEMPTS} times:\n"
                                 f"{self.failures[-1]}")
            mine.append(a)
            theirs.append(b)
            log(f"{label}: rep {rep + 1}/{reps}: ours {mine[-1]:.2f} s, "
                f"compose {theirs[-1]:.2f} s")
        sa, sb = summarize(mine), summarize(theirs)
        return {"services": len(self.tags), "healthcheck": self.healthcheck or "image's own",
                "ours": sa, "compose": sb, "ratio": ratio(sa, sb),
                "paired_ratios": paired_ratios(mine, theirs), "failed_deploys": self.failures}

    def _pair(self, *, ours_first: bool) -> tuple[float, float]:
        if ours_first:
            a = self.ours()
            return a, self.compose()
        b = self.compose()
        return self.ours(), b

    def close(self) -> None:
        self.space.close_project(self.project)


def overhead(space: Workspace, *, sizes: list[int], reps: int,
             warmup: bool = True) -> dict[str, Any]:
    results: dict[str, Any] = {}
    for size in sizes:
        pair = Pair(space, size)
        try:
            results[f"{size}"] = pair.measure(reps, f"overhead/{size} services",
                                                 warmup=warmup)
        finally:
            pair.close()
    return results


def pinning(project: ComposeProject, reps: int) -> dict[str, Any]:
    from compose_rollback.engine import Engine
    from compose_rollback.pinning import keep_alive, pin_services, prepare_images
    from compose_rollback.project import ComposeOptions, resolve_project

    proj = resolve_project(options=ComposeOptions(project_name=project.name),
                           cwd=project.dir, environ=cli_env())
    engine = Engine()
    model = engine.config(proj, interpolate=True)
    services = sorted(model["services"])

    def pin() -> tuple[float, Any]:
        start = time.perf_counter()
        images = prepare_images(engine, proj, model=model, services=services, build=False,
                                pull=None)
        pins = pin_services(project=proj, model=model, services=services, images=images)
        return time.perf_counter() - start, pins

    _, pins = pin()  # warm-up: imports python-on-whales
    pin_times: list[float] = []
    keep_times: list[float] = []
    for _ in range(reps):
        seconds, pins = pin()
        pin_times.append(seconds)
        start = time.perf_counter()
        keep_alive(engine, pins)
        keep_times.append(time.perf_counter() - start)
    dry: list[float] = []
    for _ in range(reps):
        out = timed([*ours(project), "up", "--dry-run"], cwd=project.dir, env=cli_env(),
                    quiet=True)
        dry.append(out.seconds)
    return {"services": len(services), "pinning": summarize(pin_times),
            "retention_tags": summarize(keep_times), "dry_run": summarize(dry)}


def scale(space: Workspace, *, services: int, reps: int, pin_reps: int,
          warmup: bool = True, probe_interval: float | None = None) -> dict[str, Any]:
    healthcheck = dict(SCALE_HEALTHCHECK)
    if probe_interval is not None:
        healthcheck["interval"] = f"{probe_interval:g}s"
    pair = Pair(space, services, healthcheck=healthcheck)
    try:
        log(f"scale: pinning {services} services")
        pins = pinning(pair.project, pin_reps)
        up = pair.measure(reps, f"scale/{services} services", warmup=warmup)
    finally:
        pair.close()
    return {**pins, "up": up}
