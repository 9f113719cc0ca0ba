"""``docker events`` read in a background thread, each line handed over as an ``Event``.

The gate and the Swarm rollout listen to the engine through it (``Engine.events``,
``Engine.stack_events`` start it with the arguments they filter by).
"""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Callable

from compose_rollback.dockerdata import Event


class EventStream:
    """``docker events`` in a background thread; ``close()`` stops it."""

    def __init__(self, args: list[str], on_event: Callable[[Event], None]) -> None:
        self._proc = subprocess.Popen(args, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL,
                                      text=True, bufsize=1)
        self._thread = threading.Thread(target=self._pump, args=(on_event,), daemon=True)
        self._thread.start()

    def _pump(self, on_event: Callable[[Event], None]) -> None:
        assert self._proc.stdout is not None
        for line in self._proc.stdout:
            try:
                raw = json.loads(line)
            except ValueError:
                continue
            attrs = (raw.get("Actor") or {}).get("Attributes") or {}
            code = str(attrs.get("exitCode", ""))
            on_event(Event(action=str(raw.get("Action") or raw.get("status") or ""),
                           container_id=str(raw.get("id") or ""),
                           service=str(attrs.get("com.docker.compose.service", "")),
                           time_nano=int(raw.get("timeNano") or 0),
                           name=str(attrs.get("name", "")),
                           exit_code=int(code) if code.isdigit() else None,
                           oneoff=attrs.get("com.docker.compose.oneoff") == "True",
                           attributes={str(k): str(v) for k, v in attrs.items()}))

    def close(self) -> None:
        self._proc.terminate()
        try:
            self._proc.wait(timeout=5)
        except subprocess.TimeoutExpired:
            self._proc.kill()

    def __enter__(self) -> EventStream:
        return self

    def __exit__(self, *_: object) -> None:
        self.close()
