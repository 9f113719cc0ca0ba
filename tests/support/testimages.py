"""Build, tag and push the test application image (``tests/support/images/``).

Every image is built locally ``FROM scratch`` with the static busybox: nothing is ever pulled.
Each *variant* bakes its behaviour into ``ENV MODE=...`` (and ``ON_SIGTERM``), so variants
have distinct image ids and registry digests; every image carries the labels
``org.compose-rollback.test.session`` and ``.nonce``, so images of one session are ours alone
and can be removed by exact reference.
"""

from __future__ import annotations

import os
import re
import secrets
import shutil
import struct
import subprocess
import threading
import time
from collections.abc import Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

from .helpers import CommandError, docker, unique_name
from .registry import Registry

IMAGES_DIR = Path(__file__).resolve().parent / "images"
SESSION_LABEL = "org.compose-rollback.test.session"
#: Environment variables (not labels) that say which variant and which build an image is: a new
#: nonce makes a new image id. In the one ``ENV`` step of a variant build (see ``_build``).
VARIANT_ENV = "CRT_VARIANT"
NONCE_ENV = "CRT_NONCE"

# Legacy builder: the engine here (20.10, no buildx) has nothing else, and it is the same
# code path on every machine. The CLI prints a deprecation notice on stderr; harmless.
_BUILD_ENV = {"DOCKER_BUILDKIT": "0"}
_PT_INTERP = 3
_DIGEST = re.compile(r"digest: (sha256:[0-9a-f]{64})")


@dataclass(frozen=True)
class Variant:
    """How a variant is built: the baked ``MODE``, the Dockerfile target and what the shell
    (PID 1) does with SIGTERM: ``exit`` at once, or ``ignore`` it (``docker stop`` then waits
    the whole stop grace period and kills)."""

    mode: str
    target: str
    summary: str
    on_sigterm: str = "exit"


VARIANTS: dict[str, Variant] = {
    "healthy": Variant("healthy", "app", "serves; /health 200; healthy within ~1-2 s"),
    "unhealthy": Variant("unhealthy", "app", "serves; /health 500; unhealthy after ~2-3 s"),
    "crash": Variant("crash", "app", "exits with code 3 after CRASH_AFTER (0.3) s"),
    "flaky": Variant("flaky", "app", "healthy, then /health 500 after FAIL_AFTER (4) s"),
    "slow": Variant("slow", "slow", "'starting' until SLOW_START (5) s, then healthy"),
    "exit0": Variant("exit0", "plain", "one-shot job, exits 0 after JOB_SECONDS (0) s"),
    "exit1": Variant("exit1", "plain", "one-shot job, exits 1 after JOB_SECONDS (0) s"),
    "nohealthcheck": Variant("nohealthcheck", "plain", "serves like healthy, no HEALTHCHECK"),
    "stubborn": Variant(
        "healthy", "app", "like healthy, but ignores SIGTERM (no trap)", on_sigterm="ignore"
    ),
    "stubborn-unhealthy": Variant(
        "unhealthy", "app", "like unhealthy, but ignores SIGTERM (no trap)", on_sigterm="ignore"
    ),
}
"""Every variant answers ``/`` with its release: ``RELEASE`` (runtime environment), else
``VERSION`` (the variant's name for ``local()``, ``<variant>-<nonce>`` for ``build_fresh()``);
the CGI answers (``/health``, ``/cgi-bin/...``) carry it as ``X-Release``. ``crash`` never
serves (it exits before its server starts); ``unhealthy`` serves ``/`` but fails ``/health``;
``slow`` serves ``/`` at once but fails ``/health`` (503) for ``SLOW_START`` seconds."""


def find_busybox() -> Path | None:
    """The static busybox to put in the images, or None if there is none.

    ``CRT_BUSYBOX`` overrides the search of ``/bin/busybox`` and ``/usr/bin/busybox``.
    """
    candidates = [os.environ.get("CRT_BUSYBOX", ""), "/bin/busybox", "/usr/bin/busybox"]
    for candidate in filter(None, candidates):
        path = Path(candidate)
        if path.is_file() and is_static_elf(path):
            return path
    return None


def is_static_elf(path: Path) -> bool:
    """True for an ELF executable without a program interpreter (PT_INTERP): it runs in an
    empty ``FROM scratch`` image, where a dynamic one would fail with "no such file"."""
    with open(path, "rb") as handle:
        header = handle.read(64)
        if len(header) < 52 or header[:4] != b"\x7fELF":
            return False
        wide = header[4] == 2
        order = "<" if header[5] == 1 else ">"
        if wide:
            (phoff,) = struct.unpack_from(order + "Q", header, 0x20)
            phentsize, phnum = struct.unpack_from(order + "HH", header, 0x36)
        else:
            (phoff,) = struct.unpack_from(order + "I", header, 0x1C)
            phentsize, phnum = struct.unpack_from(order + "HH", header, 0x2A)
        handle.seek(phoff)
        table = handle.read(phentsize * phnum)
    for index in range(phnum):
        (kind,) = struct.unpack_from(order + "I", table, index * phentsize)
        if kind == _PT_INTERP:
            return False
    return True


class AppImages:
    """The session's test images. Variants are built lazily, once; see ``VARIANTS``."""

    def __init__(
        self, *, registry: Registry, workdir: Path, busybox: Path, session: str | None = None
    ) -> None:
        self.registry = registry
        self.session = session or secrets.token_hex(4)
        self.repository = f"crt-app-{self.session}"
        self.context = workdir / "context"
        self.busybox = busybox
        #: Seconds each build took, keyed by the local tag it produced.
        self.build_seconds: dict[str, float] = {}
        self._ids: dict[str, str] = {}
        self._created_ids: set[str] = set()
        self._created_refs: set[str] = set()
        # One lock per variant, so different variants build in parallel; the session's base
        # image of each Dockerfile target is built once, under that target's lock.
        self._locks: dict[str, threading.Lock] = {name: threading.Lock() for name in VARIANTS}
        self._base_locks: dict[str, threading.Lock] = {
            target: threading.Lock() for target in {v.target for v in VARIANTS.values()}}
        self._bases: dict[str, str] = {}
        self._prepare_context()

    # -- building ---------------------------------------------------------------------------

    def local(self, variant: str) -> str:
        """Local tag ``crt-app-<session>:<variant>`` of ``variant``, built on first use."""
        self.id(variant)
        return f"{self.repository}:{variant}"

    def id(self, variant: str) -> str:
        """Image id (``sha256:...``) of ``variant``, built on first use."""
        spec = _variant(variant)
        with self._locks[variant]:
            if variant not in self._ids:
                tag = f"{self.repository}:{variant}"
                self._ids[variant] = self._build(
                    variant, spec, tag=tag, version=variant, nonce="base"
                )
            return self._ids[variant]

    def build_all(self, variants: Iterable[str] = VARIANTS, *, workers: int = 4) -> None:
        """Build ``variants`` (default: all) now, in parallel; otherwise each variant is built
        when first asked for. A fixture that will use several variants saves seconds here."""
        wanted = [name for name in variants if name not in self._ids]
        for name in wanted:
            _variant(name)
        if not wanted:
            return
        self.id(wanted[0])  # builds the base image of its target, once
        with ThreadPoolExecutor(max_workers=workers) as pool:
            list(pool.map(self.id, wanted[1:]))

    def build_fresh(self, variant: str, tag: str, *, version: str | None = None) -> str:
        """Build a new, distinct image of ``variant`` under the local ``tag`` and return its id.

        A new nonce label makes the image id differ from every earlier build, as a rebuild of
        changed code under the same tag would. ``version`` (default ``<variant>-<nonce>``) is
        what ``/`` serves, so a test can tell the builds apart over HTTP too.
        """
        spec = _variant(variant)
        nonce = unique_name("n", hex_chars=8)
        return self._build(
            variant, spec, tag=tag, version=version or f"{variant}-{nonce}", nonce=nonce
        )

    # -- registry ---------------------------------------------------------------------------

    def push(self, variant: str, repo: str, tag: str) -> str:
        """Push ``variant`` as ``<registry>/<repo>:<tag>``; return ``<registry>/<repo>@sha256:…``.

        ``variant`` may also be a local reference or id this object built (``build_fresh``).
        Pushing another image under the same tag moves the tag, like a new release. The local
        tag stays (``remove_local`` drops it, to force a later pull).
        """
        source = self.local(variant) if variant in VARIANTS else variant
        target = self.registry.ref(repo, tag)
        docker("tag", source, target)
        self._created_refs.add(target)
        pushed = docker("push", target, timeout=120)
        found = _DIGEST.findall(pushed.stdout)
        if not found:
            raise AssertionError(
                f"no digest in the output of docker push {target}:\n{pushed.stdout}"
            )
        return f"{self.registry.host}/{repo}@{found[-1]}"

    def remove_local(self, ref: str) -> None:
        """Drop a local reference (tag or digest) so that the engine must pull it again."""
        docker("image", "rm", ref, check=None)

    def prune_dangling(self) -> None:
        """``docker image prune`` of this session's dangling images only.

        Never engine-wide: a plain prune also takes the untagged intermediate images of a build
        that another test process is running at that moment, and fails that build.
        """
        docker("image", "prune", "--force", "--filter", f"label={SESSION_LABEL}={self.session}")

    # -- teardown ---------------------------------------------------------------------------

    def cleanup(self) -> None:
        """Remove every tag and image this object created, by exact reference or id, plus any
        image (dangling or intermediate) that carries this session's label.

        Containers inherit image labels, so a container a test left running on one of these
        images is found by the same label and removed first (it would pin the image).
        """
        label = f"label={SESSION_LABEL}={self.session}"
        stray = docker("ps", "--all", "--quiet", "--filter", label, check=None).stdout.split()
        if stray:
            docker("rm", "--force", *stray, check=None)
        for ref in sorted(self._created_refs):
            docker("image", "rm", ref, check=None)
        if self._created_ids:
            docker("image", "rm", "--force", *sorted(self._created_ids), check=None)
        leftovers = docker(
            "image",
            "ls",
            "--all",
            "--quiet",
            "--no-trunc",
            "--filter",
            label,
            check=None,
        ).stdout.split()
        if leftovers:
            docker("image", "rm", "--force", *sorted(set(leftovers)), check=None)

    # -- internals --------------------------------------------------------------------------

    def _prepare_context(self) -> None:
        shutil.copytree(IMAGES_DIR, self.context, dirs_exist_ok=True)
        shutil.copy2(self.busybox, self.context / "busybox")
        (self.context / "busybox").chmod(0o755)
        app = self.context / "app"
        for script in [app / "entrypoint.sh", *(app / "www" / "cgi-bin").iterdir()]:
            script.chmod(0o755)

    def _build(self, variant: str, spec: Variant, *, tag: str, version: str, nonce: str) -> str:
        """A variant is its target's base image of this session plus one ``ENV`` step, built
        from a context holding only that Dockerfile (FROM, ENV). The variant and nonce are in
        that step too: a ``LABEL`` step beside it (as before) cost the legacy builder a second
        build container and commit, dockerd 229 instead of 157 ms a build (~270 per run).

        Building every variant from the Dockerfile instead sent the busybox context again and
        probed the build cache step by step from ``FROM scratch``, where the engine's legacy
        builder reads every image of the engine (the first step has no parent to look under):
        with several sessions' images on the engine, the builds and the image listings they
        bloat were a fifth of dockerd's CPU in a parallel run."""
        began = time.monotonic()
        base = self._base(spec.target)
        values = {"MODE": spec.mode, "VERSION": version, "ON_SIGTERM": spec.on_sigterm,
                  VARIANT_ENV: variant, NONCE_ENV: nonce}
        context = self.context.parent / "variants" / unique_name("v", hex_chars=8)
        context.mkdir(parents=True)
        (context / "Dockerfile").write_text(
            f"FROM {base}\n"
            f"ENV {' '.join(f'{k}={_quoted(v)}' for k, v in values.items())}\n",
            encoding="utf-8",
        )
        try:
            result = docker("build", "--quiet", "--tag", tag, str(context),
                            env=_build_environment(), timeout=300)
        finally:
            shutil.rmtree(context, ignore_errors=True)
        self._created_refs.add(tag)
        image_id = self._image_id(result, tag)
        self.build_seconds[tag] = time.monotonic() - began
        return image_id

    def _base(self, target: str) -> str:
        """Local tag of this session's image of Dockerfile ``target`` (the build args' defaults
        baked in, the session label on every layer), built once. The other targets are
        stages ``FROM app``: ``app`` is built first, so that they take its layers from the
        cache instead of building their own copies side by side."""
        if target != "app":
            self._base("app")
        with self._base_locks[target]:
            if target not in self._bases:
                tag = f"{self.repository}:base-{target}"
                command = [
                    "build",
                    "--quiet",
                    "--rm",
                    "--force-rm",
                    # The RUN step needs no network: never depend on the engine's default bridge.
                    "--network",
                    "none",
                    "--target",
                    target,
                    "--build-arg",
                    f"SESSION={self.session}",
                    "--tag",
                    tag,
                    str(self.context),
                ]
                try:
                    result = docker(*command, env=_build_environment(), timeout=300)
                except CommandError as error:
                    # The Dockerfile's first step (`ARG SESSION=none` on scratch) is one cached
                    # image shared by every session of the engine. When another session removes
                    # its images (a worker's or the bench smoke's clean-up) at the moment this
                    # build takes that step from the cache, the engine drops it and the build
                    # fails with "unable to find image": a race between two processes, not a
                    # problem of the image. Built again, the step is made anew.
                    if "unable to find image" not in str(error):
                        raise
                    result = docker(*command, env=_build_environment(), timeout=300)
                self._created_refs.add(tag)
                self._image_id(result, tag)
                self._bases[target] = tag
            return self._bases[target]

    def _image_id(self, result: subprocess.CompletedProcess[str], tag: str) -> str:
        image_id = result.stdout.strip().splitlines()[-1].strip()
        if not image_id.startswith("sha256:"):
            image_id = docker("image", "inspect", "--format", "{{.Id}}", tag).stdout.strip()
        self._created_ids.add(image_id)
        return image_id


def _quoted(value: str) -> str:
    """A Dockerfile ``ENV``/``LABEL`` value taken literally: double-quoted, with ``\\``,
    ``"`` and ``$`` escaped (the builder would otherwise substitute variables)."""
    escaped = value.replace("\\", "\\\\").replace('"', '\\"').replace("$", "\\$")
    return f'"{escaped}"'


def _variant(name: str) -> Variant:
    try:
        return VARIANTS[name]
    except KeyError:
        raise ValueError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}") from None


def _build_environment() -> dict[str, str]:
    return {**os.environ, **_BUILD_ENV}
