"""``from: service`` http gates when the body does not end with a newline.

wget prints the body on stdout and, with ``-S``, the status lines on stderr indented by two
spaces; ``exec_in`` returns them one after the other, so a body without a final newline (a
bare version string, ``release-ok-1``) runs straight into the first status line.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from compose_rollback.gates.probes import probe_http_inside
from compose_rollback.gates.specs import parse_gate


class _Wget:
    def __init__(self, code: int, output: str) -> None:
        self.answer = (code, output)

    def exec_in(self, container_id: str, command: Sequence[str], *,
                timeout: float) -> tuple[int, str]:
        return self.answer


def _inside(**extra: Any) -> Any:
    raw = {"http": "http://127.0.0.1:8080/", "from": "service", **extra}
    return parse_gate(raw, path="gates[0]", service="web")


BARE = "release-ok-1  HTTP/1.1 200 OK\n  Content-Length: 12\n"


def test_a_body_without_a_final_newline_is_still_judged() -> None:
    found = probe_http_inside(_inside(body="release-ok"), _Wget(0, BARE), ["c1"])
    assert found.ok, found.detail
    wrong = probe_http_inside(_inside(body="release-other"), _Wget(0, BARE), ["c1"])
    assert not wrong.ok and "body does not contain 'release-other'" in wrong.detail
