"""einsum.outdir: a directory an einarray output writes (a study's configs/) is replaced whole
on the next run and removed when no longer written; a user's directory is never touched."""

from __future__ import annotations

import pytest

from einsum.atomic import OutputError
from einsum.outdir import output_dir


def _write(dest, files: dict[str, str]) -> None:
    with output_dir(dest, kind="study", force=True) as tmp:
        for name, text in files.items():
            (tmp / name).parent.mkdir(parents=True, exist_ok=True)
            (tmp / name).write_text(text)


def test_a_subdirectory_is_replaced_then_removed(tmp_path):
    d = tmp_path / "study"
    _write(d, {"README.md": "1", "configs/a.yaml": "a", "configs/b.yaml": "b"})
    assert sorted(p.name for p in (d / "configs").iterdir()) == ["a.yaml", "b.yaml"]
    _write(d, {"README.md": "2", "configs/c.yaml": "c"})
    assert sorted(p.name for p in (d / "configs").iterdir()) == ["c.yaml"]
    assert (d / "README.md").read_text() == "2"
    _write(d, {"README.md": "3"})
    assert not (d / "configs").exists() and (d / "README.md").read_text() == "3"


def test_a_users_directory_of_that_name_is_not_replaced(tmp_path):
    d = tmp_path / "study"
    _write(d, {"README.md": "1"})
    (d / "configs").mkdir()
    (d / "configs" / "mine.yaml").write_text("user")
    with pytest.raises(OutputError, match="not written by einarray"):
        _write(d, {"README.md": "2", "configs/a.yaml": "a"})
    assert (d / "configs" / "mine.yaml").read_text() == "user" and (d / "README.md").read_text() == "1"
