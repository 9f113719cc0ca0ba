"""python-on-whales' command runner, without paying for its whole client.

The engine talks to Docker through ``python_on_whales.utils.run`` and reports failures as
``python_on_whales.exceptions.DockerException``. Importing either the usual way first runs the
package's ``__init__``, which builds the typed client: ~150 pydantic models of the Docker API,
0.33 s of CPU on every ``up`` and ``revert`` (measured: 0.34 s for ``import python_on_whales``,
0.17 s for the runner alone, most of it pydantic itself), and this tool uses none of them.

``utils()`` puts the package in ``sys.modules`` *deferred*: a real module object from the
package's own spec (its ``__path__``, so ``python_on_whales.utils`` and ``.exceptions`` import
as usual), whose ``__init__`` runs in place the first time anything asks the package for a name
it does not have yet (``from python_on_whales import DockerClient`` still works, and gives the
same classes). When the package is already imported, it is used as it is.
"""

from __future__ import annotations

import importlib
import importlib.util
import sys
import threading
from types import ModuleType
from typing import Any

PACKAGE = "python_on_whales"
_lock = threading.Lock()


def utils() -> ModuleType:
    """``python_on_whales.utils`` (``run``, ``DockerException``), imported without the client."""
    with _lock:
        if PACKAGE not in sys.modules:
            _defer_package()
    return importlib.import_module(f"{PACKAGE}.utils")


def _defer_package() -> None:
    spec = importlib.util.find_spec(PACKAGE)
    if spec is None or spec.loader is None or spec.submodule_search_locations is None:
        importlib.import_module(PACKAGE)  # not an ordinary package: the usual import, or error
        return
    package = importlib.util.module_from_spec(spec)
    loader = spec.loader
    done = threading.Lock()

    def complete(name: str) -> Any:
        """PEP 562 hook: run the package's ``__init__`` in this module, once, then answer."""
        with done:
            if package.__dict__.get("__getattr__") is complete:
                del package.__dict__["__getattr__"]
                try:
                    loader.exec_module(package)
                except BaseException:
                    package.__dict__["__getattr__"] = complete
                    raise
        try:
            return package.__dict__[name]
        except KeyError:
            raise AttributeError(f"module {PACKAGE!r} has no attribute {name!r}") from None

    package.__dict__["__getattr__"] = complete
    sys.modules[PACKAGE] = package
