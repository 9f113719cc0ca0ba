"""Differential fidelity: a revision, applied alone, resolves to what Compose runs.

Each project of ``tests/assets/fidelity/`` is resolved by plain ``docker compose config``; the
revision our code renders for it (the functions ``up`` uses: Compose's two models, the derived
snapshot, pinned definitions, the overlay text) is then resolved alone the same way, with
``-p`` and ``--project-directory`` as ``up`` applies it. Both must be equal but for what a
revision replaces on purpose (image, pull policy, build, profiles); the text must hold no
interpolated value. Projects named ``refused-*`` have no faithful non-secret form and must be
refused with the fields named and no value shown. Config calls only: no container runs.
"""

from __future__ import annotations

import json
import shutil
import subprocess
import tempfile
from pathlib import Path
from typing import Any

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from compose_rollback.building import read_models, render_revision
from compose_rollback.context import Author, Context
from compose_rollback.engine import Engine
from compose_rollback.errors import BadInput
from compose_rollback.overlay import pinned_service
from compose_rollback.project import ComposeOptions, resolve_project
from compose_rollback.revisions import RevisionStore
from support.helpers import clean_env

pytestmark = pytest.mark.docker

CORPUS = Path(__file__).resolve().parents[1] / "assets" / "fidelity"
FAITHFUL = sorted(p.name for p in CORPUS.iterdir() if not p.name.startswith("refused-"))
REFUSED = sorted(p.name for p in CORPUS.iterdir() if p.name.startswith("refused-"))
PIN = "127.0.0.1:5000/pinned@sha256:" + "0" * 64
REPLACED = ("image", "pull_policy", "build", "profiles")


def _resolved(directory: Path, *files: Path) -> dict[str, Any]:
    """Plain compose's resolved model (no code of ours on this side)."""
    model = _resolved_or_none(directory, *files, check=True)
    assert model is not None
    return model


def _resolved_or_none(directory: Path, *files: Path, check: bool = False
                      ) -> dict[str, Any] | None:
    """``_resolved``, or None when compose rejects the project (``check``: fail instead)."""
    args = ["docker", "compose", "--project-directory", str(directory)]
    for f in files:
        args += ["-f", str(f)]
    done = subprocess.run([*args, "config", "--format", "json"], capture_output=True,
                          text=True, cwd=directory, env=clean_env(), check=False, timeout=60)
    if not check and done.returncode != 0:
        return None
    assert done.returncode == 0, done.stderr
    model: dict[str, Any] = json.loads(done.stdout)
    for definition in model.get("services", {}).values():
        for key in REPLACED:
            definition.pop(key, None)
    return model


def revision_text(directory: Path) -> str:
    """The overlay ``up`` would write for the project in ``directory``, made by the functions
    ``up`` uses (images pinned to a stand-in digest: pinning is not what this test is about)."""
    project = resolve_project(options=ComposeOptions(), cwd=directory, environ=clean_env())
    ctx = Context(project=project, store=RevisionStore(directory / ".rollback" / project.name),
                  progress=lambda line: None, engine_factory=Engine)
    model, snapshot = read_models(ctx)
    services = {  # as deploy's _compose_revision does: pinned, or as it is (provider)
        name: pinned_service(snapshot["services"][name],
                             image=None if "provider" in model["services"][name] else PIN,
                             local=False)
        for name in model["services"]
    }
    who = Author(user="u", host="h", git="", created="t")
    return render_revision(ctx, number=1, message="", restores=None, definitions=services,
                           top_level=snapshot, who=who)


def _secrets(directory: Path) -> list[str]:
    """Values of the project's variables that must never be written (its ``.env`` files)."""
    values = []
    for env_file in directory.rglob("*.env"):
        for line in env_file.read_text().splitlines():
            key, _, value = line.partition("=")
            if "SECRET" in key or "TOKEN" in key or value.startswith("from-"):
                values.append(value)
    dotenv = directory / ".env"
    for line in dotenv.read_text().splitlines() if dotenv.is_file() else []:
        key, _, value = line.partition("=")
        if "SECRET" in key:
            values.append(value)
    return values


def assert_faithful(directory: Path, plain: dict[str, Any] | None = None) -> str:
    """``plain``: the project's own resolved model, when the caller already has it."""
    text = revision_text(directory)
    revision = directory / ".revision.yaml"
    revision.write_text(text)
    try:
        assert _resolved(directory, revision) == (plain or _resolved(directory))
    finally:
        revision.unlink()
    return text


@pytest.mark.parametrize("name", FAITHFUL)
def test_revision_applied_alone_resolves_like_the_project(name: str, tmp_path: Path) -> None:
    directory = shutil.copytree(CORPUS / name, tmp_path / name)
    text = assert_faithful(directory)
    for secret in _secrets(directory):
        assert secret not in text


@pytest.mark.parametrize("name", REFUSED)
def test_project_without_a_faithful_revision_is_refused(name: str, tmp_path: Path) -> None:
    directory = shutil.copytree(CORPUS / name, tmp_path / name)
    with pytest.raises(BadInput) as raised:
        revision_text(directory)
    message = raised.value.one_line()
    assert ("nothing was recorded" in message and "services." in message) or "volume" in message
    for secret in _secrets(directory):
        assert secret not in message


def test_short_syntax_revision_keeps_read_only_and_bind(tmp_path: Path) -> None:
    """The defects by name: `:${MODE:-ro}` kept read-only, `${DATA:-./data}` a bind mount,
    `${DEV:-/dev/null}:/dev/x` one device, all still written as references."""
    directory = shutil.copytree(CORPUS / "short-volumes", tmp_path / "short-volumes")
    text = assert_faithful(directory)
    assert "- /srv:/srv2:${MODE:-ro}" in text and "- ${DATA:-./data}:/data" in text
    assert "- ${DEV:-/dev/null}:/dev/x" in text
    volumes = {v["target"]: v for v in _resolved(directory)["services"]["web"]["volumes"]}
    assert volumes["/srv2"]["read_only"] is True and volumes["/data"]["type"] == "bind"


# -- generated service definitions -----------------------------------------------------------
# Variables A and B stand for paths, volume names and modes; W for words; P for a port. Each may
# be set in .env (to a value of its kind, empty for W), or left unset.
_ref = st.one_of(
    st.builds(lambda name, op, default: f"${{{name}{op}{default}}}", st.sampled_from("AB"),
              st.sampled_from([":-", "-", ":?", "?"]),
              st.sampled_from(["./d", "/srv", "named", "ro"])),
    st.sampled_from(["${A}", "${B}"]))
_source = st.one_of(_ref, st.sampled_from(["./rel", "/abs", "named"]))
_word = st.one_of(_ref, st.sampled_from(["${W}", "${W:-two words}", "$$lit", "plain"]))
_volume = st.one_of(
    st.builds(lambda s, t: f"{s}:/{t}", _source, st.sampled_from(["data", "d2"])),
    st.builds(lambda s, t, m: f"{s}:/{t}:{m}", _source, st.sampled_from(["m1", "m2"]),
              st.one_of(st.sampled_from(["ro", "rw", "ro,z"]), _ref)),
)
_device = st.builds(lambda s, t: f"{s}:/dev/{t}",
                    st.sampled_from(["${D:-/dev/null}", "${D-/dev/zero}", "/dev/null"]),
                    st.sampled_from(["x", "y"]))
_service = st.fixed_dictionaries({"image": st.just("busybox")}, optional={
    "volumes": st.lists(_volume, max_size=3, unique_by=lambda v: v.split(":")[-2][-2:]),
    "devices": st.lists(_device, max_size=2, unique_by=lambda v: v[-1]),
    "command": st.one_of(_word.map(lambda p: f"echo {p}"), st.lists(_word, max_size=3)),
    "environment": st.one_of(
        st.lists(st.builds(lambda k, v: f"{k}={v}", st.sampled_from(["K1", "K2"]), _word),
                 max_size=2, unique_by=lambda e: e.split("=")[0]),
        st.dictionaries(st.sampled_from(["K1", "K2"]), _word, max_size=2)),
    "labels": st.lists(st.builds(lambda v: f"l={v}", _word), max_size=1),
    "ports": st.lists(st.sampled_from(["127.0.0.1:${P:-8080}:80", "${P-8081}:81",
                                       "127.0.0.1::82"]), max_size=2, unique=True),
})
_env = st.fixed_dictionaries({}, optional={
    "A": st.sampled_from(["./a", "/srv/a", "vol", "ro"]),
    "B": st.sampled_from(["./b", "/srv/b", "vol", "rw"]),
    "W": st.sampled_from(["", "one", "x y"]),
    "D": st.sampled_from(["/dev/zero", "/dev/null"]),
    "P": st.sampled_from(["9090", "127"]),
})


@settings(max_examples=40, deadline=None,
          suppress_health_check=[HealthCheck.too_slow, HealthCheck.function_scoped_fixture])
@given(service=_service, env=_env, override=st.one_of(st.none(), st.fixed_dictionaries({
    "volumes": st.lists(_volume, min_size=1, max_size=2,
                        unique_by=lambda v: v.split(":")[-2][-2:])}, optional={
    "devices": st.lists(_device, max_size=1), "command": _word.map(lambda p: f"echo {p}"),
    "environment": st.dictionaries(st.sampled_from(["K1", "K3"]), _word, max_size=2)})))
def test_generated_services_applied_alone_resolve_like_the_project(
        service: dict[str, Any], env: dict[str, str], override: dict[str, Any] | None) -> None:
    """Generated definitions (short and long forms, references in every position, fields
    merged from an override file) resolve, applied alone, like the project."""
    with tempfile.TemporaryDirectory(prefix="crt-fidelity-") as tmp:
        directory = Path(tmp) / "gen"
        directory.mkdir()
        model = {"services": {"web": service}, "volumes": {"named": {}, "vol": {}}}
        (directory / "compose.yaml").write_text(json.dumps(model))
        if override is not None:
            (directory / "compose.override.yaml").write_text(
                json.dumps({"services": {"web": override}}))
        (directory / ".env").write_text("".join(f"{k}={v}\n" for k, v in env.items()))
        # One plain `compose config` both checks the project and is what the revision must
        # resolve to (it was run twice, ~0.2 s of 40 examples' ~0.8 s each).
        plain = _resolved_or_none(directory)
        if plain is None:
            return  # compose itself rejects this combination: nothing to reproduce
        assert_faithful(directory, plain)  # a service of the project's own file is never refused
