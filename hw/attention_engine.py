"""Fused 1-pass attention engine: an R x C PE array and a 1-D array of R x F lanes, AXI-Stream I/O.

Bit-exact with ``einsum/library/attention-fixed-1pass.yaml`` (its golden operators and the
numerics are in :mod:`einsum.fixed`): FuseMax's binding (Nayak et al., MICRO 2024) with
QK, LM, SLN, SLD and SLNV on the R x C array (query ``m`` on the rows, key ``p0`` on the
columns) and RM, PRM, SPD, RD, SPNV, RNV and AV on the 1-D array (a lane per query row and
value column).

Protocol
--------
Four AXI-Stream ports, each beat one row of ``head_dim`` elements (element ``e`` in bits
``[e*W, (e+1)*W)`` of ``tdata``, two's complement): ``q``, ``k``, ``v`` in and ``o`` out,
with ``tdata``/``tvalid``/``tready``/``tlast`` (Verilog ports ``q_tdata``, ``q_tvalid`` ...).

* A *query tile* is up to R rows on ``q``: it ends at the row with ``tlast`` or at the R-th.
* For each tile the keys and values of the head follow, chunk by chunk: the chunk's key rows
  on ``k`` (``tlast`` on the head's last key; a chunk ends there or at its P0-th key), then
  as many value rows on ``v`` (``v``'s ``tlast`` is not used).  The last chunk is partial
  when P0 does not divide P.
* After the last chunk the tile's output rows leave on ``o`` (``tlast`` on its last row),
  then the next tile's queries are taken.

So a head of M queries and P keys is ``ceil(M/R)`` tiles, each streaming all P keys and
values: the controller walks query tiles x key chunks, as the cascade's loop order
``M, P1``, and takes one row of ``head_dim`` words per cycle in and out.

Micro-architecture and cycles
-----------------------------
Per tile: LOAD_Q (``r`` cycles for ``r`` rows).  Per chunk of ``n`` keys (``G = P0 / C``
column groups): LOAD_K and LOAD_V (``n`` cycles each, into the chunk buffers), QK (``G E``
cycles: ``E`` multiply-accumulates per PE into a 40-bit accumulator, the last of them also
requantizing to ``S``, multiplying by log2 e into ``T`` and updating the row's chunk max
``LM`` over the valid columns: S, T, N and LM are chained behind the MACs), MAX (1 cycle:
``RM``, the rescale shift ``PRM``, ``SPD`` and ``SPNV`` on the lanes), then per group EXP
(1 cycle: ``SLN = 2**(T - RM)`` per PE, 0 in the padding of a partial chunk) and SLNV (``F``
cycles, one value column ``f`` each: ``sum_c SLN * V`` on the row's adder tree, and ``SLD``
beside it at ``f = 0``), and ACC (1 cycle: ``RD = SPD + SLD``, ``RNV = SPNV + SLNV``).  After
the last chunk, FIN computes ``AV = RNV / RD`` with one divider shared by the ``R F`` lanes of
the 1-D array: NORM (1 cycle: each row's mantissa of ``RD`` and its shifts), RECIP (18 cycles:
each row's 18-bit reciprocal, one quotient bit a cycle by restoring division), then AV (one
lane a cycle through one multiplier with two pipeline stages: ``r F + 2`` cycles for a tile of
``r`` rows), so FIN lasts ``r F + 21``; then OUT (``r`` cycles).  With inputs always valid and
the output always ready, the cycles from the first ``q`` handshake to the last ``o``
handshake, both included, are (:meth:`cycles`)::

    sum over tiles (2 r + r F + 21 + 2 P + Gs (E + F + 1) + 2 P1)
        = (E + 2) M + T (21 + 2 P) + T (Gs (E + F + 1) + 2 P1)

with ``T = ceil(M / R)`` tiles, ``P1 = ceil(P / P0)`` chunks and ``Gs`` column groups over
all chunks: ``G`` per whole chunk and ``ceil(r / C)`` for a partial last chunk of ``r`` keys
(the groups past its last key are skipped); ``F = E``.  ``einarray
simulate`` predicts exactly this for ``mapping/configs/attention-engine.yaml``
(arch ``attention-engine``: units that chain the element-wise Einsums of a stage; the 1-D
array's ``div`` costs ``width`` cycles per element per lane, latency 22: one shared divider).

Area
----
Each PE has one multiplier for QK's MAC, EXP's interpolation (the table's slope times the
fraction's low bits) and SLNV's product, which run in different states, and one for T's
multiply by the constant log2 e (``2**18 + (L - 2**18)``: an 18 x 18 product and a shift),
which rides in the same cycle as the last MAC; AV has one (shared by the lanes, above): so
``2 R C + 1`` multipliers (MULT18X18D on ECP5; AV's 36 x 18 bits takes two).  The 2**f table
(64 x 41 bits) is read synchronously, one copy per two PEs (a DP16KD has two read ports):
its address is the fraction of the T that EXP reads next, presented the cycle before (MAX,
or the last SLNV cycle of the previous group), so EXP keeps its one cycle.  SLNV's row
rotates by one column a cycle, so the column at its front is the one updated: one adder
per row.  The chunk buffers (``P0 x E`` words for K and for V), the query tile (``R x E``) and
the running state (``R x F`` RNV words, shifted all at once in MAX) stay in registers: they
are read many words per cycle (every PE column its key's element, every lane its RNV), and
at the shipped sizes they are a few hundred bits (a DP16KD holds 18 kbit).
"""

from __future__ import annotations

from amaranth import Cat, Const, Module, Mux, Signal, signed, unsigned
from amaranth.hdl import Array
from amaranth.lib import wiring
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from einsum import approx as A
from einsum.errors import ConfigError
from hw.common import check_int, check_qformat

__all__ = ["AttentionEngine"]

_ACC_WIDTH = 40
_LN_FRAC, _LN_WIDTH = 15, 16
_RECIP = 17  # mantissa has _RECIP + 1 bits; reciprocal floor(2**(2*_RECIP) / mantissa)
#: FIN's cycles beside one per output lane: NORM (1), RECIP (_RECIP + 1 quotient bits) and
#: the two pipeline stages of the shared multiplier in AV
_FIN_FIXED = 1 + (_RECIP + 1) + 2


class AttentionEngine(wiring.Component):
    """The fused 1-pass attention engine (see the module docstring).

    Parameters (keyword-only)
    -------------------------
    rows, cols:        the PE array, R x C (1..16 each)
    head_dim:          E = F, elements per query/key/value/output row (1..256)
    chunk:             P0, keys per chunk (a multiple of ``cols``; default ``cols``)
    width, frac_bits:  format of Q, K, V and the output (default 16, 10: Q6.10)
    qk_shift:          the score is ``Q K^T >> qk_shift`` rounded (default 13: scale 1/8)
    max_keys:          the longest key sequence P (sizes RD and RNV; default 4096)
    """

    def __init__(self, *, rows: int = 2, cols: int = 2, head_dim: int = 4, chunk: int | None = None,
                 width: int = 16, frac_bits: int = 10, qk_shift: int = 13,
                 max_keys: int = 4096) -> None:
        own = "AttentionEngine"
        self.rows = check_int(own, "rows", rows, 1, 16)
        self.cols = check_int(own, "cols", cols, 1, 16)
        self.head_dim = check_int(own, "head_dim", head_dim, 1, 256)
        chunk = cols if chunk is None else chunk
        self.chunk = check_int(own, "chunk", chunk, 1, 1024)
        if chunk % cols:
            raise ConfigError(f"{own}: chunk ({chunk}) must be a multiple of cols ({cols})")
        self.fmt = check_qformat(own, "", width, frac_bits, 20)
        if width < 4:
            raise ConfigError(f"{own}: width must be >= 4, got {width}")
        self.qk_shift = check_int(own, "qk_shift", qk_shift, 1, 2 * width)
        self.max_keys = check_int(own, "max_keys", max_keys, 1, 1 << 15)
        if 2 * width + max(head_dim - 1, 1).bit_length() > _ACC_WIDTH:
            raise ConfigError(f"{own}: {head_dim} products of {width}-bit codes need more than "
                              f"the {_ACC_WIDTH}-bit accumulator")
        # integer part N = floor(T / 2**16) of the base-2 scores: its range and RM's start
        sh = frac_bits + A.LOG2E_BITS - A.S2_FRAC
        self.n_min = ((self.fmt.min_int * A.LOG2E_INT) >> sh) >> A.S2_FRAC
        self.n_max = ((self.fmt.max_int * A.LOG2E_INT) >> sh) >> A.S2_FRAC
        self.rm_init = min(-64, self.n_min - 1)
        sig = {}
        for name, direction in (("q", In), ("k", In), ("v", In), ("o", Out)):
            back = Out if direction is In else In
            sig[f"{name}_tdata"] = direction(head_dim * width)
            sig[f"{name}_tvalid"] = direction(1)
            sig[f"{name}_tready"] = back(1)
            sig[f"{name}_tlast"] = direction(1)
        super().__init__(sig)

    # -- description -----------------------------------------------------------------------
    @property
    def groups(self) -> int:
        return self.chunk // self.cols

    def cascade_params(self) -> dict:
        """``params`` of attention-fixed-1pass that make it this engine's golden model."""
        return {"qk_shift": self.qk_shift, "width": self.fmt.width, "acc_width": _ACC_WIDTH,
                "s_frac": self.fmt.frac, "t_one": 1 << A.S2_FRAC, "ln_frac": _LN_FRAC,
                "ln_width": _LN_WIDTH, "rm_init": self.rm_init}

    def cycles(self, m: int, p: int) -> int:
        """Cycles from the first ``q`` handshake to the last ``o`` handshake (both included)
        of a head of ``m`` queries and ``p`` keys, inputs always valid, output always ready."""
        if m < 1 or p < 1:
            raise ConfigError(f"a head needs M >= 1 and P >= 1, got M={m}, P={p}")
        tiles, chunks = -(-m // self.rows), -(-p // self.chunk)
        e = self.head_dim
        groups = (chunks - 1) * self.groups + -(-(p - (chunks - 1) * self.chunk) // self.cols)
        # FIN of a tile of r rows: r E lanes + _FIN_FIXED; over the tiles M E + T _FIN_FIXED
        return ((2 + e) * m + tiles * (_FIN_FIXED + 2 * p)
                + tiles * (groups * (2 * e + 1) + 2 * chunks))

    def params(self) -> dict:
        return {"rows": self.rows, "cols": self.cols, "head_dim": self.head_dim,
                "chunk": self.chunk, "width": self.fmt.width, "frac_bits": self.fmt.frac,
                "qk_shift": self.qk_shift, "max_keys": self.max_keys}

    def describe(self) -> dict:
        w = self.fmt.width
        port = {"tdata_width": self.head_dim * w, "lanes": self.head_dim, "lane_width": w,
                "frac_bits": self.fmt.frac, "signed": True}
        return {
            "top": "attention_engine", "clock": "clk", "reset": "rst",
            "ports": {n: {f"t{s}": f"{n}_t{s}" for s in ("data", "valid", "ready", "last")}
                      | port | {"direction": "out" if n == "o" else "in"} for n in "qkvo"},
            "params": self.params(),
            "golden": "einsum/library/attention-fixed-1pass.yaml",
            "cascade_params": self.cascade_params(),
            "cycles_formula": "(E + 2) M + T (21 + 2 P) + T (Gs (2 E + 1) + 2 P1), "
                              "T = ceil(M / rows), "
                              "P1 = ceil(P / chunk), Gs = (P1 - 1) chunk / cols + "
                              "ceil((P - (P1 - 1) chunk) / cols)",
        }

    # -- hardware --------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        R, C, E, P0, G = self.rows, self.cols, self.head_dim, self.chunk, self.groups
        W, frac = self.fmt.width, self.fmt.frac
        F = E
        kbits = max(self.max_keys, 2).bit_length()
        rd_w = _LN_WIDTH + kbits + 1
        rnv_w = _LN_WIDTH + W + kbits + 1
        t_w = W + A.LOG2E_BITS + 1 - (frac + A.LOG2E_BITS - A.S2_FRAC) + 1
        rm_shape = signed(max(len(Const(self.rm_init)), len(Const(self.n_max))) + 1)

        def lanes(bus):
            return [bus[e * W:(e + 1) * W].as_signed() for e in range(E)]

        def sat(v, w):
            lo, hi = -(1 << (w - 1)), (1 << (w - 1)) - 1
            return Mux(v > hi, hi, Mux(v < lo, lo, v))

        # -- state
        qbuf = [[Signal(signed(W), name=f"q{r}_{e}") for e in range(E)] for r in range(R)]
        kbuf = [[Signal(signed(W), name=f"k{p}_{e}") for e in range(E)] for p in range(P0)]
        vbuf = [[Signal(signed(W), name=f"v{p}_{e}") for e in range(E)] for p in range(P0)]
        acc = [[Signal(signed(_ACC_WIDTH), name=f"acc{r}_{c}") for c in range(C)] for r in range(R)]
        tsc = [[[Signal(signed(t_w), name=f"t{r}_{c}_{g}") for g in range(G)] for c in range(C)]
               for r in range(R)]
        sln = [[Signal(unsigned(_LN_WIDTH), name=f"sln{r}_{c}") for c in range(C)] for r in range(R)]
        rm = [Signal(rm_shape, init=self.rm_init, name=f"rm{r}") for r in range(R)]
        lm = [Signal(rm_shape, init=self.rm_init, name=f"lm{r}") for r in range(R)]
        rd = [Signal(unsigned(rd_w), name=f"rd{r}") for r in range(R)]
        rnv = [[Signal(signed(rnv_w), name=f"rnv{r}_{f}") for f in range(F)] for r in range(R)]
        qcnt = Signal(range(R + 1))
        nrows = Signal(range(R + 1))
        kcnt = Signal(range(P0 + 1))
        nkeys = Signal(range(P0 + 1))
        last_chunk = Signal()
        g = Signal(range(G))
        ecnt = Signal(range(E + 1))
        fcnt = Signal(range(F))
        orow = Signal(range(R))

        # -- the PE array's operands: query element e of each row, key element of each column
        qe = [Array(qbuf[r])[ecnt] for r in range(R)]
        ke = [Array([Array(kbuf[gg * C + c]) for gg in range(G)])[g][ecnt] for c in range(C)]
        vf = [Array([Array(vbuf[gg * C + c]) for gg in range(G)])[g][fcnt] for c in range(C)]
        gbase = Signal(range(P0 + 1))   # the group's first key (no multiplier for g C)
        m.d.comb += gbase.eq(Array([Const(gg * C, len(gbase)) for gg in range(G)])[g])
        valid = [Signal(name=f"valid{c}") for c in range(C)]
        m.d.comb += [valid[c].eq((gbase + c) < nkeys) for c in range(C)]
        # the chunk's last column group that holds a key (a partial chunk skips the rest)
        last_g = Signal(range(G))
        m.d.comb += last_g.eq(sum(nkeys > gg * C for gg in range(1, G)) if G > 1 else 0)

        # the 2**f table (value and slope of each 64th), one synchronous read port per PE (block
        # RAM): its address is the fraction of the T that EXP reads next, presented the cycle
        # before (MAX, or the last SLNV cycle of the group before)
        gnext = Signal(range(G + 1))
        tab = A.EXP2_TABLE
        init = [tab[k] | ((tab[k + 1] - tab[k]) << 24) for k in range(len(tab) - 1)]
        m.d.comb += gnext.eq(g)
        ports = [[None] * C for _ in range(R)]
        for i in range(0, R * C, 2):   # a copy per two PEs: a DP16KD has two read ports
            rom = Memory(shape=unsigned(24 + 17), depth=len(tab) - 1, init=init,
                         attrs={"ram_style": "block"})
            m.submodules[f"exp2_rom{i // 2}"] = rom
            for pe in range(i, min(i + 2, R * C)):
                ports[pe // C][pe % C] = rom.read_port(domain="sync")
        for r in range(R):
            for c in range(C):
                m.d.comb += ports[r][c].addr.eq(
                    Array([x[A.EXP2_INTERP_BITS:A.S2_FRAC] for x in tsc[r][c]])[gnext])

        # one multiplier per PE, shared by the states that use it: QK's MAC (q x k), EXP's
        # interpolation (slope x the fraction's low bits) and SLNV's product (SLN x v)
        # (18 x 18 bits: one MULT18X18D for words of up to 18 bits)
        pa_w, pb_w = max(W, 18), max(W, A.EXP2_INTERP_BITS + 1)
        pa = [[Signal(signed(pa_w), name=f"pa{r}_{c}") for c in range(C)] for r in range(R)]
        pb = [[Signal(signed(pb_w), name=f"pb{r}_{c}") for c in range(C)] for r in range(R)]
        pp = [[Signal(signed(pa_w + pb_w), name=f"pp{r}_{c}") for c in range(C)] for r in range(R)]
        for r in range(R):
            for c in range(C):
                m.d.comb += pp[r][c].eq(pa[r][c] * pb[r][c])

        def exp2(t, rmax, r, c):
            """exp2_fixed(t, rmax, 15, 16) (einsum.approx.exp2_shift_int), the slope's
            product on PE (r, c)'s multiplier."""
            n = t >> A.S2_FRAC
            f = t[:A.S2_FRAC]
            y0, dy = ports[r][c].data[:24], ports[r][c].data[24:]
            m.d.comb += [pa[r][c].eq(dy), pb[r][c].eq(f[:A.EXP2_INTERP_BITS])]
            v = y0 + (pp[r][c][:17 + A.EXP2_INTERP_BITS] >> A.EXP2_INTERP_BITS)
            sh = rmax - n + (A.EXP2_FRAC - _LN_FRAC)
            right = Mux(sh >= 32, 0, v >> sh.as_unsigned()[:5])
            val = Mux(sh < 0, (1 << _LN_WIDTH) - 1, right)
            return Mux(val > (1 << _LN_WIDTH) - 1, (1 << _LN_WIDTH) - 1, val)

        def shr(x, d):
            """shr(x, d) for 0 <= d (floor; shifts past the width give 0 or -1): the amount
            is clamped to the width, so the shifter has only the levels it needs."""
            n = len(x)
            return x >> Mux(d > n, n, d).as_unsigned()[:n.bit_length()]

        sld = [Signal(unsigned(_LN_WIDTH + max(P0 - 1, 1).bit_length()), name=f"sld{r}")
               for r in range(R)]
        slnv = [[Signal(signed(_LN_WIDTH + W + max(P0 - 1, 1).bit_length() + 1), name=f"slnv{r}_{f}")
                 for f in range(F)] for r in range(R)]
        obuf = [[Signal(signed(W), name=f"o{r}_{f}") for f in range(F)] for r in range(R)]
        # the division AV = RNV / RD: per row the mantissa of RD, its shifts and reciprocal
        jr = [Signal(range(max(rd_w - _RECIP, 2)), name=f"jr{r}") for r in range(R)]
        jl = [Signal(range(_RECIP + 1), name=f"jl{r}") for r in range(R)]
        mant_in = [Signal(_RECIP + 1, name=f"mant_in{r}") for r in range(R)]
        mant = [Signal(_RECIP + 1, name=f"mant{r}") for r in range(R)]
        rem = [Signal(_RECIP + 2, name=f"rem{r}") for r in range(R)]
        recip = [Signal(_RECIP + 1, name=f"recip{r}") for r in range(R)]
        dcnt = Signal(range(_RECIP + 1))
        lcnt = Signal(range(R * F + 2))
        arow = Signal(range(R + 1))
        acol = Signal(range(F))
        nn_a = Signal(signed(W + 20), name="av_nn")
        r_a = Signal(unsigned(_RECIP + 1), name="av_recip")
        prod_b = Signal(signed(W + 20 + _RECIP + 1), name="av_prod")
        dst_a = Signal(range(R * F + 2))
        dst_b = Signal(range(R * F + 2))
        a_ok, b_ok = Signal(), Signal()
        nlanes = Signal(range(R * F + 1))   # the tile's rows x F: AV skips the empty rows
        m.d.comb += nlanes.eq(Array([Const(r * F, len(nlanes)) for r in range(R + 1)])[nrows])
        m.d.comb += self.o_tdata.eq(Array([Cat(*row) for row in obuf])[orow])
        m.d.comb += self.o_tlast.eq(orow == nrows - 1)

        with m.FSM():
            with m.State("LOAD_Q"):
                m.d.comb += self.q_tready.eq(1)
                with m.If(self.q_tvalid):
                    row = lanes(self.q_tdata)
                    for r in range(R):
                        with m.If(qcnt == r):
                            m.d.sync += [qbuf[r][e].eq(row[e]) for e in range(E)]
                    m.d.sync += qcnt.eq(qcnt + 1)
                    with m.If(self.q_tlast | (qcnt == R - 1)):
                        m.d.sync += [nrows.eq(qcnt + 1), qcnt.eq(0), kcnt.eq(0)]
                        m.d.sync += [x.eq(self.rm_init) for x in rm + lm]
                        m.d.sync += [x.eq(0) for x in rd]
                        m.d.sync += [x.eq(0) for row_ in rnv for x in row_]
                        m.next = "LOAD_K"
            with m.State("LOAD_K"):
                m.d.comb += self.k_tready.eq(1)
                with m.If(self.k_tvalid):
                    krow = lanes(self.k_tdata)
                    for p in range(P0):
                        with m.If(kcnt == p):
                            m.d.sync += [kbuf[p][e].eq(krow[e]) for e in range(E)]
                    m.d.sync += kcnt.eq(kcnt + 1)
                    with m.If(self.k_tlast | (kcnt == P0 - 1)):
                        m.d.sync += [nkeys.eq(kcnt + 1), last_chunk.eq(self.k_tlast), kcnt.eq(0)]
                        m.next = "LOAD_V"
            with m.State("LOAD_V"):
                m.d.comb += self.v_tready.eq(1)
                with m.If(self.v_tvalid):
                    vrow = lanes(self.v_tdata)
                    for p in range(P0):
                        with m.If(kcnt == p):
                            m.d.sync += [vbuf[p][e].eq(vrow[e]) for e in range(E)]
                    m.d.sync += kcnt.eq(kcnt + 1)
                    with m.If(kcnt == nkeys - 1):
                        m.d.sync += [kcnt.eq(0), ecnt.eq(0), g.eq(0)]
                        m.next = "QK"
            with m.State("QK"):
                # E multiply-accumulates per PE; the last one also requantizes, scales by
                # log2 e into T and updates the row's chunk max
                half = 1 << (self.qk_shift - 1)
                for r in range(R):
                    ns = []
                    for c in range(C):
                        m.d.comb += [pa[r][c].eq(qe[r]), pb[r][c].eq(ke[c])]
                        prod = pp[r][c][:2 * W].as_signed()
                        tot = Signal(signed(_ACC_WIDTH), name=f"dot{r}_{c}")
                        m.d.comb += tot.eq(Mux(ecnt == 0, prod, acc[r][c] + prod))
                        m.d.sync += acc[r][c].eq(tot)
                        s = sat((tot + half) >> self.qk_shift, W)
                        t = Signal(signed(t_w), name=f"tn{r}_{c}")
                        # s log2(e) on one 18 x 18 multiplier: the constant L = 189097 is
                        # 2**18 + (L - 2**18), the second term an 18-bit signed operand
                        sw = Signal(signed(W), name=f"s{r}_{c}")
                        lo = Signal(signed(W + 18), name=f"tl{r}_{c}")
                        m.d.comb += [sw.eq(s), lo.eq(sw * (A.LOG2E_INT - (1 << 18)))]
                        m.d.comb += t.eq((lo + (sw << 18)) >> (frac + A.LOG2E_BITS - A.S2_FRAC))
                        with m.If(ecnt == E - 1):
                            for gg in range(G):
                                with m.If(g == gg):
                                    m.d.sync += tsc[r][c][gg].eq(t)
                        ns.append(Mux(valid[c], t >> A.S2_FRAC, self.rm_init))
                    best = lm[r]
                    for n in ns:
                        best = Mux(n > best, n, best)
                    with m.If(ecnt == E - 1):
                        m.d.sync += lm[r].eq(best)
                m.d.sync += ecnt.eq(ecnt + 1)
                with m.If(ecnt == E - 1):
                    m.d.sync += ecnt.eq(0)
                    with m.If(g == last_g):
                        m.d.sync += g.eq(0)
                        m.next = "MAX"
                    with m.Else():
                        m.d.sync += g.eq(g + 1)
            with m.State("MAX"):
                # RM, the rescale shift PRM, SPD = shr(RD, PRM), SPNV = shr(RNV, PRM)
                for r in range(R):
                    new = Mux(lm[r] > rm[r], lm[r], rm[r])
                    d = Signal(signed(len(rm[r]) + 1), name=f"prm{r}")
                    m.d.comb += d.eq(new - rm[r])
                    m.d.sync += [rm[r].eq(new), lm[r].eq(self.rm_init), rd[r].eq(shr(rd[r], d)),
                                 sld[r].eq(0)]
                    m.d.sync += [x.eq(shr(x, d)) for x in rnv[r]]
                    m.d.sync += [x.eq(0) for x in slnv[r]]
                m.next = "EXP"
            with m.State("EXP"):
                for r in range(R):
                    for c in range(C):
                        t = Array(tsc[r][c])[g]
                        m.d.sync += sln[r][c].eq(Mux(valid[c], exp2(t, rm[r], r, c), 0))
                m.d.sync += fcnt.eq(0)
                m.next = "SLNV"
            with m.State("SLNV"):
                # one value column per cycle: SLNV[f] += sum_c SLN V[., f]; SLD at f = 0
                # (SLNV[r] rotates by one column a cycle: the column at the front is the one
                # updated, so one adder per row, and after F cycles the row is in order again)
                with m.If((fcnt == F - 1) & (g != last_g)):
                    m.d.comb += gnext.eq(g + 1)
                for r in range(R):
                    for c in range(C):
                        m.d.comb += [pa[r][c].eq(sln[r][c]), pb[r][c].eq(vf[c])]
                    tot = sum(pp[r][c][:_LN_WIDTH + W + 1].as_signed() for c in range(C))
                    m.d.sync += [slnv[r][f].eq(slnv[r][f + 1]) for f in range(F - 1)]
                    m.d.sync += slnv[r][F - 1].eq(slnv[r][0] + tot)
                    with m.If(fcnt == 0):
                        m.d.sync += sld[r].eq(sld[r] + sum(sln[r][c] for c in range(C)))
                m.d.sync += fcnt.eq(fcnt + 1)
                with m.If(fcnt == F - 1):
                    with m.If(g == last_g):
                        m.d.sync += g.eq(0)
                        m.next = "ACC"
                    with m.Else():
                        m.d.sync += g.eq(g + 1)
                        m.next = "EXP"
            with m.State("ACC"):
                # RD = SPD + SLD, RNV = SPNV + SLNV
                for r in range(R):
                    m.d.sync += rd[r].eq(rd[r] + sld[r])
                    m.d.sync += [rnv[r][f].eq(rnv[r][f] + slnv[r][f]) for f in range(F)]
                with m.If(last_chunk):
                    m.next = "NORM"
                with m.Else():
                    m.next = "LOAD_K"
            with m.State("NORM"):
                # the divisor's mantissa: j = floor(log2 RD) - 17, M = (RD >> j) << -j
                for r in range(R):
                    lead = Signal(range(rd_w), name=f"lead{r}")
                    for b in range(rd_w):
                        with m.If(rd[r][b]):
                            m.d.comb += lead.eq(b)
                    j = Signal(signed(len(Const(rd_w)) + 2), name=f"j{r}")
                    m.d.comb += j.eq(lead - _RECIP)
                    m.d.sync += [jr[r].eq(Mux(j > 0, j, 0)), jl[r].eq(Mux(j < 0, -j, 0))]
                    m.d.sync += [rem[r].eq(1 << _RECIP)]
                    m.d.comb += mant_in[r].eq((rd[r] >> Mux(j > 0, j, 0).as_unsigned()[:len(jr[r])])
                                              << Mux(j < 0, -j, 0).as_unsigned()[:len(jl[r])])
                    m.d.sync += mant[r].eq(mant_in[r])
                m.d.sync += dcnt.eq(0)
                m.next = "RECIP"
            with m.State("RECIP"):
                # floor(2**34 / M), one quotient bit per cycle (restoring division: the
                # dividend's prefix down to bit 17 is 2**17, then zeros come down)
                for r in range(R):
                    ge = rem[r] >= mant[r]
                    m.d.sync += recip[r].eq(Cat(ge, recip[r][:-1]))
                    m.d.sync += rem[r].eq(Mux(ge, rem[r] - mant[r], rem[r]) << 1)
                m.d.sync += dcnt.eq(dcnt + 1)
                with m.If(dcnt == _RECIP):
                    m.d.sync += [lcnt.eq(0), arow.eq(0), acol.eq(0), a_ok.eq(0), b_ok.eq(0)]
                    m.next = "AV"
            with m.State("AV"):
                # AV = RNV / RD, one lane a cycle through one shared multiplier, 3 stages:
                # scale the numerator like the divisor (clamped to +-RD 2**W), multiply by the
                # row's reciprocal, round and saturate into the output registers
                num = Array([x for row_ in rnv for x in row_])[lcnt[:len(Const(R * F - 1))]]
                den = Array(rd)[arow]
                dlim = Signal(unsigned(rd_w + W), name="av_dlim")
                m.d.comb += dlim.eq(den << W)
                ncl = Signal(signed(rd_w + W + 1), name="av_ncl")
                m.d.comb += ncl.eq(Mux(num > dlim, dlim, Mux(num < -dlim, -dlim, num)))
                # |(ncl >> jr) << jl| <= 2**(W + 18): recip_div_int's clamp to that never acts
                scaled = (ncl >> Array(jr)[arow]) << Array(jl)[arow]
                m.d.sync += [nn_a.eq(scaled[:len(nn_a)]), r_a.eq(Array(recip)[arow]),
                             dst_a.eq(lcnt), a_ok.eq(lcnt < nlanes)]
                m.d.sync += [prod_b.eq(nn_a * r_a), dst_b.eq(dst_a), b_ok.eq(a_ok)]
                q = sat((prod_b + (1 << (2 * _RECIP - 1))) >> (2 * _RECIP), W)
                flat = [o for row_ in obuf for o in row_]
                with m.If(b_ok):
                    for lane, o in enumerate(flat):
                        with m.If(dst_b == lane):
                            m.d.sync += o.eq(q)
                m.d.sync += lcnt.eq(lcnt + 1)
                with m.If(acol == F - 1):
                    m.d.sync += [acol.eq(0), arow.eq(arow + 1)]
                with m.Else():
                    m.d.sync += acol.eq(acol + 1)
                with m.If(lcnt == nlanes + 1):
                    m.d.sync += orow.eq(0)
                    m.next = "OUT"
            with m.State("OUT"):
                m.d.comb += self.o_tvalid.eq(1)
                with m.If(self.o_tready):
                    m.d.sync += orow.eq(orow + 1)
                    with m.If(orow == nrows - 1):
                        m.d.sync += orow.eq(0)
                        m.next = "LOAD_Q"
        return m
