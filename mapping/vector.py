"""The Einsums of a cascade that a hierarchy arch's vector unit runs (``arch.vector``,
:class:`mapping.hierarchy.Vector`), and what each moves.

A cascade on a hierarchy arch maps each sum of products onto the MACs with a loop nest
(:mod:`mapping.nest_mapping`). With a ``vector:`` unit in the arch, an Einsum the MACs cannot run
(an element-wise map such as ``exp(QK - GM)`` or ``SN / SD``, a ``max`` reduction) and a sum
over one tensor (``SD[m] = SN[m, p]``) run on the vector unit instead, unless the mapping gives
that sum a ``nest:``. Its entry under ``mapping.einsums`` may be left out, or be ``{}``.

What a vector Einsum moves (:class:`VectorJob`): each tensor it reads once, whole, and its
output once, whole; every word between the tensor's home and the unit's level. The home is the
outermost level, or the level ``mapping.on_chip`` keeps the tensor in, which must then be the
unit's level or one outside it. Its operations are :func:`einsum.analysis.op_counts`'s, and the
unit must have an energy for each kind it needs. The cost model is :mod:`sim.nest_vector`.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Mapping

from einsum.analysis import op_counts
from einsum.cascade import Cascade, Einsum
from einsum.expr import Access, factors
from einsum.ragged import tensor_elements
from einsum.yamlsrc import Source, YPath

from .hierarchy import Hierarchy


@dataclass(frozen=True)
class VectorTensor:
    name: str
    words: int  # its elements, moved once
    home: int  # the level it lives in (0: the outermost; an on_chip level)
    is_output: bool


@dataclass(frozen=True)
class VectorJob:
    """One Einsum on the vector unit: its operations and the tensors it moves."""

    einsum: str
    position: int  # in the cascade
    ops: Mapping[str, int]  # element operations by kind
    tensors: tuple[VectorTensor, ...]  # inputs in reading order, then the output
    arch: Hierarchy = field(repr=False, default=None)

    @property
    def total_ops(self) -> int:
        return sum(self.ops.values())


def macs_can_run(e: Einsum) -> bool:
    """Whether ``e`` is a sum of products of two or more tensors (what a loop nest maps onto the
    MACs); anything else is the vector unit's when the arch has one."""
    if e.reduce_op not in (None, "sum") or e.kind != "plain" or e.stmt.filter is not None:
        return False
    fs = factors(e.stmt.rhs)
    return len(fs) >= 2 and all(isinstance(f, Access) and not div for f, div in fs)


def vector_job(casc: Cascade, e: Einsum, arch: Hierarchy, rooted: Mapping[str, int], sec: Any,
               msrc: Source, mb: YPath, asrc: Source, ab: YPath) -> VectorJob:
    """The :class:`VectorJob` of ``e`` (its mapping entry ``sec`` at ``mb``: absent or ``{}``)."""
    vec = arch.vector
    if sec not in (None, {}):
        raise msrc.error(mb, f"{e.name} runs on the vector unit {vec.name} (it is not a sum of products of two "
                         "or more tensors, or has no nest): it takes no mapping; leave it out or give {}")
    oc = op_counts(casc)[e.name]
    ops = {a: n for a, n in oc.counts.items() if n}
    missing = [a for a in ops if a not in vec.energy]
    if missing:
        raise asrc.error(ab + ("vector", "energy"), f"{e.name} needs {', '.join(missing)} on the vector unit "
                         f"{vec.name}, which gives no energy for {'it' if len(missing) == 1 else 'them'}: add "
                         + ", ".join(f"arch.vector.energy.{a}" for a in missing))
    tensors = []
    for t in list(dict.fromkeys(e.reads)) + [e.output]:
        home = rooted.get(t, 0)
        if home > vec.level:
            raise msrc.error(mb[:-2] + ("on_chip", t), f"{t} stays in {arch.levels[home].name}, inside the vector "
                             f"unit's level {arch.levels[vec.level].name}, which {e.name} reads and writes: keep it "
                             f"at {arch.levels[vec.level].name} or outside")
        tensors.append(VectorTensor(t, tensor_elements(casc, t), home, t == e.output))
    return VectorJob(e.name, e.position, MappingProxyType(ops), tuple(tensors), arch)


__all__ = ["VectorJob", "VectorTensor", "macs_can_run", "vector_job"]
