"""``einarray prove UNIT``: the RTL blocks' stream contracts through SymbiYosys.

Runs the properties of :mod:`hw.formal` (GELU, softmax, the compute unit, the attention
engine's AXI-Stream ports, or all) with ``yowasp-sby`` and the Yices solver, one line per
property: proved by k-induction at depth N, bounded to depth N (BMC from reset), or FAILED
with the path of the counterexample trace. Exit status 1 if any property is not proved or
bounded. The work files go to a temporary directory (removed afterwards) unless
``--workdir DIR`` names one to keep: new, empty or an earlier ``prove`` work directory
(the output-directory rules of :mod:`einsum.outdir`), never a user's directory.
"""

from __future__ import annotations

import argparse
import shutil
import tempfile

UNIT_NAMES = ("gelu", "softmax", "compute-unit", "attention-engine")
KIND = "prove-work"


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prove", help="prove the RTL blocks' stream contracts (SymbiYosys)",
        description="Prove each block's stream contract with SymbiYosys (yowasp-sby, Yices): "
                    "the output's valid and payload hold while stalled (k-induction, unbounded) "
                    "and a scoreboard (nothing lost, duplicated or reordered, last once per row, "
                    "GELU's output the golden function of its input; bounded model checking to "
                    "the depth shown). Prints one line per property; exit status 1 if one fails.")
    p.add_argument("unit", choices=(*UNIT_NAMES, "all"), help="block to prove, or all")
    p.add_argument("--workdir", metavar="DIR",
                   help="keep the work files (RTLIL, .sby, logs, counterexample traces) in DIR: "
                        "new, empty or an earlier prove work directory (default: a temporary "
                        "directory, removed afterwards unless a property fails, so that the "
                        "printed trace path stays valid)")
    p.set_defaults(handler=cmd_prove)


def cmd_prove(args: argparse.Namespace) -> int:
    from einsum.outdir import claim
    from hw.formal import properties, prove_all

    props = properties(args.unit)
    if args.workdir is not None:
        work = claim(args.workdir, kind=KIND, files=[],
                     command=getattr(args, "command_line", "einarray prove"))
        results = prove_all(props, work, echo=lambda r: print(r.line(), flush=True))
    else:
        # a failure keeps its directory (the printed trace path must exist afterwards)
        tmp = tempfile.mkdtemp(prefix="einarray-prove-")
        results = prove_all(props, tmp, echo=lambda r: print(r.line(), flush=True))
        if all(r.ok for r in results):
            shutil.rmtree(tmp, ignore_errors=True)
    bad = [r for r in results if not r.ok]
    print(f"{len(results) - len(bad)} of {len(results)} properties hold"
          + (f"; not holding: {', '.join(r.prop.key for r in bad)}" if bad else ""))
    return 1 if bad else 0
