"""einarray: design and simulate attention accelerators.

This thin app package holds the CLI and the ``run()`` flow; it is the only package
that may import all the others (einsum -> mapping -> sim, hw, models).

From Python (docs/api.md)::

    import einarray
    result = einarray.run("examples/vit-base-fusemax.yaml")
    print(result.summary.latency_s, [layer.name for layer in result.layers])

The API names (:mod:`einarray.api`) load on first use, so ``import einarray`` (and the
CLI's start-up) does not pay for NumPy, networkx or the simulator.
"""

from __future__ import annotations

import sys
import types
from typing import Any

__version__ = "0.1.0"

API = ("load_config", "run", "simulate", "search", "evaluate", "Cascade", "RunResult", "SimResult",
       "LayerResult", "Summary")

__all__ = ["__version__", *API]


def __getattr__(name: str) -> Any:
    if name == "search":
        import importlib

        return importlib.import_module(".search", __name__)
    if name in API:
        from . import api

        return getattr(api, name)
    raise AttributeError(f"module 'einarray' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *API])



class _SearchModule(types.ModuleType):
    """The package einarray/search/ (the mapping search), callable as the API's
    :func:`einarray.api.search`: ``einarray.search(config, budget=...)`` and
    ``einarray.search.Searcher`` both work."""

    def __call__(self, config: Any, **kwargs: Any) -> Any:
        from .api import search

        return search(config, **kwargs)


class _Package(types.ModuleType):
    def __setattr__(self, name: str, value: Any) -> None:
        if name == "search" and type(value) is types.ModuleType:  # the import system adds the submodule
            value.__class__ = _SearchModule
        super().__setattr__(name, value)


sys.modules[__name__].__class__ = _Package
