"""Golden GEMM model of the compute unit vs float64.

Stated bound: products and sums are exact integers, so the only error of a tile against
float64 arithmetic on the same (quantized) operands is the final round-half-up, at most
half an output LSB, ``2**-(o_frac + 1)``, wherever the result is inside the output range
(outside it, the result is the saturation limit). Against the unquantized float inputs the
bound grows by the input quantization: ``K * (max|a| * 2**-(w_frac+1) + max|w| *
2**-(a_frac+1) + 2**-(a_frac+w_frac+2))`` plus the bias rounding ``2**-(bias_frac+1)``.
"""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from einsum.errors import NumericError
from einsum.golden_gemm import (OP_AV, OP_GEMM, OP_QKT, GemmFormat, av_tile, dequantize,
                                gemm_tile, qkt_tile, quantize, requantize, tiled_gemm, wrap)

FMT = GemmFormat()  # Q6.10 activations, Q2.14 weights, 40-bit accumulator, Q6.10 output


def _float_ref(a, w, b, fmt, shift=0):
    ref = dequantize(a, fmt.a_frac) @ dequantize(w, fmt.w_frac)
    if b is not None:
        ref = ref + dequantize(b, fmt.bias_frac)[None, :]
    return ref * 2.0 ** -shift


def test_tile_vs_float64_random():
    rng = np.random.default_rng(0)
    worst = 0.0
    for trial in range(200):
        r, c, k = rng.integers(1, 6), rng.integers(1, 6), rng.integers(1, 65)
        a = rng.integers(-2**12, 2**12, size=(r, k))          # |a| < 4 (no saturation)
        w = rng.integers(-2**15, 2**15, size=(k, c))
        b = rng.integers(-2**15, 2**15, size=c)
        shift = int(rng.integers(0, 4))
        out, _ = gemm_tile(a, w, b, fmt=FMT, shift=shift)
        ref = _float_ref(a, w, b, FMT, shift)
        inside = np.abs(ref) < 31.0
        err = np.abs(dequantize(out, FMT.o_frac) - ref)[inside]
        worst = max(worst, float(err.max(initial=0.0)))
        sat = ~inside
        assert np.all(np.abs(dequantize(out, FMT.o_frac)[sat]) >= 31.0)
    assert worst <= 2.0 ** -(FMT.o_frac + 1)
    assert worst > 0  # rounding actually happened


def test_saturation_corners():
    hi, lo = 2**15 - 1, -2**15
    out, acc = gemm_tile(np.full((2, 3), hi), np.full((3, 2), hi), fmt=FMT)
    assert np.all(out == hi)
    out, _ = gemm_tile(np.full((2, 3), lo), np.full((3, 2), hi), fmt=FMT)
    assert np.all(out == lo)
    out, _ = gemm_tile(np.full((1, 1), lo), np.full((1, 1), lo), fmt=FMT, shift=15)
    # (-2**15)**2 = 2**30; >> (base shift 14 + 15) = 2**1
    assert out[0, 0] == 2
    out, _ = gemm_tile(np.zeros((2, 2), dtype=int), np.zeros((2, 2), dtype=int), fmt=FMT,
                       relu=True)
    assert np.all(out == 0)


def test_round_half_up_and_relu():
    fmt = GemmFormat(a_width=8, a_frac=0, w_width=8, w_frac=1, acc_width=20,
                     o_width=8, o_frac=0, bias_frac=1)
    # 3 * 1 (w=0.5) = 1.5 -> 2 ; -3 * 0.5 = -1.5 -> -1 (half up)
    out, _ = gemm_tile(np.array([[3], [-3]]), np.array([[1]]), fmt=fmt)
    assert out.tolist() == [[2], [-1]]
    out, _ = gemm_tile(np.array([[3], [-3]]), np.array([[1]]), fmt=fmt, relu=True)
    assert out.tolist() == [[2], [0]]


def test_accumulator_wraps_like_rtl():
    fmt = GemmFormat(a_width=8, a_frac=0, w_width=8, w_frac=0, acc_width=16,
                     o_width=16, o_frac=0, bias_frac=0)
    out, acc = gemm_tile(np.full((1, 4), 127), np.full((4, 1), 127), fmt=fmt)
    assert acc[0, 0] == int(wrap(np.array([4 * 127 * 127], dtype=object), 16)[0])
    assert out[0, 0] == acc[0, 0]


def test_attention_opcodes_ignore_bias_and_activation():
    rng = np.random.default_rng(1)
    q = rng.integers(-2**11, 2**11, size=(4, 8))
    k = rng.integers(-2**11, 2**11, size=(3, 8))
    s, _ = qkt_tile(q, k, fmt=FMT, shift=3)
    ref = dequantize(q, FMT.a_frac) @ dequantize(k, FMT.w_frac).T / 8
    assert np.max(np.abs(dequantize(s, FMT.o_frac) - ref)) <= 2.0 ** -(FMT.o_frac + 1)
    g, _ = gemm_tile(q, k.T, np.ones(3, dtype=int) * 999, fmt=FMT, op=OP_QKT, shift=3, relu=True)
    assert np.array_equal(g, s)
    p = rng.integers(0, 2**10, size=(4, 6))
    v = rng.integers(-2**15, 2**15, size=(6, 5))
    o1, acc1 = av_tile(p[:, :3], v[:3], fmt=FMT)
    o2, _ = av_tile(p[:, 3:], v[3:], fmt=FMT, acc_in=acc1)  # K split over two commands
    full, _ = gemm_tile(p, v, fmt=FMT, op=OP_AV)
    assert np.array_equal(o2, full)


def test_tiled_gemm_vs_float64_unquantized_inputs():
    rng = np.random.default_rng(2)
    m, kd, n = 13, 70, 11
    xf = rng.uniform(-2, 2, size=(m, kd))
    wf = rng.uniform(-1, 1, size=(kd, n))
    bf = rng.uniform(-1, 1, size=n)
    x = quantize(xf, FMT.a_width, FMT.a_frac)
    w = quantize(wf, FMT.w_width, FMT.w_frac)
    b = quantize(bf, FMT.w_width, FMT.bias_frac)
    y = tiled_gemm(x, w, b, rows=4, cols=4, max_k=32, fmt=FMT, relu=True)
    ref = np.maximum(xf @ wf + bf, 0.0)
    bound = (kd * (2 * 2.0 ** -(FMT.w_frac + 1) + 1 * 2.0 ** -(FMT.a_frac + 1)
                   + 2.0 ** -(FMT.a_frac + FMT.w_frac + 2))
             + 2.0 ** -(FMT.bias_frac + 1) + 2.0 ** -(FMT.o_frac + 1))
    err = np.max(np.abs(dequantize(y, FMT.o_frac) - ref))
    assert err <= bound, (err, bound)
    # tiling is invisible: one big tile gives the same codes
    y1 = tiled_gemm(x, w, b, rows=m, cols=n, max_k=128, fmt=FMT, relu=True)
    assert np.array_equal(y, y1)


@settings(max_examples=60, deadline=None)
@given(st.integers(1, 4), st.integers(1, 4), st.integers(1, 12), st.integers(0, 5),
       st.data())
def test_property_tile_bound(r, c, k, shift, data):
    a = np.array(data.draw(st.lists(st.integers(-2**15, 2**15 - 1), min_size=r * k,
                                    max_size=r * k))).reshape(r, k)
    w = np.array(data.draw(st.lists(st.integers(-2**15, 2**15 - 1), min_size=k * c,
                                    max_size=k * c))).reshape(k, c)
    out, _ = gemm_tile(a, w, fmt=FMT, shift=shift)
    ref = _float_ref(a, w, None, FMT, shift)
    lim_hi, lim_lo = (2**15 - 1) / 2**10, -(2**15) / 2**10
    expect = np.clip(ref, lim_lo, lim_hi)
    assert np.all(np.abs(dequantize(out, FMT.o_frac) - expect) <= 2.0 ** -(FMT.o_frac + 1))


def test_errors():
    with pytest.raises(NumericError):
        quantize([np.nan], 16, 8)
    with pytest.raises(NumericError):
        quantize([np.inf], 16, 8)
    with pytest.raises(NumericError, match="acc_width"):
        GemmFormat(acc_width=20)
    with pytest.raises(NumericError, match="o_frac"):
        GemmFormat(o_frac=15, o_width=16, a_frac=2, w_frac=2)
    with pytest.raises(NumericError, match="a_frac"):
        GemmFormat(a_frac=16)
    with pytest.raises(NumericError, match="out of range"):
        gemm_tile(np.array([[2**15]]), np.array([[1]]), fmt=FMT)
    with pytest.raises(NumericError, match="integer codes"):
        gemm_tile(np.array([[0.5]]), np.array([[1]]), fmt=FMT)
    with pytest.raises(NumericError, match="opcode"):
        gemm_tile(np.array([[1]]), np.array([[1]]), fmt=FMT, op=7)
    with pytest.raises(NumericError, match="shift"):
        requantize(np.array([[1]], dtype=object), FMT, shift=-1)
    assert OP_GEMM == 0
