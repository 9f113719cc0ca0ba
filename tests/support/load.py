"""A load generator on loopback: what users of a deploy would have seen, request by request.

``Load(url).start()`` sends ``rate`` GETs a second (default 20) from a background thread, each
on its own worker so a hanging request never delays the next one, with a 5 s client timeout.
It is bounded in count and in time: it stops by itself after ``max_seconds`` (default 120) or
``max_requests`` (default ``rate * max_seconds``), whichever comes first. ``stop()`` waits for
the requests in flight and returns a ``LoadSummary``.

Each request is a ``Sample``: when it started (seconds since the load began), ok or failed, the
HTTP status (0: no answer), which release answered (the test app's ``/`` body, see
``support.testimages``) and which proxy slot (``X-Crt-Server``, see ``support.haproxy``;
``server_header`` names another header).
"""

from __future__ import annotations

import math
import threading
import time
from collections import Counter
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass

from .helpers import http_get, wait_for

SERVER_HEADER = "x-crt-server"


@dataclass(frozen=True)
class Sample:
    """One request."""

    #: Seconds from the start of the load to the start of this request.
    started: float
    #: Seconds the request took.
    seconds: float
    #: HTTP status; 0 when nothing answered (refused, reset, timed out).
    status: int
    #: The release that answered (first line of the body of a 200), else "".
    release: str = ""
    #: The proxy's backend slot and address (``app2 172.18.0.3:8080``), else "".
    server: str = ""
    error: str = ""

    @property
    def ok(self) -> bool:
        return self.status == 200


@dataclass(frozen=True)
class LoadSummary:
    """What a run of requests saw; build it with ``summarize``."""

    samples: tuple[Sample, ...]

    @property
    def total(self) -> int:
        return len(self.samples)

    @property
    def failed(self) -> int:
        return sum(not sample.ok for sample in self.samples)

    @property
    def by_release(self) -> dict[str, int]:
        """Successful answers per release."""
        return dict(Counter(sample.release for sample in self.samples if sample.ok))

    @property
    def by_server(self) -> dict[str, int]:
        """Successful answers per proxy slot and address."""
        return dict(Counter(sample.server for sample in self.samples if sample.ok))

    @property
    def errors(self) -> dict[str, int]:
        """Failed requests per cause: ``HTTP 503`` or the client error."""
        return dict(
            Counter(
                f"HTTP {sample.status}" if sample.status else sample.error or "no answer"
                for sample in self.samples
                if not sample.ok
            )
        )

    @property
    def longest_outage(self) -> float:
        """Seconds of the longest run of consecutive failures: from the start of its first
        request to the start of the next successful one (a user starting a request anywhere
        in that span failed), or to the end of its last request when none followed."""
        longest = 0.0
        begun: Sample | None = None
        for sample in self.samples:
            if not sample.ok:
                begun = begun or sample
                continue
            if begun is not None:
                longest = max(longest, sample.started - begun.started)
                begun = None
        if begun is not None:
            last = self.samples[-1]
            longest = max(longest, last.started + last.seconds - begun.started)
        return longest

    @property
    def longest_failure_streak(self) -> int:
        """Requests in the longest run of consecutive failures."""
        longest = current = 0
        for sample in self.samples:
            current = 0 if sample.ok else current + 1
            longest = max(longest, current)
        return longest

    def between(self, begin: float = 0.0, end: float = math.inf) -> LoadSummary:
        """The requests that started in ``[begin, end)`` (seconds since the load began)."""
        return LoadSummary(tuple(s for s in self.samples if begin <= s.started < end))

    def describe(self) -> str:
        """One line for reports and assertion messages."""
        return (
            f"{self.total} requests, {self.failed} failed {self.errors}, "
            f"longest outage {self.longest_outage:.2f} s ({self.longest_failure_streak} in a "
            f"row), answered by {self.by_release}"
        )


def summarize(samples: Iterable[Sample]) -> LoadSummary:
    """The summary of ``samples``, ordered by start."""
    return LoadSummary(tuple(sorted(samples, key=lambda sample: sample.started)))


def release_of(body: str) -> str:
    """The release the test app names in the body of ``/``: its first line."""
    lines = body.strip().splitlines()
    return lines[0].strip() if lines else ""


class Load:
    """Steady GETs of ``url`` (loopback only) from a background thread; see the module doc."""

    def __init__(
        self,
        url: str,
        *,
        rate: float = 20.0,
        timeout: float = 5.0,
        max_seconds: float = 120.0,
        max_requests: int | None = None,
        server_header: str = SERVER_HEADER,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        if rate <= 0 or max_seconds <= 0:
            raise ValueError("rate and max_seconds must be positive")
        self.url = url
        self.rate = rate
        self.timeout = timeout
        self.max_seconds = max_seconds
        self.max_requests = max_requests or math.ceil(rate * max_seconds)
        self.server_header = server_header.lower()
        self._clock = clock
        self._began = 0.0
        self._samples: list[Sample] = []
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        # Enough workers for every request that can be in flight at once (rate x timeout).
        self._pool = ThreadPoolExecutor(
            max_workers=math.ceil(rate * timeout) + 2, thread_name_prefix="crt-load"
        )

    def __enter__(self) -> Load:
        return self.start()

    def __exit__(self, *_: object) -> None:
        self.stop()

    def start(self) -> Load:
        if self._thread is not None:
            raise RuntimeError("this load was already started")
        self._began = self._clock()
        self._thread = threading.Thread(target=self._schedule, name="crt-load", daemon=True)
        self._thread.start()
        return self

    def now(self) -> float:
        """Seconds since the load began: a mark to slice the summary with ``between``."""
        return self._clock() - self._began

    def completed(self) -> int:
        with self._lock:
            return len(self._samples)

    def summary(self) -> LoadSummary:
        """The requests completed so far (the load keeps running)."""
        with self._lock:
            return summarize(self._samples)

    def wait_requests(self, count: int, *, timeout: float | None = None) -> LoadSummary:
        """Wait until ``count`` requests in all have completed; return the summary so far."""
        limit = timeout if timeout is not None else count / self.rate + self.timeout + 5
        what = f"{count} requests of the load"
        wait_for(lambda: self.completed() >= count, limit, 0.05, what=what)
        return self.summary()

    def wait_until(self, seconds: float) -> LoadSummary:
        """Wait until every request started before ``seconds`` (since the load began) has
        completed; return the summary so far."""
        target = min(seconds, self.max_seconds)
        wanted = min(math.ceil(target * self.rate), self.max_requests)
        return self.wait_requests(wanted, timeout=max(0.0, target - self.now()) + self.timeout + 5)

    def stop(self) -> LoadSummary:
        """Stop sending, wait for the requests in flight, and summarize the whole run."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=self.timeout + 5)
        self._pool.shutdown(wait=True)
        return self.summary()

    def _schedule(self) -> None:
        for index in range(self.max_requests):
            due = index / self.rate
            if due >= self.max_seconds:
                break
            if self._stop.wait(max(0.0, due - self.now())):
                break
            self._pool.submit(self._request)

    def _request(self) -> None:
        started = self.now()
        answer = http_get(self.url, timeout=self.timeout)
        headers = {key.lower(): value for key, value in answer.headers.items()}
        sample = Sample(
            started=started,
            seconds=self.now() - started,
            status=answer.status,
            release=release_of(answer.body) if answer.status == 200 else "",
            server=headers.get(self.server_header, ""),
            error=answer.error,
        )
        with self._lock:
            self._samples.append(sample)
