"""mapping.yamlfast gives exactly what einsum.yamlsrc gives (data, lines, errors)."""

from __future__ import annotations

from pathlib import Path

import pytest

from einsum import yamlsrc
from einsum.errors import ConfigError
from mapping import yamlfast

ROOT = Path(__file__).resolve().parents[2]


def test_same_data_and_lines_on_every_shipped_yaml():
    files = sorted(ROOT.glob("mapping/configs/*.yaml")) + sorted(ROOT.glob("mapping/arch/*.yaml")) + \
        sorted(ROOT.glob("einsum/library/*.yaml"))
    assert len(files) > 10
    for f in files:
        a, b = yamlsrc.load(f), yamlfast.load(f)
        assert a[0] == b[0] and a[1].lines == b[1].lines, f


@pytest.mark.parametrize("text", ["a: 1\na: 2\n", "a: [1, 2\n", "b: &x {c: 1}\nd:\n  <<: *x\n", ""])
def test_same_errors(text):
    with pytest.raises(ConfigError) as e1:
        yamlsrc.loads(text, "f.yaml")
    with pytest.raises(ConfigError) as e2:
        yamlfast.loads(text, "f.yaml")
    assert (e1.value.line, e1.value.ypath, e1.value.message.split(":")[0]) == \
        (e2.value.line, e2.value.ypath, e2.value.message.split(":")[0])
