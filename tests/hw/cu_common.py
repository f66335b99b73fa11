"""Simulator-independent stimulus, driver and checker for the compute unit.

Used by the Amaranth-simulator tests and the cocotb tests alike: a :class:`Job` is one
command with its operand beats and the golden result; :class:`CuDriver` decides, cycle by
cycle, what to drive on ``cmd``/``i``/``w`` and ``o.ready`` (random valid/ready stalls,
valid held until accepted), and records outputs and per-tile cycle counts.
"""

from __future__ import annotations

import random
from dataclasses import dataclass, field

import numpy as np

from einsum.golden_gemm import OP_AV, OP_GEMM, OP_QKT, GemmFormat, gemm_tile
from hw.compute_unit import encode_cmd, tile_cycles


@dataclass
class Job:
    cmd: int
    i_beats: list            # list of R-lane integer lists (empty with reuse)
    w_beats: list            # list of C-lane integer lists (bias beat first if any)
    expected: np.ndarray     # (R, C) output codes
    k: int
    bias: bool
    gelu: bool = False
    label: str = ""


def pack(values, width: int) -> int:
    word = 0
    mask = (1 << width) - 1
    for j, v in enumerate(values):
        word |= (int(v) & mask) << (j * width)
    return word


def unpack(word: int, width: int, lanes: int) -> list[int]:
    out = []
    mask = (1 << width) - 1
    for j in range(lanes):
        v = (word >> (j * width)) & mask
        if v >> (width - 1):
            v -= 1 << width
        out.append(v)
    return out


def _operand(rng: np.random.Generator, kind: str, shape, width: int) -> np.ndarray:
    lo, hi = -(1 << (width - 1)), (1 << (width - 1)) - 1
    if kind == "rand":
        return rng.integers(lo, hi + 1, size=shape)
    if kind == "small":
        return rng.integers(-(1 << (width // 2)), 1 << (width // 2), size=shape)
    if kind == "max":
        return np.full(shape, hi)
    if kind == "min":
        return np.full(shape, lo)
    if kind == "zero":
        return np.zeros(shape, dtype=np.int64)
    if kind == "corners":
        return rng.choice(np.array([lo, hi, -1, 0, 1]), size=shape)
    raise ValueError(kind)


# (label, k, op, a_kind, w_kind, flags) -- at least 8 tile shapes incl. saturation corners
SCENARIOS = [
    ("k1_rand", 1, OP_GEMM, "rand", "rand", {}),
    ("k3_bias_relu", 3, OP_GEMM, "small", "rand", {"bias": True, "relu": True}),
    ("k8_rand_bias", 8, OP_GEMM, "rand", "rand", {"bias": True}),
    ("k5_sat_pos", 5, OP_GEMM, "max", "max", {"bias": True}),      # saturates high
    ("k4_sat_neg", 4, OP_GEMM, "min", "max", {}),                  # saturates low
    ("k6_minmin", 6, OP_GEMM, "min", "min", {"shift": 15}),        # largest products, shifted
    ("k16_corners", 16, OP_GEMM, "corners", "corners", {"shift": 2}),
    ("k7_zero", 7, OP_GEMM, "zero", "rand", {"bias": True, "relu": True}),
    ("k9_qkt", 9, OP_QKT, "small", "small", {"shift": 3, "bias": True}),  # bias ignored
    ("k12_av", 12, OP_AV, "small", "rand", {"relu": True}),        # relu ignored
    ("k2_reuse", 2, OP_GEMM, None, "rand", {"reuse": True}),       # reuses previous A
    ("k12_acc", 12, OP_AV, "rand", "small", {"acc": True}),        # K split continuation
    ("k32_long", 32, OP_GEMM, "rand", "small", {"bias": True, "shift": 1}),
]


# extra scenarios for units built with GELU lanes (golden: hw.gelu.Gelu.model)
SCENARIOS_GELU = [
    ("k10_bias_gelu", 10, OP_GEMM, "small", "rand", {"bias": True, "gelu": True}),
    ("k4_gelu_sat_neg", 4, OP_GEMM, "max", "min", {"gelu": True}),
    ("k6_gelu_shift", 6, OP_GEMM, "rand", "rand", {"gelu": True, "shift": 4}),
    ("k3_gelu_relu", 3, OP_GEMM, "rand", "rand", {"gelu": True, "relu": True}),
    ("k5_qkt_gelu_ignored", 5, OP_QKT, "small", "small", {"gelu": True, "shift": 1}),
    ("k2_after_gelu", 2, OP_GEMM, "rand", "rand", {"bias": True}),
]


def gelu_model_for(unit):
    """Integer GELU on output codes, the golden model of the unit's GELU lanes."""
    if not unit.gelu:
        return None
    from hw.gelu import Gelu

    g = Gelu(width=unit.fmt.o_width, frac_bits=unit.fmt.o_frac, **unit.gelu_params)
    g._MustUse__silence = True
    return lambda y: np.asarray(g.model(np.asarray(y, dtype=np.int64)), dtype=np.int64)


def make_jobs(rows: int, cols: int, fmt: GemmFormat, max_k: int, seed: int,
              scenarios=SCENARIOS, gelu_fn=None) -> list[Job]:
    """Jobs for the scenarios, in order, with golden results (state carried across jobs)."""
    rng = np.random.default_rng(seed)
    jobs = []
    last_a = None     # last non-reuse left operand (R, K)
    acc = np.zeros((rows, cols), dtype=object)
    for label, k, op, a_kind, w_kind, flags in scenarios:
        k = min(k, max_k)
        reuse = bool(flags.get("reuse"))
        if reuse:
            if last_a is None or last_a.shape[1] < k:
                raise ValueError("reuse needs a previous operand of depth >= k")
            a = last_a[:, :k]
        else:
            a = _operand(rng, a_kind, (rows, k), fmt.a_width)
            # the buffer keeps beats of every non-reuse command (older beats beyond k stay)
            if last_a is None or last_a.shape[1] <= k:
                last_a = a.copy()
            else:
                last_a = last_a.copy()
                last_a[:, :k] = a
        w = _operand(rng, w_kind, (k, cols), fmt.w_width)
        bias_flag = bool(flags.get("bias"))
        b = _operand(rng, "rand", (cols,), fmt.w_width) if bias_flag else None
        gelu = bool(flags.get("gelu"))
        out, acc = gemm_tile(a, w, b if op == OP_GEMM else None, fmt=fmt, op=op,
                             shift=flags.get("shift", 0), relu=bool(flags.get("relu")),
                             gelu=gelu_fn if (gelu and op == OP_GEMM) else None,
                             acc_in=acc if flags.get("acc") else None)
        cmd = encode_cmd(k, max_k=max_k, op=op, bias=bias_flag, acc=bool(flags.get("acc")),
                         reuse=reuse, relu=bool(flags.get("relu")), gelu=gelu,
                         shift=flags.get("shift", 0))
        w_beats = ([list(b)] if (bias_flag and op == OP_GEMM) else []) + [list(w[j]) for j in range(k)]
        i_beats = [] if reuse else [list(a[:, j]) for j in range(k)]
        jobs.append(Job(cmd, i_beats, w_beats, out, k, bias_flag and op == OP_GEMM,
                        gelu and op == OP_GEMM, label))
    return jobs


@dataclass
class _Src:
    beats: list
    width: int
    p_valid: float
    pos: int = 0
    presenting: bool = False

    def drive(self, rng: random.Random) -> tuple[int, int]:
        if not self.presenting and self.pos < len(self.beats) and rng.random() < self.p_valid:
            self.presenting = True
        if self.presenting:
            b = self.beats[self.pos]
            word = b if isinstance(b, int) else pack(b, self.width)
            return 1, word
        return 0, 0

    def accepted(self) -> None:
        assert self.presenting
        self.pos += 1
        self.presenting = False


@dataclass
class CuDriver:
    """Cycle-by-cycle stimulus/checker. Call ``drive()``, then ``observe(...)`` each cycle."""

    jobs: list
    rows: int
    cols: int
    a_width: int
    w_width: int
    o_width: int
    p_valid: float = 1.0
    p_ready: float = 1.0
    seed: int = 0
    cycle: int = 0
    outputs: list = field(default_factory=list)
    cmd_cycles: list = field(default_factory=list)
    last_out_cycles: list = field(default_factory=list)

    def __post_init__(self):
        self.rng = random.Random(self.seed)
        self.cmd = _Src([j.cmd for j in self.jobs], 0, self.p_valid)
        self.i = _Src([b for j in self.jobs for b in j.i_beats], self.a_width, self.p_valid)
        self.w = _Src([b for j in self.jobs for b in j.w_beats], self.w_width, self.p_valid)
        self._rows_out = []
        self._o_ready = 1

    @property
    def done(self) -> bool:
        return len(self.outputs) == len(self.jobs)

    def drive(self) -> dict:
        cv, cp = self.cmd.drive(self.rng)
        iv, ip = self.i.drive(self.rng)
        wv, wp = self.w.drive(self.rng)
        self._o_ready = 1 if self.rng.random() < self.p_ready else 0
        return {"cmd_valid": cv, "cmd_payload": cp, "i_valid": iv, "i_payload": ip,
                "w_valid": wv, "w_payload": wp, "o_ready": self._o_ready}

    def observe(self, cmd_hs: bool, i_hs: bool, w_hs: bool, o_hs: bool, o_payload: int) -> None:
        if cmd_hs:
            self.cmd.accepted()
            self.cmd_cycles.append(self.cycle)
        if i_hs:
            self.i.accepted()
        if w_hs:
            self.w.accepted()
        if o_hs:
            self._rows_out.append(unpack(o_payload, self.o_width, self.cols))
            if len(self._rows_out) == self.rows:
                self.outputs.append(np.array(self._rows_out, dtype=np.int64))
                self.last_out_cycles.append(self.cycle)
                self._rows_out = []
        self.cycle += 1

    def check(self, unit_tile_cycles, exact: bool) -> None:
        """Bit-exact outputs; per-tile cycles == formula (exact) or >= formula (stalls)."""
        assert self.done, f"only {len(self.outputs)} of {len(self.jobs)} tiles came out"
        for job, got in zip(self.jobs, self.outputs):
            np.testing.assert_array_equal(got, job.expected, err_msg=f"tile {job.label}")
        for n, job in enumerate(self.jobs):
            measured = self.last_out_cycles[n] - self.cmd_cycles[n] + 1
            want = unit_tile_cycles(job)
            if exact:
                assert measured == want, f"tile {job.label}: {measured} cycles, formula {want}"
            else:
                assert measured >= want, f"tile {job.label}: {measured} < formula {want}"
        if exact:  # back-to-back: next command accepted right after the last output
            for n in range(1, len(self.jobs)):
                assert self.cmd_cycles[n] == self.last_out_cycles[n - 1] + 1


def formula_for(rows: int, cols: int, gelu_latency: int = 0):
    def f(job: Job) -> int:
        return tile_cycles(rows, cols, job.k, bias=job.bias,
                           epilogue_latency=gelu_latency if job.gelu else 0)
    return f
