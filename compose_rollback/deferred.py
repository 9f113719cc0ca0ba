"""A module in ``sys.modules`` whose code runs the first time it is asked for a name.

``defer(name)`` makes a real module object from the module's own spec (a package keeps its
``__path__``, so its submodules import as usual) and gives it a PEP 562 ``__getattr__``: the
first name it does not have yet runs the module's code in place, once, and is answered from
it. ``import name`` and ``from name import x`` keep working and give the same objects.

The standard library's ``importlib.util.LazyLoader`` does not serve here: on 3.11 every
``import`` statement of the module reads its ``__spec__``, and any attribute read loads it.
"""

from __future__ import annotations

import _thread
import importlib
import importlib.util
import sys
from typing import Any

_lock = _thread.allocate_lock()


def defer(name: str) -> None:
    """Put ``name`` in ``sys.modules`` unloaded (as is when it is there already; imported at
    once when it is no ordinary module on disk, or not found: the usual import, or its error).
    """
    with _lock:
        if name in sys.modules:
            return
        spec = importlib.util.find_spec(name)
        if spec is None or spec.loader is None or not spec.has_location:
            importlib.import_module(name)
            return
        module = importlib.util.module_from_spec(spec)
        loader = spec.loader
        done = _thread.allocate_lock()

        def complete(attr: str) -> Any:
            """PEP 562 hook: run the module's code in this module, once, then answer."""
            with done:
                if module.__dict__.get("__getattr__") is complete:
                    del module.__dict__["__getattr__"]
                    try:
                        loader.exec_module(module)
                    except BaseException:
                        module.__dict__["__getattr__"] = complete
                        raise
            try:
                return module.__dict__[attr]
            except KeyError:
                raise AttributeError(f"module {name!r} has no attribute {attr!r}") from None

        module.__dict__["__getattr__"] = complete
        sys.modules[name] = module
