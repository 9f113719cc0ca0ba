"""``urlopen`` for probes and webhooks: never through a proxy to a loopback address.

urllib sends every request through ``http_proxy``/``HTTP_PROXY`` unless ``NO_PROXY`` names the
host, loopback included: a gate on ``http://127.0.0.1:8080/health`` would ask the proxy (which
cannot reach this machine's loopback) and fail a healthy deploy. Loopback hosts (127.0.0.0/8,
``::1``, ``localhost`` and ``*.localhost``) always go direct; other hosts follow the
environment, ``NO_PROXY`` included, as before. urllib is imported on use (start-up time).
"""

from __future__ import annotations

from typing import TYPE_CHECKING
from urllib.parse import urlsplit

if TYPE_CHECKING:
    from http.client import HTTPResponse
    from urllib.request import Request


def urlopen(request: Request | str, *, timeout: float) -> HTTPResponse:
    """Open ``request`` like ``urllib.request.urlopen``, going direct to loopback hosts."""
    import urllib.request

    url = request if isinstance(request, str) else request.full_url
    handlers = [] if proxied(urlsplit(url).hostname) else [urllib.request.ProxyHandler({})]
    response: HTTPResponse = urllib.request.build_opener(*handlers).open(request,
                                                                          timeout=timeout)
    return response


def proxied(host: str | None) -> bool:
    """Whether the environment's proxy may carry a request to ``host``."""
    import ipaddress
    import urllib.request

    name = (host or "").strip("[]").rstrip(".").lower()
    if not name or name == "localhost" or name.endswith(".localhost"):
        return False
    try:
        if ipaddress.ip_address(name).is_loopback:
            return False
    except ValueError:
        pass
    if not set(urllib.request.getproxies()) - {"no"}:
        return False
    return not urllib.request.proxy_bypass(name)
