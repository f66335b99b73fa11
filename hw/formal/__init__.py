"""Formal proofs of the RTL's stream contracts (SymbiYosys through ``yowasp-sby``).

:mod:`hw.formal.harness` wraps each block (GELU, softmax, compute unit, the attention
engine's AXI-Stream ports) in an Amaranth
harness of ``Assert``/``Assume`` statements, one :class:`~hw.formal.harness.Property` per
claim; :mod:`hw.formal.sby` emits the harness as RTLIL, writes the ``.sby`` file and runs
the proof (k-induction for ``mode prove``, bounded model checking for ``mode bmc``).
"""

from hw.formal.harness import PROPERTIES, UNITS, Property, Stream, properties, streams
from hw.formal.sby import Result, prove, prove_all

__all__ = ["PROPERTIES", "UNITS", "Property", "Stream", "properties", "streams", "Result", "prove",
           "prove_all"]
