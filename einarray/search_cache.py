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

:func:`prefetch` searches a run's distinct layers on several processes at once (forked,
so they share the loaded configs; where the OS cannot fork, the layers are searched one
by one as before). Their warnings are shown in the calling process, and a layer whose
search fails is searched again in the calling process, which raises its error there.
"""

from __future__ import annotations

import copy
import dataclasses
import hashlib
import io
import json
import multiprocessing
import os
import threading
import warnings
from collections import OrderedDict
from typing import Any, Callable, Sequence

MAX_ENTRIES = 256

_found: OrderedDict[str, dict[str, Any]] = OrderedDict()
_stats = {"hits": 0, "misses": 0}
_prefetched: set[str] = set()  # searched by prefetch for a layer that has not asked yet
# (layers, search section, queue for the searches' progress or None) for forked workers
_job: tuple[Sequence[Any], Any, Any] | None = None


def layer_key(cfg: Any, section: Any) -> str:
    """A digest of what decides the search of ``cfg`` (a :class:`mapping.spec.Config`)
    under the search section data ``section``. File names, descriptions and source
    positions do not count; rank sizes, parameters, statements, the arch's figures and
    the mapping do."""
    cascade = dataclasses.replace(cfg.cascade, description="", source=None)
    arch = dataclasses.replace(cfg.arch, source=None, lines=None)
    blob = repr((cascade, arch, cfg.mapping, cfg.instances, cfg.mapping_origin, cfg.parallel))
    blob += json.dumps(section, sort_keys=True, default=repr)
    return hashlib.sha256(blob.encode()).hexdigest()


def searched_mapping(cfg: Any, section: Any, search: Callable[[], dict[str, Any]]) -> dict[str, Any]:
    """The mapping section that ``search()`` returns for ``cfg`` under ``section``, from the
    memo when an identical layer was searched before (a copy, so callers may change it)."""
    key = layer_key(cfg, section)
    if key in _found:
        _found.move_to_end(key)
        _stats["misses" if key in _prefetched else "hits"] += 1
        _prefetched.discard(key)
        return copy.deepcopy(_found[key])
    _stats["misses"] += 1
    mapping = search()
    _keep(key, mapping)
    return mapping


def _keep(key: str, mapping: dict[str, Any]) -> None:
    _found[key] = copy.deepcopy(mapping)
    while len(_found) > MAX_ENTRIES:
        _prefetched.discard(next(iter(_found)))
        _found.popitem(last=False)


def _search_one(i: int) -> tuple[str, dict[str, Any] | None, list[tuple[type[Warning], str]]]:
    """In a forked worker: search layer ``i`` of the job; its key, mapping (None when the
    search failed) and warnings."""
    from .flow import search_layer

    assert _job is not None
    layers, section, queue = _job
    key = layer_key(layers[i].config, section[0])
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            search_layer(layers[i], section, progress=_forward(queue, i) if queue is not None else None)
        except Exception:  # noqa: BLE001 - searched again (and raised) in the calling process
            return key, None, []
    return key, _found[key], [(w.category, str(w.message)) for w in caught]


def _forwarding_class() -> type:
    from rich.console import Console
    from rich.progress import Progress

    class Forward(Progress):
        """A search's progress display in a worker: sends (layer, done, total) to the caller."""

        def __init__(self, queue: Any, layer: int):
            super().__init__(console=Console(file=io.StringIO()))
            self.queue, self.layer = queue, layer

        def update(self, task_id: Any, *, completed: float | None = None, total: float | None = None,
                   **kw: Any) -> None:
            super().update(task_id, completed=completed, total=total, **kw)
            task = self._tasks[task_id]
            self.queue.put((self.layer, task.completed, task.total))

    return Forward


def _forward(queue: Any, layer: int) -> Any:
    return _forwarding_class()(queue, layer)


def _show(queue: Any, progress: Any, layers: Sequence[Any], bars: dict[int, Any]) -> None:
    """In the caller: a bar per layer being searched, from the workers' messages, until None;
    (layer, None, None) says the layer's search ended."""
    while (msg := queue.get()) is not None:
        i, done, total = msg
        if done is None:
            if i in bars:
                progress.remove_task(bars.pop(i))
            continue
        if i not in bars:
            bars[i] = progress.add_task(f"  search of {layers[i].name}", total=total)
        progress.update(bars[i], completed=done, total=total)


def prefetch(layers: Sequence[Any], section: tuple[Any, Any, Any], *, jobs: int | None = None,
             progress: Any = False) -> int:
    """Search the distinct layers (:class:`einarray.flow.LayerSpec`) not yet kept, under the
    run's search section (data, Source, YAML path), on up to ``jobs`` processes (default:
    one per core), and keep their mappings for :func:`einarray.flow.search_layer`.
    ``progress`` as for :class:`einarray.progress.Bar`. Returns how many were searched
    (0 when fewer than two need it, one core is all there is, or the OS cannot fork)."""
    global _job
    todo: dict[str, int] = {}
    for i, lay in enumerate(layers):
        key = layer_key(lay.config, section[0])
        if key not in _found and key not in todo:
            todo[key] = i
    jobs = min(jobs or os.cpu_count() or 1, len(todo))
    if jobs < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return 0
    from .progress import Bar

    ctx = multiprocessing.get_context("fork")
    shown = Bar(progress, f"searching {len(todo)} distinct layers on {jobs} processes", len(todo), lines=True)
    queue = ctx.SimpleQueue() if shown.progress is not None else None
    _job = (layers, section, queue)
    done = 0
    bars: dict[int, Any] = {}
    try:
        # workers fork here, before a progress display of this call starts its thread
        with ctx.Pool(jobs) as pool, shown as bar:
            reader = None
            if queue is not None:
                reader = threading.Thread(target=_show, args=(queue, bar.progress, layers, bars), daemon=True)
                reader.start()
            try:
                for key, mapping, caught in pool.imap_unordered(_search_one, list(todo.values())):
                    if queue is not None:
                        queue.put((todo[key], None, None))  # after that worker's last count
                    for category, message in caught:
                        warnings.warn(message, category, stacklevel=2)
                    if mapping is not None:
                        _keep(key, mapping)
                        _prefetched.add(key)
                        done += 1
                    bar.advance(item=layers[todo[key]].name)
            finally:
                if reader is not None:
                    queue.put(None)
                    reader.join()
                    for task in bars.values():
                        bar.progress.remove_task(task)
    finally:
        _job = None
    return done


def stats() -> dict[str, int]:
    """Hits and misses since the process started (or the last :func:`clear`)."""
    return dict(_stats, entries=len(_found))


def clear() -> None:
    """Forget every kept result."""
    _found.clear()
    _prefetched.clear()
    _stats.update(hits=0, misses=0)
