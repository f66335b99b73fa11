"""YAML loading that remembers where every value came from.

PyYAML's composer gives nodes with marks; we turn them into plain Python data and a
:class:`Source` that maps each YAML path to its line, so later validation can name
``file:line a.b[2]`` in its errors. Duplicate keys are an error (PyYAML silently keeps
the last one).
"""

from __future__ import annotations

import copy
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from .errors import ConfigError

YPath = tuple[str | int, ...]


@dataclass
class Source:
    """Where the values of one loaded YAML document came from."""

    file: str
    lines: dict[YPath, int] = field(default_factory=dict)

    def line(self, path: YPath) -> int | None:
        """Line (1-based) of ``path``, or of its nearest ancestor that has one."""
        p = tuple(path)
        while True:
            if p in self.lines:
                return self.lines[p]
            if not p:
                return None
            p = p[:-1]

    def error(self, path: YPath, message: str) -> ConfigError:
        return ConfigError(message, file=self.file, line=self.line(path), ypath=tuple(path))


# libyaml's C parser when PyYAML has it; one shared scalar constructor (creating a loader
# per scalar made config loading ~15x slower, which matters for sweeps and search).
_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)
_SCALARS = yaml.constructor.SafeConstructor()


def _construct(node: yaml.Node, path: YPath, src: Source) -> Any:
    src.lines.setdefault(path, node.start_mark.line + 1)
    if isinstance(node, yaml.MappingNode):
        out: dict[Any, Any] = {}
        for knode, vnode in node.value:
            if knode.tag == "tag:yaml.org,2002:merge":
                raise ConfigError("YAML merge keys ('<<') are not supported",
                                  src.file, knode.start_mark.line + 1, path)
            key = _construct(knode, path + ("<key>",), src)
            if isinstance(key, (list, dict)):
                raise ConfigError("a mapping key must be a scalar", src.file,
                                  knode.start_mark.line + 1, path)
            if key in out:
                raise ConfigError(f"duplicate key {key!r}", src.file,
                                  knode.start_mark.line + 1, path + (str(key),))
            out[key] = _construct(vnode, path + (str(key),), src)
            src.lines[path + (str(key),)] = knode.start_mark.line + 1
        return out
    if isinstance(node, yaml.SequenceNode):
        return [_construct(v, path + (i,), src) for i, v in enumerate(node.value)]
    try:
        return _SCALARS.construct_object(node, deep=True)
    finally:
        _SCALARS.constructed_objects.clear()


def loads(text: str, file: str = "<string>") -> tuple[Any, Source]:
    """Parse YAML text into plain data plus its :class:`Source`."""
    src = Source(file)
    try:
        node = yaml.compose(text, Loader=_LOADER)
    except yaml.MarkedYAMLError as exc:
        mark = exc.problem_mark or exc.context_mark
        line = mark.line + 1 if mark is not None else None
        what = exc.problem or "malformed YAML"
        raise ConfigError(f"malformed YAML: {what}", file, line) from None
    except yaml.YAMLError as exc:  # pragma: no cover - defensive
        raise ConfigError(f"malformed YAML: {exc}", file) from None
    if node is None:
        raise ConfigError("the file is empty", file, 1)
    try:
        data = _construct(node, (), src)
    except yaml.YAMLError as exc:
        raise ConfigError(f"malformed YAML: {exc}", file) from None
    return data, src


_CACHE: dict[tuple, tuple[Any, Source]] = {}


def load(path: str | Path) -> tuple[Any, Source]:
    """Read and parse a YAML file; a missing or unreadable file is a ConfigError.

    Unchanged files (same path, size and mtime) come from a cache, as a deep copy of the
    data so callers may modify it.
    """
    p = Path(path)
    try:
        st = p.stat()
        key: tuple | None = (str(p.resolve()), st.st_size, st.st_mtime_ns)
    except OSError:
        key = None
    if key is not None and key in _CACHE:
        data, src = _CACHE[key]
        return copy.deepcopy(data), Source(str(path), dict(src.lines))
    try:
        text = p.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise ConfigError("file not found", str(path)) from None
    except (OSError, UnicodeDecodeError) as exc:
        raise ConfigError(f"cannot read file: {exc}", str(path)) from None
    data, src = loads(text, str(path))
    if key is not None:
        if len(_CACHE) > 256:
            _CACHE.clear()
        _CACHE[key] = (copy.deepcopy(data), Source(src.file, dict(src.lines)))
    return data, src


def shipped_names(directory: Path) -> list[str]:
    """Names (file stems) of the YAML files shipped in ``directory``."""
    return sorted(p.stem for p in directory.glob("*.yaml"))


def resolve_named(ref: str | Path, directory: Path, what: str, *, base_dir: Path | None = None) -> Path:
    """A path to an existing file (relative to ``base_dir`` first, when given), or the name
    of a YAML file shipped in ``directory``. Anything else is a ConfigError: ``file not
    found`` for a path, or a list of the shipped ``what`` for a name."""
    p = Path(ref)
    if base_dir is not None and not p.is_absolute() and (base_dir / p).is_file():
        return base_dir / p
    if p.is_file():
        return p
    shipped = directory / f"{ref}.yaml"
    if not p.suffix and "/" not in str(ref) and shipped.is_file():
        return shipped
    if p.suffix or "/" in str(ref):
        raise ConfigError("file not found", str(ref))
    raise ConfigError(f"no file and no {what} named {str(ref)!r} "
                      f"({what}s: {', '.join(shipped_names(directory))})", str(ref))
