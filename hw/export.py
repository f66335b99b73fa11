"""Registry of the RTL blocks and Verilog export.

``UNITS`` maps a unit name to ``(factory, default_params)``; ``factory(**params)`` builds
the Amaranth component. Blocks written elsewhere (``hw.gelu.Gelu``, ``hw.softmax.Softmax``)
are imported lazily, so a missing block only fails when it is used.

:func:`write_verilog` writes ``OUT.v`` and, beside it, ``OUT.json`` = the component's
``describe()`` with ``"top"`` set to the Verilog module name. Files are written atomically.
"""

from __future__ import annotations

import importlib
import inspect
import json
import os
import re
from pathlib import Path
from typing import Any, Callable

from einsum.atomic import write_atomic
from einsum.errors import ConfigError

__all__ = ["UNITS", "unit_names", "unit_params", "build", "to_verilog", "write_verilog",
           "describe"]


def _lazy(module: str, cls: str) -> Callable[..., Any]:
    def factory(**params):
        try:
            mod = importlib.import_module(module)
        except ModuleNotFoundError as exc:
            if exc.name == module:
                raise ConfigError(f"unit block {module}.{cls} is not available yet") from None
            raise
        return getattr(mod, cls)(**params)

    factory.__qualname__ = f"{module}.{cls}"
    factory._target = (module, cls)  # type: ignore[attr-defined]
    return factory


UNITS: dict[str, tuple[Callable[..., Any], dict]] = {
    "gelu": (_lazy("hw.gelu", "Gelu"), {}),
    "softmax": (_lazy("hw.softmax", "Softmax"), {}),
    "compute_unit": (_lazy("hw.compute_unit", "ComputeUnit"), {"rows": 4, "cols": 4}),
    "attention_engine": (_lazy("hw.attention_engine", "AttentionEngine"), {"rows": 2, "cols": 2}),
}


def unit_names() -> list[str]:
    return list(UNITS)


def _lookup(unit: str):
    if unit not in UNITS:
        raise ConfigError(f"unknown unit {unit!r} (choose from {', '.join(UNITS)})")
    return UNITS[unit]


def unit_params(unit: str) -> dict[str, Any]:
    """Keyword parameters the unit accepts, with their defaults (registry defaults first)."""
    factory, defaults = _lookup(unit)
    module, cls = factory._target
    try:
        klass = getattr(importlib.import_module(module), cls)
    except ModuleNotFoundError as exc:
        if exc.name == module:
            raise ConfigError(f"unit block {module}.{cls} is not available yet") from None
        raise
    out = {}
    for name, p in inspect.signature(klass.__init__).parameters.items():
        if name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD):
            continue
        out[name] = None if p.default is inspect.Parameter.empty else p.default
    out.update(defaults)
    return out


def _merge(unit: str, params: dict | None) -> dict:
    _factory, defaults = _lookup(unit)
    params = dict(params or {})
    allowed = unit_params(unit)
    bad = sorted(set(params) - set(allowed))
    if bad:
        raise ConfigError(f"unknown parameter(s) {', '.join(bad)} for unit {unit!r} "
                          f"(known: {', '.join(sorted(allowed))})")
    merged = dict(defaults)
    merged.update(params)
    return merged


def build(unit: str, params: dict | None = None):
    """Instantiate a unit with registry defaults overridden by ``params``."""
    factory, _ = _lookup(unit)
    merged = _merge(unit, params)
    try:
        return factory(**merged)
    except ConfigError:
        raise
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid parameters for {unit}: {exc}") from None


def describe(unit: str, component, params: dict | None = None) -> dict:
    """``component.describe()`` with ``top`` set to the unit name."""
    if not hasattr(component, "describe"):
        raise ConfigError(f"unit {unit!r} has no describe() method")
    d = dict(component.describe())
    d["top"] = unit
    d.setdefault("clock", "clk")
    d.setdefault("reset", "rst")
    return d


_TRIGGER = re.compile(r"^(\s*)reg (\\\$auto\$verilog_backend\.cc:\d+:dump_module\$\d+) += 0;$",
                      re.MULTILINE)


def to_verilog(component, top: str) -> str:
    """Verilog text of ``component`` with top module ``top``.

    Yosys' Verilog backend gives every ``always @*`` block a dummy trigger register
    initialised to 0 so that simulators evaluate the block at time 0; Icarus Verilog
    applies declaration initialisers without an event, so blocks whose inputs never change
    (e.g. an output that only depends on a state register that stays in its reset state)
    keep X. An ``initial #0`` toggle of that trigger (only under Icarus, ```ifdef
    __ICARUS__``) makes every such block run once at time 0; synthesis and Verilator see
    the unchanged netlist.
    """
    from amaranth.back import verilog

    text = verilog.convert(component, name=top, emit_src=False)
    return _TRIGGER.sub(
        lambda mt: (f"{mt.group(0)}\n`ifdef __ICARUS__\n{mt.group(1)}initial #0 {mt.group(2)} = 1'h1;"
                    "\n`endif"), text)


def write_verilog(unit: str, params: dict | None, out_path: str | os.PathLike) -> dict:
    """Write ``out_path`` (Verilog, top module named ``unit``) and ``<out>.json``.

    Returns the description written to the JSON file.
    """
    out_path = Path(out_path)
    if out_path.suffix != ".v":
        raise ConfigError(f"output file must end in .v, got {str(out_path)!r}")
    comp = build(unit, params)
    desc = describe(unit, comp, params)
    text = to_verilog(comp, unit)
    write_atomic(out_path, text)
    write_atomic(out_path.with_suffix(".json"), json.dumps(desc, indent=2, sort_keys=False) + "\n")
    return desc
