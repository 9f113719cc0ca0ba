"""Issue 12: a revision's tasks on two Swarm nodes, and undone on both.

The swarm is the default engine (manager) plus a worker ``dockerd`` of our own in a network
namespace of our own (``support.swarm_two_nodes``). ``placement.max_replicas_per_node: 1``
with two replicas puts one task on each node; every image is a digest in the loopback
registry, which both nodes reach under the same name. Each assertion is made twice: by the
manager (the task's node and image, from the Swarm API) and by the worker's own engine (the
container that runs there and the image it runs).
"""

from __future__ import annotations

import json
from typing import Any

import pytest

from support.compose_project import ComposeProject
from support.helpers import docker
from support.registry import Registry
from support.swarm import STACK_LABEL, Stack
from support.swarm_two_nodes import TwoNodeSwarm
from support.testimages import AppImages

pytestmark = [pytest.mark.docker, pytest.mark.swarm]

FAST = ("--min-healthy", "2s", "--timeout", "120s")


def _compose(image: str) -> str:
    # stop-first: with one task per node allowed, a start-first update would have no node
    # for its extra task and wait for ever.
    return "\n".join([
        "services:", "  web:", f"    image: {image}",
        "    deploy: {replicas: 2, placement: {max_replicas_per_node: 1}, update_config: "
        "{parallelism: 1, order: stop-first, monitor: 2s, failure_action: rollback}}",
        "x-rollback: {orchestrator: swarm}",
    ]) + "\n"


def _release(images: AppImages, variant: str, repo: str, version: str) -> str:
    """Push a new build of ``variant`` as ``repo:live`` (the tag moves); its digest ref."""
    source = images.build_fresh(variant, f"{images.repository}:{repo}-{version}",
                                version=version)
    return images.push(source, repo, "live")


def _digest(ref: str) -> str:
    return ref.rsplit("@", 1)[1]


def per_node(stack: Stack, service: str) -> dict[str, str]:
    """Node id -> image digest of each task of ``service`` that runs now (the manager's view)."""
    ids = docker("service", "ps", f"{stack.name}_{service}", "--quiet", "--no-trunc",
                 "--filter", "desired-state=running").stdout.split()
    tasks: list[dict[str, Any]] = json.loads(docker("inspect", *ids).stdout) if ids else []
    running = [t for t in tasks if t["Status"]["State"] == "running"]
    found = {t["NodeID"]: _digest(t["Spec"]["ContainerSpec"]["Image"]) for t in running}
    assert len(found) == len(running), f"two running tasks on one node: {running}"
    return found


def on_worker(nodes: TwoNodeSwarm, stack: Stack) -> list[str]:
    """The digest of the image each container of the stack runs on the worker's engine
    (the image's own repo digest there, not only the name its container was given)."""
    worker = nodes.worker.docker
    ids = worker("ps", "--quiet", "--filter", f"label={STACK_LABEL}={stack.name}").stdout.split()
    images = [c["Image"] for c in json.loads(worker("inspect", *ids).stdout)] if ids else []
    found: list[str] = []
    for image in images:
        digests = json.loads(worker("image", "inspect", image).stdout)[0]["RepoDigests"]
        found += [_digest(d) for d in digests]
    return found


def assert_on_both(nodes: TwoNodeSwarm, stack: Stack, ref: str) -> None:
    both = {nodes.manager_id: _digest(ref), nodes.worker_id: _digest(ref)}
    assert per_node(stack, "web") == both
    assert _digest(stack.image("web")) == _digest(ref)
    assert on_worker(nodes, stack) == [_digest(ref)]


def test_tasks_spread_on_both_nodes_and_a_broken_release_is_undone_on_both(
        two_node_swarm: TwoNodeSwarm, project: ComposeProject, stack: Stack,
        images: AppImages, registry: Registry) -> None:
    repo = registry.new_repo()
    good = _release(images, "healthy", repo, "good-1")
    project.write(_compose(registry.ref(repo, "live")))
    project.run("up", *FAST, check=True)
    assert_on_both(two_node_swarm, stack, good)

    for variant, version in (("unhealthy", "bad-2"), ("crash", "bad-3")):
        bad = _release(images, variant, repo, version)
        result = project.run("up", *FAST, check=1)
        assert "restored and healthy" in result.stdout + result.stderr, result.stderr
        assert_on_both(two_node_swarm, stack, good)
        assert _digest(bad) != _digest(good)
    history = json.loads(project.run("history", "--json", check=True).stdout)
    assert [r["status"] for r in history] == ["deployed", "failed", "failed"]


def test_revert_to_an_older_revision_puts_it_on_both_nodes(
        two_node_swarm: TwoNodeSwarm, project: ComposeProject, stack: Stack,
        images: AppImages, registry: Registry) -> None:
    repo = registry.new_repo()
    refs = []
    for version in ("v1", "v2", "v3"):
        refs.append(_release(images, "healthy", repo, version))
        project.write(_compose(registry.ref(repo, "live")))
        project.run("up", *FAST, "-m", version, check=True)
        assert_on_both(two_node_swarm, stack, refs[-1])
    result = project.run("revert", "--to", "1", *FAST, check=True)
    assert "deployed and healthy" in result.stdout + result.stderr
    assert_on_both(two_node_swarm, stack, refs[0])
    status = json.loads(project.run("status", "--json", check=True).stdout)
    assert status["drift"] is False and status["services"][0]["desired"] == 2, status
