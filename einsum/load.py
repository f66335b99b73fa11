"""Load and validate an ``einsum:`` section into a :class:`~einsum.cascade.Cascade`.

Every error is a :class:`~einsum.errors.ConfigError` naming the file, line and YAML
path, e.g. ``attn.yaml:9 einsum.expressions[1]: 'q' is not an index of any rank``.
"""

from __future__ import annotations

import math
import re
import warnings
from pathlib import Path
from types import MappingProxyType
from typing import Any, Mapping

from . import expr as E
from .graphs import find_cycle, lexicographical_topological_sort, strongly_connected_components
from .cascade import Cascade, Einsum, RankInfo, TensorInfo
from .errors import ConfigError, EinarrayWarning
from .memo import WarningMemo
from .indexing import (check_fibre_out, check_gather, computed_range, declared_ranges, input_decl,
                       not_index_tensor)
from .ops import ARG_REDUCTIONS, INDEX_FUNCTIONS, OPERATORS
from .parse import Namespace, ParseError, parse_expression, parse_statement
from .yamlsrc import Source, YPath, load as load_yaml, resolve_named, shipped_names

LIBRARY_DIR = Path(__file__).parent / "library"
SECTION_KEYS = {"version", "name", "description", "ranks", "partitions", "params",
                "inputs", "outputs", "expressions", "allow", "ranges"}
# einsum.allow: constructs that are almost always mistakes, accepted (with a warning) on request
ALLOWABLE = {"bias-under-sum": "a term that does not depend on a summed index, added once per "
                               "value of that index"}
_RANK_RE = re.compile(r"^[A-Z][A-Z0-9_]*$")
_IDENT_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


def library_names() -> list[str]:
    return shipped_names(LIBRARY_DIR)


def resolve(source: str | Path) -> Path:
    """A path to an existing file, or the name of a library cascade."""
    return resolve_named(source, LIBRARY_DIR, "library cascade")


#: cascades already loaded, by (path, its mtime and size, overrides); a model or a study loads
#: the same few library cascades at the same shapes hundreds of times. Cascades are frozen, so
#: sharing is safe; a reuse shows the load's warnings again (einsum.memo).
_LOADED = WarningMemo(256)


def load_cascade(source: str | Path, *, ranks: Mapping[str, int] | None = None,
                 params: Mapping[str, float] | None = None) -> Cascade:
    """Load a cascade from a YAML file (or a library name) with optional overrides (a
    file unchanged since the last load at the same overrides is not parsed again)."""
    path = resolve(source)
    try:
        st = path.stat()
        key: tuple | None = (str(path.resolve()), st.st_mtime_ns, st.st_size,
                             tuple(sorted((ranks or {}).items())), tuple(sorted((params or {}).items())))
        hash(key)
    except (OSError, TypeError):
        key = None

    def load() -> Cascade:
        data, src = load_yaml(path)
        if not isinstance(data, dict) or "einsum" not in data:
            raise src.error((), "expected a top-level 'einsum:' section")
        return cascade_from_data(data["einsum"], src, ("einsum",), ranks=ranks, params=params)

    return _LOADED.get(key, load)


# ----------------------------------------------------------------------------------
def _need(src: Source, d: Mapping[str, Any], key: str, path: YPath, typ: type | tuple,
          what: str) -> Any:
    if key not in d:
        raise src.error(path, f"missing required key {key!r} ({what})")
    v = d[key]
    if not isinstance(v, typ) or isinstance(v, bool) and typ is not bool:
        raise src.error(path + (key,), f"expected {what}, got {type(v).__name__} {v!r}")
    return v


def _eval_int(e: E.Expr, env: Mapping[str, float]) -> float:
    if isinstance(e, E.Num):
        return e.value
    if isinstance(e, (E.RankSize, E.Param)):
        return env[e.name]
    if isinstance(e, E.BinOp):
        a, b = _eval_int(e.left, env), _eval_int(e.right, env)
        if e.op in ("/", "//", "%") and b == 0:
            raise ZeroDivisionError
        fns = {"+": lambda: a + b, "-": lambda: a - b, "*": lambda: a * b, "/": lambda: a / b,
               "//": lambda: a // b, "%": lambda: a % b, "**": lambda: a ** b}
        return fns[e.op]()  # only the requested operation: a/b must not run for a*0
    if isinstance(e, E.Unary) and e.op == "-":
        return -_eval_int(e.operand, env)
    if isinstance(e, E.Call) and e.op in ("min", "max"):
        vals = [_eval_int(a, env) for a in e.args]
        return min(vals) if e.op == "min" else max(vals)
    raise ValueError(f"{e} is not an integer expression of ranks and params")


def _rank_sizes(src: Source, sec: Mapping[str, Any], base: YPath,
                overrides: Mapping[str, int], params: Mapping[str, float]
                ) -> tuple[dict[str, RankInfo], dict[str, tuple[str, str]]]:
    rsec = _need(src, sec, "ranks", base, dict, "a mapping of rank names to sizes")
    if not rsec:
        raise src.error(base + ("ranks",), "at least one rank is needed")
    psec = sec.get("partitions", {}) or {}
    if not isinstance(psec, dict):
        raise src.error(base + ("partitions",), "expected a mapping like {P: [P1, P0]}")
    for name in rsec:
        if not isinstance(name, str) or not _RANK_RE.match(name):
            raise src.error(base + ("ranks", str(name)),
                            f"rank name {name!r} must be upper case (e.g. M, P0, HP)")
        if name.lower() in params:
            raise src.error(base + ("ranks", name),
                            f"index {name.lower()!r} of rank {name} collides with a param")
    for name, v in overrides.items():
        if name not in rsec and not any(name in parts for parts in psec.values()
                                        if isinstance(parts, list)):
            raise ConfigError(f"--rank {name}: unknown rank {name!r} "
                              f"(ranks: {', '.join(rsec)})", src.file)
        if not isinstance(v, int) or isinstance(v, bool) or v < 0:
            raise ConfigError(f"--rank {name}={v!r}: the size must be an integer >= 0",
                              src.file)

    # partitions: P: [P1, P0] with p = p1 * P0 + p0
    parts: dict[str, tuple[str, str]] = {}
    part_parent: dict[str, str] = {}
    for parent, pair in psec.items():
        pp = base + ("partitions", str(parent))
        if parent not in rsec:
            raise src.error(pp, f"cannot partition unknown rank {parent!r} (ranks: {', '.join(rsec)})")
        if (not isinstance(pair, list) or len(pair) != 2
                or not all(isinstance(x, str) and _RANK_RE.match(x) for x in pair)):
            raise src.error(pp, f"expected [OUTER, INNER] rank names, e.g. [{parent}1, {parent}0]")
        if pair[0] == pair[1] or parent in pair:
            raise src.error(pp, "the two parts must be distinct new ranks")
        parts[parent] = (pair[0], pair[1])
        for x in pair:
            part_parent[x] = parent

    # sizes: ints or expressions of other ranks/params, evaluated in dependency order
    raw: dict[str, Any] = dict(rsec)
    raw.update({k: v for k, v in overrides.items()})
    ns = Namespace(frozenset(), frozenset(set(rsec) | set(part_parent)), frozenset(params),
                   frozenset(), frozenset({"min", "max"}))
    exprs: dict[str, E.Expr] = {}
    deps: dict[str, list[str]] = {}
    for name, v in raw.items():
        deps.setdefault(name, [])
        rp = base + ("ranks", name)
        if isinstance(v, bool) or not isinstance(v, (int, str)):
            raise src.error(rp, f"a rank size must be an integer >= 0 or an expression, got {v!r}")
        if isinstance(v, int):
            exprs[name] = E.Num(v)
            continue
        try:
            exprs[name] = parse_expression(v, ns)
        except ParseError as exc:
            raise src.error(rp, f"bad size expression {v!r}: {exc.message}") from None
        for n in E.walk(exprs[name]):
            if isinstance(n, E.RankSize):
                deps.setdefault(n.name, []).append(name)
            elif not isinstance(n, (E.Num, E.Param, E.BinOp, E.Unary, E.Call)):
                raise src.error(rp, f"bad size expression {v!r}: only ranks, params and numbers")
    cyc = find_cycle(deps)
    if cyc:
        raise src.error(base + ("ranks",), "rank sizes depend on each other in a cycle: "
                        + " -> ".join(a for a, _ in cyc)) from None
    seq = {n: k for k, n in enumerate(deps)}
    order = lexicographical_topological_sort(deps, key=seq.__getitem__)
    env: dict[str, float] = dict(params)
    sizes: dict[str, int] = {}

    def settle_partitions() -> None:
        for parent, (outer, inner) in parts.items():
            if parent not in sizes:
                continue
            total = sizes[parent]
            pp = base + ("partitions", parent)
            if sizes.get(inner) == 0 or (sizes.get(outer) == 0 and total):
                x = inner if sizes.get(inner) == 0 else outer
                raise src.error(pp, f"{x}=0 cannot split {parent}={total}: {x} needs a size >= 1 "
                                f"(an empty {parent} is {parent}=0)")
            # ragged when the chunk does not divide: ceil(P / P0) chunks, the last partial
            # (einsum.ragged states the semantics)
            if inner in sizes and outer not in sizes:
                sizes[outer] = -(-total // sizes[inner])
            elif outer in sizes and inner not in sizes:
                if total == 0:
                    raise src.error(pp, f"give the size of {inner} in ranks: {parent}=0 does not "
                                    "determine it")
                if sizes[outer] > total or total % sizes[outer]:
                    raise src.error(pp, f"{parent}={total} is not a multiple of {outer}={sizes[outer]}: "
                                    f"give the chunk size {inner} instead (the last chunk is then "
                                    "partial)")
                sizes[inner] = total // sizes[outer]
            elif outer in sizes and inner in sizes and sizes[outer] != -(-total // sizes[inner]):
                raise src.error(pp, f"{parent}={total} in chunks of {inner}={sizes[inner]} needs "
                                f"{outer} = ceil({total}/{sizes[inner]}) = {-(-total // sizes[inner])}, "
                                f"not {sizes[outer]}")
            env[outer] = sizes.get(outer, 0)
            env[inner] = sizes.get(inner, 0)

    for name in order:
        if name not in exprs:
            if name in part_parent:
                settle_partitions()
                if name in sizes:
                    continue
            raise src.error(base + ("ranks",), f"rank {name!r} is used in a size but not declared")
        rp = base + ("ranks", name)
        try:
            val = _eval_int(exprs[name], env)
        except KeyError as exc:
            raise src.error(rp, f"size of {name} uses {exc.args[0]!r} before it is known") from None
        except ZeroDivisionError:
            raise src.error(rp, f"size of {name} divides by zero") from None
        except ValueError as exc:
            raise src.error(rp, str(exc)) from None
        if isinstance(val, float):
            if not math.isfinite(val) or val != int(val):
                raise src.error(rp, f"size of {name} = {val} is not an integer")
            val = int(val)
        if val < 0:
            raise src.error(rp, f"size of {name} must be an integer >= 0, got {val}")
        sizes[name] = int(val)
        env[name] = int(val)
        settle_partitions()
    settle_partitions()
    for parent, (outer, inner) in parts.items():
        for x in (outer, inner):
            if x not in sizes:
                raise src.error(base + ("partitions", parent),
                                f"give the size of {inner} (or {outer}) in ranks")

    infos: dict[str, RankInfo] = {}
    for name in list(rsec) + [x for pr in parts.values() for x in pr if x not in rsec]:
        if name in infos:
            continue
        e = exprs.get(name)
        if name in part_parent:
            infos[name] = RankInfo(name, sizes[name], "part", part_parent[name], part_parent[name])
        elif isinstance(e, E.RankSize):
            infos[name] = RankInfo(name, sizes[name], "alias", e.name, e.name)
        elif isinstance(e, E.Num) or e is None:
            infos[name] = RankInfo(name, sizes[name], "base", name)
        else:
            infos[name] = RankInfo(name, sizes[name], "derived", name)
    # resolve roots of aliases transitively
    for name, info in list(infos.items()):
        root = info.root
        seen = {name}
        while root in infos and infos[root].root != root and root not in seen:
            seen.add(root)
            root = infos[root].root
        infos[name] = RankInfo(info.name, info.size, info.kind, root, info.of)
    idx_seen: dict[str, str] = {}
    for name in infos:
        if name.lower() in idx_seen:
            raise src.error(base + ("ranks", name), f"ranks {idx_seen[name.lower()]} and {name} "
                            "have the same index name")
        idx_seen[name.lower()] = name
    return infos, parts


def _params(src: Source, sec: Mapping[str, Any], base: YPath,
            overrides: Mapping[str, float]) -> dict[str, float]:
    psec = sec.get("params", {}) or {}
    if not isinstance(psec, dict):
        raise src.error(base + ("params",), "expected a mapping of param names to numbers")
    out: dict[str, float] = {}
    for k, v in psec.items():
        pp = base + ("params", str(k))
        # a param may share an operator's name: ``topk`` is the param, ``topk(..)`` the call
        if not isinstance(k, str) or not _IDENT_RE.match(k) or k == "inf":
            raise src.error(pp, f"bad param name {k!r}")
        if isinstance(v, bool) or not isinstance(v, (int, float)):
            raise src.error(pp, f"param {k} must be a number, got {v!r}")
        out[k] = v
    for k, v in overrides.items():
        if k not in out:
            raise ConfigError(f"--param {k}: unknown param {k!r} "
                              f"(params: {', '.join(out) or 'none'})", src.file)
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not math.isfinite(v):
            raise ConfigError(f"--param {k}={v!r}: must be a finite number", src.file)
        out[k] = v
    return out


def _lhs_kind(stmt: E.Statement) -> tuple[str, str | None, int | None]:
    """('plain'|'init'|'update', iteration variable, iterative dim)."""
    kind, var, dim = "plain", None, None
    if stmt.accumulate:
        if not E.gathers(stmt.lhs):
            raise ParseError("'+=' scatters through an index tensor: its left side needs one, e.g. "
                             "Y[IDX[t, k], d] += ...")
        for s in stmt.lhs.subscripts:
            if not isinstance(s, (E.Index, E.Access)):
                raise ParseError(f"left-side subscript {s} of a scatter must be an index or an index "
                                 "tensor access")
        return kind, var, dim
    for d, s in enumerate(stmt.lhs.subscripts):
        if isinstance(s, E.Index):
            continue
        if isinstance(s, E.Access):
            raise ParseError(f"writing through the index tensor {s.tensor} accumulates: write "
                             f"'{stmt.lhs} += ...' (rows never written hold 0)")
        if (isinstance(s, E.BinOp) and s.op == "+" and isinstance(s.left, E.Index)
                and isinstance(s.right, E.Num) and s.right.value == 1):
            if kind != "plain":
                raise ParseError("at most one '+1' or constant subscript on the left side")
            kind, var, dim = "update", s.left.name, d
        elif isinstance(s, E.Num) and isinstance(s.value, int) and s.value == 0:
            if kind != "plain":
                raise ParseError("at most one '+1' or constant subscript on the left side")
            kind, dim = "init", d
        else:
            raise ParseError(f"left-side subscript {s} must be an index, 'index+1' (a recurrence) "
                             "or 0 (its initial value)")
    return kind, var, dim


def cascade_from_data(sec: Any, src: Source, base: YPath = ("einsum",), *,
                      ranks: Mapping[str, int] | None = None,
                      params: Mapping[str, float] | None = None) -> Cascade:
    if not isinstance(sec, dict):
        raise src.error(base, "expected a mapping with version, name, ranks, inputs, outputs, expressions")
    for k in sec:
        if k not in SECTION_KEYS:
            raise src.error(base + (str(k),), f"unknown key {k!r} (allowed: {', '.join(sorted(SECTION_KEYS))})")
    version = _need(src, sec, "version", base, int, "the format version, 1")
    if version != 1:
        raise src.error(base + ("version",), f"unsupported version {version} (this einarray reads 1)")
    name = _need(src, sec, "name", base, str, "a name string")
    description = sec.get("description", "") or ""
    pvals = _params(src, sec, base, params or {})
    rinfo, parts = _rank_sizes(src, sec, base, ranks or {}, pvals)
    sizes = {r: i.size for r, i in rinfo.items()}
    idx_rank = {i.index: r for r, i in rinfo.items()}

    # inputs
    isec = _need(src, sec, "inputs", base, dict, "a mapping of input tensors to their ranks")
    tensors: dict[str, TensorInfo] = {}
    reserved = set(OPERATORS) | set(rinfo) | set(pvals) | set(idx_rank) | {"inf"}
    for t, rl in isec.items():
        ip = base + ("inputs", str(t))
        if not isinstance(t, str) or not _IDENT_RE.match(t):
            raise src.error(ip, f"bad tensor name {t!r}")
        if t in reserved:
            raise src.error(ip, f"tensor name {t!r} collides with a rank, index, param or operator")
        rl, vrange = input_decl(src, ip, rl, rinfo)
        for j, r in enumerate(rl):
            if r not in rinfo:
                raise src.error(ip + (j,), f"unknown rank {r!r} (ranks: {', '.join(rinfo)})")
        tensors[t] = TensorInfo(t, tuple(rl), tuple(sizes[r] for r in rl), "input",
                                value_range=vrange)
    outs = _need(src, sec, "outputs", base, list, "a list of output tensor names")
    exprs = _need(src, sec, "expressions", base, list, "a list of Einsum strings")
    if not exprs:
        raise src.error(base + ("expressions",), "at least one Einsum is needed")

    # pre-scan left sides for tensor names
    defined: dict[str, list[int]] = {}
    for i, text in enumerate(exprs):
        xp = base + ("expressions", i)
        if not isinstance(text, str):
            raise src.error(xp, f"an Einsum must be a string, got {type(text).__name__}")
        m = re.match(r"^\s*([A-Za-z_]\w*)\s*\[", text)
        if not m:
            raise src.error(xp, "expected 'TENSOR[indices] = expression'")
        t = m.group(1)
        if t in tensors:
            raise src.error(xp, f"{t} is an input and cannot be assigned")
        if t in reserved:
            raise src.error(xp, f"tensor name {t!r} collides with a rank, index, param or operator")
        defined.setdefault(t, []).append(i)
    ns = Namespace(frozenset(idx_rank), frozenset(rinfo), frozenset(pvals),
                   frozenset(tensors) | frozenset(defined), frozenset(OPERATORS))
    stmts: list[E.Statement] = []
    kinds: list[tuple[str, str | None, int | None]] = []
    for i, text in enumerate(exprs):
        xp = base + ("expressions", i)
        try:
            st = parse_statement(text, ns)
            kinds.append(_lhs_kind(st))
        except ParseError as exc:
            raise src.error(xp, exc.message + _caret(text, exc.col)) from None
        stmts.append(st)

    declared = declared_ranges(src, sec, base, rinfo, defined, tensors)
    # intermediate tensor shapes from their definitions
    for t, where in defined.items():
        defs = [(i, stmts[i], kinds[i]) for i in where]
        ks = sorted(k[0] for _, _, k in defs)
        xp = base + ("expressions", where[-1])
        if ks not in (["plain"], ["init", "update"]):
            raise src.error(xp, f"tensor {t} is defined {len(defs)} times; a tensor has one "
                            "definition, or an initial value (index 0) and a recurrence (index+1)")
        main = [d for d in defs if d[2][0] != "init"][0]
        i, st, (kind, var, dim) = main
        rl: list[str] = []
        shape: list[int] = []
        seen_idx: set[str] = set()
        for d, s in enumerate(st.lhs.subscripts):
            if isinstance(s, E.Access):  # a scatter: the dimension is the index tensor's range
                src_info = tensors.get(s.tensor)
                if src_info is None or src_info.value_range is None:
                    raise src.error(base + ("expressions", i), not_index_tensor(s.tensor, tensors))
                rl.append(src_info.value_range)
                shape.append(sizes[src_info.value_range])
                continue
            ix = s.name if isinstance(s, E.Index) else s.left.name  # type: ignore[union-attr]
            if ix in seen_idx:
                raise src.error(base + ("expressions", i), f"index {ix!r} appears twice on the left side")
            seen_idx.add(ix)
            rl.append(idx_rank[ix])
            shape.append(sizes[idx_rank[ix]] + (1 if d == dim else 0))
        if kind == "update":
            init = [d for d in defs if d[2][0] == "init"][0]
            ii, ist, (_, _, idim) = init
            ip = base + ("expressions", ii)
            if idim != dim or len(ist.lhs.subscripts) != len(rl):
                raise src.error(ip, f"the initial value of {t} must have the same subscripts as its "
                                f"recurrence with 0 in place of {var}+1")
            for d, s in enumerate(ist.lhs.subscripts):
                if d != dim and (not isinstance(s, E.Index) or idx_rank[s.name] != rl[d]):
                    raise src.error(ip, f"subscript {d} of {t}'s initial value must be an index of rank {rl[d]}")
        kindname = "output" if t in outs else "intermediate"
        vr = computed_range(st, tensors, idx_rank)
        if t in declared:
            if vr is not None and vr != declared[t]:
                raise src.error(base + ("ranges", t), f"{t} holds positions in {vr} (computed by "
                                f"expression {i}), not in {declared[t]}")
            vr = declared[t]
        tensors[t] = TensorInfo(t, tuple(rl), tuple(shape), kindname,  # type: ignore[arg-type]
                                dim if kind == "update" else None,
                                value_range=vr, range_declared=t in declared)
    for j, o in enumerate(outs):
        if not isinstance(o, str) or o not in tensors:
            raise src.error(base + ("outputs", j), f"output {o!r} is never defined")
        if tensors[o].kind == "input":
            raise src.error(base + ("outputs", j), f"output {o!r} is an input")

    recur_var = {t: idx_rank_var for t, idx_rank_var in
                 ((t, kinds[w[-1]][1]) for t, w in defined.items()) if idx_rank_var}
    for t, w in defined.items():
        for i in w:
            if kinds[i][0] == "update":
                recur_var[t] = kinds[i][1]  # type: ignore[assignment]

    einsums: list[Einsum] = []
    for i, st in enumerate(stmts):
        xp = base + ("expressions", i)
        try:
            einsums.append(_make_einsum(i, st, kinds[i], tensors, rinfo, idx_rank, recur_var))
        except ParseError as exc:
            raise src.error(xp, exc.message) from None

    # every input and intermediate is used
    read = {t for e in einsums for t in e.reads}
    for t, info in tensors.items():
        if t not in read and t not in outs:
            if info.kind == "input":
                raise src.error(base + ("inputs", t), f"input {t} is never read")
            raise src.error(base + ("expressions", defined[t][0]),
                            f"{t} is computed but never read and is not an output")

    casc = Cascade(name=name, ranks=MappingProxyType(rinfo), params=MappingProxyType(pvals),
                   inputs=tuple(isec), outputs=tuple(outs), tensors=MappingProxyType(tensors),
                   einsums=tuple(einsums), description=str(description), source=src.file,
                   partitions=MappingProxyType(parts))
    _check_cycles(casc, src, base)
    _check_bias_under_sum(casc, src, base, _allowed(src, sec, base))
    return casc


def _allowed(src: Source, sec: Mapping[str, Any], base: YPath) -> frozenset[str]:
    allow = sec.get("allow", []) or []
    if not isinstance(allow, list):
        raise src.error(base + ("allow",), f"expected a list of names, e.g. [bias-under-sum] "
                        f"(allowed: {', '.join(sorted(ALLOWABLE))})")
    for j, a in enumerate(allow):
        if a not in ALLOWABLE:
            raise src.error(base + ("allow", j), f"unknown name {a!r} (allowed: "
                            + "; ".join(f"{k}: {v}" for k, v in sorted(ALLOWABLE.items())) + ")")
    return frozenset(allow)


def _check_bias_under_sum(c: Cascade, src: Source, base: YPath, allowed: frozenset[str]) -> None:
    """A sum whose right side adds a term independent of a summed index adds that term once
    per value of the index (``S[m,p] = Q[m,e]*K[p,e] - slope*(m-p)`` subtracts the bias E
    times): an error unless ``allow: [bias-under-sum]``, then a warning."""
    for e in c.einsums:
        if e.reduce_op != "sum":
            continue
        terms = E.additive_terms(e.stmt.rhs)
        if len(terms) < 2:
            continue  # one term uses every reduced index (they come from the right side)
        for term in terms:
            missing = [ix for ix in e.reduced if ix not in E.indices_in(term)]
            if not missing:
                continue
            times = " x ".join(f"{c.rank_of_index(ix).name} = {c.index_size(ix)}" for ix in missing)
            msg = (f"the term {_show(term)} does not depend on the summed "
                   f"ind{'ices' if len(missing) > 1 else 'ex'} {', '.join(missing)}, so the sum adds it "
                   f"{times} times")
            xp = base + ("expressions", e.position)
            if "bias-under-sum" in allowed:
                warnings.warn(str(src.error(xp, msg + " (allowed by einsum.allow: [bias-under-sum])")),
                              EinarrayWarning, stacklevel=2)
                continue
            lhs = ", ".join(e.lhs_indices)
            raise src.error(xp, msg + f"; compute the sum in its own Einsum (T[{lhs}] = the terms "
                            f"that use {', '.join(missing)}) and add the term in a second one, or "
                            "write 'allow: [bias-under-sum]' in the einsum section if it is meant")


def _show(x: E.Expr) -> str:
    s = str(x)
    return s[1:-1] if s.startswith("(") and s.endswith(")") else s


def _caret(text: str, col: int | None) -> str:
    if col is None:
        return ""
    col = max(0, min(col, len(text)))
    near = text[col:col + 12].strip() or "end"
    return f" (at column {col + 1}: {near!r})"


def _index_expr_ok(e: E.Expr) -> str | None:
    for n in E.walk(e):
        if isinstance(n, E.Access):
            return (f"an index tensor access ({n}) must be the whole subscript (a gather "
                    "K[IDX[g, j], e]), not part of an expression")
        if isinstance(n, E.Call) and n.op not in INDEX_FUNCTIONS:
            return f"operator {n.op} is not allowed in a subscript (allowed: {', '.join(sorted(INDEX_FUNCTIONS))})"
        if isinstance(n, (E.Compare, E.BoolOp)) or isinstance(n, E.Unary) and n.op == "not":
            return f"a condition ({n}) is not a subscript"
        if isinstance(n, E.BinOp) and n.op in ("/", "**"):
            return f"use // for integer division in subscripts (got {n})"
    return None


def _make_einsum(pos: int, st: E.Statement, kind: tuple[str, str | None, int | None],
                 tensors: Mapping[str, TensorInfo], rinfo: Mapping[str, RankInfo],
                 idx_rank: Mapping[str, str], recur_var: Mapping[str, str]) -> Einsum:
    k, var, dim = kind
    out = st.lhs.tensor
    lhs_idx: list[str] = []
    for d, s in enumerate(st.lhs.subscripts):
        if isinstance(s, E.Index):
            lhs_idx.append(s.name)
        elif isinstance(s, E.BinOp):
            lhs_idx.append(s.left.name)  # type: ignore[union-attr]
        elif isinstance(s, E.Access):  # a scatter: iterates the index tensor's indices
            check_gather(st.lhs, d, s, tensors, rinfo)
            for sub in s.subscripts:
                if not isinstance(sub, E.Index):
                    raise ParseError(f"{st.lhs}: the scatter index {s} needs plain indices")
                if sub.name in lhs_idx:
                    raise ParseError(f"{st.lhs}: index {sub.name!r} appears twice on the left side")
                lhs_idx.append(sub.name)
    fibre_out = None
    for call in (n for n in E.walk(st.rhs) if isinstance(n, E.Call)):
        op_name, nargs = call.op, len(call.args)
        want = OPERATORS[op_name].arity
        if nargs != want:
            raise ParseError(f"{op_name}() takes {want} argument{'s' * (want != 1)}, got {nargs}")
        if OPERATORS[op_name].fibre_out:
            fibre_out = check_fibre_out(st, call, lhs_idx, rinfo, idx_rank)
        if OPERATORS[op_name].fibre:
            ax = call.args[-1]
            if not isinstance(ax, E.Index) or ax.name not in lhs_idx or ax.name == var:
                raise ParseError(f"{op_name}(x, i): i must be an index kept on the left side "
                                 f"(the fibre it normalises), got {ax}")
    reads: list[str] = []
    carried: set[str] = set()
    fresh: set[str] = set()
    iterated = {rinfo[idx_rank[ix]].root for ix in lhs_idx + E.indices_in(st.rhs)}
    # the right side's accesses (gathers' index tensors included) and a scatter's index tensors
    for acc in E.accesses_in(st.rhs) + [g for _, g in E.gathers(st.lhs)]:
        info = tensors[acc.tensor]
        if len(acc.subscripts) != len(info.shape):
            raise ParseError(f"{acc.tensor} has {len(info.shape)} subscript"
                             f"{'s' * (len(info.shape) != 1)} ({', '.join(info.ranks)}), got "
                             f"{len(acc.subscripts)} in {acc}")
        for d, s in enumerate(acc.subscripts):
            if isinstance(s, E.Access):
                check_gather(acc, d, s, tensors, rinfo)
                continue
            bad = _index_expr_ok(s)
            if bad:
                raise ParseError(f"{acc}: {bad}")
            if isinstance(s, E.Index):
                r = idx_rank[s.name]
                want_r = info.ranks[d]
                # an index of another rank is an integer subscript like any index expression,
                # except where the Einsum also iterates the dimension's rank: swapped indices
                if rinfo[r].root != rinfo[want_r].root and rinfo[want_r].root in iterated:
                    raise ParseError(f"rank mismatch in {acc}: subscript {d} of {acc.tensor} is rank "
                                     f"{want_r}, but {s.name!r} is an index of rank {r} (this Einsum "
                                     f"also iterates {rinfo[want_r].root}: swapped indices? An index "
                                     f"of another rank may subscript {want_r} where {rinfo[want_r].root} "
                                     "is not iterated)")
                if rinfo[r].size > info.shape[d]:
                    raise ParseError(f"shape mismatch in {acc}: {s.name!r} runs to {rinfo[r].size} "
                                     f"but dimension {d} of {acc.tensor} has size {info.shape[d]}")
                if info.iterative_dim == d and acc.tensor in recur_var and s.name == recur_var[acc.tensor]:
                    carried.add(acc.tensor)
            if info.iterative_dim == d and acc.tensor in recur_var and not (
                    isinstance(s, E.Index) and s.name == recur_var[acc.tensor]):
                fresh.add(acc.tensor)  # also read after the update: an ordinary dependency
        if acc.tensor not in reads:
            reads.append(acc.tensor)
    rhs_idx = E.indices_in(st.rhs)
    flt_idx = E.indices_in(st.filter) if st.filter is not None else []
    space = list(dict.fromkeys(lhs_idx + rhs_idx))
    for ix in flt_idx:
        if ix not in space:
            raise ParseError(f"the 'where' filter names index {ix!r}, which this Einsum does not "
                             f"iterate (its indices: {', '.join(space)})")
    if st.filter is not None:
        for n in E.walk(st.filter):
            if isinstance(n, E.Access):
                raise ParseError("a 'where' filter may use indices, ranks and params, not tensors "
                                 "(use where(cond, a, b) for data-dependent selection)")
    reduced = [ix for ix in space if ix not in lhs_idx]
    if st.reduce_op is not None:
        if set(st.reduce_indices) != set(reduced):
            extra = [r for r in st.reduce_indices if r not in reduced]
            if extra:
                raise ParseError(f"{st.reduce_op}({', '.join(st.reduce_indices)}): {extra[0]!r} is not "
                                 f"reduced here (it is on the left side or unused)")
            raise ParseError(f"{st.reduce_op}({', '.join(st.reduce_indices)}) must list every reduced "
                             f"index: {', '.join(reduced)}")
        red_op = st.reduce_op
        if red_op in ARG_REDUCTIONS and len(reduced) != 1:
            raise ParseError(f"{red_op}() gives a position along one index, got "
                             f"{red_op}({', '.join(st.reduce_indices)})")
    else:
        red_op = "sum" if reduced else None
    if fibre_out is not None:
        if reduced != [fibre_out[1]]:
            raise ParseError(f"{fibre_out[0]}(x, {fibre_out[1]}, {fibre_out[2]}) replaces "
                             f"{fibre_out[1]} by {fibre_out[2]}; this Einsum would also reduce "
                             f"{', '.join(r for r in reduced if r != fibre_out[1])}")
        red_op = None
    if k == "update" and var in reduced:
        raise ParseError(f"the recurrence variable {var} cannot be reduced")
    return Einsum(name=f"{out}.init" if k == "init" else out, position=pos, stmt=st, output=out,
                  kind=k, iter_indices=tuple(space), lhs_indices=tuple(lhs_idx),  # type: ignore[arg-type]
                  reduced=tuple(reduced), reduce_op=red_op, reads=tuple(reads),  # type: ignore[arg-type]
                  iter_var=var, carried=frozenset(carried - fresh), fibre_out=fibre_out,
                  scatter=st.accumulate)


def _check_cycles(c: Cascade, src: Source, base: YPath) -> None:
    cyc = find_cycle(c.dependencies(with_carried=False))
    if cyc:
        names = [a for a, _ in cyc] + [cyc[-1][1]]
        first = c.einsum(names[0]).position
        raise src.error(base + ("expressions", first), "cycle between Einsums: " + " -> ".join(names)
                        + " (only recurrences over an iterative index, T[.., i+1] = f(T[.., i]), may loop)")
    full = c.dependencies(with_carried=True)
    for comp in strongly_connected_components(full):
        members = [c.einsum(n) for n in comp]
        loops = len(comp) > 1 or next(iter(comp)) in full[next(iter(comp))]
        if not loops:
            continue
        vars_ = {e.iter_var for e in members if e.kind == "update"}
        if len(vars_) != 1:
            raise src.error(base + ("expressions", min(e.position for e in members)),
                            "a recurrence must run over exactly one iterative index; found "
                            + (", ".join(sorted(v for v in vars_ if v)) or "none"))
        v = vars_.pop()
        for e in members:
            if v not in e.lhs_indices:
                raise src.error(base + ("expressions", e.position),
                                f"{e.name} is part of the recurrence over {v} and must keep {v} "
                                "on its left side")
