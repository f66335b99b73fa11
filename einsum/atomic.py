"""Atomic file output: never leave a half-written file behind.

Every einarray writer (reports, Verilog, traces, npz outputs, sweep CSVs) writes through a
temporary file in the destination's directory and renames it onto the destination, so an
error or Ctrl-C leaves the old file (or nothing) in place. An operating-system error on the
way (no space left, permission denied, the destination is a directory, a parent is a file)
is raised as :class:`OutputError`, which names the destination, never the temporary.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import ConfigError


class OutputError(ConfigError):
    """An output could not be written; ``str()`` is ``PATH: reason``."""

    @classmethod
    def from_os(cls, exc: OSError, dest: str | os.PathLike, tmp: str | os.PathLike | None = None,
                action: str = "") -> "OutputError":
        """Translate ``exc``: a path inside the temporary ``tmp`` is shown under ``dest``."""
        return cls(f"{action}{exc.strerror or exc}", shown_path(exc, dest, tmp))


def shown_path(exc: OSError, dest: str | os.PathLike, tmp: str | os.PathLike | None = None) -> str:
    """The path to name for ``exc``: its file, with the temporary ``tmp`` replaced by ``dest``."""
    name = exc.filename
    if name is None:
        return str(dest)
    name = os.fsdecode(name)
    if tmp is not None:
        t = os.fspath(tmp)
        if name == t:
            return str(dest)
        if name.startswith(t + os.sep):
            return str(Path(dest) / os.path.relpath(name, t))
    return name


def blocking_file(d: str | os.PathLike) -> Path | None:
    """The nearest existing one of ``d`` and its parents when it is not a directory, else None."""
    for q in (Path(d), *Path(d).parents):
        if q.exists() or q.is_symlink():
            return None if q.is_dir() else q
    return None


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, *, make_parents: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` when the block ends.

    On any error the temporary file is removed. A missing directory is a ConfigError unless
    ``make_parents`` (for outputs whose directory the program chooses itself). An OSError,
    in the block or while renaming, becomes an :class:`OutputError` naming ``dest``.
    """
    dest = Path(dest)
    parent = dest.parent if str(dest.parent) else Path(".")
    blocker = blocking_file(parent)
    if blocker is not None:
        raise OutputError(f"cannot write the file: {blocker} is not a directory", str(dest))
    try:
        if make_parents:
            parent.mkdir(parents=True, exist_ok=True)
        elif not parent.is_dir():
            raise ConfigError(f"cannot write {dest}: directory {parent} does not exist")
        if dest.is_dir():
            raise OutputError("is a directory; expected a file name", str(dest))
        fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=dest.suffix, dir=parent)
        os.close(fd)
    except OSError as exc:
        raise OutputError.from_os(exc, dest) from None
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp_path, dest)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            tmp_path.unlink()
        if isinstance(exc, OSError):
            raise OutputError.from_os(exc, dest, tmp_path) from None
        raise


def write_atomic(dest: str | os.PathLike, data: str | bytes, *, make_parents: bool = True) -> None:
    """Write text (UTF-8) or bytes to ``dest`` atomically."""
    with atomic_path(dest, make_parents=make_parents) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
