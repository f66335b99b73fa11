# amaranth: UnusedElaboratable=no
"""The fused 1-pass attention engine: cocotb on Icarus with cocotbext-axi sources and sink
(random idle cycles and back-pressure), bit-exact with attention-fixed-1pass's ``evaluate``;
cycles measured without back-pressure equal :meth:`AttentionEngine.cycles`."""

from __future__ import annotations

import json

import pytest
from cocotb_runner import run_cocotb

from einsum.errors import ConfigError
from hw.attention_engine import AttentionEngine
from hw.export import to_verilog

# engine parameters -> heads: (M, P, seed, amplitude of the codes, random pauses)
CONFIGS = {
    "2x2": ({"rows": 2, "cols": 2, "head_dim": 4},
            [(3, 7, 1, 8000, True), (4, 8, 2, 8000, False), (2, 3, 3, 32767, False),
             (1, 1, 4, 8000, True)]),
    "2x2-chunk4": ({"rows": 2, "cols": 2, "head_dim": 4, "chunk": 4},
                   [(5, 11, 5, 12000, True), (5, 11, 6, 12000, False), (4, 16, 7, 4000, False)]),
    "2x2-chunk8": ({"rows": 2, "cols": 2, "head_dim": 4, "chunk": 8},  # skips empty groups
                   [(3, 9, 12, 9000, True), (3, 9, 13, 9000, False), (2, 17, 14, 9000, False)]),
    "4x4": ({"rows": 4, "cols": 4, "head_dim": 8},
            [(6, 13, 8, 6000, True), (6, 13, 9, 6000, False), (4, 4, 10, 6000, False),
             (9, 20, 11, 3000, False)]),
    # 8 x 8: a partial tile (5 < R), two tiles (11 = 8 + 3), chunks of 16 = 2 column groups
    # with a ragged last chunk (21 = 16 + 5: one group, the other skipped), one partial chunk
    # narrower than the array (7 < C keys) at full-scale codes; E = 2 keeps the Icarus run short
    "8x8-chunk16": ({"rows": 8, "cols": 8, "head_dim": 2, "chunk": 16},
                    [(11, 21, 15, 8000, True), (5, 21, 16, 8000, False),
                     (11, 21, 17, 8000, False), (8, 7, 18, 32767, False)]),
}

# measured on Icarus (first q handshake to last o handshake, no pauses), per config and head
MEASURED = {
    "2x2": {(4, 8): 186, (2, 3): 61},
    "2x2-chunk4": {(5, 11): 339, (4, 16): 290},
    "2x2-chunk8": {(3, 9): 194, (2, 17): 154},
    "4x4": {(6, 13): 306, (4, 4): 88, (9, 20): 558},
    "8x8-chunk16": {(5, 21): 102, (11, 21): 208, (8, 7): 74},
}


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_engine_on_icarus(name, tmp_path):
    params, heads = CONFIGS[name]
    eng = AttentionEngine(**params)
    cases = [{"M": m, "P": p, "seed": s, "amp": a, "pause": z} for m, p, s, a, z in heads]
    out = tmp_path / "cycles.json"
    run_cocotb(to_verilog(eng, "attention_engine"), "attention_engine", "cocotb_attention_engine",
               "icarus", tmp_path,
               env={"ENGINE_PARAMS": json.dumps(params), "ENGINE_CASES": json.dumps(cases),
                    "ENGINE_CASCADE_PARAMS": json.dumps(eng.cascade_params()),
                    "ENGINE_CYCLES": str(out)})
    measured = {(c["M"], c["P"]): c["cycles"] for c in json.loads(out.read_text()) if not c["pause"]}
    assert measured == MEASURED[name]
    assert measured == {(m, p): eng.cycles(m, p) for m, p in measured}


@pytest.mark.parametrize("params,m,p,want", [
    # (E + 2) M + T (21 + 2 P) + T (Gs (2 E + 1) + 2 P1), T = ceil(M / R), P1 = ceil(P / P0),
    # Gs = column groups over the chunks (P0 / C per whole chunk, ceil(r / C) for a last of r);
    # FIN of a tile of r rows = r E + 21: NORM 1, an 18-cycle reciprocal, r E lanes through
    # a 2-stage multiplier
    ({"rows": 2, "cols": 2, "head_dim": 4}, 4, 8, 6 * 4 + 2 * (21 + 16) + 2 * (4 * 9 + 8)),
    ({"rows": 4, "cols": 4, "head_dim": 8}, 9, 20, 10 * 9 + 3 * (21 + 40) + 3 * (5 * 17 + 10)),
    ({"rows": 2, "cols": 2, "head_dim": 4, "chunk": 4}, 5, 11, 30 + 3 * (21 + 22) + 3 * (6 * 9 + 6)),
    ({"rows": 2, "cols": 2, "head_dim": 4, "chunk": 8}, 3, 9, 18 + 2 * (21 + 18) + 2 * (5 * 9 + 4)),
    # T = 2, P1 = 2, Gs = 2 + ceil(5 / 8) = 3; and one tile, one chunk of one group
    ({"rows": 8, "cols": 8, "head_dim": 2, "chunk": 16}, 11, 21, 44 + 2 * (21 + 42) + 2 * (3 * 5 + 4)),
    ({"rows": 8, "cols": 8, "head_dim": 2, "chunk": 16}, 8, 7, 32 + (21 + 14) + (1 * 5 + 2)),
])
def test_cycles_closed_form(params, m, p, want):
    assert AttentionEngine(**params).cycles(m, p) == want


@pytest.mark.parametrize("kwargs,msg", [
    ({"rows": 0}, "rows must be in 1..16"),
    ({"cols": True}, "cols must be an integer"),
    ({"cols": 2, "chunk": 3}, "chunk (3) must be a multiple of cols (2)"),
    ({"width": 3, "frac_bits": 1}, "width must be >= 4"),
    ({"head_dim": 256, "width": 20, "frac_bits": 10}, "40-bit accumulator"),
    ({"max_keys": 1 << 16}, "max_keys must be in 1..32768"),
])
def test_bad_parameters(kwargs, msg):
    with pytest.raises(ConfigError, match=msg.replace("(", r"\(").replace(")", r"\)")):
        AttentionEngine(**kwargs)


def test_parameters_are_keyword_only():
    with pytest.raises(TypeError):
        AttentionEngine(2, 2)  # type: ignore[misc]


def test_describe_and_axi_stream_port_names():
    eng = AttentionEngine(rows=2, cols=2, head_dim=4)
    d = eng.describe()
    assert d["ports"]["q"]["tdata"] == "q_tdata" and d["ports"]["o"]["direction"] == "out"
    assert d["ports"]["k"]["tdata_width"] == 64 and d["ports"]["k"]["lane_width"] == 16
    assert d["cascade_params"]["rm_init"] == -64
    json.dumps(d)
    v = to_verilog(eng, "attention_engine")
    for n in "qkvo":
        for s in ("tdata", "tvalid", "tready", "tlast"):
            assert f"{n}_{s}" in v


@pytest.mark.parametrize("rows,cols,head_dim,chunk", [(2, 2, 4, 2), (2, 4, 4, 8)])
def test_multipliers_are_what_the_binding_needs(rows, cols, head_dim, chunk):
    """Two multipliers per PE (one shared by QK's MAC, SLN's interpolation and SLNV's product,
    one by the constant log2 e of T, both in the last QK cycle) and one for all R F lanes
    of AV; no division operator (the reciprocal is a restoring divider, a bit a cycle)."""
    import re

    v = to_verilog(AttentionEngine(rows=rows, cols=cols, head_dim=head_dim, chunk=chunk),
                   "attention_engine")
    muls = re.findall(r"^\s*assign .* = .*\s\*\s.*;$", v, flags=re.M)
    assert len(muls) == 2 * rows * cols + 1, muls
    assert sum("av_recip" in x for x in muls) == 1
    assert not re.search(r"^\s*assign .*\s/\s", v, flags=re.M)
