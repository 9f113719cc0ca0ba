"""6. Zero-downtime rollouts (issue 11): what users behind a proxy see during a deploy.

Each deploy mode gets its own project of two replicas of the test app (no host port) and its
own HAProxy in front of it (``support.haproxy``: the same rig as the integration tests); the
load generator (``support.load``) sends 20 GETs a second through the proxy's loopback port,
and every answer names its release. Per deploy: the requests that failed and the requests a
broken release answered, from the start of the deploy until the proxy has settled on the
containers now running plus 2 s (for plain compose of a broken release, which never settles:
until the command exits plus 2 s; the outage goes on after that). Modes:

- ``compose``: plain ``docker compose up --detach --wait`` (Compose recreates in place);
- ``stop-first``, ``start-first``, ``canary``: our ``up --min-healthy 1s`` with
  ``deploy.update_config.order`` (``canary``: start-first plus ``x-rollback.canary``, one
  container for 2 s). ``drain`` is the default 3 s.

Cases: ``good`` (the ``healthy`` image under a new ``RELEASE``) and ``broken`` (``unhealthy``:
serves ``/`` as release ``broken`` but fails its health check). The modes run interleaved,
their order rotated every repetition. A good deploy's duration gives start-first/stop-first.

Then an app that ignores SIGTERM (``stubborn`` / ``stubborn-unhealthy``, one replica):
stop-first recovery (ours, and Swarm's automatic rollback as in ``recover``) with the floor
measured from the same run's events (broken container start -> unhealthy, plus restored
container start -> healthy), and start-first: time until the failed container is gone, and
whether an old container was ever stopped.
"""

from __future__ import annotations

import contextlib
import os
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from typing import Any

from bench.common import (
    BenchError,
    EventLog,
    Workspace,
    cli_env,
    compose,
    healthy_again,
    image_of,
    log,
    ours,
    streamed,
    summarize,
    timed,
)
from bench.recover import Swarm, swarm_mode
from bench.zero_downtime_swarm import SwarmRig
from support.compose_project import ComposeProject
from support.haproxy import HaproxyImage, Proxies, Proxy, container_addresses, haproxy_binary
from support.helpers import unique_name
from support.load import Load

MODES = ("compose", "stop-first", "start-first", "canary")
CASES = ("good", "broken")
RATE = 20.0
GATE = ("--min-healthy", "1s", "--timeout", "60s")
HEALTH = "    healthcheck: {interval: 1s, timeout: 10s, retries: 2}"


def _text(image: str, *, release: str, mode: str, replicas: int = 2,
          grace: float | None = None) -> str:
    order = "start-first" if mode in ("start-first", "canary") else "stop-first"
    lines = ["services:", "  web:", f"    image: {image}", "    pull_policy: never",
             f"    environment: {{RELEASE: {release}}}", HEALTH,
             f"    deploy: {{replicas: {replicas}, update_config: {{order: {order}}}}}"]
    if grace is not None:
        lines.append(f"    stop_grace_period: {grace:g}s")
    if mode == "canary":
        lines.append("    x-rollback: {canary: {replicas: 1, duration: 2s}}")
    return "\n".join(lines) + "\n"


# -- behind the proxy ------------------------------------------------------------------------
class Rig:
    """One mode's project, behind its own proxy."""

    def __init__(self, space: Workspace, proxies: Proxies, mode: str) -> None:
        self.space, self.mode = space, mode
        self.images = space.images
        self.count = 0
        self.project: ComposeProject = space.project(self._good())
        code, _ = self._apply()
        if code != 0:
            raise BenchError(f"zerodowntime/{mode}: first deploy failed (exit {code})")
        self.proxy: Proxy = proxies.start(self.project, service="web")
        self.proxy.wait_up(container_addresses(self.project, "web"), timeout=60)
        self.good = True

    def _good(self) -> str:
        return _text(self.images.local("healthy"), release=f"r{self.count}", mode=self.mode)

    def _apply(self) -> tuple[int, float]:
        if self.mode == "compose":
            argv = compose(self.project, "up", "--detach", "--wait")
        else:
            argv = ours(self.project, "up", *GATE)
        run = timed(argv, cwd=self.project.dir, env=cli_env(), expect=None, timeout=300)
        return run.returncode, run.seconds

    def reset(self) -> None:
        """Back to a good release (after plain compose left a broken one running)."""
        self.count += 1
        self.project.write(self._good())
        code, _ = self._apply()
        if code != 0:
            raise BenchError(f"zerodowntime/{self.mode}: reset deploy failed (exit {code})")
        self.proxy.wait_up(container_addresses(self.project, "web"), timeout=60)
        self.good = True

    def run(self, case: str) -> dict[str, Any]:
        if not self.good:
            self.reset()
        self.count += 1
        if case == "good":
            text = self._good()
        else:
            text = _text(self.images.local("unhealthy"), release="broken", mode=self.mode)

        def deploy() -> tuple[int, float]:
            self.project.write(text)
            return self._apply()

        got = under_load(self.proxy, deploy=deploy,
                         addresses=lambda: container_addresses(self.project, "web"))
        self.good = got["exit"] == 0 or self.mode != "compose"
        return got


def under_load(proxy: Proxy, *, deploy: Callable[[], tuple[int, float]],
               addresses: Callable[[], set[str]]) -> dict[str, Any]:
    """``deploy()`` (exit code, seconds) under the load: what the users behind ``proxy`` saw
    from its start until the proxy settled on ``addresses()`` plus 2 s."""
    with Load(proxy.url(), rate=RATE, max_seconds=170) as load:
        load.wait_requests(10)
        # Steady state first: a whole second through the proxy without a failure.
        deadline = load.now() + 20.0
        while load.summary().between(load.now() - 1.0).failed and load.now() < deadline:
            load.wait_until(load.now() + 0.5)
        began = load.now()
        code, took = deploy()
        ended = load.now()
        settled = True
        try:
            proxy.wait_up(addresses(), timeout=15)
        except TimeoutError:
            settled = False
        end = (load.now() if settled else ended) + 2.0
        load.wait_until(end)
    window = load.stop().between(began, end)
    return {"failed": window.failed, "broken_served": window.by_release.get("broken", 0),
            "requests": window.total, "exit": code, "deploy_seconds": took,
            "window_seconds": end - began, "settled": settled,
            "deploy_to_settled": (end - 2.0 - began) if settled else None,
            "errors": window.errors, "by_release": window.by_release,
            "longest_outage": window.longest_outage}


def _behind_proxy(space: Workspace, *, modes: Sequence[str], reps: int,
                  swarm: bool) -> dict[str, Any]:
    binary = haproxy_binary()
    if binary is None:
        raise BenchError("no haproxy (Debian package haproxy)")
    session = unique_name("b", hex_chars=6).replace("-", "")
    image = HaproxyImage(workdir=space.root / "haproxy", binary=binary, session=session)
    (space.root / "haproxy").mkdir()
    space.cleanups.append(image.cleanup)
    proxies = Proxies(image=image, workdir=space.root / "proxies")
    # Clean-ups run last first: the proxies go before the image, and before the app projects
    # (Workspace.close removes those after every clean-up), whose networks they hold.
    space.cleanups.append(proxies.cleanup)
    log("zerodowntime: building HAProxy, starting one project + proxy per mode")
    image.build()
    with contextlib.ExitStack() as stack:
        # Independent projects and proxies, set up side by side: nothing is measured yet.
        with ThreadPoolExecutor(max_workers=len(modes)) as pool:
            made = list(pool.map(lambda mode: Rig(space, proxies, mode), modes))
        rigs: dict[str, Rig | SwarmRig] = dict(zip(modes, made, strict=True))
        swarm_error = ""
        if swarm:
            try:  # the peer failing (the engine is shared) costs its own figures only
                stack.enter_context(swarm_mode())
                # Removed (proxy, then stack) when the block ends, before the swarm is left.
                rigs["swarm"] = SwarmRig(space, proxies, cleanups=stack)
            except (BenchError, TimeoutError, AssertionError) as error:
                swarm_error = f"setting up: {error}"
                log(f"zerodowntime/swarm: left out: {swarm_error}")
        names = list(rigs)
        runs: dict[str, list[dict[str, Any]]] = {f"{m}.{c}": [] for m in names for c in CASES}
        for rep in range(reps):
            order = names[rep % len(names):] + names[:rep % len(names)]
            for case in CASES:
                for mode in order:
                    if mode not in rigs:
                        continue
                    log(f"zerodowntime: rep {rep + 1}/{reps} {case}: {mode}")
                    try:
                        got = rigs[mode].run(case)
                    except (BenchError, TimeoutError, AssertionError) as error:
                        if mode != "swarm":
                            raise
                        swarm_error = f"rep {rep + 1} {case}: {error}"
                        log(f"zerodowntime/swarm: left out: {swarm_error}")
                        del rigs[mode]
                        continue
                    log(f"zerodowntime:   exit {got['exit']} in {got['deploy_seconds']:.1f}s, "
                        f"{got['failed']}/{got['requests']} failed, {got['broken_served']} "
                        f"answered by the broken release")
                    runs[f"{mode}.{case}"].append(got)
    # Gone before the SIGTERM runs: 8 containers probing their health would load the timings.
    proxies.cleanup()
    for rig in rigs.values():
        if isinstance(rig, Rig):
            space.close_project(rig.project)
    figures: dict[str, Any] = {}
    for key, items in runs.items():
        figures[key] = {name: summarize([float(i[name]) for i in items if i[name] is not None])
                        for name in ("failed", "broken_served", "requests", "deploy_seconds",
                                     "window_seconds", "deploy_to_settled", "longest_outage")}
    return {"modes": names, "swarm_error": swarm_error, "cases": list(CASES), "rate": RATE,
            "reps": reps, "figures": figures, "runs": runs}


# -- an app that ignores SIGTERM -------------------------------------------------------------
def _floor(events: EventLog, *, start: float, good_id: str) -> float | None:
    """Detection + start + first healthy check, from the run's events: the broken
    container's ``start`` -> its ``unhealthy``, plus the restored container's ``start`` ->
    its ``healthy``."""
    images: dict[str, str | None] = {}

    def image(cid: str) -> str | None:
        if cid not in images:
            images[cid] = image_of(cid)
        return images[cid]

    seen = sorted(events.matching(lambda e: e.time >= start), key=lambda e: e.time)
    # The only containers are the old good one, the broken one and the restored good one:
    # the first to start not running the good image is the broken one (gone by now).
    bad_start = next((e.time for e in seen if e.action == "start"
                      and image(e.id) != good_id), None)
    bad_unhealthy = next((e.time for e in seen if e.action == "health_status: unhealthy"
                          and bad_start is not None and e.time >= bad_start), None)
    if bad_start is None or bad_unhealthy is None:
        return None
    good_start = next((e for e in seen if e.action == "start" and e.time >= bad_unhealthy
                       and image(e.id) == good_id), None)
    if good_start is None:
        return None
    good_healthy = next((e.time for e in seen if e.action == "health_status: healthy"
                         and e.id == good_start.id), None)
    if good_healthy is None:
        return None
    return (bad_unhealthy - bad_start) + (good_healthy - good_start.time)


class Stubborn:
    """One replica of the ``stubborn`` app (ignores SIGTERM): ``order`` stop- or start-first."""

    def __init__(self, space: Workspace, *, mode: str, grace: float, soak: str) -> None:
        self.mode, self.grace, self.soak = mode, grace, soak
        self.images = space.images
        self.good_id = self.images.id("stubborn")
        self.project = space.project(self._text("stubborn"))
        first = timed(ours(self.project, "up", "--min-healthy", "0"), cwd=self.project.dir,
                      env=cli_env(), expect=None, timeout=300)
        if first.returncode != 0:
            raise BenchError(f"zerodowntime/stubborn {mode}: first deploy failed:\n"
                             f"{first.describe(['up'])}")

    def _text(self, variant: str) -> str:
        return _text(self.images.local(variant), release=variant, mode=self.mode, replicas=1,
                     grace=self.grace)

    def run(self) -> dict[str, Any]:
        before = {c["Id"] for c in self.project.containers("web")}
        self.project.write(self._text("stubborn-unhealthy"))
        with EventLog(f"com.docker.compose.project={self.project.name}") as events:
            run = streamed([*ours(self.project), "up", "--min-healthy", self.soak,
                            "--timeout", "60s"], cwd=self.project.dir, env=cli_env())
        if run.returncode != 1:
            raise BenchError(f"stubborn {self.mode}: expected exit 1, got {run.returncode}:\n"
                             f"{run.text()}")
        self.project.write(self._text("stubborn"))  # what the store restored
        healthy = healthy_again(events, after=run.start, image_id=self.good_id)
        result: dict[str, Any] = {"exit": run.seconds}
        if self.mode == "stop-first":
            result["healthy_again"] = None if healthy is None else healthy - run.start
            result["floor"] = _floor(events, start=run.start, good_id=self.good_id)
            return result
        gone = [e.time for e in events.matching(
            lambda e: e.action == "destroy" and e.id not in before and e.time >= run.start)]
        stopped = events.matching(lambda e: e.id in before and e.action in ("kill", "die",
                                                                            "stop"))
        after = {c["Id"] for c in self.project.containers("web")}
        result["failed_gone"] = max(gone) - run.start if gone else None
        result["old_stopped"] = len({e.id for e in stopped}) + len(before - after)
        return result


def _stubborn(space: Workspace, *, reps: int, grace: float, soak: str,
              swarm: bool) -> dict[str, Any]:
    samples: dict[str, dict[str, list[float]]] = {"stop-first": {}, "start-first": {},
                                                  "swarm": {}}
    result: dict[str, Any] = {"grace": grace, "soak": soak, "reps": reps}
    with ThreadPoolExecutor(max_workers=2) as pool:  # their first deploys, side by side
        stop_first, start_first = pool.map(
            lambda mode: Stubborn(space, mode=mode, grace=grace, soak=soak),
            ("stop-first", "start-first"))
    with contextlib.ExitStack() as stack:
        peer: Swarm | None = None
        if swarm:
            result["swarm"] = stack.enter_context(swarm_mode())
            try:  # the peer failing (a shared engine) costs its own figures only
                peer = Swarm(space, monitor=soak, good="stubborn")
            except (BenchError, TimeoutError) as error:
                result["swarm_error"] = f"setting up: {error}"[-2000:]
        for rep in range(reps):
            log(f"zerodowntime/stubborn: rep {rep + 1}/{reps}: ours stop-first")
            _add(samples["stop-first"], stop_first.run())
            log(f"zerodowntime/stubborn: rep {rep + 1}/{reps}: ours start-first")
            _add(samples["start-first"], start_first.run())
            if peer is not None:
                log(f"zerodowntime/stubborn: rep {rep + 1}/{reps}: swarm")
                try:
                    _add(samples["swarm"], peer.run("stubborn-unhealthy"))
                except (BenchError, TimeoutError) as error:
                    result["swarm_error"] = f"rep {rep + 1}: {error}"[-2000:]
                    log(f"zerodowntime/stubborn: Swarm peer left out: {error}")
                    peer.remove()
                    space.cleanups.remove(peer.remove)
                    peer = None
        if peer is not None:
            space.cleanups.remove(peer.remove)
            peer.remove()
    space.close_project(stop_first.project)
    space.close_project(start_first.project)
    result["figures"] = {who: {name: summarize(values) for name, values in figures.items()}
                         for who, figures in samples.items() if figures}
    over = [h - f - grace for h, f in zip(samples["stop-first"].get("healthy_again", []),
                                          samples["stop-first"].get("floor", []), strict=False)]
    result["figures"]["stop-first"]["over_floor_and_grace"] = summarize(over)
    return result


def _add(into: dict[str, list[float]], figures: dict[str, Any]) -> None:
    for name, value in figures.items():
        if value is not None:
            into.setdefault(name, []).append(float(value))


# -- the section -----------------------------------------------------------------------------
def run(space: Workspace, *, reps: int, modes: Sequence[str], grace: float, soak_seconds: int,
        swarm: bool) -> dict[str, Any]:
    result: dict[str, Any] = {"proxy": _behind_proxy(space, modes=modes, reps=reps,
                                                     swarm=swarm)}
    result["errors"] = {}
    try:  # a failure here must not take the proxy figures with it
        result["stubborn"] = _stubborn(space, reps=reps, grace=grace,
                                       soak=f"{soak_seconds}s", swarm=swarm)
    except (BenchError, TimeoutError, AssertionError) as error:
        log(f"zerodowntime/stubborn failed: {error}")
        result["errors"]["stubborn"] = str(error)[-3000:]
    result["loadavg_end"] = round(os.getloadavg()[0], 2)
    return result


__all__ = ["MODES", "run"]
