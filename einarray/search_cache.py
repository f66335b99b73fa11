"""Search results shared by identical layers.

A model repeats layer shapes (ViT's ``norm1``, ``norm2`` and ``final-norm`` are one
layernorm over the same ranks on the same arch). A run with a ``search:`` section searches
each distinct layer once: the found mapping is kept under a key made of everything that
decides the search (the cascade with its rank sizes and parameters, the arch, the
layer's mapping and where it came from, the instance count and the search section) and
reused for every later layer with the same key. The search is deterministic for a given
seed, so a reused mapping is the one a fresh search would find.

The memo lives for the process (a ``compare`` of several runs shares it too) and keeps
the most recent :data:`MAX_ENTRIES` results.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import json
from collections import OrderedDict
from typing import Any, Callable

MAX_ENTRIES = 256

_found: OrderedDict[str, dict[str, Any]] = OrderedDict()
_stats = {"hits": 0, "misses": 0}


def layer_key(cfg: Any, section: Any) -> str:
    """A digest of what decides the search of ``cfg`` (a :class:`mapping.spec.Config`)
    under the search section data ``section``. File names, descriptions and source
    positions do not count; rank sizes, parameters, statements, the arch's figures and
    the mapping do."""
    cascade = dataclasses.replace(cfg.cascade, description="", source=None)
    arch = dataclasses.replace(cfg.arch, source=None, lines=None)
    blob = repr((cascade, arch, cfg.mapping, cfg.instances, cfg.mapping_origin))
    blob += json.dumps(section, sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()


def searched_mapping(cfg: Any, section: Any, search: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The mapping section that ``search()`` returns for ``cfg`` under ``section``, from the
    memo when an identical layer was searched before (a copy, so callers may change it)."""
    key = layer_key(cfg, section)
    if key in _found:
        _found.move_to_end(key)
        _stats["hits"] += 1
        return copy.deepcopy(_found[key])
    _stats["misses"] += 1
    mapping = search()
    _found[key] = copy.deepcopy(mapping)
    while len(_found) > MAX_ENTRIES:
        _found.popitem(last=False)
    return mapping


def stats() -> dict[str, int]:
    """Hits and misses since the process started (or the last :func:`clear`)."""
    return dict(_stats, entries=len(_found))


def clear() -> None:
    """Forget every kept result."""
    _found.clear()
    _stats.update(hits=0, misses=0)
