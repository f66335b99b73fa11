"""Atomic output: the destination is either the old file or the complete new one."""

from __future__ import annotations

import errno
import os
import stat
import tempfile
from pathlib import Path

import pytest

from einsum.atomic import OutputError, atomic_path, blocking_file, shown_path, write_atomic
from einsum.errors import ConfigError, EinarrayError


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


def _fail(err: int, path=None):
    def raiser(*a, **k):
        raise OSError(err, os.strerror(err), *([str(path)] if path else []))
    return raiser


def test_disk_full_while_writing_names_the_destination(tmp_path, monkeypatch):
    p = tmp_path / "f.bin"
    p.write_bytes(b"old")
    real = Path.write_bytes

    def half_then_full(self, data):
        real(self, data[: len(data) // 2])
        raise OSError(errno.ENOSPC, os.strerror(errno.ENOSPC), str(self))  # the temporary's name

    monkeypatch.setattr(Path, "write_bytes", half_then_full)
    with pytest.raises(OutputError) as exc:
        write_atomic(p, b"new content")
    assert str(exc.value) == f"{p}: No space left on device"
    assert isinstance(exc.value, ConfigError) and isinstance(exc.value, EinarrayError)
    assert p.read_bytes() == b"old"
    assert [x.name for x in tmp_path.iterdir()] == ["f.bin"]


@pytest.mark.parametrize("err", [errno.EACCES, errno.EXDEV, errno.EROFS])
def test_failed_rename_keeps_old_file_and_removes_temporary(tmp_path, monkeypatch, err):
    p = tmp_path / "f.txt"
    p.write_text("old")
    monkeypatch.setattr(os, "replace", _fail(err))
    with pytest.raises(OutputError) as exc:
        write_atomic(p, "new")
    assert str(exc.value) == f"{p}: {os.strerror(err)}"
    assert p.read_text() == "old"
    assert [x.name for x in tmp_path.iterdir()] == ["f.txt"]


def test_cannot_create_the_temporary(tmp_path, monkeypatch):
    monkeypatch.setattr(tempfile, "mkstemp", _fail(errno.EACCES, tmp_path / ".f.txt.x"))
    with pytest.raises(OutputError) as exc:
        write_atomic(tmp_path / "f.txt", "x")
    assert str(exc.value) == f"{tmp_path / '.f.txt.x'}: Permission denied"
    assert list(tmp_path.iterdir()) == []


def test_destination_is_a_directory(tmp_path):
    d = tmp_path / "out.v"
    d.mkdir()
    (d / "keep").write_text("k")
    with pytest.raises(OutputError, match="out.v: is a directory; expected a file name"):
        write_atomic(d, "x")
    assert [x.name for x in d.iterdir()] == ["keep"]
    assert [x.name for x in tmp_path.iterdir()] == ["out.v"]


@pytest.mark.parametrize("make_parents", [True, False])
@pytest.mark.parametrize("sub", ["", "a/b"])
def test_a_parent_is_a_file(tmp_path, make_parents, sub):
    f = tmp_path / "afile"
    f.write_text("x")
    dest = f / sub / "out.txt"
    with pytest.raises(OutputError) as exc:
        with atomic_path(dest, make_parents=make_parents):
            pass
    assert str(exc.value) == f"{dest}: cannot write the file: {f} is not a directory"
    assert f.read_text() == "x" and [x.name for x in tmp_path.iterdir()] == ["afile"]
    assert blocking_file(f / sub) == f and blocking_file(tmp_path / "no" / "such") is None


def test_os_error_paths_inside_a_temporary_are_shown_under_the_destination(tmp_path):
    tmp = tmp_path / ".out.einarray-tmp-1"
    e = OSError(errno.ENOSPC, "No space left on device", str(tmp / "report.md"))
    assert shown_path(e, tmp_path / "out", tmp) == str(tmp_path / "out" / "report.md")
    assert shown_path(OSError(errno.ENOSPC, "x"), "dest", tmp) == "dest"
    assert shown_path(OSError(errno.ENOSPC, "x", "/elsewhere"), "dest", tmp) == "/elsewhere"
