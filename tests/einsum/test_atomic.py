"""Atomic output: the destination is either the old file or the complete new one."""

from __future__ import annotations

import stat

import pytest

from einsum.atomic import atomic_path, write_atomic
from einsum.errors import ConfigError


def test_replaces_whole_file_with_normal_mode(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("old")
    write_atomic(p, "new")
    assert p.read_text() == "new"
    assert stat.S_IMODE(p.stat().st_mode) == 0o644
    assert [x.name for x in tmp_path.iterdir()] == ["f.txt"]


def test_error_keeps_old_file_and_leaves_no_temporary(tmp_path):
    p = tmp_path / "f.txt"
    p.write_text("old")
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(p) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["f.txt"]


def test_missing_directory(tmp_path):
    with pytest.raises(ConfigError, match="does not exist"):
        with atomic_path(tmp_path / "no" / "f.txt"):
            pass
    write_atomic(tmp_path / "made" / "f.bin", b"\x00\x01")  # parents made on request (default)
    assert (tmp_path / "made" / "f.bin").read_bytes() == b"\x00\x01"
