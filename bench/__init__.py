"""Benchmarks of compose-rollback (``python3 bench/run.py``; see bench/README.md).

Importing the package puts the repository root and ``tests/`` on ``sys.path``, so the harness
uses the working tree's ``compose_rollback`` and reuses the test fixtures in ``tests/support``.
"""

import sys
from pathlib import Path

_REPO = Path(__file__).resolve().parents[1]
for _path in (str(_REPO), str(_REPO / "tests")):
    if _path not in sys.path:
        sys.path.insert(0, _path)
