"""Hooks (shell commands at points of a deploy) and the webhook that receives each result.

Hook environment: ``COMPOSE_ROLLBACK_PROJECT``, ``_REVISION`` (the new revision),
``_PREVIOUS`` (the last good one, empty if none), ``_STATUS`` (pending, deployed, failed,
rolled_back, unrestored), ``_REASON`` (why it failed), ``_HOOK`` (which hook). A hook's
output (stdout too) goes to stderr, so stdout stays the command's result (``--json``).

Webhook payload (JSON, POST), one per revision result::

    {"event": "revision", "project": "shop", "revision": 7, "previous": 6,
     "outcome": "rolled_back", "status": "failed", "restored": 6,
     "reason": "web (shop-web-1): exited with code 3", "service": "web",
     "time": "2026-11-22T07:00:00Z", "tool": "compose-rollback", "version": "0.1.0"}

With ``webhook: {url: …, format: alertmanager}`` the same result goes out as an Alertmanager
webhook notification; ``format: alertmanager-api`` posts it to an Alertmanager as an alert
(``alertbody``).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from compose_rollback import __version__, alertbody
from compose_rollback.interpolate import as_written
from compose_rollback.lock import now_iso
from compose_rollback.urlopen import urlopen

HOOK_TIMEOUT = 300.0
_STDERR = 2  # the file descriptor, whatever sys.stderr is


def run_hook(hook: str, command: str | None, *, cwd: Path, env: Mapping[str, str],
             progress: Callable[[str], None]) -> int:
    """Run one hook with ``sh -c`` in the project directory; its exit code (0 if unset)."""
    if not command:
        return 0
    progress(f"hook {hook}: {as_written(command)}")
    full = {**os.environ, **env, "COMPOSE_ROLLBACK_HOOK": hook}
    sys.stdout.flush()
    try:
        # Its output goes to our stderr: stdout is the command's result (``--json``).
        done = subprocess.run(["sh", "-c", command], cwd=cwd, env=full, check=False,
                              timeout=HOOK_TIMEOUT, stdout=_STDERR)
    except subprocess.TimeoutExpired:
        progress(f"hook {hook} timed out after {HOOK_TIMEOUT:g}s")
        return 124
    if done.returncode != 0:
        progress(f"hook {hook} exited with {done.returncode}")
    return done.returncode


def hook_env(*, project: str, revision: int | None, previous: int | None, status: str,
             reason: str = "") -> dict[str, str]:
    return {
        "COMPOSE_ROLLBACK_PROJECT": project,
        "COMPOSE_ROLLBACK_REVISION": "" if revision is None else str(revision),
        "COMPOSE_ROLLBACK_PREVIOUS": "" if previous is None else str(previous),
        "COMPOSE_ROLLBACK_STATUS": status,
        "COMPOSE_ROLLBACK_REASON": reason,
    }


def payload(*, project: str, revision: int | None, previous: int | None, outcome: str,
            status: str, restored: int | None, reason: str, service: str) -> dict[str, Any]:
    return {"event": "revision", "project": project, "revision": revision,
            "previous": previous, "outcome": outcome, "status": status, "restored": restored,
            "reason": reason, "service": service, "time": now_iso(),
            "tool": "compose-rollback", "version": __version__}


def notify(url: str | None, body: Mapping[str, Any], *, progress: Callable[[str], None],
           body_format: str = "compose-rollback") -> bool:
    """POST the result (in ``body_format``, see ``alertbody``); a webhook that fails is reported,
    never fatal."""
    if not url:
        return True
    import urllib.error  # imported on use: most projects have no webhook
    import urllib.request

    target = str(url)  # ``url`` itself, as written, names it in messages
    sent: object = body
    if body_format == "alertmanager":
        sent = alertbody.webhook_message(body)
    elif body_format == "alertmanager-api":
        target, sent = target.rstrip("/") + "/api/v2/alerts", alertbody.api_alerts(body)
    request = urllib.request.Request(
        target, data=json.dumps(sent, sort_keys=True).encode(), method="POST",
        headers={"Content-Type": "application/json", "User-Agent": "compose-rollback"})
    try:
        with urlopen(request, timeout=10):
            return True
    except (urllib.error.URLError, OSError, ValueError) as error:
        progress(f"webhook {as_written(url)} failed: {getattr(error, 'reason', error)}")
        return False
