"""Missing prerequisites: skip on a developer's machine, fail when ``CI`` is set.

The one place that decides it, so a CI run can never go green by skipping the tests that
prove the product works (the engine, the registry, Prometheus, busybox, the Compose plugin, a
filesystem feature a row needs).
"""

from __future__ import annotations

import os
from typing import NoReturn, TypeVar

import pytest

T = TypeVar("T")

PROVISION = "run scripts/provision.sh"


def missing(what: str, *, fix: str | None = PROVISION) -> NoReturn:
    """Skip because ``what`` is missing; under ``CI`` fail instead (``fix`` says how to help)."""
    if os.environ.get("CI"):
        pytest.fail(f"CI is set but {what}" + (f"; {fix}" if fix else ""), pytrace=False)
    pytest.skip(what)


def need(found: T | None, what: str, *, fix: str | None = PROVISION) -> T:
    """``found`` when it is there; otherwise ``missing(what)``."""
    if found is None:
        missing(what, fix=fix)
    return found
