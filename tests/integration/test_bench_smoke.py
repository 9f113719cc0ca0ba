"""Smoke run of the benchmark harness, so it cannot rot: ``bench/run.py --tiny --reps 1``.

One repetition on a tiny configuration (1- and 3-service projects, a 50-revision store, our
time to recover without the Swarm peer, no install, zero-downtime rollouts behind HAProxy in
two modes with a 2 s grace period). It asserts only that the harness ran and
wrote its JSON with the expected keys: benchmarks print figures, they never fail on a number.

It runs in the parallel phase, beside other tests: no assertion reads a figure, so load can
only slow it down. What load could do is fail a deploy the harness expects to succeed (a
section then reports an error): a good release whose probe, answered late on a busy machine,
timed out twice. ``--tiny`` therefore gives every compose file a 10 s probe timeout over the
test image's 1 s (``--probe-timeout``); the broken images fail their probes at once, as before.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from support.prereq import need
from support.testimages import find_busybox

pytestmark = pytest.mark.docker

REPO = Path(__file__).resolve().parents[2]
SECTIONS = {"recover", "detect", "overhead", "cli", "scale", "zerodowntime"}
ROW_KEYS = {"id", "figure", "unit", "median", "min", "max", "n", "target", "vs_target",
            "verdict"}
# One figure of each section that the tiny configuration must produce.
SOME_FIGURES = {
    "recover.unhealthy.ours.exit", "recover.crash.ours.healthy", "detect.finished_at",
    "overhead.1.ratio", "cli.history", "cli.--help", "cli.docker compose ps", "scale.pinning",
    "scale.up.ratio", "zerodowntime.start-first.broken.failed",
    "zerodowntime.stop-first.good.broken_served", "zerodowntime.start_vs_stop",
    "zerodowntime.stubborn.over", "zerodowntime.stubborn.start_first.old_stopped",
}


def test_harness_runs_and_writes_its_results(tmp_path: Path) -> None:
    need(find_busybox(), "no static busybox (Debian package busybox-static)")
    out = tmp_path / "bench.json"
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKER_CLI_PLUGIN_")}
    done = subprocess.run(
        [sys.executable, str(REPO / "bench" / "run.py"), "--tiny", "--reps", "1",
         "--out", str(out)],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=900, check=False,
    )
    report = f"exit {done.returncode}\n--- stdout ---\n{done.stdout}\n--- stderr ---\n" \
             f"{done.stderr[-6000:]}"
    assert done.returncode == 0, report
    data = json.loads(out.read_text())
    assert {"meta", "config", "sections", "figures", "errors"} <= set(data), report
    assert data["errors"] == {}, report
    assert set(data["sections"]) == SECTIONS, report
    assert data["config"]["tiny"] is True
    rows = data["figures"]
    assert rows, report
    for row in rows:
        assert set(row) >= ROW_KEYS, row
    ids = {row["id"] for row in rows}
    assert ids >= SOME_FIGURES, sorted(SOME_FIGURES - ids)
    assert "figure" in done.stdout.splitlines()[0]  # the printed table
