"""Issue 11: ``max_failure_ratio`` of a rolling update, and an interrupt during a gate,
against the real engine.

- 4 replicas, ``parallelism: 1``, ``max_failure_ratio: 0.25`` (1 failure tolerated): the
  first start of one new replica fails (it takes a marker file the test put in a
  bind-mounted directory, and exits 3), its slot is started again with the new revision and
  passes: exit 0, 4 replicas of the new revision, the failure reported in the result;
- the same with failures that keep happening (a marker for every start): over the budget,
  ``failure_action: rollback``, the old release (same container ids) serves, exit 1;
- SIGINT or SIGTERM to our process while a stop-first gate runs (the journal's ``gate``
  record is the moment, seen from outside): the new container, of an app that ignores its
  stop signal, is killed (SIGKILL first, never its stop signal) and the old release restored.
"""

from __future__ import annotations

import json
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pytest
from rollout_helpers import Signals, history, states

from support.compose_project import REPO_ROOT, ComposeProject
from support.helpers import clean_env, docker
from support.testimages import AppImages

pytestmark = pytest.mark.docker

# Revision 2's containers first try to take a marker: one there, they exit 3 at once (their
# first and only start fails); none left, they run the app. `mv` is a rename: one taker each.
_TAKE_A_MARKER = ("['/bin/sh', '-c', 'for f in /shared/todo/*; do mv \"$$f\" /shared/done/ "
                  "2>/dev/null && exit 3; done; exec /app/entrypoint.sh']")


def _rolling(image: str, *, release: int) -> str:
    lines = [
        "services:", "  web:", f"    image: {image}", "    pull_policy: never",
        "    healthcheck: {interval: 1s, timeout: 10s, retries: 2}",
        '    volumes: ["./shared:/shared"]',
        f"    environment: {{RELEASE: '{release}'}}",
        "    deploy:", "      replicas: 4",
        "      update_config: {order: start-first, parallelism: 1, failure_action: rollback,",
        "                      max_failure_ratio: 0.25}",
        # A short soak: a replica that fails exits 3 at once, long before any soak ends.
        "    x-rollback: {drain: 0s, min_healthy: 200ms}",
    ]
    if release == 2:
        lines.insert(4, f"    entrypoint: {_TAKE_A_MARKER}")
    return "\n".join(lines) + "\n"


def _markers(project: ComposeProject, count: int) -> Path:
    shared = project.dir / "shared"
    for folder in ("todo", "done"):
        (shared / folder).mkdir(parents=True, exist_ok=True)
    for n in range(count):
        (shared / "todo" / f"fail-{n}").touch()
    return shared


def _first_release(project: ComposeProject, images: AppImages) -> dict[str, dict[str, Any]]:
    _markers(project, 0)
    project.write(_rolling(images.local("healthy"), release=1))
    project.run("up", "--timeout", "60s", check=True)
    first = states(project)
    assert len(first) == 4 and {s["revision"] for s in first.values()} == {"1"}
    return first


def test_a_replica_failing_once_within_the_budget_is_replaced(
        project: ComposeProject, images: AppImages) -> None:
    first = _first_release(project, images)
    shared = _markers(project, 1)
    project.write(_rolling(images.local("healthy"), release=2))
    result = project.run("up", "--timeout", "60s", check=True)
    assert "web: 1 failed replica replaced (budget 1 of 4)" in result.stdout, result.stdout
    assert "tolerated (failure 1 of 1 allowed by max_failure_ratio)" in result.stderr
    assert len(list((shared / "done").iterdir())) == 1  # exactly one start failed
    now = states(project)
    assert len(now) == 4 and set(now).isdisjoint(first)
    assert all(s["status"] == "running" and s["health"] == "healthy" for s in now.values())
    assert {s["revision"] for s in now.values()} == {"2"}
    # the failed container is gone (killed and removed), not left exited beside them
    listed = docker("ps", "-aq", "--filter", f"label=com.docker.compose.project={project.name}")
    assert len(listed.stdout.split()) == 4
    assert [r["status"] for r in history(project)] == ["superseded", "deployed"]
    overlay = project.state_dir / "revisions" / "0002.yaml"
    project.compose("-f", "compose.yaml", "-f", str(overlay), "up", "-d")
    assert states(project) == now  # the revision file describes what runs: a no-op


def test_failures_over_the_budget_roll_back(project: ComposeProject, images: AppImages) -> None:
    first = _first_release(project, images)
    shared = _markers(project, 4)  # every start of revision 2 fails
    project.write(_rolling(images.local("healthy"), release=2))
    result = project.run("up", "--json", "--timeout", "60s", check=1)
    assert len(list((shared / "done").iterdir())) == 2  # the failure, then its retry
    forward = json.loads(result.stdout)["steps"][0]
    assert (forward["outcome"], forward["batches"]["failed"]) == ("failed", 1), forward
    assert forward["tolerated"] == {"replaced": 1, "budget": 1, "replicas": 4}
    assert states(project) == first  # the old release never left: same ids, never restarted
    assert [r["status"] for r in history(project)] == ["deployed", "failed"]


#: The stop grace of the app that ignores its stop signal: stop-first pays it once, for the
#: good release; the test checks which signal each container got first, not how long it took.
GRACE = 3


def _stop_first(image: str, *, soak: str) -> str:
    return "\n".join([
        "services:", "  web:", f"    image: {image}", "    pull_policy: never",
        "    healthcheck: {interval: 1s, timeout: 10s, retries: 2}",
        "    stop_signal: SIGWINCH", f"    stop_grace_period: {GRACE}s",
        f"    x-rollback: {{min_healthy: {soak}}}",
    ]) + "\n"


def _interrupt_during_gate(project: ComposeProject, sig: int) -> tuple[int, str, float]:
    """Run ``up`` and send ``sig`` once the journal says its gate runs (after compose up)."""
    journal = project.state_dir / "journal.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "compose_rollback", "-p", project.name, "up", "--timeout",
         "120s"], cwd=project.dir, env=clean_env({"PYTHONPATH": str(REPO_ROOT)}), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline, sent = time.monotonic() + 120, 0.0
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            records = [json.loads(x) for x in journal.read_text().splitlines() if x] \
                if journal.exists() else []
            if any(r.get("step") == "gate" and r.get("revision") == 2
                   and r.get("pid") == proc.pid for r in records):
                sent = time.time()
                proc.send_signal(sig)
                break
            time.sleep(0.02)
        out, err = proc.communicate(timeout=120)
    finally:
        if proc.poll() is None:
            proc.kill()
    assert sent, f"the up ended before its gate: {proc.returncode}"
    return proc.returncode, out + err, sent


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_an_interrupt_during_a_stop_first_gate_kills_the_new_container(
        project: ComposeProject, images: AppImages, sig: int) -> None:
    project.write(_stop_first(images.local("stubborn"), soak="200ms"))
    project.run("up", "--timeout", "60s", check=True)
    good = set(states(project))
    tag = f"{project.name}-web:next"
    images.build_fresh("stubborn", tag)
    project.write(_stop_first(tag, soak="100s"))  # the gate still soaks when it comes
    watch = Signals(project)
    code, said, sent = _interrupt_during_gate(project, sig)
    print(f"interrupt -> restored in {time.time() - sent:.1f}s (stop grace {GRACE}s, paid "
          "once for the good release)")
    signals = watch.close_once_destroyed(good)
    assert code == 1, said  # interrupted, the last good revision restored
    assert "interrupted by the user" in said and "revision 1 restored" in said, said
    new = {cid: sent_signals for cid, sent_signals in signals.items() if cid not in good}
    assert new, f"the new container was never killed: {signals}"
    for sent_signals in new.values():
        assert sent_signals[0] == "9", f"the unproven container got {sent_signals} first"
    restored = states(project)
    assert {s["revision"] for s in restored.values()} == {"1"} and len(restored) == 1
    assert [r["status"] for r in history(project)] == ["deployed", "interrupted"]
