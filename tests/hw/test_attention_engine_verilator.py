# amaranth: UnusedElaboratable=no
"""The attention engine on Verilator (the Icarus tests are in test_attention_engine.py): the
same cocotb bench (cocotbext-axi sources with random idle cycles, a sink with random
back-pressure, outputs bit-exact with attention-fixed-1pass's ``evaluate``) on the config
with a ragged last chunk (P = 11 keys in chunks of 4), and the cycles measured without
back-pressure equal Icarus's and :meth:`AttentionEngine.cycles`. One config only: a
Verilator build of the engine costs about 40 s."""

from __future__ import annotations

import json

from cocotb_runner import run_cocotb
from test_attention_engine import CONFIGS, MEASURED

from hw.attention_engine import AttentionEngine
from hw.export import to_verilog

NAME = "2x2-chunk4"


def test_engine_on_verilator(tmp_path):
    params, heads = CONFIGS[NAME]
    eng = AttentionEngine(**params)
    cases = [{"M": m, "P": p, "seed": s, "amp": a, "pause": z} for m, p, s, a, z in heads]
    assert any(z for *_, z in heads) and any(p % eng.chunk for _, p, *_ in heads)
    out = tmp_path / "cycles.json"
    run_cocotb(to_verilog(eng, "attention_engine"), "attention_engine", "cocotb_attention_engine",
               "verilator", tmp_path,
               env={"ENGINE_PARAMS": json.dumps(params), "ENGINE_CASES": json.dumps(cases),
                    "ENGINE_CASCADE_PARAMS": json.dumps(eng.cascade_params()),
                    "ENGINE_CYCLES": str(out)})
    measured = {(c["M"], c["P"]): c["cycles"] for c in json.loads(out.read_text()) if not c["pause"]}
    assert measured == MEASURED[NAME] == {(m, p): eng.cycles(m, p) for m, p in measured}
