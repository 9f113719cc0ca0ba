"""Issue 11: start-first rollouts and the way back, against the real engine.

- a good start-first deploy replaces every container (old ids gone), the new ones are healthy,
  carry the overlay's config hash, and a plain ``compose -f compose.yaml -f <revision> up -d``
  afterwards changes nothing;
- a broken release (unhealthy; crash at start) exits 1, the old containers keep their ids and
  their ``StartedAt`` (never restarted), the new ones are gone;
- an app that ignores its stop signal: the failed revision's containers are killed (SIGKILL
  first, no stop signal), whatever the order; the time is measured against the grace period;
- a fixed host port asking for start-first: exit 2, nothing changed;
- a service whose definition did not change is not recreated, and every container carries
  the revision in which its service last changed.
"""

from __future__ import annotations

import json
import time
from typing import Any

import pytest
from rollout_helpers import Signals, history, states

from support.compose_project import ComposeProject
from support.helpers import free_port
from support.testimages import AppImages

pytestmark = pytest.mark.docker

#: A short soak (200ms, not rollout_helpers' 1s): the gates still wait for every new container
#: to be running and healthy before the old ones go, and no proxy here has to see them first.
FAST = ("--min-healthy", "200ms", "--timeout", "60s")

def _compose(image: str, *, order: str = "start-first", replicas: int = 2, extra: str = "",
             db: str | None = None) -> str:
    lines = [
        "services:",
        "  web:",
        f"    image: {image}",
        "    pull_policy: never",
        "    healthcheck: {interval: 1s, timeout: 10s, retries: 2}",
        "    deploy:",
        f"      replicas: {replicas}",
        f"      update_config: {{order: {order}}}",
        "    x-rollback: {drain: 0s}",
    ]
    lines += [f"    {line}" for line in extra.splitlines() if line]
    if db is not None:
        lines += ["    depends_on: [db]", "  db:", f"    image: {db}", "    pull_policy: never",
                  "    healthcheck: {interval: 1s, timeout: 10s, retries: 2}"]
    return "\n".join(lines) + "\n"


def test_good_start_first_deploy_replaces_every_container(
        project: ComposeProject, images: AppImages) -> None:
    project.write(_compose(images.local("healthy")))
    project.run("up", *FAST, check=True)
    first = states(project)
    assert len(first) == 2
    tag = f"{project.name}-web:next"
    images.build_fresh("healthy", tag)
    project.write(_compose(tag))
    began = time.monotonic()
    project.run("up", *FAST, check=True)
    print(f"start-first good deploy of 2 replicas: {time.monotonic() - began:.1f}s")
    second = states(project)
    assert len(second) == 2 and not set(second) & set(first)
    assert all(s["status"] == "running" and s["health"] == "healthy" for s in second.values())
    assert {s["revision"] for s in second.values()} == {"2"}
    overlay = project.state_dir / "revisions" / "0002.yaml"
    files = ("-f", "compose.yaml", "-f", str(overlay))
    wanted = project.compose(*files, "config", "--hash", "web").stdout.split()[1]
    assert {s["hash"] for s in second.values()} == {wanted}
    project.compose(*files, "up", "-d")  # the revision file reproduces the state: a no-op
    assert states(project) == second


@pytest.mark.parametrize("variant", ["unhealthy", "crash"])
def test_broken_start_first_release_never_touches_the_old_containers(
        project: ComposeProject, images: AppImages, variant: str) -> None:
    project.write(_compose(images.local("healthy")))
    project.run("up", *FAST, check=True)
    before = states(project)
    project.write(_compose(images.local(variant)))
    result = project.run("up", *FAST, check=1)
    assert "kept serving" in result.stderr
    assert states(project) == before  # same ids, same StartedAt, never restarted
    assert [r["status"] for r in history(project)] == ["deployed", "failed"]


@pytest.mark.parametrize("order", ["stop-first", "start-first"])
def test_failed_revision_of_an_app_ignoring_sigterm_is_killed_at_once(
        project: ComposeProject, images: AppImages, order: str) -> None:
    """SIGWINCH is ignored by the app's PID 1 (no handler): ``docker stop`` waits the grace.

    The grace is short (3 s): what is checked is the first signal each container got, and
    stop-first pays the whole grace once, for the good release."""
    grace = 3
    extra = f"stop_signal: SIGWINCH\nstop_grace_period: {grace}s"
    project.write(_compose(images.local("healthy"), order=order, replicas=1, extra=extra))
    project.run("up", *FAST, check=True)
    good = set(states(project))
    project.write(_compose(images.local("unhealthy"), order=order, replicas=1, extra=extra))
    watch = Signals(project)  # live: a replay can lose them in a busy engine's event buffer
    began = time.time()
    project.run("up", *FAST, check=1)
    ended = time.time()
    print(f"{order}: broken release deploy + way back took {ended - began:.1f}s "
          f"(stop grace {grace}s; stop-first pays it once, for the good release)")
    kills = watch.close_once_destroyed(good)
    failed = {cid: signals for cid, signals in kills.items() if cid not in good}
    assert failed, f"no kill of the failed revision's container in {kills}"
    for signals in failed.values():
        assert signals[0] == "9", f"the failed container got {signals} (a stop signal first)"
    if order == "start-first":
        assert good == set(states(project))  # the good container was never stopped
        assert good.isdisjoint(kills)


def test_fixed_host_port_with_start_first_is_refused(
        project: ComposeProject, images: AppImages) -> None:
    port = free_port()
    project.write(_compose(images.local("healthy"), order="stop-first", replicas=1,
                           extra=f'ports: ["127.0.0.1:{port}:8080"]'))
    project.run("up", *FAST, check=True)
    before = states(project)
    history = (project.state_dir / "history.json").read_text()
    project.write(_compose(images.local("healthy"), order="start-first", replicas=1,
                           extra=f'ports: ["127.0.0.1:{port}:8080"]'))
    result = project.run("up", *FAST, check=2)
    line = result.stderr.strip().splitlines()[-1]
    assert "services.web.deploy.update_config.order" in line
    assert "fixed host port" in line and "stop-first" in line and "proxy" in line
    assert states(project) == before
    assert (project.state_dir / "history.json").read_text() == history


def test_unchanged_service_is_not_recreated(project: ComposeProject, images: AppImages) -> None:
    healthy = images.local("healthy")
    project.write(_compose(healthy, replicas=1, db=healthy))
    project.run("up", *FAST, check=True)
    db, web = states(project, "db"), states(project)
    tag = f"{project.name}-web:next"
    images.build_fresh("healthy", tag)
    project.write(_compose(tag, replicas=1, db=healthy))
    project.run("up", *FAST, check=True)
    assert states(project, "db") == db  # same container, same StartedAt
    assert {s["revision"] for s in states(project, "db").values()} == {"1"}
    assert set(states(project)).isdisjoint(web)
    assert {s["revision"] for s in states(project).values()} == {"2"}
    again = states(project)
    project.run("up", *FAST, check=True)  # nothing changed at all: nothing touched
    assert states(project) == again and states(project, "db") == db


def _rolling(image: str, *, action: str, check_file: bool) -> str:
    """Revision 2 (``check_file``) soaks each batch for 3 s: its 2nd batch must still be in its
    gate when the file its healthcheck looks for appears. Revision 1 needs no such margin: its
    first deploy and the way back to it soak 200ms."""
    health = ('["CMD-SHELL", "test ! -e /shared/broken && wget -q -O /dev/null '
              'http://127.0.0.1:8080/health"]' if check_file else
              '["CMD-SHELL", "wget -q -O /dev/null http://127.0.0.1:8080/health"]')
    soak = "3s" if check_file else "200ms"
    return "\n".join([
        "services:", "  web:", f"    image: {image}", "    pull_policy: never",
        f"    healthcheck: {{test: {health}, interval: 1s, timeout: 10s, retries: 1}}",
        '    volumes: ["./shared:/shared"]',
        "    deploy:", "      replicas: 4",
        f"      update_config: {{order: start-first, parallelism: 1, failure_action: {action}}}",
        f"    x-rollback: {{drain: 0s, min_healthy: {soak}}}",
    ]) + "\n"


def _break_second_batch(project: ComposeProject, *args: str) -> Any:
    """Run ``up`` and make every container started from the 2nd batch on unhealthy: the
    moment the journal records batch 2, the file the new healthcheck looks for appears."""
    import subprocess
    import sys

    from support.compose_project import REPO_ROOT
    from support.helpers import clean_env

    journal = project.state_dir / "journal.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "compose_rollback", "-p", project.name, "up", *args],
        cwd=project.dir, env=clean_env({"PYTHONPATH": str(REPO_ROOT)}), text=True,
        stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        records = [json.loads(line) for line in journal.read_text().splitlines() if line] \
            if journal.exists() else []
        if any(r.get("step") == "batch" and r.get("batch") == 2 and r.get("pid") == proc.pid
               for r in records):
            (project.dir / "shared" / "broken").touch()
            break
        time.sleep(0.05)
    out, err = proc.communicate(timeout=240)
    return proc.returncode, out, err


@pytest.mark.parametrize("action", ["rollback", "pause"])
def test_rolling_update_whose_second_batch_fails(
        project: ComposeProject, images: AppImages, action: str) -> None:
    (project.dir / "shared").mkdir()
    project.write(_rolling(images.local("healthy"), action=action, check_file=False))
    project.run("up", "--timeout", "60s", check=True)
    first = states(project)
    assert len(first) == 4
    tag = f"{project.name}-web:next"
    images.build_fresh("healthy", tag)
    project.write(_rolling(tag, action=action, check_file=True))
    code, out, err = _break_second_batch(project, "--timeout", "60s")
    assert code == 1, err
    said = out + err
    # the result names the step and the batch that failed
    assert "step: web: rolling (batches of 1, batch 2 failed): failed" in out, out
    now = states(project)
    assert len(now) == 4 and all(s["status"] == "running" for s in now.values())
    if action == "rollback":
        assert {s["revision"] for s in now.values()} == {"1"}
        assert len(set(now) & set(first)) == 3  # one was replaced by batch 1, then put back
        assert all(s["health"] == "healthy" for s in now.values())
    else:
        assert sorted(s["revision"] for s in now.values()) == ["1", "1", "1", "2"]
        assert "paused (failure_action: pause)" in said
        assert "web: 3 of revision 1" in said and "web: 1 of revision 2" in said


def _kill_during_start_first_gate(project: ComposeProject) -> None:
    """Start an ``up`` and SIGKILL it once the new containers run beside the old ones (the
    journal's ``gate`` record of the start-first step is written after ``compose up``)."""
    import signal
    import subprocess
    import sys

    from support.compose_project import REPO_ROOT
    from support.helpers import clean_env

    journal = project.state_dir / "journal.jsonl"
    proc = subprocess.Popen(
        [sys.executable, "-m", "compose_rollback", "-p", project.name, "up", *FAST],
        cwd=project.dir, env=clean_env({"PYTHONPATH": str(REPO_ROOT)}),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 120
    try:
        while time.monotonic() < deadline and proc.poll() is None:
            lines = journal.read_text().splitlines() if journal.exists() else []
            records = [json.loads(x) for x in lines if x]
            if any(r.get("step") == "gate" and "new" in r and r.get("pid") == proc.pid
                   for r in records):
                proc.send_signal(signal.SIGKILL)
                break
            time.sleep(0.02)
    finally:
        proc.wait(timeout=60)
    assert proc.returncode == -signal.SIGKILL, "the up ended before it could be killed"


@pytest.mark.parametrize("command", ["up", "revert"])
def test_sigkill_mid_start_first_is_cleaned_up_by_the_next_command(
        project: ComposeProject, images: AppImages, command: str) -> None:
    project.write(_compose(images.local("healthy")))
    project.run("up", *FAST, check=True)
    if command == "revert":  # a revert needs a good revision before the current one
        images.build_fresh("healthy", f"{project.name}-web:two")
        project.write(_compose(f"{project.name}-web:two"))
        project.run("up", *FAST, check=True)
    serving = states(project)
    images.build_fresh("healthy", f"{project.name}-web:cut")
    project.write(_compose(f"{project.name}-web:cut"))
    _kill_during_start_first_gate(project)
    side_by_side = states(project)
    assert set(serving) < set(side_by_side) and len(side_by_side) == 4
    result = project.run(command, *FAST, check=True)
    assert "interrupted" in result.stderr
    assert "left by a rollout that did not finish" in result.stderr
    after = states(project)
    assert len(after) == 2 and set(after).isdisjoint(side_by_side)
    assert all(s["status"] == "running" and s["health"] == "healthy" for s in after.values())
    status = json.loads(project.run("status", "--json", check=True).stdout)
    assert not status.get("drift"), status
    revisions = history(project)
    assert [r["status"] for r in revisions][-2:] == ["interrupted", "deployed"]
