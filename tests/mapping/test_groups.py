"""mapping.groups validation: reads of a recurrence's final state inside its own loop."""

from __future__ import annotations

import pytest

from einsum.errors import ConfigError
from mapping.config import load_config


def _cfg(tmp_path, groups: str):
    p = tmp_path / "c.yaml"
    p.write_text("workload: {cascade: edge-moe-softmax, ranks: {M: 8, P: 12, E: 4, F: 4}}\n"
                 f"arch: fusemax\nmapping: {{groups: {groups}}}\n")
    return load_config(p)


def test_final_state_read_inside_the_loop_is_refused(tmp_path):
    """AV = exp(S - RM[m,P]) * V / RS[m,P] needs the recurrence's last value: fusing AV into the
    group that steps the recurrence over P (tile 1) would read it before it exists."""
    with pytest.raises(ConfigError) as ei:
        _cfg(tmp_path, "[{name: all, einsums: [RM.init, RS.init, DL, ED, RS, RM, AV]}]")
    msg = ei.value.message
    assert "AV reads the final RM" in msg and "loops over P" in msg and "later group" in msg


def test_final_state_read_in_a_later_group_is_fine(tmp_path):
    cfg = _cfg(tmp_path, "[{name: rec, einsums: [RM.init, RS.init, DL, ED, RS, RM]}, {name: av, einsums: [AV]}]")
    assert [g.name for g in cfg.mapping.groups][-1] == "av"


def test_initial_state_and_current_step_reads_stay_legal(tmp_path):
    """The 1-pass cascade reads RM[m,p1+1] (this step) and RM[m,p1] (carried) inside its loop and
    RNV[m,P1,f] only after it (AV does not iterate p1): FuseMax's one-group mapping stays legal."""
    p = tmp_path / "f.yaml"
    p.write_text("workload: {cascade: softmax-1pass, ranks: {M: 16, P: 64, E: 8, F: 8, P0: 16}}\n"
                 "arch: fusemax\nmapping: {groups: [{name: all, einsums: rest}]}\n")
    cfg = load_config(p)
    assert len(cfg.mapping.groups) == 1 and any(lp.rank == "P1" for lp in cfg.mapping.groups[0].loops)
