"""Text and JSON renderings of command results (plain text, like docker's own tables)."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from compose_rollback.commands import DiffReport, StatusReport
    from compose_rollback.deploy import DeployResult
    from compose_rollback.revisions import Revision


def versioned(document: Any) -> Any:
    """The ``--json`` document with its ``schema_version`` (README, "JSON output"): at the top
    of an object; in each revision of ``history``'s array, which has no top of its own."""
    from compose_rollback.schema import SCHEMA_VERSION

    def stamp(item: Any) -> Any:
        return {"schema_version": SCHEMA_VERSION, **item} if isinstance(item, dict) else item

    return [stamp(item) for item in document] if isinstance(document, list) else stamp(document)


def short_image(image: str | None) -> str:
    """``repo:tag@sha256:0123456789ab`` / ``sha256:0123456789ab``: 12 hex digits are enough."""
    if not image:
        return "-"
    if "@sha256:" in image:
        name, digest = image.split("@sha256:", 1)
        return f"{name}@{digest[:12]}"
    if image.startswith("sha256:"):
        return f"sha256:{image[7:19]}"
    return image


def table(headers: Sequence[str], rows: Sequence[Sequence[str]]) -> str:
    widths = [max(len(h), *(len(r[i]) for r in rows)) if rows else len(h)
              for i, h in enumerate(headers)]
    lines = ["   ".join(h.ljust(w) for h, w in zip(headers, widths, strict=True)).rstrip()]
    lines += ["   ".join(c.ljust(w) for c, w in zip(r, widths, strict=True)).rstrip()
              for r in rows]
    return "\n".join(lines)


def history(revisions: Sequence[Revision], *, recorded: Mapping[int, str] | None = None) -> str:
    """The history table; with git, a FROM column (the commit of the compose files, ``+`` when
    they were modified) and RECORDED (the commit that recorded the revision)."""
    if not revisions:
        return "no revisions yet: run `docker compose rollback up`"
    recorded = recorded or {}
    with_git = any(r.git for r in revisions) or bool(recorded)
    rows: list[list[str]] = []
    for r in revisions:
        images = ", ".join(f"{s}={short_image(p.image)}" for s, p in sorted(r.pins.items()))
        note = r.message
        if r.restores is not None and "revert" not in note:
            note = f"{note} (restores {r.restores})".strip()
        git = [source_commit(r.git), recorded.get(r.number, "")[:12] or "-"] if with_git else []
        rows.append([str(r.number), r.created, r.status, r.kind, *git, note, images])
    lines = table(["REVISION", "CREATED", "STATUS", "KIND",
                   *(["FROM", "RECORDED"] if with_git else []), "MESSAGE", "IMAGES"], rows)
    out = lines.splitlines()[:1]
    indent = " " * (out[0].index("STATUS"))
    for r, line in zip(revisions, lines.splitlines()[1:], strict=True):
        out.append(line)
        if r.reason:  # under the row, so a long reason does not widen every column
            back = f"; restored {r.restored_to}" if r.restored_to else ""
            out.append(f"{indent}reason: {r.reason}{back}")
    return "\n".join(out)


def source_commit(git: str) -> str:
    """A revision's ``git`` header (``0123456789ab (compose files modified)``) in short:
    ``0123456789ab+`` when the files differed from that commit."""
    if not git:
        return "-"
    commit, _, rest = git.partition(" ")
    return commit + ("+" if rest else "")


def deploy(result: DeployResult) -> str:
    lines = []
    for change in result.plan:
        if change.before == change.after and not change.config_changed:
            continue
        what = f"{short_image(change.before)} -> {short_image(change.after)}"
        if change.before == change.after:
            what = f"{short_image(change.after)} (configuration changed)"
        elif change.config_changed and change.before and change.after:
            what += " (and configuration)"
        lines.append(f"  {change.service}: {what}")
    if result.outcome == "dry_run":
        body = "\n".join(lines) or "  no changes"
        for action in ("build", "pull"):
            would = [s for s, a in sorted(result.actions.items()) if a == action]
            if would:  # pinned only once built or pulled: the overlay names them unpinned
                body += f"\nwould {action} (not done in a dry run): {', '.join(would)}"
        return f"{result.message}\nplan:\n{body}\n\n{result.overlay}"
    if any(s.strategy != "stop-first" for s in result.steps):  # a plain up needs no story
        lines += [f"  step: {s.describe()}" + (" (way back)" if s.back else "")
                  for s in result.steps]
    if result.commit:
        lines.append(f"  recorded in git commit {result.commit[:12]}")
    if result.failure is not None and result.failure.logs:
        logs = "\n".join(f"    | {line}" for line in result.failure.logs.splitlines()[-10:])
        lines.append(f"  last log lines of {result.failure.container}:\n{logs}")
    return "\n".join([result.message, *lines])


def deploy_json(result: DeployResult, *, exit_code: int) -> dict[str, Any]:
    """The result as JSON, with the exit code the CLI decided on for it."""
    failure = result.failure
    return {
        "outcome": result.outcome, "exit_code": exit_code,
        "message": result.message, "revision": result.revision, "restored": result.restored,
        "failure": None if failure is None else {
            "service": failure.service, "container": failure.container,
            "reason": failure.summary(), "logs": failure.logs},
        "plan": [{"service": c.service, "before": c.before, "after": c.after,
                  "config_changed": c.config_changed} for c in result.plan],
        "overlay": result.overlay or None,
        "steps": [s.to_json() for s in result.steps],
        "commit": result.commit,
        **({"would_build": sorted(s for s, a in result.actions.items() if a == "build"),
            "would_pull": sorted(s for s, a in result.actions.items() if a == "pull")}
           if result.outcome == "dry_run" else {}),
        **({"watch": result.watch} if result.watch else {}),
    }


def status(report: StatusReport) -> str:
    head = (f"project {report.project}: revision {report.current.number} is current"
            if report.current else f"project {report.project}: no good revision yet")
    rows = []
    for s in report.services:
        states = ", ".join(f"{c['state']}" + (f"/{c['health']}" if c["health"] else "")
                           for c in s.running) or "-"
        if s.desired is not None:  # Swarm: running tasks of the replicas asked for
            running = sum(c["state"] == "running" for c in s.running)
            states = f"{running}/{s.desired} tasks: {states}"
        rows.append([s.service, short_image(s.pinned), states, "; ".join(s.drift) or "no"])
    return head + "\n" + table(["SERVICE", "PINNED", "STATE", "DRIFT"], rows)


def status_json(report: StatusReport) -> dict[str, Any]:
    return {
        "project": report.project,
        "current": report.current.number if report.current else None,
        "drift": report.drifted,
        "services": [{"service": s.service, "pinned": s.pinned, "pinned_id": s.pinned_id,
                      "containers": s.running, "drift": s.drift,
                      **({"desired": s.desired} if s.desired is not None else {})}
                     for s in report.services],
    }


def diff(report: DiffReport) -> str:
    lines = [f"revision {report.a} -> revision {report.b}"]
    if not report.services:
        lines.append("  no differences")
    for s in report.services:
        if s.image_before is None:
            lines.append(f"+ {s.service} (added): {short_image(s.image_after)}")
            continue
        if s.image_after is None:
            lines.append(f"- {s.service} (removed)")
            continue
        lines.append(f"~ {s.service}")
        if s.image_before != s.image_after:
            lines.append(f"    image: {short_image(s.image_before)} -> "
                         f"{short_image(s.image_after)}")
        for path, old, new in s.changes:
            lines.append(f"    {path}: {_value(old)} -> {_value(new)}")
    return "\n".join(lines)


def _value(value: Any) -> str:
    return "(unset)" if value is None else repr(value) if isinstance(value, str) else str(value)


def diff_json(report: DiffReport) -> dict[str, Any]:
    return {"from": report.a, "to": report.b, "services": [
        {"service": s.service, "image": {"before": s.image_before, "after": s.image_after},
         "changes": [{"path": p, "before": o, "after": n} for p, o, n in s.changes]}
        for s in report.services]}
