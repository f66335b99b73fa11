"""Fixed-point 1-pass attention (attention-fixed-1pass): bit-exact against a plain loop
implementation written from the algorithm, and within its stated error bound of float64
softmax attention (einsum/fixed.py's docstring)."""

from __future__ import annotations

import math
from fractions import Fraction

import numpy as np
import pytest

from einsum.approx import exp2_shift_int
from einsum.errors import NumericError
from einsum.fixed import recip_div_int, shift_right
from einsum.interp import evaluate
from einsum.load import load_cascade

# --- an independent integer implementation: Python ints, one query and one key at a time ---
_L = round(math.log2(math.e) * 2**17)
_TABLE = [math.floor(2.0 ** (k / 64) * 2**22 + 0.5) for k in range(65)]


def _exp2_frac(f: int) -> int:
    """2**(f / 2**16) with 22 fraction bits: linear interpolation between 64ths."""
    k, r = f >> 10, f & 1023
    return _TABLE[k] + (((_TABLE[k + 1] - _TABLE[k]) * r) >> 10)


def _score(q_row, k_row, qk_shift: int) -> int:
    acc = sum(int(a) * int(b) for a, b in zip(q_row, k_row))
    acc = (acc + 2**39) % 2**40 - 2**39  # the 40-bit accumulator wraps
    s = (acc + (1 << (qk_shift - 1))) >> qk_shift
    return max(-(2**15), min(2**15 - 1, s))


def _divide(num: int, den: int) -> int:
    j = den.bit_length() - 1 - 17
    mant = den >> j if j >= 0 else den << -j
    recip = 2**34 // mant
    nn = num >> j if j >= 0 else num << -j
    q = (nn * recip + 2**33) >> 34
    return max(-(2**15), min(2**15 - 1, q))


def loop_attention(Q, K, V, p0: int, qk_shift: int = 13) -> np.ndarray:
    """Online softmax over chunks of p0 keys, base 2, integer running max, shift rescales."""
    m_rows, p_keys, f_cols = Q.shape[0], K.shape[0], V.shape[1]
    out = np.zeros((m_rows, f_cols), dtype=np.int64)
    for m in range(m_rows):
        run_max = None
        den = 0
        num = [0] * f_cols
        for start in range(0, p_keys, p0):
            keys = range(start, min(start + p0, p_keys))
            t = {p: (_score(Q[m], K[p], qk_shift) * _L) >> 11 for p in keys}
            new_max = max(tt >> 16 for tt in t.values())
            if run_max is not None:
                new_max = max(new_max, run_max)
                shift = new_max - run_max
                den >>= shift
                num = [x >> shift for x in num]
            for p in keys:
                w = _exp2_frac(t[p] & 0xFFFF) >> (new_max - (t[p] >> 16) + 7)
                den += w
                for f in range(f_cols):
                    num[f] += w * int(V[p, f])
            run_max = new_max
        out[m] = [_divide(x, den) for x in num]
    return out


def _head(m, p, e, f, p0, seed, amp_qk=2048, amp_v=4096):
    c = load_cascade("attention-fixed-1pass", ranks={"M": m, "P": p, "E": e, "F": f, "P0": p0})
    rng = np.random.default_rng(seed)
    Q = rng.integers(-amp_qk, amp_qk + 1, (m, e))
    K = rng.integers(-amp_qk, amp_qk + 1, (p, e))
    V = rng.integers(-amp_v, amp_v + 1, (p, f))
    return c, Q, K, V


@pytest.mark.parametrize("m,p,e,f,p0", [
    (4, 16, 8, 8, 4),     # chunks divide
    (3, 29, 8, 5, 4),     # ragged: seven chunks of 4 and one of 1
    (2, 5, 4, 3, 8),      # one partial chunk
    (2, 7, 3, 2, 1),      # one key per chunk
    (5, 33, 16, 4, 8),    # ragged, last chunk of 1
    (1, 64, 8, 8, 16),
])
@pytest.mark.parametrize("seed,amp", [(0, 2048), (1, 8192), (2, 32767)])
def test_cascade_is_the_loop_implementation(m, p, e, f, p0, seed, amp):
    c, Q, K, V = _head(m, p, e, f, p0, seed, amp_qk=amp, amp_v=amp)
    got = evaluate(c, {"Q": Q, "K": K, "V": V})["AV"]
    np.testing.assert_array_equal(got, loop_attention(Q, K, V, p0))


def test_running_max_rises_across_chunks():
    """Keys sorted by increasing score: the max rises at every chunk, every rescale shifts."""
    c, Q, K, V = _head(2, 24, 4, 3, 4, 7)
    K = np.sort(K, axis=0)
    Q = np.abs(Q)
    out = evaluate(c, {"Q": Q, "K": K, "V": V})
    assert (out["PRM"][:, 1:] > 0).sum() >= 4  # several real shifts happened
    np.testing.assert_array_equal(out["AV"], loop_attention(Q, K, V, 4))


def _float_attention(Q, K, V, qk_shift=13):
    s = (Q.astype(np.float64) @ K.T.astype(np.float64)) * 2.0 ** (-10 - qk_shift)
    w = np.exp(s - s.max(axis=1, keepdims=True))
    z = w.sum(axis=1)
    return (w / z[:, None]) @ (V * 2.0**-10), z


D_EXP = 2.0**-11 + 2.35e-5 + 3.0e-5


def error_bound(z: np.ndarray, vmax: float, p: int, p1: int) -> np.ndarray:
    """The bound of einsum/fixed.py's docstring, per query row."""
    lsb = 2.0**-15
    trunc = lsb * (2 * p * vmax + p1 * (vmax + 2.0**-10)) / (z * math.exp(-2 * D_EXP) - (p + p1) * lsb)
    return (math.expm1(2 * D_EXP) + 2.3e-5) * vmax + 1.0001 * trunc + 2.0**-11 + 2.0**-27


@pytest.mark.parametrize("m,p,e,f,p0,amp,seed,max_err", [
    (8, 64, 8, 8, 8, 4096, 0, 9.9e-4),      # scores within +-7
    (8, 61, 8, 8, 8, 9000, 1, 8.4e-4),      # peaked softmax (scores to +-30), ragged
    (4, 257, 16, 4, 32, 4096, 2, 1.03e-3),  # long rows, ragged
    (4, 30, 8, 4, 4, 10000, 3, 7.3e-4),     # scores to +-27, ragged
])
def test_error_bound_against_float_attention(m, p, e, f, p0, amp, seed, max_err):
    c, Q, K, V = _head(m, p, e, f, p0, seed, amp_qk=amp)
    ref, z = _float_attention(Q, K, V)
    s = (Q @ K.T) * 2.0**-23
    assert np.abs(s).max() < 31.9  # no score saturates
    got = evaluate(c, {"Q": Q, "K": K, "V": V})["AV"] * 2.0**-10
    err = np.abs(got - ref).max(axis=1)
    bound = error_bound(z, np.abs(V).max() * 2.0**-10, p, -(-p // p0))
    assert np.all(err <= bound)
    assert err.max() <= max_err  # pinned measurement: well inside the bound
    assert bound.max() < 0.06     # and the bound is not vacuous (a few % of Vmax = 4)


def test_exp2_fixed_against_float():
    t = np.arange(-8 * 2**16, 2**16, 37)
    n = t >> 16
    for run_max in (n.max(), n.max() + 3):
        got = exp2_shift_int(t, run_max, 15, 16) * 2.0**-15
        exact = 2.0 ** (t / 2**16 - run_max)
        assert np.all(got <= exact * (1 + 3.0e-5))
        assert np.all(got >= exact * (1 - 3.0e-5) - 2.0**-15)
    assert exp2_shift_int(np.array([5 * 2**16]), 0, 15, 16)[0] == 2**16 - 1  # m < n saturates


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_recip_div_error(seed):
    rng = np.random.default_rng(seed)
    den = rng.integers(1, 2**30, 2000) >> rng.integers(0, 29, 2000)
    den = np.maximum(den, 1)
    num = (rng.uniform(-1, 1, 2000) * den * 2**14).astype(np.int64)
    q = recip_div_int(num, den, 16)
    for a, b, r in zip(num, den, q):
        exact = Fraction(int(a), int(b))
        assert abs(r - exact) <= Fraction(1, 2) + abs(exact) * Fraction(3, 2**17) + Fraction(1, 2**17)


def test_recip_div_saturates_and_rejects_zero():
    assert list(recip_div_int([2**40, -(2**40), 5], [3, 3, 1], 16)) == [32767, -32768, 5]
    with pytest.raises(NumericError, match="denominator below 1"):
        recip_div_int([1], [0], 16)
    with pytest.raises(NumericError, match="width"):
        recip_div_int([1], [1], 40)


def test_shr_is_a_floor_shift():
    assert list(shift_right(np.array([-5, 5, -1, 7]), np.array([1, 1, 70, 0]))) == [-3, 2, -1, 7]
    c, Q, K, V = _head(1, 4, 2, 1, 2, 0)
    out = evaluate(c, {"Q": Q, "K": K, "V": V})
    np.testing.assert_array_equal(out["SPD"], np.floor(out["RD"][:, :-1] / 2.0 ** np.minimum(out["PRM"], 63)))


def test_is_one_pass_over_the_keys():
    from einsum.analysis import passes

    assert passes(load_cascade("attention-fixed-1pass"))["P"] == 1
