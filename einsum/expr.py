"""Expression trees of the Einsum language (core types; no parsing here).

A statement ``QK[m,p] = Q[m,e] * K[p,e] * scale`` is a :class:`Statement` whose
left side is an :class:`Access` and whose right side is a tree of the node types
below. Index expressions in subscripts use the same node types (restricted to
integer arithmetic of :class:`Index`, :class:`RankSize`, :class:`Param`,
:class:`Num` and ``min``/``max``/``clamp``), or are one :class:`Access` of an
index tensor (a gather ``K[IDX[g, j], e]``, or on the left of ``+=`` a scatter).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Iterator, Union


@dataclass(frozen=True)
class Num:
    value: float | int

    def __str__(self) -> str:
        v = self.value
        if isinstance(v, float) and v == float("inf"):
            return "inf"
        if isinstance(v, float) and v == float("-inf"):
            return "-inf"
        return repr(v)


@dataclass(frozen=True)
class Index:
    """An index variable used as a value or in a subscript (``m``, ``p1``)."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Param:
    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class RankSize:
    """The size of a rank used as a value (``P1`` in ``RD[m, P1]``)."""

    name: str

    def __str__(self) -> str:
        return self.name


@dataclass(frozen=True)
class Access:
    tensor: str
    subscripts: tuple["Expr", ...]

    def __str__(self) -> str:
        return f"{self.tensor}[{', '.join(map(str, self.subscripts))}]"


@dataclass(frozen=True)
class Call:
    op: str
    args: tuple["Expr", ...]

    def __str__(self) -> str:
        return f"{self.op}({', '.join(map(str, self.args))})"


@dataclass(frozen=True)
class BinOp:
    op: str  # + - * / // % **
    left: "Expr"
    right: "Expr"

    def __str__(self) -> str:
        return f"({self.left} {self.op} {self.right})"


@dataclass(frozen=True)
class Unary:
    op: str  # '-' or 'not'
    operand: "Expr"

    def __str__(self) -> str:
        return f"-{self.operand}" if self.op == "-" else f"not {self.operand}"


@dataclass(frozen=True)
class Compare:
    op: str  # < <= > >= == !=
    left: "Expr"
    right: "Expr"

    def __str__(self) -> str:
        return f"({self.left} {self.op} {self.right})"


@dataclass(frozen=True)
class BoolOp:
    op: str  # 'and' | 'or'
    values: tuple["Expr", ...]

    def __str__(self) -> str:
        return "(" + f" {self.op} ".join(map(str, self.values)) + ")"


Expr = Union[Num, Index, Param, RankSize, Access, Call, BinOp, Unary, Compare, BoolOp]


@dataclass(frozen=True)
class Statement:
    """One Einsum: ``lhs = [reduce_op(reduce_indices)] rhs [where filter]``."""

    lhs: Access
    rhs: Expr
    reduce_op: str | None = None  # 'sum' | 'max' | 'min' | 'argmax' | 'argmin' or None (sum)
    reduce_indices: tuple[str, ...] = ()
    filter: Expr | None = None
    text: str = ""
    accumulate: bool = False  # ``lhs += rhs``: a scatter-accumulate through an index tensor

    def __str__(self) -> str:
        red = f"{self.reduce_op}({', '.join(self.reduce_indices)}) " if self.reduce_op else ""
        flt = f" where {self.filter}" if self.filter is not None else ""
        return f"{self.lhs} {'+=' if self.accumulate else '='} {red}{self.rhs}{flt}"


def children(e: Expr) -> tuple[Expr, ...]:
    if isinstance(e, Access):
        return e.subscripts
    if isinstance(e, Call):
        return e.args
    if isinstance(e, BinOp) or isinstance(e, Compare):
        return (e.left, e.right)
    if isinstance(e, Unary):
        return (e.operand,)
    if isinstance(e, BoolOp):
        return e.values
    return ()


def walk(e: Expr) -> Iterator[Expr]:
    """Pre-order traversal of an expression, including subscripts."""
    yield e
    for c in children(e):
        yield from walk(c)


def indices_in(e: Expr) -> list[str]:
    """Index variables used anywhere in ``e``, in first-appearance order."""
    seen: dict[str, None] = {}
    for n in walk(e):
        if isinstance(n, Index):
            seen.setdefault(n.name)
    return list(seen)


def accesses_in(e: Expr) -> list[Access]:
    return [n for n in walk(e) if isinstance(n, Access)]


def additive_terms(e: Expr) -> list[Expr]:
    """The terms of a top-level sum or difference (``a - b + c`` -> a, b, c; a sign
    flip ``-(a + b)`` is looked through); any other expression is one term."""
    if isinstance(e, BinOp) and e.op in ("+", "-"):
        return additive_terms(e.left) + additive_terms(e.right)
    if isinstance(e, Unary) and e.op == "-":
        return additive_terms(e.operand)
    return [e]


def factors(x: Expr) -> list[tuple[Expr, bool]]:
    """Flatten a product into (factor, is_divisor) pairs: ``a * b / c`` is
    ``[(a, False), (b, False), (c, True)]``; a negation is a factor -1."""
    if isinstance(x, BinOp) and x.op == "*":
        return factors(x.left) + factors(x.right)
    if isinstance(x, BinOp) and x.op == "/":
        return factors(x.left) + [(x.right, True)]
    if isinstance(x, Unary) and x.op == "-":
        return [(Num(-1), False)] + factors(x.operand)
    return [(x, False)]


def gathers(acc: Access) -> list[tuple[int, Access]]:
    """The subscripts of ``acc`` that are accesses of an index tensor (a gather
    ``K[IDX[g, j], e]`` or a scatter's left side): (dimension, index access) pairs."""
    return [(d, s) for d, s in enumerate(acc.subscripts) if isinstance(s, Access)]
