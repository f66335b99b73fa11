"""Output directories: einarray writes only into a directory it may use, and never loses a user's files.

(Here, beside :mod:`einsum.atomic`, so that every package's report writer can use it.)

A command that writes a directory (``run``, ``compare``, ``search -o``, ``sweep``, the studies)
accepts as its target

* a path that does not exist yet (its parents are created),
* an empty directory (``-o .`` in an empty working directory included), or
* a directory the same kind of einarray output wrote before (one holding :data:`MANIFEST`
  with that ``kind``: running ``einarray run`` again refreshes its report), or
* with ``force``, a directory any einarray output wrote before.

Anything else is refused with :class:`einsum.atomic.OutputError` (one line, exit status 2):
a directory with other content, a regular file, a broken symbolic link. The manifest records
the command, the einarray version and the files einarray wrote; replacing a report removes
only those files, so a file the user added to a report directory survives ``--force``.

The files are built in a temporary directory and moved into place only when all are
complete, so an error or Ctrl-C leaves the target as it was, with no temporary left behind.
"""

from __future__ import annotations

import contextlib
import json
import os
import secrets
import shutil
import stat
from dataclasses import dataclass
from pathlib import Path
from typing import Iterable, Iterator

from .atomic import OutputError, blocking_file, write_atomic

MANIFEST = ".einarray-report.json"
STAGING_PREFIX = ".einarray-tmp-"


@dataclass(frozen=True)
class Target:
    """What an output path is now: ``new`` (absent), ``empty`` or ``ours`` (has a manifest)."""

    path: Path
    state: str
    manifest: dict | None = None


def read_manifest(d: str | os.PathLike) -> dict | None:
    """The manifest of directory ``d``, or None when it has none (or one einarray did not write)."""
    p = Path(d) / MANIFEST
    try:
        data = json.loads(p.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError):
        return None
    if not (isinstance(data, dict) and isinstance(data.get("kind"), str) and isinstance(data.get("files"), list)
            and all(isinstance(f, str) and _plain_name(f) for f in data["files"])):
        return None
    return data


def _plain_name(name: str) -> bool:
    return bool(name) and name not in (".", "..", MANIFEST) and "/" not in name and os.sep not in name


def _entries(d: Path) -> list[str]:
    try:
        return [n for n in os.listdir(d) if not n.startswith(STAGING_PREFIX)]
    except OSError as exc:
        raise OutputError.from_os(exc, d) from None


def _describe(m: dict) -> str:
    return f"written by `{m.get('command') or 'einarray ' + m['kind']}`"


def check(dest: str | os.PathLike, *, force: bool = False, resume: str | None = None,
          kind: str | None = None) -> Target:
    """Classify ``dest`` as an output directory or raise :class:`OutputError` saying why not.

    ``kind``: the kind of output about to be written; a directory of that kind is replaced
    without ``force`` (its manifest's files only).

    ``resume``: the kind of output (``"sweep"``) whose directory is used again as it is, without
    ``force``. Call it before the work that produces the output, so a refusal comes early.
    """
    p = Path(dest)
    try:
        st = p.stat()
    except FileNotFoundError:
        if p.is_symlink():
            raise OutputError("is a broken symbolic link; give a directory", str(p)) from None
        anc = next(q for q in p.absolute().parents if q.exists())
        if not os.access(anc, os.W_OK | os.X_OK):  # say so now, not after the work
            raise OutputError(f"cannot create the directory: {anc} is not writable", str(p)) from None
        return Target(p, "new")
    except NotADirectoryError:
        blocker = blocking_file(p.parent) or p.parent
        raise OutputError(f"cannot create the directory: {blocker} is not a directory", str(p)) from None
    except OSError as exc:  # permission denied, name too long, ...
        raise OutputError.from_os(exc, p) from None
    if stat.S_ISREG(st.st_mode):
        raise OutputError("is a file; give a new or empty directory for the output", str(p))
    if not stat.S_ISDIR(st.st_mode):
        raise OutputError("is not a directory; give a new or empty directory for the output", str(p))
    if not _entries(p):
        return Target(p, "empty")
    m = read_manifest(p)
    if m is None:
        raise OutputError(f"exists and is not an einarray output directory (it has no valid {MANIFEST}); "
                          "give a new or empty directory" + ("; --force replaces only einarray output directories"
                                               if force else ""), str(p))
    if resume is not None:
        if m["kind"] == resume:
            return Target(p, "ours", m)
        raise OutputError(f"holds einarray output {_describe(m)}, not a {resume}; give another directory", str(p))
    if not force and m["kind"] != kind:
        raise OutputError(f"holds einarray output {_describe(m)}, not einarray {kind} output; "
                          "pass --force to replace it", str(p))
    return Target(p, "ours", m)


def _version() -> str:
    from importlib.metadata import PackageNotFoundError, version

    try:
        return version("einarray")
    except PackageNotFoundError:  # run from a source tree that was never installed
        return "unknown"


def manifest(kind: str, files: Iterable[str], command: str | None = None) -> str:
    """The manifest text: what wrote the directory and which files it wrote."""
    return json.dumps({"einarray": _version(), "kind": kind, "command": command or f"einarray {kind}",
                       "files": sorted(set(files))}, indent=2, sort_keys=True) + "\n"


def _make_stage(where: Path, prefix: str) -> Path:
    """A new directory in ``where``; its mode follows the umask like any directory's."""
    for _ in range(100):
        p = where / f"{prefix}{secrets.token_hex(4)}"
        try:
            os.mkdir(p)
            return p
        except FileExistsError:
            continue
    raise OutputError("cannot create a temporary directory here", str(where))  # pragma: no cover


def _make_parents(path: Path) -> list[Path]:
    """Create the missing parents of ``path``; return those created, outermost first."""
    missing: list[Path] = []
    q = path
    while not q.exists() and q != q.parent:
        missing.append(q)
        q = q.parent
    made: list[Path] = []
    try:
        for d in reversed(missing):
            d.mkdir()
            made.append(d)
    except OSError as exc:
        _remove_dirs(made)
        raise OutputError.from_os(exc, path, action="cannot create the directory: ") from None
    return made


def _remove_dirs(made: list[Path]) -> None:
    for d in reversed(made):
        with contextlib.suppress(OSError):
            d.rmdir()


@contextlib.contextmanager
def output_dir(dest: str | os.PathLike, *, kind: str, force: bool = False,
               command: str | None = None) -> Iterator[Path]:
    """Yield an empty temporary directory; when the block ends, its files become ``dest``.

    ``dest`` must pass :func:`check` (again at the end, in case it changed meanwhile). A new
    ``dest`` is the temporary directory renamed; into an existing one the files are moved one
    by one, the manifest last, and files an earlier einarray run wrote that are not written
    again are removed. Any OSError becomes an :class:`OutputError` naming the path under
    ``dest``; on any error the temporary directory is removed and ``dest`` is unchanged.
    """
    target = check(dest, force=force, kind=kind)
    p = target.path
    made: list[Path] = []
    try:
        if target.state == "new":
            made = _make_parents(p.parent)
            stage = _make_stage(p.parent, f".{p.name}.einarray-tmp-")
        else:
            stage = _make_stage(p, STAGING_PREFIX)
    except OSError as exc:
        _remove_dirs(made)
        raise OutputError(f"cannot create the directory: {exc.strerror or exc}", str(p)) from None
    try:
        yield stage
        files = sorted(n for n in os.listdir(stage) if n != MANIFEST)
        now = check(p, force=force, kind=kind)
        if now.state == "new":
            (stage / MANIFEST).write_text(manifest(kind, files, command), encoding="utf-8")
            os.rename(stage, p)
        else:
            _install(stage, now, kind, files, command)
    except BaseException as exc:
        shutil.rmtree(stage, ignore_errors=True)
        _remove_dirs(made)
        if isinstance(exc, OSError):
            raise OutputError.from_os(exc, p, stage) from None
        if isinstance(exc, OutputError) and exc.file and exc.file.startswith(str(stage)):
            raise OutputError(exc.message, str(p / os.path.relpath(exc.file, stage))) from None
        raise


def _install(stage: Path, target: Target, kind: str, files: list[str], command: str | None) -> None:
    dest = target.path
    old = set(target.manifest["files"]) if target.manifest else set()
    present = set(_entries(dest)) - {MANIFEST}
    clash = sorted(f for f in files if f in present and f not in old)
    if clash:
        raise OutputError("exists and was not written by einarray; not replaced", str(dest / clash[0]))
    # While files move, the manifest lists old and new ones, so an interrupted move can be
    # completed by running again with --force.
    write_atomic(dest / MANIFEST, manifest(kind, old | set(files), command), make_parents=False)
    for f in files:
        q = dest / f
        if f in old and q.is_dir() and not q.is_symlink():  # a directory an earlier run wrote
            shutil.rmtree(q)
        os.replace(stage / f, q)
    for f in sorted(old - set(files)):
        q = dest / f
        if q.is_symlink() or q.is_file():
            q.unlink()
        elif q.is_dir():
            shutil.rmtree(q)
    write_atomic(dest / MANIFEST, manifest(kind, files, command), make_parents=False)
    stage.rmdir()
    for n in os.listdir(dest):  # temporaries of einarray runs killed before they could clean up
        if n.startswith(STAGING_PREFIX) and (dest / n).is_dir() and not (dest / n).is_symlink():
            shutil.rmtree(dest / n, ignore_errors=True)


def claim(dest: str | os.PathLike, *, kind: str, files: Iterable[str], command: str | None = None) -> Path:
    """Make ``dest`` a directory of ``kind`` that is filled in place and used again (a resumable sweep).

    New or empty: created and marked with a manifest. One of the same kind: returned as it is.
    Anything else is refused like :func:`check`.
    """
    target = check(dest, resume=kind)
    p = target.path
    if target.state == "ours":
        return p
    made: list[Path] = []
    try:
        if target.state == "new":
            made = _make_parents(p)
        write_atomic(p / MANIFEST, manifest(kind, files, command), make_parents=False)
    except BaseException:
        _remove_dirs(made)
        raise
    return p
