"""Systolic GEMM timing: the closed forms the simulator uses for 2-D sums of products.

A sum of products mapped on an R x C array with ``rows`` and ``cols`` spatial indices
runs in *folds*: ``folds = prod(ceil(extent/factor))`` over the spatial indices, each
fold streaming ``T`` = product of the temporal extents (divided by MACs per PE) through
the array. For a GEMM ``C[m,n] = A[m,k] B[k,n]`` SCALE-Sim assigns

=========  ==========  ==========  =====
dataflow   rows <-     cols <-     T
=========  ==========  ==========  =====
OS         M           N           K
WS         K           N           M
IS         K           M           N
=========  ==========  ==========  =====

which is also einarray's default spatial mapping (see :mod:`mapping.defaults`).

``fill_drain: false`` (FuseMax's analytic model): ``folds * T`` cycles.

``fold_overlap: false`` (SCALE-Sim's model; every fold pays fill and drain)::

    OS:     folds * (T + R + C - 2)
    WS, IS: folds * (2R + C + T - 2)     # R cycles of preload, then fill + stream + drain

SCALE-Sim reports this total minus one (``folds * per_fold - 1``, a known off-by-one),
e.g. 64^3 on 16x16: OS 1504 here, 1503 in SCALE-Sim; WS and IS 1760 here, 1759 there.

``fold_overlap: true`` (default; real arrays): the next fold's inputs (OS) or weights
(WS, IS) enter behind the current fold, so fill and drain are paid once::

    OS:     folds * T + R + C - 2
    WS, IS: R + (folds - 1) * max(T, R) + T + R + C - 2

(a weight preload of R cycles hides behind a fold's T streaming cycles when T >= R).
With one fold both equal the ``fold_overlap: false`` figure.

Tiles of the reduced rank (K split by the tile loops). In OS the partial sums of an
output tile sit in the PEs' accumulators. With ``psum_in_array: true`` (default) they
stay there while the next tile of K streams in right behind the current one (K's loop
innermost, so consecutive steps share the output tile), and fill and drain are paid
once per output tile, by its last K tile: the K tiles together cost what the whole K
costs. This needs one accumulator per fold of the step in every PE (folds <=
``rf_entries``, :meth:`mapping.arch.ComputeUnit.psum_chains`): a fold's stream then
follows the previous one without waiting for outputs to drain, even with
``fold_overlap: false`` (whose per-fold cost is that drain). Otherwise, and with
``psum_in_array: false`` (partial sums leave the array after every K tile), each K tile
pays fill and drain. WS and IS spread K over the rows, so a K tile is a set of
whole folds and nothing changes.

``model: broadcast`` (the FPGA unified compute unit, :func:`broadcast_cycles`)::

    folds * (T + ceil(T / max_k) * (R + tile_overhead))     # max_k: beats per command

Element-wise and reduction work on the 2-D array
------------------------------------------------
The PEs compute ``lanes = R x C`` elements per cycle, but only on operands that are in
them. Words reach the PEs through the array's edges: one word per row per cycle on the
row edge and one per column on the column edge, ``R + C`` words per cycle in all (the
same links a GEMM streams its operands through); results leave through the opposite
edges at the same rate. So an Einsum over ``N`` elements on the 2-D array costs::

    max(ceil(work / lanes), ceil(words_in / (R + C)), ceil(words_out / (R + C))) + latency - 1

``words_in`` counts the operand words that are not already resident in the PEs, and
``words_out`` the result words that must leave them (read by the other unit or written
to the buffer in the same step). The caller decides residency (:mod:`sim.engine`): a
tensor is resident when the same group produced it on the 2-D array with its result left
in place (an output-stationary sum of products such as FuseMax's QK, or element-wise
work such as its SLN) and one step's tile of it fits the PEs' register files
(``ceil(words / lanes) <= rf_entries``); results of a reduction (formed at the edge) and of
weight- or input-stationary sums of products (streamed out of the edge) are not.
Without this bound the 2-D array would be a free 65,536-lane vector unit for any
element-wise Einsum, however far its operands had to travel. The 1-D array reads its
operands from its register files and the buffer, whose bandwidth the simulator bounds
separately.
"""

from __future__ import annotations

import math
from fractions import Fraction


def systolic_cycles(folds: int, T: int, R: int, C: int, dataflow: str, *, fill_drain: bool = True,
                    fold_overlap: bool = True) -> int:
    """Cycles of ``folds`` folds of ``T`` streaming cycles each on an R x C array."""
    if folds <= 0 or T <= 0:
        return 0
    if not fill_drain:
        return folds * T
    if dataflow == "os":
        if fold_overlap:
            return folds * T + R + C - 2
        return folds * (T + R + C - 2)
    if dataflow in ("ws", "is"):
        if fold_overlap:
            return R + (folds - 1) * max(T, R) + T + R + C - 2
        return folds * (2 * R + C + T - 2)
    raise ValueError(f"unknown dataflow {dataflow!r}")


def broadcast_cycles(folds: int, T: int, R: int, overhead: int, max_k: int | None = None) -> int:
    """An output-stationary array fed by broadcast (no systolic skew), one tile at a time:
    each fold streams ``T`` operand beats, drains its ``R`` output rows one per cycle and
    pays ``overhead`` fixed cycles (command, pipeline flush, output registers). When the
    unit takes at most ``max_k`` beats per command, a fold is ``ceil(T / max_k)`` commands
    chained through the accumulators, each draining its rows and paying the overhead. This
    is the unified compute unit of ``hw/compute_unit.py`` (``tile_cycles(R, C, k) - k - R`` is
    the overhead)."""
    if folds <= 0 or T <= 0:
        return 0
    cmds = 1 if not max_k else -(-T // max_k)
    return folds * (T + cmds * (R + overhead))


def scalesim_gemm(M: int, N: int, K: int, R: int, C: int, dataflow: str) -> dict[str, int | float]:
    """SCALE-Sim v3's reported figures for a GEMM ``ofmap[M, N] = ifmap[M, K] filter[K, N]``
    (its assignment, its off-by-one), with its per-operand SRAM and DRAM counts when every
    operand fits its SRAM (``DETAILED_ACCESS_REPORT.csv``; checked against SCALE-Sim 3.0.0
    runs in ``tests/expected/scalesim/access_counts.json``)::

        SRAM ifmap reads    OS, WS: M K ceil(N / C)    IS: M K
        SRAM filter reads   OS: N K ceil(M / R)    WS: N K    IS: N K ceil(M / C)
        SRAM ofmap writes   OS: M N + folds (R + C)    WS, IS: M N ceil(K / R)
        DRAM reads          ifmap M K, filter K N (each element once)
        DRAM ofmap writes   OS: M N    WS, IS: M N ceil(K / R)

    Two of these are SCALE-Sim's own semantics, not traffic a design must have: its OS
    ofmap count adds ``R + C`` per fold (``systolic_compute_os.create_ofmap_demand_mat`` adds
    the fold's height plus width after its area), and in WS and IS every K fold's partial
    sums are written out, to SRAM and on to DRAM, rather than accumulated on chip.
    """
    rows, cols, T = {"os": (M, N, K), "ws": (K, N, M), "is": (K, M, N)}[dataflow]
    folds = -(-rows // R) * -(-cols // C)
    per = T + R + C - 2 if dataflow == "os" else 2 * R + C + T - 2
    cycles = folds * per - 1
    kf = -(-K // R)
    ifmap = M * K * (-(-N // C)) if dataflow in ("os", "ws") else M * K
    filt = {"os": N * K * -(-M // R), "ws": N * K, "is": N * K * -(-M // C)}[dataflow]
    ofmap = M * N + folds * (R + C) if dataflow == "os" else M * N * kf
    return {"folds": folds, "per_fold": per, "cycles": cycles,
            "utilization": M * N * K / (R * C * cycles),
            "sram_ifmap_reads": ifmap, "sram_filter_reads": filt, "sram_ofmap_writes": ofmap,
            "dram_ifmap_reads": M * K, "dram_filter_reads": K * N,
            "dram_ofmap_writes": M * N if dataflow == "os" else M * N * kf}


def scalesim_conv(H: int, W: int, R_f: int, S_f: int, C_in: int, N_f: int, stride: int, R: int, C: int,
                  dataflow: str) -> dict[str, int | float]:
    """SCALE-Sim v3's figures for a convolution (no padding): its im2col GEMM with
    ``M = OH OW``, ``K = R_f S_f C_in``, ``N = N_f`` (:func:`scalesim_gemm`), except that
    the ifmap's DRAM reads are its ``H W C_in`` elements (the im2col duplicates are SRAM
    reads). ``OH = ceil((H - R_f + stride) / stride)`` as SCALE-Sim's topology_utils has it
    (one more than ``floor((H - R_f) / stride) + 1`` when the stride does not divide
    ``H - R_f``), likewise ``OW``."""
    oh, ow = -(-(H - R_f + stride) // stride), -(-(W - S_f + stride) // stride)
    out = scalesim_gemm(oh * ow, N_f, R_f * S_f * C_in, R, C, dataflow)
    out["dram_ifmap_reads"] = H * W * C_in
    return out


def psum_words(u, em, reduced: tuple[str, ...], folds_by: dict[str, int], out_words: int) -> int:
    """Partial-sum words a weight- or input-stationary sum of products on the 2-D array moves
    through the buffer beside its result, in each direction (read and written): WS and IS
    spread a reduced index over the rows (or columns), so with ``F`` folds over the reduced
    indices each output element leaves the array ``F`` times, and every fold after the first
    is accumulated onto the partial sum of the one before (read, add, write back). So
    ``out_words x (F - 1)`` reads and as many writes besides the result's own write: the
    writes are then SCALE-Sim's ``M N ceil(K / R)`` ofmap writes, and the reads follow
    Timeloop's rule that the first update of an element is a write into zero, not a read.
    An output-stationary array (and the broadcast array) accumulates in its PEs: 0."""
    if not (u.is_2d and u.timing != "broadcast" and em.dataflow in ("ws", "is") and (em.rows or em.cols)):
        return 0
    f = math.prod(k for ix, k in folds_by.items() if ix in reduced)
    return out_words * (f - 1)


def compute_cycles(u, em, iext: dict[str, int], acts: dict[str, Fraction], words_in: int = 0,
                   words_out: int = 0, psum_continues: bool = False) -> tuple[Fraction, Fraction, dict[str, int]]:
    """Cycles of one Einsum's tile on its unit: ``(cycles, PE-cycles, folds per spatial index)``.

    ``u`` is a :class:`mapping.arch.ComputeUnit`, ``em`` the Einsum's
    :class:`mapping.spec.EinsumMap`, ``iext`` the tile's extent per index and ``acts`` the
    tile's action counts. A sum of products with a spatial mapping on the 2-D array runs in
    folds (:func:`systolic_cycles` or :func:`broadcast_cycles`), any other action adds
    ``count x cycles / lanes``; everything else is element-wise work spread over the lanes
    plus the deepest op latency (on a 2-D array with ``pinned_elementwise`` and a spatial
    mapping: folds over the spatial indices x the other indices' extent instead of the
    work over every lane), and on the 2-D array at least as long as ``words_in``
    operand words take to enter (and ``words_out`` result words to leave) through its
    edges at ``R + C`` words per cycle (see the module docstring). ``psum_continues``: the
    next step continues this tile's output with the next tile of the reduced rank; when
    ``u.psum_chains`` the tile then pays no fill and drain (its last K tile pays them).
    Shared by the simulator and the analytic search model.
    """
    mac = acts.get("mac", 0)
    folds_by: dict[str, int] = {}
    if u.is_2d and mac and (em.rows or em.cols):
        spatial = {ix for ix, _ in em.rows + em.cols}
        folds = 1
        for ix, f in em.rows + em.cols:
            k = -(-iext[ix] // f)
            folds *= k
            folds_by[ix] = k
        R = math.prod(f for _, f in em.rows) if em.rows else 1
        C = math.prod(f for _, f in em.cols) if em.cols else 1
        T = math.prod(x for ix, x in iext.items() if ix not in spatial)
        T = -(-T // u.macs_per_pe)
        if u.timing == "broadcast":
            cyc = Fraction(broadcast_cycles(folds, T, u.rows, u.tile_overhead, u.max_k))
        else:
            fd = u.fill_drain and not (psum_continues and u.psum_chains(em.dataflow, folds))
            cyc = Fraction(systolic_cycles(folds, T, R, C, em.dataflow, fill_drain=fd,
                                           fold_overlap=u.fold_overlap))
        pe = Fraction(mac) / u.macs_per_pe
        other = sum((v * u.ops[a].cycles for a, v in acts.items() if a != "mac"), Fraction(0))
        if other:
            cyc += math.ceil(other / u.lanes)
            pe += other
        return cyc, pe, folds_by
    pts = math.prod(iext.values()) if iext else 1
    if u.fuse_elementwise:
        work = max(u.ops[a].cycles for a in acts) * pts
    else:
        work = sum((v * u.ops[a].cycles for a, v in acts.items()), Fraction(0))
    lat = max(u.ops[a].latency for a in acts)
    cyc = math.ceil(work / u.lanes)
    if u.is_2d and u.pinned_elementwise and (em.rows or em.cols) and pts:
        # each element runs on the PE its spatial mapping pins it to: folds over the
        # spatial indices, the other indices (and each point's op cycles) in time
        folds = math.prod(-(-iext[ix] // f) for ix, f in em.rows + em.cols)
        spatial = {ix for ix, _ in em.rows + em.cols}
        temporal = math.prod(x for ix, x in iext.items() if ix not in spatial)
        cyc = folds * math.ceil(work * temporal / pts)
    if u.is_2d:
        cyc = max(cyc, -(-max(words_in, words_out) // (u.rows + u.cols)))
    return Fraction(cyc + lat - 1), Fraction(work), folds_by
