"""Loading a simulation config: the ``einsum:``/``workload:``, ``arch:`` and ``mapping:``
sections, each inline or included from a file (a path relative to the config, or a shipped
arch/cascade name), with ``--rank``/``--set`` overrides from the command line.

:func:`load_config` reads a config file; :func:`config_from_sections` builds the
:class:`~mapping.spec.Config` from sections already loaded (``einarray run`` with
includes, sweeps with overrides); :func:`load_section` reads one section. A value given
with ``--set SECTION.key=VALUE`` that turns out wrong is reported at the command line
(``command line --set arch.foo=1: ...``), a bad ``--rank``/``--param`` override where it was
given (:func:`override_error`). With ``allow_hierarchy`` an arch with a ``hierarchy:``
(Timeloop-style levels) gives a :class:`mapping.nest_mapping.NestConfig` instead.

The mapping model is :mod:`mapping.spec`; loading and validating the ``mapping:`` section,
:mod:`mapping.loader` (fused groups: :mod:`mapping.groups`; defaults: :mod:`mapping.defaults`).
"""

from __future__ import annotations

import copy
import re
from dataclasses import dataclass, field
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

import yaml

from einsum.analysis import op_counts
from einsum.errors import ConfigError
from einsum.load import cascade_from_data, resolve as resolve_cascade
from einsum.yamlsrc import Source, YPath
from einsum.yamlsrc import load as load_yaml

from .arch import arch_from_data, resolve_arch
from .cores import split_ranks
from .loader import mapping_from_data
from .spec import Config


@dataclass
class _SetSource(Source):
    """A section's Source after ``--set``: an error under a value given on the command line
    names the command line (``command line --set arch.foo=1: ...``), not the file."""

    sets: dict[YPath, str] = field(default_factory=dict)

    def error(self, path: YPath, message: str) -> ConfigError:
        for p, text in self.sets.items():
            if tuple(path[:len(p)]) == p:
                return _cli_error(text, message)
        return super().error(path, message)


def _cli_error(text: str, message: str) -> ConfigError:
    return ConfigError(message, "command line", None, (f"--set {text}",))


def apply_sets(sections: dict[str, tuple[Any, Source, YPath]], sets: list[str]) -> None:
    """Apply ``--set SECTION.key.path=VALUE`` overrides to loaded sections, in place (each
    remembered, so an error in a set value names the command-line option)."""
    for s in sets:
        if "=" not in s:
            raise _cli_error(s, "expected SECTION.key.path=VALUE")
        key, val = s.split("=", 1)
        parts = key.split(".")
        if parts[0] not in sections:
            raise _cli_error(s, f"unknown section {parts[0]!r} (sections: {', '.join(sections)})")
        data, src, base = sections[parts[0]]
        node = data
        try:
            value = yaml.safe_load(val)
        except yaml.YAMLError:
            value = val
        ypath: YPath = tuple(base)
        for j, k in enumerate(parts[1:]):
            last = j == len(parts) - 2
            if isinstance(node, list):
                if not k.isdigit() or int(k) >= len(node):
                    raise _cli_error(s, f"{'.'.join(parts[:j + 2])} is not an index of the list "
                                        f"({len(node)} entries)")
                k2: Any = int(k)
            elif isinstance(node, dict):
                k2 = k
                if k2 not in node and not last:
                    raise _cli_error(s, f"no key {k!r} under {'.'.join(parts[:j + 1])}")
            else:
                raise _cli_error(s, f"{'.'.join(parts[:j + 1])} is not a mapping or list")
            ypath += (k2,)
            if last:
                node[k2] = value
            else:
                node = node[k2]
        if len(parts) == 1:
            raise _cli_error(s, f"expected SECTION.key.path=VALUE, not the whole {parts[0]!r} section")
        if not isinstance(src, _SetSource):
            src = _SetSource(src.file, src.lines)
        src.sets[ypath] = s
        sections[parts[0]] = (data, src, base)


def load_section(data: dict, src: Source, key: str, base_dir: Path
                 ) -> tuple[Any, Source, YPath] | None:
    """Section ``key`` of a config as ``(data, its Source, its YAML path)``: inline, or included
    from a file (a path relative to ``base_dir``, or a shipped arch/cascade name); None if absent."""
    if key not in data:
        return None
    v = data[key]
    if isinstance(v, str):  # include by path (or shipped name)
        try:
            if key == "arch":
                path = resolve_arch(v, base_dir)
            elif key == "einsum":
                cand = base_dir / v
                path = cand if cand.is_file() else resolve_cascade(v)
            else:
                path = base_dir / v
                if not path.is_file():
                    raise ConfigError("file not found", v)
        except ConfigError as exc:  # say where the name was written
            if exc.file != v or exc.line is not None:
                raise
            msg = exc.message if repr(v) in exc.message else f"included file {v!r} not found"
            raise src.error((key,), msg) from None
        sub, ssrc = load_yaml(path)
        if not isinstance(sub, dict) or key not in sub:
            raise src.error((key,), f"included file {path} has no top-level {key!r} section")
        return copy.deepcopy(sub[key]), ssrc, (key,)
    return copy.deepcopy(v), src, (key,)


def load_config(path: str | Path, *, ranks: Mapping[str, int] | None = None,
                sets: list[str] | None = None, allow_hierarchy: bool = False) -> Config:
    """Load a simulation config: einsum/workload, arch and mapping (each inline or included).
    With ``allow_hierarchy``, an arch with a ``hierarchy:`` gives a
    :class:`mapping.nest_mapping.NestConfig` (see there); otherwise it is an error."""
    p = Path(path)
    data, src = load_yaml(p)
    if not isinstance(data, dict):
        raise src.error((), "expected a mapping with einsum or workload, arch and mapping sections")
    for k in data:
        if k not in ("einsum", "workload", "arch", "mapping", "description", "search"):
            raise src.error((str(k),), f"unknown section {k!r} (allowed: einsum, workload, arch, mapping, "
                            "search)")
    base_dir = p.parent
    sections: dict[str, tuple[Any, Source, YPath]] = {}
    for k in ("einsum", "workload", "arch", "mapping"):
        s = load_section(data, src, k, base_dir)
        if s is not None:
            sections[k] = s
    return config_from_sections(sections, src, base_dir, ranks=ranks, sets=sets, source=str(p),
                                allow_hierarchy=allow_hierarchy)


_OVERRIDE = re.compile(r"--(rank|param) ([^\s:=]+)(?:=[^:]*)?: (.*)", re.S)


def override_error(exc: ConfigError, cli_ranks: Mapping[str, int], wsrc: Source | None = None,
                   wb: YPath = (), cli_params: Mapping[str, float] | None = None) -> ConfigError:
    """A bad rank or param override, as :mod:`einsum.load` reports it (``--rank NAME: ...``
    in the cascade's file), located where it was given: on the command line (``cli_ranks``,
    ``cli_params``: ``command line --rank NAME=SIZE: ...``) or in the workload section ``wsrc``
    at ``wb`` (``workload.ranks.NAME``, ``workload.params.NAME``). Other errors are returned
    as they are."""
    m = _OVERRIDE.fullmatch(exc.message)
    if m is None or exc.ypath:
        return exc
    kind, name, msg = m.groups()
    cli = cli_ranks if kind == "rank" else (cli_params or {})
    if name in cli:
        return ConfigError(msg, "command line", None, (f"--{kind} {name}={cli[name]}",))
    if wsrc is not None:
        return wsrc.error(wb + ("ranks" if kind == "rank" else "params", name), msg)
    return exc


def config_from_sections(sections: dict[str, tuple[Any, Source, YPath]], src: Source, base_dir: Path, *,
                         ranks: Mapping[str, int] | None = None, sets: list[str] | None = None,
                         source: str | None = None, allow_hierarchy: bool = False,
                         parallel: int | None = None) -> Config:
    """Build a Config from already-loaded sections, each ``(data, its Source, its YAML path)``.

    Used by :func:`load_config` and by callers that assemble sections from several files
    (``einarray run`` with includes, sweeps with overrides).
    """
    sections = dict(sections)
    if "arch" not in sections:
        raise src.error((), "missing the 'arch:' section (inline, a path, or a shipped name)")
    if ("einsum" in sections) == ("workload" in sections):
        raise src.error((), "give exactly one of 'einsum:' (a cascade) or 'workload:' (a library cascade and ranks)")
    apply_sets(sections, list(sets or []))
    instances = 1
    if "workload" in sections:
        w, wsrc, wb = sections["workload"]
        if not isinstance(w, dict):
            raise wsrc.error(wb, "expected {cascade: NAME, ranks: {...}, instances: N}")
        for k in w:
            if k not in ("cascade", "ranks", "params", "instances", "batch"):
                raise wsrc.error(wb + (str(k),), f"unknown key {k!r} (allowed: cascade, ranks, params, instances, batch)")
        if not isinstance(w.get("cascade"), str):
            raise wsrc.error(wb + ("cascade",), "expected the name or path of a cascade")
        wr = dict(w.get("ranks", {}) or {})
        for r, v in wr.items():
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise wsrc.error(wb + ("ranks", str(r)), f"a rank size must be a positive integer, got {v!r}")
        wr.update(ranks or {})
        cpath = base_dir / w["cascade"]
        ref = cpath if cpath.is_file() else w["cascade"]
        try:
            cdata, csrc = load_yaml(resolve_cascade(ref))
        except ConfigError as exc:
            raise wsrc.error(wb + ("cascade",), exc.message) from None
        try:
            casc = cascade_from_data(cdata.get("einsum") if isinstance(cdata, dict) else None, csrc,
                                     ("einsum",), ranks=wr, params=w.get("params"))
        except ConfigError as exc:
            if exc.file == csrc.file and exc.ypath[:2] == ("einsum", "ranks"):
                raise wsrc.error(wb + ("ranks",), exc.message) from None
            raise override_error(exc, ranks or {}, wsrc, wb) from None
        inst = w.get("instances", 1)
        if isinstance(inst, bool) or not isinstance(inst, int) or inst <= 0:
            raise wsrc.error(wb + ("instances",), f"instances must be a positive integer, got {inst!r}")
        instances = inst
        batch = w.get("batch", {}) or {}
        if not isinstance(batch, dict):
            raise wsrc.error(wb + ("batch",), f"expected batch dimensions and their sizes (for example "
                             f"{{B: 4, H: 12}}; a plain count is instances: N), got {batch!r}")
        for k, v in batch.items():
            if isinstance(v, bool) or not isinstance(v, int) or v <= 0:
                raise wsrc.error(wb + ("batch", str(k)), f"a batch size must be a positive integer, got {v!r}")
            instances *= v
    else:
        e, esrc, eb = sections["einsum"]
        try:
            casc = cascade_from_data(e, esrc, eb, ranks=ranks)
        except ConfigError as exc:
            raise override_error(exc, ranks or {}) from None
    a, asrc, ab = sections["arch"]
    if isinstance(a, dict) and "hierarchy" in a:
        if not allow_hierarchy:
            raise asrc.error(ab + ("hierarchy",), "a memory-hierarchy arch (Timeloop-style levels) is "
                             "evaluated by 'einarray simulate' (sim/nest.py), not by this command")
        from .nest_mapping import nest_config
        return nest_config(casc, a, asrc, ab, sections.get("mapping"), src, source, instances)
    arch = arch_from_data(a, asrc, ab)
    counts = op_counts(casc)
    if "mapping" in sections:
        m, msrc, mb = sections["mapping"]
    else:
        m, msrc, mb = {}, src, ("mapping",)
    mapping = mapping_from_data(m, msrc, mb, casc, arch, counts)
    par = instances if parallel is None else parallel
    if arch.cores.count > par and not (par == 1 and split_ranks(casc, arch.cores.count)):
        import warnings

        from einsum.errors import EinarrayWarning
        what = ("instance loop (batch x heads)" if parallel is None
                else "independent instances (the batch, and a block's heads in an attention core)")
        why = ("no rank of its one instance can be cut (an output rank no Einsum reduces, of at least "
               f"{arch.cores.count} elements)" if par == 1 else f"which has {par}")
        warnings.warn(str(asrc.error(ab + ("cores",), f"{arch.cores.count} cores split the {what}, {why}: "
                                     f"{arch.cores.count - par} cores stay idle")), EinarrayWarning, stacklevel=2)
    return Config(casc, arch, mapping, instances, MappingProxyType(counts), source or src.file,
                  "given" if "mapping" in sections else "default", parallel)
