"""Defaults for what a ``mapping:`` section leaves out: the unit an Einsum runs on
(:func:`default_unit`), its spatial mapping on the 2-D array (:func:`default_spatial`) and a
fused group's tiles (:func:`_default_tiles`). :mod:`mapping.loader` and :mod:`mapping.groups`
apply them.

Default units: sums of products go to the 2-D array, everything else to the 1-D array
(when there is one). Default spatial mapping follows SCALE-Sim's assignment: OS
rows <- first output index, cols <- last output index; WS rows <- reduced index,
cols <- last output index; IS rows <- reduced index, cols <- first output index.

Without ``tiles`` a group's tiles are the largest that fit the buffer (halving the largest tile
until the footprint fits; a reduced rank only after the others where splitting it would
cost the array's fill and drain, see ``_default_tiles``).
"""

from __future__ import annotations

import math
import warnings
from fractions import Fraction
from typing import Mapping

from einsum.analysis import OpCounts
from einsum.cascade import Cascade, Einsum
from einsum.errors import EinarrayWarning
from einsum.yamlsrc import Source, YPath

from .arch import Arch
from .footprint import buffer_words, rank_related
from .spec import EinsumMap

def default_unit(arch: Arch, e: Einsum, oc: OpCounts, *, warn: bool = False) -> str:
    """Sums of products go to the 2-D array, the rest to the 1-D array, but only to a unit
    that has every op the Einsum needs (a LayerNorm variance ``sum(x*x)/D`` needs a divide
    the 2-D array may lack); if no unit has them all, the usual choice is returned and the
    caller reports the missing op. With ``warn`` a fallback away from the usual unit is an
    :class:`~einsum.errors.EinarrayWarning` naming the Einsum, the missing ops and the unit
    it runs on instead (a sum of products on the 1-D array is slower by the ratio of the
    lane counts, e.g. 1024 / 32 on a 32 x 32 array with a 32-lane vector unit)."""
    needed = {a for a, v in oc.counts.items() if v}
    prefer = ["array2d", "array1d"] if oc.counts.get("mac") else ["array1d", "array2d"]
    units = [u for u in prefer if u in arch.units]
    for u in units:
        if needed <= set(arch.units[u].ops):
            if warn and u != units[0]:
                usual = arch.units[units[0]]
                missing = sorted(needed - set(usual.ops))
                what = "a sum of products" if oc.counts.get("mac") else "element-wise work"
                warnings.warn(
                    f"{e.name} ({what}) runs on {u} ({arch.units[u].lanes} lanes), not on {units[0]} "
                    f"({usual.lanes} lanes), because {units[0]} of arch {arch.name} lacks op"
                    f"{'s' if len(missing) > 1 else ''} {', '.join(map(repr, missing))}; add "
                    f"{'them' if len(missing) > 1 else 'it'} to arch.{units[0]}.ops or set "
                    f"mapping.einsums.{e.name}.unit", EinarrayWarning, stacklevel=2)
            return u
    return units[0] if units else "array2d"


def default_spatial(e: Einsum, df: str, R: int, C: int, sizes: Mapping[str, int] | None = None):
    """SCALE-Sim's assignment generalised to any Einsum: OS rows <- first output index,
    cols <- last output index; WS rows <- reduced index, cols <- last output index; IS
    rows <- reduced index, cols <- first output index. With more than two output (or
    reduced) indices, those of extent 1 (a chunk index with a single chunk) are skipped so
    they never occupy a dimension."""
    sizes = sizes or {}
    lhs = [ix for ix in e.lhs_indices if ix != e.iter_var]
    if len(lhs) > 2:  # a GEMM (two output indices) keeps SCALE-Sim's assignment exactly
        lhs = [ix for ix in lhs if sizes.get(ix, 2) > 1] or lhs
    red = list(e.reduced)
    if len(red) > 1:
        red = [ix for ix in red if sizes.get(ix, 2) > 1] or red
    if df == "os" or not red:
        rows = lhs[:1]
        cols = lhs[-1:] if len(lhs) > 1 else []
    elif df == "ws":
        rows, cols = red[:1], lhs[-1:]
    else:
        rows, cols = red[:1], lhs[:1]
    return tuple((ix, R) for ix in rows), tuple((ix, C) for ix in cols)


def _default_tiles(src: Source, c: Cascade, arch: Arch, mem: tuple[str, ...], iranks: list[str],
                   p: YPath, fixed: Mapping[str, int], streamed: frozenset[str] = frozenset(),
                   emaps: Mapping[str, EinsumMap] | None = None,
                   counts: Mapping[str, OpCounts] | None = None) -> dict[str, int]:
    """The largest tiles that fit the buffer: halve the largest tile until the step's
    footprint fits, in the order an architect gives up reuse:

    0. any rank whose split costs no extra compute: a rank of the output, while an
       output-stationary sum of products on the 2-D array keeps its array full (the
       tile stays at least its spatial factor) and fed (the operand a step reloads, one
       output tile x K, takes no longer than the step's compute at the backing store's
       bandwidth ``bw``: row and column tiles ``>= R C / bw``); a reduced rank (K) once the output
       tile's partial sums can stay in the PEs between K tiles
       (:meth:`mapping.arch.ComputeUnit.psum_chains`), or on any other unit;
    1. a reduced rank whose K tiles each pay the array's fill and drain, while a K tile
       streams at least four times as long as the fill and drain take (``4 (R + C - 2)``
       cycles: at most 25 % overhead);
    2. anything else (tiles below the array or starved by the backing store, shorter K
       tiles).

    So K stays whole wherever a split would cost fill and drain and the output tile can
    still shrink; largest tile first within a class. A rank on the array's rows or columns
    is cut to a multiple of its spatial factor (whole folds; only the rank's last tile is
    partial), so tiling adds no folds: ``sum of ceil(tile / factor) = ceil(size / factor)``.
    """
    buf = arch.levels[1]
    cap = buf.capacity_words
    # only ranks that no partition parent/part duplicates may be tiled
    cand = [r for r in iranks if not any(rank_related(c, r, o) and o != r for o in iranks)]
    tiles = {r: c.ranks[r].size for r in cand}
    tiles.update(fixed)
    if cap is None:
        return dict(fixed)
    # never tile a rank whose complete reduction a fused consumer needs
    reduced = set()
    for n in mem:
        e = c.einsum(n)
        if len(mem) > 1:
            reduced.update(c.rank_of_index(ix).name for ix in e.reduced)
    # sums of products on a 2-D array with fill and drain: their spatial floors and K ranks
    floor: dict[str, int] = {}
    sops: list[tuple[EinsumMap, set[str]]] = []
    u2 = arch.units.get("array2d")
    for n in mem:
        em = (emaps or {}).get(n)
        if em is None or em.unit != "array2d" or not (em.rows or em.cols) or em.free:
            continue
        if counts is not None and not counts[n].counts.get("mac"):
            continue
        for ix, f in em.rows + em.cols:
            r = c.rank_of_index(ix).name
            floor[r] = max(floor.get(r, 1), f)
        if u2.fill_drain and u2.timing == "systolic" and em.dataflow == "os":
            sops.append((em, {c.rank_of_index(ix).name for ix in c.einsum(n).reduced}))

    bw = arch.levels[0].read_bw

    def ext_of(ix: str) -> int:
        return tiles.get(c.rank_of_index(ix).name, c.index_size(ix))

    def k_split_pays(r: str) -> bool:
        for em, ks in sops:
            if r in ks:
                folds = math.prod(-(-ext_of(ix) // f) for ix, f in em.rows + em.cols)
                if not u2.psum_chains(em.dataflow, folds):
                    return True
        return False

    def stays_fed(r: str, t: int) -> bool:
        """Would tile ``t`` of rank ``r`` keep every OS array it spreads over full and fed?"""
        for em, _ in sops:
            xs = []
            for ix, f in em.rows + em.cols:
                x = t if c.rank_of_index(ix).name == r else ext_of(ix)
                if c.rank_of_index(ix).name == r and x < f:
                    return False
                xs.append(x)
            if any(c.rank_of_index(ix).name == r for ix, _ in em.rows + em.cols) and \
                    min(xs) < Fraction(u2.lanes) / bw:
                return False
        return t >= floor.get(r, 1)

    def phase(r: str) -> int:
        half = -(-tiles[r] // 2)
        if any(r in ks for _, ks in sops):
            if not k_split_pays(r):
                return 0
            return 1 if half >= 4 * (u2.rows + u2.cols - 2) else 2
        return 0 if stays_fed(r, half) else 2

    while buffer_words(c, arch, mem, {r: t for r, t in tiles.items() if t < c.ranks[r].size},
                       streamed=streamed) > cap:
        options = [r for r in tiles if tiles[r] > 1 and r not in reduced and r not in fixed]
        if not options:
            raise src.error(p, f"the workload fits no mapping: even 1-element tiles of group "
                            f"{'+'.join(mem)} exceed {buf.name} ({buf.capacity_bytes} bytes)")
        r = min(options, key=lambda r: (phase(r), -tiles[r], iranks.index(r)))
        half = -(-tiles[r] // 2)
        f = floor.get(r, 1)
        # a rank spread over the array keeps whole folds: a multiple of its spatial factor
        tiles[r] = max(f, half // f * f) if half > f else half
    return {r: t for r, t in tiles.items() if t < c.ranks[r].size}
