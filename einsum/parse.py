"""Parser for Einsum statements.

Grammar (a statement is one string of the ``expressions`` list)::

    statement := access ('=' | '+=') [reduce] expr ['where' cond]
    reduce    := ('sum' | 'max' | 'min' | 'argmax' | 'argmin') '(' index {',' index} ')'
    access    := NAME '[' subscript {',' subscript} ']'
    subscript := integer index expression | access     (an access: a gather / scatter)

``expr`` and ``cond`` use Python expression syntax (parsed with the standard
library's :mod:`ast`): ``+ - * / // % **``, comparisons, ``and``/``or``/``not``,
calls of map operators, tensor accesses ``T[i, j]``, numbers and ``inf``. ``+=``
marks a scatter-accumulate (its left side writes through an index tensor). A bare
lower-case name is an index variable, an upper-case name that is a rank is that
rank's size, and other names are params. The caller supplies the namespace.
"""

from __future__ import annotations

import ast
import re
from dataclasses import dataclass

from . import expr as E


class ParseError(Exception):
    """A statement that does not parse; ``col`` is a 0-based column or None."""

    def __init__(self, message: str, col: int | None = None):
        super().__init__(message)
        self.message = message
        self.col = col


@dataclass(frozen=True)
class Namespace:
    indices: frozenset[str]
    ranks: frozenset[str]
    params: frozenset[str]
    tensors: frozenset[str]
    functions: frozenset[str]


_REDUCE_RE = re.compile(r"^\s*(sum|max|min|argmax|argmin)\s*\(\s*([A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*)\s*\)\s+(?=\S)")
_REDUCE_ONLY = re.compile(r"^\s*(sum|max|min|argmax|argmin)\s*\(\s*[A-Za-z_]\w*(?:\s*,\s*[A-Za-z_]\w*)*\s*\)\s*$")
_BINOP_START = re.compile(r"^\s*(\*\*|//|[-+*/%<>=!]|and\b|or\b|if\b)")


def _split_assign(text: str) -> tuple[str, str, int, bool]:
    """Split at the first top-level '=' that is not part of ==, <=, >=, !=; the flag
    says the assignment was ``+=`` (a scatter-accumulate)."""
    depth = 0
    for i, ch in enumerate(text):
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
        elif ch == "=" and depth == 0:
            prev = text[i - 1] if i > 0 else ""
            nxt = text[i + 1] if i + 1 < len(text) else ""
            if prev in "<>=!" or nxt == "=":
                continue
            if prev == "+":
                return text[:i - 1], text[i + 1:], i + 1, True
            return text[:i], text[i + 1 :], i + 1, False
    raise ParseError("expected 'TENSOR[indices] = expression'", None)


def _split_where(text: str) -> tuple[str, str | None, int]:
    """Split off a top-level ``where COND`` filter.

    ``where`` is the filter keyword when it follows a complete operand (a name,
    number, ``]`` or ``)``); after an operator, at the start or right after a
    reduction prefix (``min(nb) where(c, a, b)``) it is the ``where(cond, a, b)``
    map operator.
    """
    depth = 0
    for m in re.finditer(r"[()\[\]{}]|\bwhere\b", text):
        tok = m.group(0)
        if tok in "([{":
            depth += 1
        elif tok in ")]}":
            depth -= 1
        elif depth == 0:
            before = text[: m.start()].rstrip()
            if _REDUCE_ONLY.match(before) and _is_call(text[m.end():]):
                continue
            if before and (before[-1].isalnum() or before[-1] in "_])."):
                return text[: m.start()], text[m.end():], m.end()
    return text, None, 0


def _is_call(rest: str) -> bool:
    """``rest`` starts with a parenthesised argument list of two or more arguments."""
    rest = rest.lstrip()
    if not rest.startswith("("):
        return False
    depth = 0
    for ch in rest:
        if ch in "([{":
            depth += 1
        elif ch in ")]}":
            depth -= 1
            if depth == 0:
                return False
        elif ch == "," and depth == 1:
            return True
    return False


class _Converter:
    def __init__(self, ns: Namespace, offset: int):
        self.ns = ns
        self.offset = offset

    def err(self, node: ast.AST, msg: str) -> ParseError:
        col = getattr(node, "col_offset", None)
        return ParseError(msg, None if col is None else col + self.offset)

    def name(self, node: ast.Name, *, in_subscript: bool) -> E.Expr:
        n = node.id
        ns = self.ns
        if n in ns.indices:
            return E.Index(n)
        if n in ns.ranks:
            return E.RankSize(n)
        if n in ns.params:
            return E.Param(n)
        if n == "inf":
            return E.Num(float("inf"))
        if n in ns.tensors:
            raise self.err(node, f"tensor {n!r} needs subscripts, e.g. {n}[...]")
        if n in ns.functions:
            raise self.err(node, f"operator {n!r} must be called, e.g. {n}(x)")
        if n.islower():
            raise self.err(node, f"{n!r} is not an index of any rank "
                                 f"(indices: {', '.join(sorted(ns.indices))})")
        raise self.err(node, f"unknown name {n!r}: not a rank, param, index or tensor")

    def conv(self, node: ast.AST, *, in_subscript: bool = False) -> E.Expr:
        if isinstance(node, ast.Constant):
            if isinstance(node.value, bool) or not isinstance(node.value, (int, float)):
                raise self.err(node, f"unsupported constant {node.value!r}")
            return E.Num(node.value)
        if isinstance(node, ast.Name):
            return self.name(node, in_subscript=in_subscript)
        if isinstance(node, ast.Subscript):
            if not isinstance(node.value, ast.Name):
                raise self.err(node, "only a tensor name can be subscripted")
            tname = node.value.id
            if tname not in self.ns.tensors:
                raise self.err(node, f"unknown tensor {tname!r} "
                                     f"(tensors: {', '.join(sorted(self.ns.tensors))})")
            sl = node.slice
            items = sl.elts if isinstance(sl, ast.Tuple) else [sl]
            if any(isinstance(s, ast.Slice) for s in items):
                raise self.err(node, "slices are not allowed in subscripts; use index variables")
            subs = tuple(self.conv(s, in_subscript=True) for s in items)
            return E.Access(tname, subs)
        if isinstance(node, ast.BinOp):
            ops = {ast.Add: "+", ast.Sub: "-", ast.Mult: "*", ast.Div: "/",
                   ast.FloorDiv: "//", ast.Mod: "%", ast.Pow: "**"}
            op = ops.get(type(node.op))
            if op is None:
                raise self.err(node, f"unsupported operator {type(node.op).__name__}")
            return E.BinOp(op, self.conv(node.left, in_subscript=in_subscript),
                           self.conv(node.right, in_subscript=in_subscript))
        if isinstance(node, ast.UnaryOp):
            inner = self.conv(node.operand, in_subscript=in_subscript)
            if isinstance(node.op, ast.USub):
                if isinstance(inner, E.Num):
                    return E.Num(-inner.value)
                return E.Unary("-", inner)
            if isinstance(node.op, ast.UAdd):
                return inner
            if isinstance(node.op, ast.Not):
                return E.Unary("not", inner)
            raise self.err(node, "unsupported unary operator")
        if isinstance(node, ast.Compare):
            ops = {ast.Lt: "<", ast.LtE: "<=", ast.Gt: ">", ast.GtE: ">=",
                   ast.Eq: "==", ast.NotEq: "!="}
            parts: list[E.Expr] = []
            left = self.conv(node.left, in_subscript=in_subscript)
            for opnode, comp in zip(node.ops, node.comparators):
                op = ops.get(type(opnode))
                if op is None:
                    raise self.err(node, f"unsupported comparison {type(opnode).__name__}")
                right = self.conv(comp, in_subscript=in_subscript)
                parts.append(E.Compare(op, left, right))
                left = right
            return parts[0] if len(parts) == 1 else E.BoolOp("and", tuple(parts))
        if isinstance(node, ast.BoolOp):
            op = "and" if isinstance(node.op, ast.And) else "or"
            return E.BoolOp(op, tuple(self.conv(v, in_subscript=in_subscript) for v in node.values))
        if isinstance(node, ast.Call):
            if not isinstance(node.func, ast.Name):
                raise self.err(node, "only named operators can be called")
            fname = node.func.id
            if node.keywords:
                raise self.err(node, f"{fname}(): keyword arguments are not supported")
            if fname not in self.ns.functions:
                raise self.err(node, f"undefined operator {fname!r} "
                                     f"(operators: {', '.join(sorted(self.ns.functions))})")
            return E.Call(fname, tuple(self.conv(a, in_subscript=in_subscript) for a in node.args))
        if isinstance(node, ast.IfExp):
            raise self.err(node, "use where(cond, a, b) instead of 'a if cond else b'")
        raise self.err(node, f"unsupported syntax: {type(node).__name__}")


def _parse_py(text: str, offset: int) -> ast.AST:
    try:
        tree = ast.parse(text.strip(), mode="eval")
    except SyntaxError as exc:
        col = None if exc.offset is None else exc.offset - 1 + offset + (len(text) - len(text.lstrip()))
        raise ParseError(f"syntax error: {exc.msg}", col) from None
    return tree.body


def parse_expression(text: str, ns: Namespace) -> E.Expr:
    """Parse a free-standing expression (rank sizes, index expressions)."""
    return _Converter(ns, 0).conv(_parse_py(text, 0))


def parse_statement(text: str, ns: Namespace) -> E.Statement:
    """Parse one Einsum statement string against the namespace ``ns``."""
    if not isinstance(text, str) or not text.strip():
        raise ParseError("an Einsum must be a non-empty string")
    lhs_text, rhs_text, rhs_off, accumulate = _split_assign(text)
    lhs_node = _parse_py(lhs_text, 0)
    lhs_ns = Namespace(ns.indices, ns.ranks, ns.params, ns.tensors | {_lhs_name(lhs_node)},
                       ns.functions)
    lhs = _Converter(lhs_ns, 0).conv(lhs_node)
    if not isinstance(lhs, E.Access):
        raise ParseError("the left side must be a tensor access like T[m, p]", 0)

    body, cond, cond_off = _split_where(rhs_text)
    reduce_op = None
    reduce_idx: tuple[str, ...] = ()
    m = _REDUCE_RE.match(body)
    if m and not _BINOP_START.match(body[m.end():]):
        reduce_op = m.group(1)
        reduce_idx = tuple(s.strip() for s in m.group(2).split(","))
        for r in reduce_idx:
            if r not in ns.indices:
                raise ParseError(f"{reduce_op}({r}): {r!r} is not an index "
                                 f"(indices: {', '.join(sorted(ns.indices))})", rhs_off + m.start(2))
        body_off = rhs_off + m.end()
        body = body[m.end():]
    else:
        body_off = rhs_off
    conv = _Converter(ns, body_off)
    rhs = conv.conv(_parse_py(body, body_off))
    flt = None
    if cond is not None:
        if not cond.strip():
            raise ParseError("'where' needs a condition", rhs_off + cond_off)
        flt = _Converter(ns, rhs_off + cond_off).conv(_parse_py(cond, rhs_off + cond_off))
    return E.Statement(lhs=lhs, rhs=rhs, reduce_op=reduce_op, reduce_indices=reduce_idx,
                       filter=flt, text=text.strip(), accumulate=accumulate)


def _lhs_name(node: ast.AST) -> str:
    if isinstance(node, ast.Subscript) and isinstance(node.value, ast.Name):
        return node.value.id
    raise ParseError("the left side must be a tensor access like T[m, p]", 0)
