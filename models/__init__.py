"""einarray: workload presets that bind shapes to library cascades.

A preset is a YAML file ``models/<name>.yaml`` (see ``models/README.md``)::

    model:
      name: vit-base
      description: ...                     # optional
      source: "Dosovitskiy et al., ICLR 2021"
      batch: 1                             # inputs per inference (default 1)
      layers:
        - name: attention                  # unique within the model
          cascade: mha                     # a library cascade (einsum/library/*.yaml)
          ranks: {T: 197, D: 768, NH: 12, E: 64}   # rank overrides (positive ints)
          params: {scale: 0.125}           # param overrides (numbers), optional
          repeat: 12                       # instances per input (default 1)
      sweep:                               # optional: workload points
        - {M: 1024, P: 1024}               # rank overrides applied to every layer
        - {M: 4096, P: 4096}               # whose cascade has those ranks

:func:`load_model` validates a preset -- every layer's cascade is loaded with its
ranks and params, and with every sweep point -- and returns plain data. Every
mistake is a :class:`~einsum.errors.ConfigError` naming the file, line and YAML path.
"""

from __future__ import annotations

import math
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

from einsum.cascade import Cascade
from einsum.errors import ConfigError
from einsum.load import library_names, load_cascade
from einsum.yamlsrc import Source, YPath, load as load_yaml, resolve_named, shipped_names

MODELS_DIR = Path(__file__).parent
MODEL_KEYS = {"name", "description", "source", "batch", "layers", "sweep"}
LAYER_KEYS = {"name", "cascade", "ranks", "params", "repeat"}

__all__ = ["MODELS_DIR", "model_names", "resolve", "load_model", "layer_cascade"]


def model_names() -> list[str]:
    """Names of the shipped presets (``models/*.yaml``)."""
    return shipped_names(MODELS_DIR)


def resolve(source: str | Path) -> Path:
    """A path to an existing file, or the name of a shipped preset."""
    return resolve_named(source, MODELS_DIR, "model preset")


@lru_cache(maxsize=None)
def _default_ranks(cascade: str) -> frozenset[str]:
    return frozenset(load_cascade(cascade).ranks)


def _pos_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v > 0


def _rank_map(src: Source, v: Any, path: YPath, what: str) -> dict[str, int]:
    if not isinstance(v, dict):
        raise src.error(path, f"expected a mapping of rank names to sizes ({what}), "
                              f"got {type(v).__name__} {v!r}")
    for r, n in v.items():
        if not isinstance(r, str):
            raise src.error(path, f"rank name {r!r} must be a string")
        if not _pos_int(n):
            raise src.error(path + (r,), f"the size of rank {r} must be a positive integer, got {n!r}")
    return dict(v)


def _param_map(src: Source, v: Any, path: YPath) -> dict[str, float]:
    if not isinstance(v, dict):
        raise src.error(path, f"expected a mapping of param names to numbers, got {v!r}")
    for k, x in v.items():
        if (not isinstance(k, str) or isinstance(x, bool) or not isinstance(x, (int, float))
                or not math.isfinite(x)):
            raise src.error(path + (str(k),), f"param {k} must be a finite number, got {x!r}")
    return dict(v)


def _load_layer(src: Source, path: YPath, cascade: str, ranks: Mapping[str, int],
                params: Mapping[str, float], rank_path: YPath | None = None) -> Cascade:
    known = _default_ranks(cascade)
    for r in ranks:
        if r not in known:
            raise src.error((rank_path or path + ("ranks",)) + (r,),
                            f"cascade {cascade} has no rank {r!r} (ranks: {', '.join(sorted(known))})")
    try:
        return load_cascade(cascade, ranks=dict(ranks), params=dict(params))
    except ConfigError as exc:
        where = rank_path or (path + ("ranks",) if ranks else path)
        raise src.error(where, f"cascade {cascade} with these shapes: "
                        f"{exc.message}") from None


def load_model(source: str | Path) -> dict[str, Any]:
    """Load and validate a preset; returns ``{name, description, source, batch, layers,
    sweep, file}`` with defaults filled in (``params: {}``, ``repeat: 1``, ``sweep: []``)."""
    path = resolve(source)
    data, src = load_yaml(path)
    if not isinstance(data, dict) or set(data) != {"model"}:
        raise src.error((), "expected exactly one top-level 'model:' section")
    sec = data["model"]
    base: YPath = ("model",)
    if not isinstance(sec, dict):
        raise src.error(base, "expected a mapping with name, source, batch, layers")
    for k in sec:
        if k not in MODEL_KEYS:
            raise src.error(base + (str(k),), f"unknown key {k!r} (allowed: {', '.join(sorted(MODEL_KEYS))})")
    for k in ("name", "source", "layers"):
        if k not in sec:
            raise src.error(base, f"missing required key {k!r}")
    for k in ("name", "source", "description"):
        if k in sec and (not isinstance(sec[k], str) or not sec[k].strip()):
            raise src.error(base + (k,), f"{k} must be a non-empty string")
    batch = sec.get("batch", 1)
    if not _pos_int(batch):
        raise src.error(base + ("batch",), f"batch must be a positive integer, got {batch!r}")
    layers_in = sec["layers"]
    if not isinstance(layers_in, list) or not layers_in:
        raise src.error(base + ("layers",), "expected a non-empty list of layers")

    lib = set(library_names())
    layers: list[dict[str, Any]] = []
    seen: dict[str, int] = {}
    for i, lay in enumerate(layers_in):
        lp = base + ("layers", i)
        if not isinstance(lay, dict):
            raise src.error(lp, "expected a mapping with name, cascade, ranks, params, repeat")
        for k in lay:
            if k not in LAYER_KEYS:
                raise src.error(lp + (str(k),), f"unknown key {k!r} (allowed: {', '.join(sorted(LAYER_KEYS))})")
        for k in ("name", "cascade"):
            if k not in lay:
                raise src.error(lp, f"missing required key {k!r}")
            if not isinstance(lay[k], str) or not lay[k].strip():
                raise src.error(lp + (k,), f"{k} must be a non-empty string")
        name, casc = lay["name"], lay["cascade"]
        if name in seen:
            raise src.error(lp + ("name",), f"duplicate layer name {name!r} (also layers[{seen[name]}])")
        seen[name] = i
        if casc not in lib:
            raise src.error(lp + ("cascade",), f"unknown cascade {casc!r} (library: {', '.join(sorted(lib))})")
        ranks = _rank_map(src, lay.get("ranks", {}) or {}, lp + ("ranks",), "overrides")
        params = _param_map(src, lay.get("params", {}) or {}, lp + ("params",))
        repeat = lay.get("repeat", 1)
        if not _pos_int(repeat):
            raise src.error(lp + ("repeat",), f"repeat must be a positive integer, got {repeat!r}")
        known_params = set(load_cascade(casc).params)
        for k in params:
            if k not in known_params:
                raise src.error(lp + ("params", k), f"cascade {casc} has no param {k!r} "
                                f"(params: {', '.join(sorted(known_params)) or 'none'})")
        _load_layer(src, lp, casc, ranks, params)
        layers.append({"name": name, "cascade": casc, "ranks": ranks, "params": params,
                       "repeat": repeat})

    sweep_in = sec.get("sweep", []) or []
    if not isinstance(sweep_in, list):
        raise src.error(base + ("sweep",), "expected a list of rank-size mappings")
    sweep: list[dict[str, int]] = []
    for j, point in enumerate(sweep_in):
        sp = base + ("sweep", j)
        pt = _rank_map(src, point, sp, "one sweep point")
        if not pt:
            raise src.error(sp, "a sweep point needs at least one rank")
        for r in pt:
            if not any(r in _default_ranks(l["cascade"]) for l in layers):
                raise src.error(sp + (r,), f"no layer's cascade has a rank {r!r}")
        for lay in layers:
            over = _point_ranks(lay, pt)
            if over != lay["ranks"]:
                _load_layer(src, sp, lay["cascade"], over, lay["params"], rank_path=sp)
        sweep.append(pt)

    return {"name": sec["name"], "description": " ".join(str(sec.get("description", "")).split()),
            "source": sec["source"], "batch": batch, "layers": layers, "sweep": sweep,
            "file": str(path)}


def _point_ranks(layer: Mapping[str, Any], point: Mapping[str, int] | None) -> dict[str, int]:
    ranks = dict(layer["ranks"])
    if point:
        known = _default_ranks(layer["cascade"])
        ranks.update({r: n for r, n in point.items() if r in known})
    return ranks


def layer_cascade(layer: Mapping[str, Any], point: Mapping[str, int] | None = None) -> Cascade:
    """The validated cascade of one layer of a loaded model, at an optional sweep point."""
    return load_cascade(layer["cascade"], ranks=_point_ranks(layer, point),
                        params=dict(layer["params"]))
