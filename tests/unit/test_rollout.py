"""The rollout seam without Docker: settings, the plan, and the transaction on a fake engine."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from compose_rollback import deploy
from compose_rollback.context import Context
from compose_rollback.dockerdata import ContainerState, ImageInfo
from compose_rollback.errors import OverlapImpossible, SettingsError
from compose_rollback.project import Project
from compose_rollback.revisions import RevisionStore
from compose_rollback.rollout.config import check_overlap, load_rollout, with_monitor
from compose_rollback.rollout.labels import CONFIG_HASH, REVISION_LABEL, labelled
from compose_rollback.rollout.plan import build_plan, dependency_order
from compose_rollback.settings import Settings, load_settings

from .fake_engine import FakeEngine

GOOD = ImageInfo("sha256:" + "1" * 64, ("reg/app:latest",), ("reg/app@sha256:" + "a" * 64,))
BAD = ImageInfo("sha256:" + "2" * 64, ("reg/app:latest",), ("reg/app@sha256:" + "b" * 64,))
FAST = deploy.Overrides(timeout=5.0, min_healthy=0.0)


def _web(**deploy_block: Any) -> dict[str, Any]:
    return {"services": {"web": {"image": "x", "deploy": deploy_block}}}


# -- settings ---------------------------------------------------------------------------------
def test_update_config_is_read_with_our_defaults() -> None:
    rollout = load_rollout(_web(replicas=3, update_config={
        "order": "start-first", "parallelism": 2, "delay": "5s", "monitor": "1m",
        "failure_action": "pause", "max_failure_ratio": 0.5}), {})
    web = rollout.of("web")
    assert web.replicas == 3 and web.rollback is None
    assert (web.update.order, web.update.parallelism, web.update.delay, web.update.monitor,
            web.update.failure_action, web.update.max_failure_ratio) == \
        ("start-first", 2, 5.0, 60.0, "pause", 0.5)
    assert web.config(back=True) == web.update  # no rollback_config: the same both ways
    plain = load_rollout({"services": {"db": {"image": "x", "scale": 2}}}, {}).of("db")
    assert plain.replicas == 2 and plain.update.order == "stop-first"
    assert plain.update.failure_action == "rollback"  # Swarm says pause; we go back


@pytest.mark.parametrize(("block", "path"), [
    ({"update_config": {"parallelism": -1}}, "services.web.deploy.update_config.parallelism"),
    ({"update_config": {"max_failure_ratio": 2}},
     "services.web.deploy.update_config.max_failure_ratio"),
    ({"update_config": {"delay": "soon"}}, "services.web.deploy.update_config.delay"),
    ({"update_config": {"failure_action": "explode"}},
     "services.web.deploy.update_config.failure_action"),
    ({"rollback_config": {"order": "sideways"}}, "services.web.deploy.rollback_config.order"),
    ({"update_config": {"surge": 1}}, "services.web.deploy.update_config.surge"),
    ({"replicas": "${N}"}, "services.web.deploy.replicas"),
])
def test_bad_rollout_settings_name_their_path(block: dict[str, Any], path: str) -> None:
    with pytest.raises(SettingsError) as caught:
        load_rollout(_web(**block), {})
    assert caught.value.path == path


def test_replicas_are_interpolated() -> None:
    assert load_rollout(_web(replicas="${N}"), {"N": "4"}).of("web").replicas == 4


@pytest.mark.parametrize(("ports", "blocked"), [
    (["127.0.0.1:8080:80"], True), (["8080:80"], True), (["80"], False),
    (["127.0.0.1::80"], False), ([{"target": 80, "published": "8080"}], True),
    ([{"target": 80}], False), (["${PORT}:80"], True), (["[::1]:8080:80"], True),
])
def test_fixed_host_ports_block_two_copies(ports: list[Any], blocked: bool) -> None:
    model = {"services": {"web": {"image": "x", "ports": ports,
                                  "deploy": {"update_config": {"order": "start-first"}}}}}
    rollout = load_rollout(model, {"PORT": "8080"})
    if not blocked:
        check_overlap(rollout, ["web"])
        return
    with pytest.raises(OverlapImpossible) as caught:
        check_overlap(rollout, ["web"])
    assert caught.value.path == "services.web.deploy.update_config.order"
    assert "fixed host port (services.web.ports[0])" in caught.value.one_line()
    assert "stop-first" in caught.value.one_line()


def test_container_name_blocks_a_start_first_way_back() -> None:
    model = {"services": {"web": {"image": "x", "container_name": "shop-web", "deploy": {
        "rollback_config": {"order": "start-first"}}}}}
    with pytest.raises(OverlapImpossible) as caught:
        check_overlap(load_rollout(model, {}), ["web"])
    assert caught.value.path == "services.web.deploy.rollback_config.order"
    assert "container_name" in caught.value.one_line()


def test_monitor_is_the_soak_unless_min_healthy_is_written() -> None:
    model = {"services": {
        "web": {"image": "x", "deploy": {"update_config": {"monitor": "7s"}}},
        "api": {"image": "x", "deploy": {"update_config": {"monitor": "7s"}},
                "x-rollback": {"min_healthy": "2s"}}}}
    base = load_settings(model)
    settings = with_monitor(Settings(**{**base.__dict__, "rollout": load_rollout(model, {})}),
                            model)
    assert settings.for_service("web").min_healthy == 7.0
    assert settings.for_service("api").min_healthy == 2.0


def test_revision_label_stays_while_the_definition_does_not_change() -> None:
    first = labelled({"image": "a"}, previous=None, number=1)
    assert first["labels"] == {REVISION_LABEL: "1"}
    assert labelled({"image": "a"}, previous=first, number=2)["labels"][REVISION_LABEL] == "1"
    assert labelled({"image": "b"}, previous=first, number=2)["labels"][REVISION_LABEL] == "2"


# -- plan -------------------------------------------------------------------------------------
def _box(cid: str, service: str, config_hash: str, status: str = "running") -> ContainerState:
    return ContainerState(id=cid, name=cid, service=service, status=status, exit_code=0,
                          health="healthy", restart_count=0, image_id="i", oom_killed=False,
                          oneoff=False, labels={CONFIG_HASH: config_hash})


def test_dependency_order_puts_dependencies_first() -> None:
    model = {"services": {"web": {"depends_on": {"api": {}}}, "api": {"depends_on": {"db": {}}},
                          "db": {}, "cron": {}}}
    assert dependency_order(["web", "api", "db", "cron"], load_rollout(model, {})) == \
        ["db", "api", "cron", "web"]  # depth first, by name


def test_plan_starts_new_beside_old_and_groups_the_rest() -> None:
    model = {"services": {
        "web": {"depends_on": {"db": {}},
                "deploy": {"replicas": 2, "update_config": {"order": "start-first"}}},
        "db": {}, "cache": {"deploy": {"update_config": {"order": "start-first"}}}}}
    containers = [_box("w1", "web", "old"), _box("w2", "web", "old"), _box("x", "web", "cut"),
                  _box("d1", "db", "db"), _box("c1", "cache", "cache")]
    plan = build_plan(services=["cache", "db", "web"], gated=["cache", "db", "web"],
                      hashes={"web": "new", "db": "db", "cache": "cache"},
                      previous={"web": "old", "db": "db", "cache": "cache"},
                      containers=containers, rollout=load_rollout(model, {}), settings={},
                      back=False)
    assert [(s.order, s.services) for s in plan.steps] == [
        ("stop-first", ("cache", "db")), ("start-first", ("web",))]
    web = plan.steps[1]
    assert web.old == ("w1", "w2") and web.strays == ("x",) and web.replicas == 2


def test_plan_back_to_the_revision_that_serves_removes_the_leftovers() -> None:
    model = {"services": {"web": {"deploy": {"update_config": {"order": "start-first"}}}}}
    plan = build_plan(services=["web"], gated=["web"], hashes={"web": "p"},
                      previous={"web": "n"}, back=True,
                      containers=[_box("p1", "web", "p"), _box("n1", "web", "n", "exited")],
                      rollout=load_rollout(model, {}), settings={})
    assert [(s.order, s.old, s.strays) for s in plan.steps] == [("start-first", (), ("n1",))]


# -- the transaction on a fake engine -----------------------------------------------------------
@pytest.fixture
def shop(tmp_path: Path) -> tuple[Context, FakeEngine]:
    model = {"name": "shop", "services": {"web": {"image": "reg/app:latest", "deploy": {
        "replicas": 2, "update_config": {"order": "start-first"}}, "x-rollback": {"drain": 0}}}}
    engine = FakeEngine(model=model, images={"reg/app:latest": GOOD})
    compose_file = tmp_path / "compose.yaml"
    compose_file.write_text("services: {}\n")
    project = Project(name="shop", directory=tmp_path, files=(compose_file,))
    context = Context(project=project, store=RevisionStore(tmp_path / ".rollback" / "shop"),
                      progress=lambda line: None,
                      engine_factory=lambda: engine)  # type: ignore[arg-type,return-value]
    return context, engine


def _up(context: Context) -> deploy.DeployResult:
    return deploy.up(context, services=[], build=False, pull=None, message="m",
                     overrides=FAST, rollback=True, dry_run=False)


def test_start_first_good_release_stops_the_old_only_after(
        shop: tuple[Context, FakeEngine]) -> None:
    context, engine = shop
    assert _up(context).outcome == "deployed"
    old = sorted(engine.boxes)
    engine.images["reg/app:latest"] = BAD
    engine.calls.clear()
    assert _up(context).outcome == "deployed"
    assert engine.calls[0] == ("up", "0002.yaml", ("web",), {"web": 4}, False)
    assert engine.calls[-1] == ("stop", tuple(old))
    assert len(engine.boxes) == 2 and not set(engine.boxes) & set(old)


def test_start_first_broken_release_is_killed_and_the_old_kept(
        shop: tuple[Context, FakeEngine]) -> None:
    context, engine = shop
    _up(context)
    old = dict(engine.boxes)
    engine.images["reg/app:latest"] = BAD
    engine.image_behaviour[BAD.id] = "unhealthy"
    engine.calls.clear()
    result = _up(context)
    assert result.outcome == "rolled_back" and result.restored == 1
    kills = [c for c in engine.calls if c[0] == "kill"]
    assert len(kills) == 1 and len(kills[0][1]) == 2 and not set(kills[0][1]) & set(old)
    assert not [c for c in engine.calls if c[0] == "stop"]
    assert engine.boxes == old  # the same containers, untouched


def test_stop_first_failure_kills_before_the_way_back(tmp_path: Path) -> None:
    model = {"name": "shop", "services": {"web": {"image": "reg/app:latest"}}}
    engine = FakeEngine(model=model, images={"reg/app:latest": GOOD})
    (tmp_path / "compose.yaml").write_text("services: {}\n")
    project = Project(name="shop", directory=tmp_path, files=(tmp_path / "compose.yaml",))
    context = Context(project=project, store=RevisionStore(tmp_path / ".rollback" / "shop"),
                      progress=lambda line: None,
                      engine_factory=lambda: engine)  # type: ignore[arg-type,return-value]
    _up(context)
    engine.images["reg/app:latest"] = BAD
    engine.image_behaviour[BAD.id] = "unhealthy"
    engine.calls.clear()
    assert _up(context).outcome == "rolled_back"
    kinds = [c[0] for c in engine.calls]
    assert kinds == ["up", "kill", "up"]  # the failed container killed, then revision 1 put back


def test_canary_settings_and_count() -> None:
    model = {"services": {"web": {"image": "x", "x-rollback": {
        "canary": {"replicas": "25%", "duration": "30s"}}}}}
    canary = load_settings(model).for_service("web").canary
    assert canary is not None and canary.duration == 30.0
    assert [canary.count(n) for n in (1, 4, 5, 8)] == [1, 1, 2, 2]
    with pytest.raises(SettingsError) as caught:
        load_settings({"services": {"web": {"x-rollback": {"canary": {"share": 1}}}}})
    assert caught.value.path == "services.web.x-rollback.canary.share"


def test_canary_on_a_fixed_host_port_is_refused() -> None:
    model = {"services": {"web": {"image": "x", "ports": ["8080:80"]}}}
    with pytest.raises(OverlapImpossible) as caught:
        check_overlap(load_rollout(model, {}), ["web"], canaries=["web"])
    assert caught.value.path == "services.web.x-rollback.canary"
