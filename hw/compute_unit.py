"""The unified compute unit: an R x C output-stationary MAC array with a command port.

One instance serves every matmul of a ViT/MoE layer (Edge-MoE's "unified compute unit"):
Q/K/V projections, attention output projection, MLP fc1 (+ fused GELU), fc2, MoE expert
fc1/fc2, and the attention matmuls ``Q K^T`` and ``A V``. The bit-exact reference is
:mod:`einsum.golden_gemm`.

Ports (Amaranth ``lib.stream``, valid/ready, any back-pressure):

``cmd``  one command per tile (layout: :func:`cmd_fields`, encode with :func:`encode_cmd`):
         ``k_m1`` (K - 1), ``op`` (0 gemm, 1 qkt, 2 av), flags ``bias``, ``acc``, ``reuse``,
         ``relu``, ``gelu`` and ``shift`` (extra right shift 0..15 before rounding)
``i``    left operand, one beat per k step: column ``a[:, k]`` of the R x K tile (R lanes)
``w``    right operand, one beat per k step: row ``w[k, :]`` (C lanes); for ``QK^T`` this is
         column ``k`` of the K tile (``w = K^T``), for ``A V`` row ``k`` of V. If the command
         has the ``bias`` flag, the first ``w`` beat is the bias vector (C lanes).
``o``    results, R beats, beat r = row r of the output tile (C lanes)

A tile runs: accept ``cmd`` -> (clear accumulators unless ``acc``) -> optional bias beat
added into the accumulators -> K beats of outer products ``acc += a[:, k] w[k, :]`` ->
R output rows through the epilogue ``round/shift -> saturate -> relu -> gelu``.

The ``reuse`` flag takes the left operand from the unit's operand buffer (every ``i`` beat of
the last non-reuse command is stored, up to ``max_k`` beats) instead of the ``i`` port, so
one activation/query tile is streamed once and reused for every weight/key tile (Edge-MoE
buffers its input row the same way). ``acc`` keeps the accumulators of the previous tile so
K larger than ``max_k`` is split over several commands.

Cycle count of one tile with no stalls (command accepted .. last output accepted,
inclusive), :func:`tile_cycles`::

    k + rows + 2 * bias + 10 + (gelu_latency if the tile has gelu else 0)

Micro-architecture: operand handshake -> shared operand registers -> per-MAC operand
registers (``dsp="ecp5"``: the MULT18X18D input registers) -> product registers (DSP output
registers) -> fabric product registers -> 40-bit accumulators. After the last product, rows are drained through a
4-stage requantizer that never stalls (row select, + rounding constant, >> shift,
saturate/relu), optionally through one GELU lane per column (``hw.gelu.Gelu``, lockstep),
into an output FIFO; rows are only issued while the FIFO has credits, so back-pressure on
``o`` never reaches the pipeline registers. The accumulator clear and the bias add are
registered so every accumulator enable comes straight from a flip-flop. The operand buffer
is distributed RAM (asynchronous read). Tiles do not overlap: the next command is accepted
the cycle after the last output.
"""

from __future__ import annotations

from amaranth.hdl import Cat, Const, Module, Mux, ResetSignal, Signal, signed, unsigned
from amaranth.lib import data, stream, wiring
from amaranth.lib.fifo import SyncFIFO
from amaranth.lib.memory import Memory
from amaranth.lib.wiring import In, Out

from einsum.errors import ConfigError
from einsum.golden_gemm import OP_AV, OP_GEMM, OP_QKT, GemmFormat

from .common import ecp5_mult18x18d

__all__ = ["ComputeUnit", "tile_cycles", "encode_cmd", "cmd_fields", "SHIFT_BITS",
           "OP_GEMM", "OP_QKT", "OP_AV"]

SHIFT_BITS = 4  # command shift field: extra right shift 0..15 (attention scale, etc.)

# Pipeline depths (see tile_cycles): shared operand register, per-MAC operand register
# (duplicated so every multiplier has its own, nearby input flip-flops), product register.
_MAC_PIPE = 4      # cycles between the last operand handshake and the final accumulator
_DRAIN_PIPE = 4    # row select, + rounding constant, >> shift, saturate/relu
_OUT_FIFO = 1      # output FIFO: a row written in one cycle is readable in the next


def tile_cycles(rows: int, cols: int, k: int, *, bias: bool = False,
                epilogue_latency: int = 0) -> int:
    """Clock cycles of one tile with no stalls, from command to last output, inclusive.

    Counting the cycle in which ``cmd`` is accepted as cycle 1 and the cycle in which the
    last ``o`` beat is accepted as cycle N, with ``i``/``w`` always valid and ``o`` always
    ready::

        N = 1 (command)
            + 2 * bias (the accumulators are cleared in the cycle after the command, the
                        bias beat is accepted in the cycle after that)
            + k (one operand beat per cycle; without bias the first beat is accepted in
                 the cycle after the command, while the accumulators are cleared)
            + 4 (MAC pipeline flush: operand register, DSP input register, DSP output
                 register, fabric product register)
            + rows (one output row per cycle)
            + 4 (row select, add rounding constant, shift, saturate/relu)
            + epilogue_latency (GELU pipeline, 0 when the tile has no gelu)
            + 1 (output FIFO)
          = k + rows + 2 * bias + 10 + epilogue_latency

    ``cols`` does not appear: the C columns are computed in parallel. The next command is
    accepted in cycle N + 1, so back-to-back tiles take exactly N cycles each. Stalls on
    any port only add cycles. ``bias`` counts only for the ``gemm`` opcode.
    """
    for name, v in (("rows", rows), ("cols", cols), ("k", k)):
        if not isinstance(v, int) or isinstance(v, bool) or v < 1:
            raise ConfigError(f"{name} must be a positive integer, got {v!r}")
    if not isinstance(epilogue_latency, int) or epilogue_latency < 0:
        raise ConfigError(f"epilogue_latency must be a non-negative integer, got {epilogue_latency!r}")
    return (1 + 2 * int(bool(bias)) + k + _MAC_PIPE + rows + _DRAIN_PIPE + _OUT_FIFO
            + epilogue_latency)


def _kbits(max_k: int) -> int:
    return max(1, (max_k - 1).bit_length())


def cmd_fields(max_k: int) -> dict[str, tuple[int, int]]:
    """Command payload fields: name -> (lsb offset, width). LSB first."""
    fields = [("k_m1", _kbits(max_k)), ("op", 2), ("bias", 1), ("acc", 1), ("reuse", 1),
              ("relu", 1), ("gelu", 1), ("shift", SHIFT_BITS)]
    out, off = {}, 0
    for name, width in fields:
        out[name] = (off, width)
        off += width
    return out


def encode_cmd(k: int, *, max_k: int, op: int = OP_GEMM, bias: bool = False,
               acc: bool = False, reuse: bool = False, relu: bool = False,
               gelu: bool = False, shift: int = 0) -> int:
    """Pack one command into the integer driven on ``cmd__payload``."""
    if not 1 <= k <= max_k:
        raise ConfigError(f"k={k} out of range [1, max_k={max_k}]")
    if op not in (OP_GEMM, OP_QKT, OP_AV):
        raise ConfigError(f"unknown opcode {op!r} (0=gemm, 1=qkt, 2=av)")
    if not 0 <= shift < (1 << SHIFT_BITS):
        raise ConfigError(f"shift={shift} out of range [0, {(1 << SHIFT_BITS) - 1}]")
    vals = {"k_m1": k - 1, "op": op, "bias": int(bias), "acc": int(acc), "reuse": int(reuse),
            "relu": int(relu), "gelu": int(gelu), "shift": shift}
    word = 0
    for name, (off, _w) in cmd_fields(max_k).items():
        word |= vals[name] << off
    return word


def _check_int(name, v, lo, hi=None):
    if not isinstance(v, int) or isinstance(v, bool) or v < lo or (hi is not None and v > hi):
        rng = f"[{lo}, {hi}]" if hi is not None else f">= {lo}"
        raise ConfigError(f"ComputeUnit: {name} must be an integer {rng}, got {v!r}")


class ComputeUnit(wiring.Component):
    """Unified compute unit: R x C MAC array, tiled GEMM with bias preload and epilogues.

    Keyword-only parameters (all validated, :class:`einsum.errors.ConfigError` on error):

    rows, cols        array size R x C (output tile), 1..64 each
    a_width, a_frac   activations (``i`` lanes), signed fixed point
    w_width, w_frac   weights (``w`` lanes)
    bias_frac         fraction bits of the bias beat (``w_width`` bits wide)
    acc_width         accumulator width (>= a_width + w_width; wraps on overflow)
    o_width, o_frac   results (``o`` lanes); default: the activation format
    max_k             operand buffer depth and largest K of one command (power of two)
    gelu              instantiate one GELU lane per column (:class:`hw.gelu.Gelu`) so the
                      ``gelu`` command flag works; if False the flag is ignored
    gelu_params       extra keyword parameters for :class:`hw.gelu.Gelu` (its ``dsp``
                      defaults to the unit's)
    dsp               "generic": ``a * b`` between registers (any FPGA or simulator);
                      "ecp5": one Lattice ``MULT18X18D`` per MAC with its input and output
                      registers enabled (same 2-cycle pipeline and reset behaviour, but the
                      registers sit inside the DSP block, which the ECP5 150 MHz target
                      needs; a_width, w_width <= 18)
    buffer_ram        synthesis hint for the operand buffer: "distributed" (LUT RAM, default;
                      fast on ECP5), "block", or "auto" (let the tool choose; needed on
                      iCE40, which has no LUT RAM)
    """

    def __init__(self, *, rows: int = 4, cols: int = 4, a_width: int = 16, a_frac: int = 10,
                 w_width: int = 16, w_frac: int = 14, bias_frac: int | None = None,
                 acc_width: int = 40, o_width: int | None = None, o_frac: int | None = None,
                 max_k: int = 64, gelu: bool = True, gelu_params: dict | None = None,
                 dsp: str = "generic", buffer_ram: str = "distributed"):
        self._MustUse__silence = True   # no "never used" warning if validation fails
        _check_int("rows", rows, 1, 64)
        _check_int("cols", cols, 1, 64)
        _check_int("a_width", a_width, 2, 32)
        _check_int("w_width", w_width, 2, 32)
        _check_int("acc_width", acc_width, 4, 96)
        _check_int("max_k", max_k, 1, 1 << 16)
        if max_k & (max_k - 1):
            raise ConfigError(f"ComputeUnit: max_k must be a power of two, got {max_k}")
        o_width = a_width if o_width is None else o_width
        o_frac = a_frac if o_frac is None else o_frac
        bias_frac = w_frac if bias_frac is None else bias_frac
        _check_int("o_width", o_width, 2, 32)
        try:
            fmt = GemmFormat(a_width=a_width, a_frac=a_frac, w_width=w_width, w_frac=w_frac,
                             acc_width=acc_width, o_width=o_width, o_frac=o_frac,
                             bias_frac=bias_frac)
        except Exception as exc:  # NumericError -> ConfigError with the unit's name
            raise ConfigError(f"ComputeUnit: {exc}") from None
        if not isinstance(gelu, bool):
            raise ConfigError(f"ComputeUnit: gelu must be a bool, got {gelu!r}")
        self.rows, self.cols, self.max_k = rows, cols, max_k
        self.fmt = fmt
        self.gelu = gelu
        if dsp not in ("generic", "ecp5"):
            raise ConfigError(f"ComputeUnit: dsp must be 'generic' or 'ecp5', got {dsp!r}")
        if dsp == "ecp5" and (a_width > 18 or w_width > 18):
            raise ConfigError("ComputeUnit: dsp='ecp5' needs a_width and w_width <= 18 "
                              f"(MULT18X18D), got {a_width} and {w_width}")
        self.dsp = dsp
        if buffer_ram not in ("distributed", "block", "auto"):
            raise ConfigError("ComputeUnit: buffer_ram must be 'distributed', 'block' or "
                              f"'auto', got {buffer_ram!r}")
        self.buffer_ram = buffer_ram
        self.gelu_params = dict(gelu_params or {})
        self.gelu_latency = 0
        if gelu:  # probe one lane for its latency (and validate the format now)
            probe = self._make_gelu()
            probe._MustUse__silence = True
            self.gelu_latency = int(probe.describe()["latency"])
        self.cmd_fields = cmd_fields(max_k)
        cmd_layout = data.StructLayout({name: unsigned(w) for name, (_o, w) in self.cmd_fields.items()})
        super().__init__({
            "cmd": In(stream.Signature(cmd_layout)),
            "i": In(stream.Signature(data.ArrayLayout(signed(a_width), rows))),
            "w": In(stream.Signature(data.ArrayLayout(signed(w_width), cols))),
            "o": Out(stream.Signature(data.ArrayLayout(signed(o_width), cols))),
        })
        self._MustUse__silence = False

    # -- plug-in epilogue ------------------------------------------------------------
    def _make_gelu(self):
        """One GELU lane taking and giving output-format codes."""
        from hw.gelu import Gelu  # lazy: optional block

        params = {"width": self.fmt.o_width, "frac_bits": self.fmt.o_frac, "dsp": self.dsp}
        params.update(self.gelu_params)
        g = Gelu(**params)
        d = g.describe()
        pi, po = d["ports"]["i"], d["ports"]["o"]
        if (pi["width"], pi["frac_bits"], po["width"], po["frac_bits"]) != (
                self.fmt.o_width, self.fmt.o_frac, self.fmt.o_width, self.fmt.o_frac):
            raise ConfigError(
                "ComputeUnit: the GELU lane must take and give the output format "
                f"Q{self.fmt.o_width}.{self.fmt.o_frac}; got i={pi['width']}/{pi['frac_bits']} "
                f"o={po['width']}/{po['frac_bits']}")
        return g

    def tile_cycles(self, k: int, *, bias: bool = False, gelu: bool = False) -> int:
        """:func:`tile_cycles` for this instance (gelu counts only if the unit has lanes)."""
        return tile_cycles(self.rows, self.cols, k, bias=bias,
                           epilogue_latency=self.gelu_latency if (gelu and self.gelu) else 0)

    def params(self) -> dict:
        p = self.fmt.as_dict()
        p.update(rows=self.rows, cols=self.cols, max_k=self.max_k, gelu=self.gelu, dsp=self.dsp,
                 buffer_ram=self.buffer_ram)
        if self.gelu_params:
            p["gelu_params"] = dict(self.gelu_params)
        return p

    def describe(self) -> dict:
        f = self.fmt

        def port(name, width, frac, lanes):
            return {"payload": f"{name}__payload", "valid": f"{name}__valid",
                    "ready": f"{name}__ready", "width": width, "frac_bits": frac,
                    "signed": True, "lanes": lanes}

        return {
            "top": "compute_unit",
            "clock": "clk",
            "reset": "rst",
            "ports": {
                "cmd": {"payload": "cmd__payload", "valid": "cmd__valid", "ready": "cmd__ready",
                        "width": sum(w for _o, w in self.cmd_fields.values()),
                        "frac_bits": 0, "signed": False, "lanes": 1},
                "i": port("i", f.a_width, f.a_frac, self.rows),
                "w": port("w", f.w_width, f.w_frac, self.cols),
                "o": port("o", f.o_width, f.o_frac, self.cols),
            },
            "latency": {
                "formula": "k + rows + 2 * bias + 10 + (gelu_latency if gelu else 0)",
                "gelu_latency": self.gelu_latency,
                "example_k16": self.tile_cycles(16),
            },
            "params": self.params(),
            "commands": {
                "fields": {n: {"lsb": o, "width": w} for n, (o, w) in self.cmd_fields.items()},
                "opcodes": {"gemm": OP_GEMM, "qkt": OP_QKT, "av": OP_AV},
                "notes": {
                    "k_m1": "K depth minus one (K in 1..max_k)",
                    "bias": "gemm only: first w beat is the bias, added into the accumulators",
                    "acc": "keep the accumulators of the previous tile (K split)",
                    "reuse": "take the left operand from the buffer (last non-reuse command)",
                    "relu": "gemm only: max(0, y) after requantization",
                    "gelu": "gemm only: GELU lane per column (needs gelu=True)",
                    "shift": "extra right shift before rounding (scale by 2**-shift)",
                },
            },
        }

    # -- RTL -------------------------------------------------------------------------
    def elaborate(self, platform):
        m = Module()
        R, C, f = self.rows, self.cols, self.fmt
        kb = _kbits(self.max_k)
        pw = f.a_width + f.w_width

        # operand buffer, asynchronous read (distributed/LUT RAM: an ECP5 block RAM without
        # its output register needs ~5.8 ns clock-to-out, too slow for the 150 MHz target)
        m.submodules.abuf = abuf = Memory(shape=data.ArrayLayout(signed(f.a_width), R),
                                          depth=self.max_k, init=[],
                                          attrs=({} if self.buffer_ram == "auto" else
                                                 {"ram_style": self.buffer_ram}))
        rd = abuf.read_port(domain="comb")
        wr = abuf.write_port()

        # latched command
        k_m1 = Signal(kb)
        c_bias = Signal()
        c_reuse = Signal()
        c_relu = Signal()
        c_gelu = Signal()
        c_shift = Signal(SHIFT_BITS)

        kcnt = Signal(kb)

        acc = [[Signal(signed(f.acc_width), name=f"acc_{r}_{c}") for c in range(C)] for r in range(R)]
        a_r = [Signal(signed(f.a_width), name=f"a_r{r}") for r in range(R)]
        w_r = [Signal(signed(f.w_width), name=f"w_r{c}") for c in range(C)]
        # per-MAC operand copies; "_dup_" marks deliberate duplicates for hw.synth (kept)
        a_d = [[Signal(signed(f.a_width), name=f"a_dup_{r}_{c}") for c in range(C)] for r in range(R)]
        w_d = [[Signal(signed(f.w_width), name=f"w_dup_{r}_{c}") for c in range(C)] for r in range(R)]
        prod = [[Signal(signed(pw), name=f"p_{r}_{c}") for c in range(C)] for r in range(R)]
        v1 = Signal()
        v2 = Signal()
        v3 = Signal()
        v4 = Signal()
        # second product register in the fabric: the accumulators need not sit next to the
        # DSP blocks (the DSP output -> 40-bit adder route limited Fmax)
        prod2 = [[Signal(signed(pw), name=f"p2_{r}_{c}") for c in range(C)] for r in range(R)]
        clear = Signal()  # registered: one cycle after the command, high fan-out
        bias_hs = Signal()
        mac_hs = Signal()

        # drain pipeline
        rcnt = Signal(range(max(R, 2)))
        ocnt = Signal(range(max(R, 2)))
        s1_v = Signal()
        s1 = [Signal(signed(f.acc_width), name=f"s1_{c}") for c in range(C)]
        s2_v = Signal()
        s2 = Signal(data.ArrayLayout(signed(f.o_width), C))
        issue = Signal()
        issue_ok = Signal()
        # acc + rounding constant must not overflow even when the shift exceeds acc_width
        xw = max(f.acc_width, f.base_shift + (1 << SHIFT_BITS) - 1) + 1
        rnd = Signal(unsigned(xw))  # 2**(s-1) for the command's total shift s

        cmd = self.cmd.payload
        m.d.comb += rd.addr.eq(kcnt)

        with m.FSM(name="cu"):
            with m.State("IDLE"):
                # (~rst: not ready during reset; also makes event-driven simulators evaluate
                # this output at start-up even though the state register never changes)
                m.d.comb += self.cmd.ready.eq(~ResetSignal())
                with m.If(self.cmd.valid & ~ResetSignal()):
                    is_gemm = cmd.op == OP_GEMM
                    m.d.sync += [
                        k_m1.eq(cmd.k_m1),
                        c_bias.eq(cmd.bias & is_gemm),
                        c_reuse.eq(cmd.reuse),
                        c_relu.eq(cmd.relu & is_gemm),
                        c_gelu.eq(cmd.gelu & is_gemm & int(self.gelu)),
                        c_shift.eq(cmd.shift),
                        rnd.eq((Const(1, unsigned(xw + 1)) << (f.base_shift + cmd.shift))[1:]),
                        kcnt.eq(0),
                        rcnt.eq(0),
                        ocnt.eq(0),
                    ]
                    m.d.sync += clear.eq(~cmd.acc)  # accumulators cleared next cycle
                    with m.If(cmd.bias & is_gemm):
                        m.next = "BIAS"
                    with m.Else():
                        m.next = "MAC"
            with m.State("BIAS"):
                # not in the clearing cycle: the bias is added to the cleared accumulators
                m.d.comb += [self.w.ready.eq(~clear), bias_hs.eq(self.w.valid & ~clear)]
                with m.If(bias_hs):
                    m.next = "MAC"
            with m.State("MAC"):
                a_ok = Signal()
                m.d.comb += a_ok.eq(c_reuse | self.i.valid)
                m.d.comb += [
                    mac_hs.eq(a_ok & self.w.valid),
                    self.w.ready.eq(a_ok),
                    self.i.ready.eq(self.w.valid & ~c_reuse),
                ]
                with m.If(mac_hs):
                    m.d.sync += kcnt.eq(kcnt + 1)
                    with m.If(kcnt == k_m1):
                        m.next = "FLUSH"
            with m.State("FLUSH"):
                with m.If(~v1 & ~v2 & ~v3):
                    m.next = "DRAIN"
            with m.State("DRAIN"):
                m.d.comb += issue.eq(issue_ok)
                with m.If(issue):
                    m.d.sync += rcnt.eq(rcnt + 1)
                    with m.If(rcnt == R - 1):
                        m.next = "WAIT"
            with m.State("WAIT"):
                with m.If(self.o.valid & self.o.ready & (ocnt == R - 1)):
                    m.next = "IDLE"

        with m.If(self.o.valid & self.o.ready):
            m.d.sync += ocnt.eq(ocnt + 1)

        # operand buffer write / operand select
        a_sel = Signal(data.ArrayLayout(signed(f.a_width), R))
        m.d.comb += a_sel.eq(self.i.payload)
        with m.If(c_reuse):
            m.d.comb += a_sel.eq(rd.data)
        # the write is registered (one cycle after the handshake, data from the operand
        # register): keeps the handshake logic off the LUT-RAM write-enable fan-out
        wr_en = Signal()
        wr_addr = Signal(kb)
        m.d.sync += [wr_en.eq(mac_hs & ~c_reuse), wr_addr.eq(kcnt)]
        m.d.comb += [wr.addr.eq(wr_addr), wr.data.eq(Cat(*a_r)), wr.en.eq(wr_en)]

        with m.If(clear):
            m.d.sync += clear.eq(0)
        # the bias beat is registered and added one cycle later (before the first product
        # arrives), so the accumulators' enable only depends on registers
        b_r = [Signal(signed(f.w_width), name=f"b_r{c}") for c in range(C)]
        bias_v = Signal()
        m.d.sync += bias_v.eq(bias_hs)
        with m.If(bias_hs):
            m.d.sync += [b_r[c].eq(self.w.payload[c]) for c in range(C)]

        # MAC pipeline: operand registers -> per-MAC copies -> product registers -> accumulate
        m.d.sync += [v1.eq(mac_hs), v2.eq(v1), v3.eq(v2), v4.eq(v3)]
        m.d.sync += [prod2[r][c].eq(prod[r][c]) for r in range(R) for c in range(C)]
        with m.If(mac_hs):
            m.d.sync += [a_r[r].eq(a_sel[r]) for r in range(R)]
            m.d.sync += [w_r[c].eq(self.w.payload[c]) for c in range(C)]
        if self.dsp == "generic":
            m.d.sync += [a_d[r][c].eq(a_r[r]) for r in range(R) for c in range(C)]
            m.d.sync += [w_d[r][c].eq(w_r[c]) for r in range(R) for c in range(C)]
            m.d.sync += [prod[r][c].eq(a_d[r][c] * w_d[r][c]) for r in range(R) for c in range(C)]
        else:
            for r in range(R):
                for c in range(C):
                    p36 = Signal(36, name=f"p36_{r}_{c}")
                    m.submodules[f"mult_{r}_{c}"] = ecp5_mult18x18d(a_r[r], w_r[c], p36, ce=Const(1))
                    m.d.comb += prod[r][c].eq(p36[:pw])
        for r in range(R):
            for c in range(C):
                with m.If(clear):
                    m.d.sync += acc[r][c].eq(0)
                with m.Elif(bias_v):
                    m.d.sync += acc[r][c].eq(acc[r][c] + (b_r[c] << f.bias_shift))
                with m.Elif(v4):
                    m.d.sync += acc[r][c].eq(acc[r][c] + prod2[r][c])

        # drain pipeline: 4 registered stages that never stall, optionally followed by the
        # GELU lanes (also never stalled), into an output FIFO. Back-pressure from ``o`` is
        # handled by credits: a row is issued only while rows issued and not yet read from
        # the FIFO are fewer than its depth, so the FIFO can always take what is in flight
        # and no high-fan-out stall signal crosses the pipeline.
        #   s1 row select -> s2x + rounding constant -> s3y >> shift -> s2 saturate, relu
        lo, hi = -(1 << (f.o_width - 1)), (1 << (f.o_width - 1)) - 1
        yw = xw - f.base_shift                        # width after the fixed shift
        s2x = [Signal(signed(xw), name=f"rq_x{c}") for c in range(C)]
        s3y = [Signal(signed(yw), name=f"rq_y{c}") for c in range(C)]
        s2x_v = Signal()
        s3y_v = Signal()
        depth = _DRAIN_PIPE + 2 + self.gelu_latency   # in flight + 1 for full rate
        m.submodules.ofifo = ofifo = SyncFIFO(width=C * f.o_width, depth=depth)
        credits = Signal(range(depth + 1))
        o_hs = Signal()
        m.d.comb += o_hs.eq(self.o.valid & self.o.ready)
        m.d.comb += issue_ok.eq(credits < depth)
        m.d.sync += credits.eq(credits + issue - o_hs)

        m.d.sync += s1_v.eq(issue)
        with m.Switch(rcnt):
            for r in range(R):
                with m.Case(r):
                    m.d.sync += [s1[c].eq(acc[r][c]) for c in range(C)]
        m.d.sync += s2x_v.eq(s1_v)
        m.d.sync += [s2x[c].eq(s1[c] + rnd) for c in range(C)]
        m.d.sync += s3y_v.eq(s2x_v)
        m.d.sync += [s3y[c].eq((s2x[c] >> f.base_shift) >> c_shift) for c in range(C)]
        m.d.sync += s2_v.eq(s3y_v)
        for c in range(C):
            y = s3y[c]
            if yw > f.o_width:
                top = y[f.o_width - 1:]
                over = ~y[-1] & top.any()      # positive and does not fit
                under = y[-1] & ~top.all()     # negative and does not fit
            else:
                over = under = Const(0)
            with m.If(over):
                m.d.sync += s2[c].eq(hi)
            with m.Elif(under | (c_relu & y[-1])):
                m.d.sync += s2[c].eq(Mux(c_relu, 0, lo))
            with m.Else():
                fit = y[:f.o_width].as_signed() if yw > f.o_width else y
                m.d.sync += s2[c].eq(Mux(c_relu & y[-1], 0, fit))

        m.d.comb += [ofifo.w_data.eq(s2.as_value()), ofifo.w_en.eq(s2_v & ~c_gelu)]
        if self.gelu:
            # one GELU lane per column, in lockstep; o.ready is tied high, so every lane
            # accepts a beat each cycle (credits keep the FIFO from overflowing)
            g_out = Signal(data.ArrayLayout(signed(f.o_width), C))
            for c in range(C):
                lane = self._make_gelu()
                m.submodules[f"gelu{c}"] = lane
                m.d.comb += [lane.i.payload.eq(s2[c]), lane.i.valid.eq(s2_v & c_gelu),
                             lane.o.ready.eq(1), g_out[c].eq(lane.o.payload)]
                if c == 0:
                    g_valid = lane.o.valid
            with m.If(c_gelu):
                m.d.comb += [ofifo.w_data.eq(g_out.as_value()), ofifo.w_en.eq(g_valid)]
        m.d.comb += [self.o.payload.eq(ofifo.r_data), self.o.valid.eq(ofifo.r_rdy),
                     ofifo.r_en.eq(self.o.ready)]
        return m
