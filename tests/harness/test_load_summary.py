"""The load generator's summary (support.load), offline: what a deploy's users saw."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import pytest

from support.load import Load, Sample, release_of, summarize


def ok(at: float, release: str = "v1", server: str = "app1 10.0.0.2:8080") -> Sample:
    return Sample(started=at, seconds=0.01, status=200, release=release, server=server)


def failed(at: float, status: int = 503, seconds: float = 0.01, error: str = "") -> Sample:
    return Sample(started=at, seconds=seconds, status=status, error=error)


def test_counts_failures_and_answers_per_release_and_server() -> None:
    summary = summarize(
        [ok(0.0), ok(0.05, server="app2 10.0.0.3:8080"), failed(0.1), ok(0.15, "v2"),
         failed(0.2, status=0, error="refused")]
    )
    assert (summary.total, summary.failed) == (5, 2)
    assert summary.by_release == {"v1": 2, "v2": 1}
    assert summary.by_server == {"app1 10.0.0.2:8080": 2, "app2 10.0.0.3:8080": 1}
    assert summary.errors == {"HTTP 503": 1, "refused": 1}


def test_longest_outage_runs_from_first_failure_to_next_success() -> None:
    samples = [ok(0.0), failed(0.1), failed(0.15), ok(0.3), failed(0.5), failed(0.55),
               failed(0.6), failed(0.9), ok(1.25), ok(1.3)]
    summary = summarize(reversed(samples))  # completion order differs from start order
    assert summary.longest_outage == pytest.approx(0.75)  # 0.5 -> 1.25
    assert summary.longest_failure_streak == 4


def test_outage_at_the_end_lasts_until_the_last_request_ended() -> None:
    summary = summarize([ok(0.0), failed(1.0), failed(2.0, seconds=5.0)])
    assert summary.longest_outage == pytest.approx(6.0)
    assert summary.longest_failure_streak == 2


def test_no_failure_no_outage_and_empty_is_empty() -> None:
    assert summarize([ok(0.0), ok(0.05)]).longest_outage == 0.0
    empty = summarize([])
    assert (empty.total, empty.failed, empty.longest_outage, empty.by_release) == (0, 0, 0.0, {})


def test_between_slices_by_start_time() -> None:
    summary = summarize([ok(0.0), failed(1.0), ok(2.0, "v2"), ok(3.0, "v2")])
    later = summary.between(1.5)
    assert (later.total, later.failed, later.by_release) == (2, 0, {"v2": 2})
    assert summary.between(0.5, 2.0).failed == 1
    assert "4 requests, 1 failed" in summary.describe()


def test_release_is_the_first_line_of_the_body() -> None:
    assert release_of("v2\n") == "v2"
    assert release_of("v2\nmore") == "v2"
    assert release_of("") == ""


class _Handler(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        body = b"loopback-1"
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.send_header("X-Crt-Server", "app1 127.0.0.1:1")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def loopback_url() -> Iterator[str]:
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, args=(0.05,), daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def test_load_stops_by_itself_at_its_request_bound(loopback_url: str) -> None:
    load = Load(loopback_url, rate=50, max_requests=12).start()
    load.wait_requests(12)
    summary = load.stop()
    assert (summary.total, summary.failed) == (12, 0)
    assert summary.by_release == {"loopback-1": 12}
    assert summary.by_server == {"app1 127.0.0.1:1": 12}


def test_load_stops_by_itself_at_its_time_bound(loopback_url: str) -> None:
    with Load(loopback_url, rate=40, max_seconds=0.25) as load:
        summary = load.wait_until(10.0)  # capped at max_seconds: never waits ten seconds
    assert summary.total == 10  # requests due at 0, 0.025, ... 0.225 s
    assert load.stop().total == 10


def test_load_records_refused_connections_as_failures() -> None:
    with Load("http://127.0.0.1:1/", rate=50, max_requests=3) as load:
        summary = load.wait_requests(3)
    assert (summary.total, summary.failed, summary.by_release) == (3, 3, {})
    assert summary.samples[0].status == 0 and summary.samples[0].error
