"""The located YAML loader: lines per YAML path, errors, and its file cache."""

from __future__ import annotations

import os

import pytest

from einsum.errors import ConfigError
from einsum.yamlsrc import load, loads

TEXT = """top:
  list:
    - a
    - {b: 1, c: [x, y]}
  flow: {m: 1,
         n: 2}
"""


def test_lines_of_paths():
    data, src = loads(TEXT, "f.yaml")
    assert data == {"top": {"list": ["a", {"b": 1, "c": ["x", "y"]}], "flow": {"m": 1, "n": 2}}}
    assert src.line(("top",)) == 1
    assert src.line(("top", "list", 1, "c", 1)) == 4
    assert src.line(("top", "flow", "n")) == 6
    assert src.line(("top", "missing", "deeper")) == 1  # nearest ancestor
    err = src.error(("top", "flow", "n"), "bad")
    assert str(err) == "f.yaml:6 top.flow.n: bad"


@pytest.mark.parametrize("text,line,msg", [
    ("a: 1\na: 2\n", 2, "duplicate key 'a'"),
    ("a: [1, 2\n", 2, "malformed YAML"),
    ("b: &x {c: 1}\nd:\n  <<: *x\n", 3, "YAML merge keys"),
    ("", 1, "the file is empty"),
    ("? [1, 2]\n: 3\n", 1, "a mapping key must be a scalar"),
])
def test_errors(text, line, msg):
    with pytest.raises(ConfigError) as exc:
        loads(text, "f.yaml")
    assert exc.value.line == line and msg in exc.value.message


def test_cache_returns_copies_and_sees_changes(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text("a: {b: 1}\n")
    d1, _ = load(p)
    d1["a"]["b"] = 99
    d2, src = load(p)
    assert d2 == {"a": {"b": 1}} and src.file == str(p)
    p.write_text("a: {b: 2, c: 3}\n")
    st = p.stat()
    os.utime(p, ns=(st.st_atime_ns, st.st_mtime_ns + 1_000_000))
    assert load(p)[0] == {"a": {"b": 2, "c": 3}}


def test_missing_file():
    with pytest.raises(ConfigError, match="file not found"):
        load("no/such.yaml")
