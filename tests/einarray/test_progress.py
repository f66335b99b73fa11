"""Progress without a terminal: bars draw nothing, a run's layer searches say one plain line
each on stderr (prefetched on several processes or searched one by one), and not with
``--no-progress``."""

from __future__ import annotations

import io
import re
from pathlib import Path

import pytest
from rich.console import Console

from einarray import search_cache
from einarray.cli import main
from einarray.progress import Bar, plain_lines

DATA = Path(__file__).parent / "data"


def run_config(tmp_path) -> Path:
    p = tmp_path / "run.yaml"
    p.write_text(f"include: {DATA / 'vit-tiny-small.yaml'}\nsearch: {{objective: latency, budget: 5, seed: 1}}\n")
    return p


def test_plain_lines_only_without_a_terminal():
    term = Console(file=io.StringIO(), force_terminal=True)
    pipe = Console(file=io.StringIO())
    assert plain_lines(True, pipe) and not plain_lines(True, term)
    assert not plain_lines(False, pipe)


@pytest.mark.parametrize("lines", [True, False])
def test_a_bar_with_lines_says_each_item(lines):
    out = io.StringIO()
    con = Console(file=out)
    with Bar(True, "searching 2 layers", 2, con, lines=lines) as bar:
        bar.advance(item="qkv")
        bar.advance(item="mlp")
    text = out.getvalue().splitlines()
    if lines:
        assert [re.sub(r"\(\d+\.\d s\)", "(T s)", t) for t in text] == [
            "searching 2 layers: 1/2 qkv (T s)", "searching 2 layers: 2/2 mlp (T s)"]
    else:
        assert text == []


@pytest.mark.parametrize("jobs", [1, 2])
def test_a_searched_run_says_each_distinct_layer(tmp_path, capsys, monkeypatch, jobs):
    search_cache.clear()
    if jobs == 1:
        monkeypatch.setattr(search_cache, "prefetch", lambda *a, **k: 0)  # searched one by one
    assert main(["run", str(run_config(tmp_path)), "-o", str(tmp_path / "out")]) == 0
    err = [e for e in capsys.readouterr().err.splitlines() if "warning" not in e]
    n = search_cache.stats()["entries"]  # distinct layers
    assert n > 1 and len(err) == n
    if jobs == 1:
        found = [re.fullmatch(r"search of (\S+): \d+ candidates simulated in \d+\.\d s", e) for e in err]
    else:
        found = [re.fullmatch(rf"searching {n} distinct layers on 2 processes: {k + 1}/{n} (\S+) \(\d+\.\d s\)", e)
                 for k, e in enumerate(err)]
    assert all(found), err
    assert len({m.group(1) for m in found}) == n
    search_cache.clear()


def test_no_progress_asks_for_no_lines(tmp_path, monkeypatch):
    from einarray import flow

    seen = {"prefetch": [], "search_layer": []}

    def prefetch(layers, section, *, progress=False, **kw):
        seen["prefetch"].append(progress)
        return 0

    def search_layer(lay, sec, *, progress=None, lines=False):
        seen["search_layer"].append(lines)
        return lay  # its default mapping: the plumbing is under test, not the search

    monkeypatch.setattr(search_cache, "prefetch", prefetch)
    monkeypatch.setattr(flow, "search_layer", search_layer)
    assert main(["run", str(run_config(tmp_path)), "-o", str(tmp_path / "out"), "--no-progress"]) == 0
    assert seen["prefetch"] == [False]
    assert seen["search_layer"] and set(seen["search_layer"]) == {False}
