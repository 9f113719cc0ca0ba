"""Services run by a provider plugin (``provider:``) have no image: kept as they are, unpinned."""

from __future__ import annotations

from pathlib import Path

from compose_rollback import deploy
from compose_rollback.context import Context
from compose_rollback.dockerdata import ImageInfo
from compose_rollback.overlay import parse
from compose_rollback.project import Project
from compose_rollback.revisions import RevisionStore

from .fake_engine import FakeEngine

GOOD = ImageInfo("sha256:" + "1" * 64, ("reg/app:latest",), ("reg/app@sha256:" + "a" * 64,))
PROVIDER = {"type": "model", "options": {"model": "ai/smollm2"}}


def test_provider_service_is_kept_unpinned_and_said_so(tmp_path: Path) -> None:
    model = {"name": "shop", "services": {
        "web": {"image": "reg/app:latest", "depends_on": {"ai": {"condition": "service_started"}}},
        "ai": {"provider": PROVIDER},
    }}
    engine = FakeEngine(model=model, images={"reg/app:latest": GOOD})
    compose_file = tmp_path / "compose.yaml"
    compose_file.write_text("services: {}\n")
    said: list[str] = []
    ctx = Context(project=Project(name="shop", directory=tmp_path, files=(compose_file,)),
                  store=RevisionStore(tmp_path / ".rollback" / "shop"), progress=said.append,
                  engine_factory=lambda: engine)  # type: ignore[arg-type,return-value]
    result = deploy.up(ctx, services=[], build=False, pull=None, message="m",
                       overrides=deploy.Overrides(timeout=5.0, min_healthy=0.0), rollback=True,
                       dry_run=False)
    assert result.outcome == "deployed", result.message
    revision = ctx.store.get(1)
    assert set(revision.pins) == {"web"} and revision.services == ("web",)
    services = parse(ctx.store.current_path.read_text())["services"]
    assert services["ai"] == {"provider": PROVIDER}  # no image, no pull_policy: as written
    assert services["web"]["image"] == "reg/app:latest@sha256:" + "a" * 64
    assert any("ai" in line and "unpinned" in line for line in said), said
