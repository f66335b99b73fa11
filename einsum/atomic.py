"""Atomic file output: never leave a half-written file behind.

Every einarray writer (reports, Verilog, traces, npz outputs, sweep CSVs) writes through a
temporary file in the destination's directory and renames it onto the destination, so an
error or Ctrl-C leaves the old file (or nothing) in place.
"""

from __future__ import annotations

import contextlib
import os
import tempfile
from pathlib import Path
from typing import Iterator

from .errors import ConfigError


@contextlib.contextmanager
def atomic_path(dest: str | os.PathLike, *, make_parents: bool = False) -> Iterator[Path]:
    """Yield a temporary path beside ``dest``; rename it onto ``dest`` when the block ends.

    On any error the temporary file is removed. A missing directory is a ConfigError unless
    ``make_parents`` (for outputs whose directory the program chooses itself).
    """
    dest = Path(dest)
    parent = dest.parent if str(dest.parent) else Path(".")
    if make_parents:
        parent.mkdir(parents=True, exist_ok=True)
    elif not parent.is_dir():
        raise ConfigError(f"cannot write {dest}: directory {parent} does not exist")
    fd, tmp = tempfile.mkstemp(prefix=f".{dest.name}.", suffix=dest.suffix, dir=parent)
    os.close(fd)
    tmp_path = Path(tmp)
    try:
        yield tmp_path
        os.chmod(tmp_path, 0o644)  # mkstemp creates 0600; give the usual file mode
        os.replace(tmp_path, dest)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp_path.unlink()
        raise


def write_atomic(dest: str | os.PathLike, data: str | bytes, *, make_parents: bool = True) -> None:
    """Write text (UTF-8) or bytes to ``dest`` atomically."""
    with atomic_path(dest, make_parents=make_parents) as tmp:
        if isinstance(data, str):
            tmp.write_text(data, encoding="utf-8")
        else:
            tmp.write_bytes(data)
