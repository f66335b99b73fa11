"""Identical layers are searched once (einarray/search_cache.py, called by
einarray.flow.search_layer), and the search's progress shows on the run's display."""

from __future__ import annotations

import io
from dataclasses import replace

import pytest
from rich.console import Console
from rich.progress import Progress

import einarray.search
from einarray import search_cache
from einarray.flow import load_run, search_layer
from einarray.progress import Bar
from mapping.dump import mapping_to_data

GEMM = ("workload: {{cascade: gemm, ranks: {{M: {m}, N: 16, K: 16}}}}\narch: {arch}\n"
        "search: {{objective: latency, budget: {budget}}}\n")


@pytest.fixture(autouse=True)
def fresh_cache():
    search_cache.clear()
    yield
    search_cache.clear()


def spec(tmp_path, name="g", m=16, arch="systolic-16x16", budget=8):
    p = tmp_path / f"{name}.yaml"
    p.write_text(GEMM.format(m=m, arch=arch, budget=budget))
    return load_run(p)


@pytest.fixture
def calls(monkeypatch):
    seen = []
    real = einarray.search.search

    def counted(problem, evaluator, **kw):
        seen.append(problem.config.cascade.ranks["M"].size)
        return real(problem, evaluator, **kw)

    monkeypatch.setattr(einarray.search, "search", counted)
    return seen


def test_identical_layers_are_searched_once(tmp_path, calls):
    a, b = spec(tmp_path, "a"), spec(tmp_path, "b")  # two files, one layer shape
    la = search_layer(a.layers[0], a.search)
    lb = search_layer(replace(b.layers[0], name="other"), b.search)
    assert calls == [16]
    assert search_cache.stats() == {"hits": 1, "misses": 1, "entries": 1}
    assert lb.config.mapping_origin == "searched"
    assert mapping_to_data(la.config.mapping, la.config.cascade, la.config.arch) == \
        mapping_to_data(lb.config.mapping, lb.config.cascade, lb.config.arch)


def test_a_reused_mapping_is_what_a_fresh_search_finds(tmp_path, calls):
    s = spec(tmp_path)
    first = search_layer(s.layers[0], s.search)
    search_cache.clear()
    again = search_layer(s.layers[0], s.search)
    assert calls == [16, 16]
    data = [mapping_to_data(x.config.mapping, x.config.cascade, x.config.arch) for x in (first, again)]
    assert data[0] == data[1]


@pytest.mark.parametrize("change", [{"m": 32}, {"arch": "systolic-32x32"}, {"budget": 9}])
def test_a_different_layer_or_search_is_searched_again(tmp_path, calls, change):
    a, b = spec(tmp_path, "a"), spec(tmp_path, "b", **change)
    search_layer(a.layers[0], a.search)
    search_layer(b.layers[0], b.search)
    assert len(calls) == 2
    assert search_cache.layer_key(a.layers[0].config, a.search[0]) != \
        search_cache.layer_key(b.layers[0].config, b.search[0])


def test_instances_are_part_of_the_key(tmp_path):
    cfg = spec(tmp_path).layers[0].config
    sec = {"objective": "latency", "budget": 8}
    assert search_cache.layer_key(cfg, sec) == search_cache.layer_key(replace(cfg, source="elsewhere"), sec)
    assert search_cache.layer_key(cfg, sec) != search_cache.layer_key(replace(cfg, instances=12), sec)


def test_the_memo_is_bounded(monkeypatch):
    monkeypatch.setattr(search_cache, "MAX_ENTRIES", 2)
    monkeypatch.setattr(search_cache, "layer_key", lambda cfg, sec: str(sec))
    for i in range(3):
        assert search_cache.searched_mapping(None, i, lambda i=i: {"n": i}) == {"n": i}
    assert search_cache.stats()["entries"] == 2
    assert search_cache.searched_mapping(None, 2, lambda: {"n": "new"}) == {"n": 2}  # kept
    assert search_cache.searched_mapping(None, 0, lambda: {"n": "new"}) == {"n": "new"}  # dropped


def test_a_returned_mapping_is_a_copy(monkeypatch):
    monkeypatch.setattr(search_cache, "layer_key", lambda cfg, sec: "k")
    first = search_cache.searched_mapping(None, None, lambda: {"groups": [1]})
    first["groups"].append(2)
    again = search_cache.searched_mapping(None, None, lambda: {"groups": ["searched again"]})
    assert again == {"groups": [1]}
    again["groups"].append(3)
    assert search_cache.searched_mapping(None, None, dict) == {"groups": [1]}


def test_the_search_shows_its_evaluations_on_the_run_display(tmp_path):
    s = spec(tmp_path)
    shown = []
    con = Console(file=io.StringIO(), force_terminal=True, width=100)
    with Progress(console=con) as progress:
        real_add = progress.add_task

        def add_task(description, **kw):
            shown.append((description, kw.get("total")))
            return real_add(description, **kw)

        progress.add_task = add_task  # type: ignore[method-assign]
        search_layer(s.layers[0], s.search, progress=progress)
        assert progress.tasks == []  # the search's bar is removed when it ends
    assert shown == [("  search of gemm", 8)]


def test_bar_count_sets_the_completed_count():
    con = Console(file=io.StringIO(), force_terminal=True)
    with Progress(console=con) as progress, Bar(progress, "x", 10) as bar:
        bar.count(4)
        assert progress.tasks[0].completed == 4 and progress.tasks[0].total == 10
        bar.count(7, 12)
        assert progress.tasks[0].completed == 7 and progress.tasks[0].total == 12


def layers_of(tmp_path, ms):
    """Layers of gemm runs with the given M sizes, and the search section they share."""
    specs = [spec(tmp_path, f"g{i}", m=m) for i, m in enumerate(ms)]
    return [replace(s.layers[0], name=f"layer{i}") for i, s in enumerate(specs)], specs[0].search


def mapping_of(lay):
    return mapping_to_data(lay.config.mapping, lay.config.cascade, lay.config.arch)


def test_prefetch_searches_distinct_layers_on_processes(tmp_path, calls):
    layers, sec = layers_of(tmp_path, [16, 32, 16])
    assert search_cache.prefetch(layers, sec, jobs=2) == 2
    assert calls == []  # searched in the worker processes, not here
    found = [mapping_of(search_layer(lay, sec)) for lay in layers]
    assert calls == []
    assert search_cache.stats() == {"hits": 1, "misses": 2, "entries": 2}
    search_cache.clear()
    assert [mapping_of(search_layer(lay, sec)) for lay in layers] == found  # as searched here, one by one
    assert calls == [16, 32]


def test_prefetch_on_one_process_or_one_layer_leaves_it_to_the_run(tmp_path, calls):
    layers, sec = layers_of(tmp_path, [16, 32])
    assert search_cache.prefetch(layers, sec, jobs=1) == 0
    assert search_cache.prefetch(layers[:1] * 3, sec, jobs=2) == 0
    assert calls == [] and search_cache.stats()["entries"] == 0


def test_prefetch_shows_the_workers_warnings(tmp_path, monkeypatch):
    from einsum.errors import EinarrayWarning

    real = einarray.search.search

    def warns(problem, evaluator, **kw):
        import warnings

        warnings.warn(f"note from M={problem.config.cascade.ranks['M'].size}", EinarrayWarning)
        return real(problem, evaluator, **kw)

    monkeypatch.setattr(einarray.search, "search", warns)
    layers, sec = layers_of(tmp_path, [16, 32])
    with pytest.warns(EinarrayWarning) as got:
        assert search_cache.prefetch(layers, sec, jobs=2) == 2
    assert sorted(str(w.message) for w in got) == ["note from M=16", "note from M=32"]


def test_a_failed_search_is_raised_by_the_run_itself(tmp_path, monkeypatch):
    from einsum.errors import ConfigError

    real = einarray.search.search

    def fails_for_32(problem, evaluator, **kw):
        if problem.config.cascade.ranks["M"].size == 32:
            raise ConfigError("no legal mapping")
        return real(problem, evaluator, **kw)

    monkeypatch.setattr(einarray.search, "search", fails_for_32)
    layers, sec = layers_of(tmp_path, [16, 32])
    assert search_cache.prefetch(layers, sec, jobs=2) == 1
    search_layer(layers[0], sec)
    with pytest.raises(ConfigError, match="no legal mapping"):
        search_layer(layers[1], sec)


def test_a_searched_run_is_the_same_on_processes_and_on_one(tmp_path, monkeypatch):
    from einarray.flow import run

    layers, sec = layers_of(tmp_path, [16, 32, 16])
    s = replace(spec(tmp_path), layers=tuple(layers))
    parallel = run(s, progress=False)
    assert search_cache.stats() == {"hits": 1, "misses": 2, "entries": 2}
    search_cache.clear()
    monkeypatch.setattr(search_cache, "prefetch", lambda *a, **k: 0)
    assert run(s, progress=False) == parallel
    assert [l["mapping_origin"] for l in parallel["layers"]] == ["searched"] * 3


def test_prefetch_shows_a_bar_per_layer_being_searched(tmp_path):
    layers, sec = layers_of(tmp_path, [16, 32])
    added, removed = [], []
    con = Console(file=io.StringIO(), force_terminal=True, width=100)
    with Progress(console=con) as progress:
        real_add, real_remove = progress.add_task, progress.remove_task

        def add_task(description, **kw):
            task = real_add(description, **kw)
            added.append((description, kw.get("total"), task))
            return task

        def remove_task(task):
            removed.append(task)
            real_remove(task)

        progress.add_task, progress.remove_task = add_task, remove_task  # type: ignore[method-assign]
        assert search_cache.prefetch(layers, sec, jobs=2, progress=progress) == 2
        assert progress.tasks == []  # every bar is removed when its search ends
    assert added[0][:2] == ("searching 2 distinct layers on 2 processes", 2)
    assert sorted((d, t) for d, t, _ in added[1:]) == [("  search of layer0", 8), ("  search of layer1", 8)]
    assert sorted(removed) == sorted(task for _, _, task in added)
