"""The engine's integer time base (sim/timebase.py): exact ticks, the refusal of a
denominator that does not fit, a run that refines D, and a finer D that changes nothing."""

from __future__ import annotations

import pytest

from sim.results import simulate


def test_time_base_counts_exact_ticks_and_refuses_what_does_not_fit():
    from fractions import Fraction

    from sim.timebase import TimeBase, _Rescale

    tb = TimeBase(6)
    assert (tb.ticks(Fraction(5, 3)), tb.ticks(4), tb.ticks(Fraction(1, 2))) == (10, 24, 3)
    assert (tb.cycles(10), tb.cycles(24)) == (Fraction(5, 3), 4)
    assert type(tb.cycles(24)) is int
    with pytest.raises(_Rescale) as ei:
        tb.ticks(Fraction(1, 4))
    assert ei.value.den == 4


def test_a_run_refines_its_time_base_and_a_finer_one_changes_nothing():
    # DRAM at 5/2 words per cycle (a word is 2/5 cycle: D starts at 5); the buffer at 7/10
    # word per cycle makes the steps' stall floors multiples of 1/7 cycle, so the run
    # restarts with D = 35. Forcing a much finer D (x 33) gives the same result to the bit.
    from sim import timebase
    from sim.engine import Sim
    from sim_helpers import config_from, gemm_arch

    doc = {"workload": {"cascade": "gemm", "ranks": {"M": 40, "N": 30, "K": 20}},
           "arch": gemm_arch(8, 8, dram_bw=2.5, gb_bw=0.7),
           "mapping": {"groups": [{"name": "g", "einsums": ["C"], "tiles": {"GB": {"M": 16, "N": 10}},
                                   "loop_order": ["M", "N"]}]}}
    cfg = config_from(doc)
    timebase._D_HINT.clear()
    sim = Sim(cfg)
    assert sim.tb.d == 5
    sim.run()
    assert sim.tb.d == 35 and 35 % sim.end_time.denominator == 0
    first = simulate(cfg)
    key = next(iter(timebase._D_HINT))
    timebase._D_HINT[key] = 35 * 33
    finer = Sim(cfg)
    assert finer.tb.d == 35 * 33
    assert simulate(cfg) == first
    stepped = simulate(cfg, fast=False)  # every tile stepped: the same figures
    assert stepped["cycles_exact"] == first["cycles_exact"]
