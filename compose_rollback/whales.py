"""python-on-whales' command runner, without paying for its whole client.

The engine talks to Docker through ``python_on_whales.utils.run`` and reports failures as
``python_on_whales.exceptions.DockerException``. Importing either the usual way first runs the
package's ``__init__``, which builds the typed client: ~150 pydantic models of the Docker API,
0.33 s of CPU on every ``up`` and ``revert`` (measured: 0.34 s for ``import python_on_whales``,
0.17 s for the runner alone, most of it pydantic itself), and this tool uses none of them.

``utils()`` puts the package in ``sys.modules`` *deferred* (``compose_rollback.deferred``): its
``__init__`` runs the first time anything asks the package for a name it does not have yet
(``from python_on_whales import DockerClient`` still works, and gives the same classes), while
``python_on_whales.utils`` and ``.exceptions`` import as usual. When the package is already
imported, it is used as it is.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from compose_rollback.deferred import defer

PACKAGE = "python_on_whales"


def utils() -> ModuleType:
    """``python_on_whales.utils`` (``run``, ``DockerException``), imported without the client."""
    defer(PACKAGE)
    return importlib.import_module(f"{PACKAGE}.utils")
