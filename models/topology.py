"""Import a SCALE-Sim topology CSV as a model: one GEMM layer per row.

``workload: {topology: layers.csv}`` takes either of SCALE-Sim's formats, told apart by
the header row:

* convolutions: ``Layer name, IFMAP Height, IFMAP Width, Filter Height, Filter Width,
  Channels, Num Filter, Strides[, Stride W]`` (SCALE-Sim's ``topologies/conv_nets``). A row
  is SCALE-Sim's im2col GEMM: M = output pixels, K = Filter H x Filter W x Channels, N =
  Num Filter, with the output ``ceil((IFMAP - Filter + Stride) / Stride)`` per side (the
  IFMAP already includes any padding, as in SCALE-Sim);
* GEMMs: ``Layer, M, N, K`` (SCALE-Sim's ``topologies/GEMM_mnk``), which SCALE-Sim runs as a
  1 x K filter over an M x K input with one channel and N filters: the same M x K x N GEMM.

Rows may end in a comma, as SCALE-Sim's files do. On an output-stationary systolic array
with SCALE-Sim's semantics (``fill_drain: true, fold_overlap: false``) a row's GEMM takes
SCALE-Sim's cycles plus the one it leaves out (``sim.systolic.scalesim_gemm``).
"""

from __future__ import annotations

import csv
import io
from pathlib import Path
from typing import Any

from einsum.errors import ConfigError

from .layers import gemm, model, unique_name

CONV_COLUMNS = ("Layer name", "IFMAP Height", "IFMAP Width", "Filter Height", "Filter Width", "Channels",
                "Num Filter", "Strides")
GEMM_COLUMNS = ("Layer", "M", "N", "K")


def conv_gemm(H: int, W: int, fh: int, fw: int, C: int, filters: int, sh: int, sw: int) -> tuple[int, int, int]:
    """SCALE-Sim's GEMM of a convolution row: ``(M, K, N)``."""
    oh = -(-(H - fh + sh) // sh)
    ow = -(-(W - fw + sw) // sw)
    return oh * ow, fh * fw * C, filters


def import_topology(path: str | Path) -> dict[str, Any]:
    """Lower the topology CSV at ``path`` to a model in :func:`models.load_model`'s shape."""
    file = str(path)
    text = Path(path).read_text(encoding="utf-8")
    rows = [(i + 1, [f.strip() for f in r]) for i, r in enumerate(csv.reader(io.StringIO(text)))]
    rows = [(ln, r[:-1] if r and r[-1] == "" else r) for ln, r in rows if any(r)]
    if not rows:
        raise ConfigError("empty topology: expected a header row and one row per layer", file)
    hline, header = rows[0]
    is_gemm = [h.upper() for h in header[1:4]] == ["M", "N", "K"]
    if not is_gemm and not (len(header) >= 8 and "ifmap" in header[1].lower()):
        raise ConfigError(f"expected a SCALE-Sim header: {', '.join(CONV_COLUMNS)} (convolutions) or "
                          f"{', '.join(GEMM_COLUMNS)} (GEMMs); got {', '.join(header)}", file, hline)
    width = (4,) if is_gemm else (8, 9)
    layers, used = [], set()
    for ln, r in rows[1:]:
        if len(r) not in width:
            raise ConfigError(f"expected {' or '.join(map(str, width))} columns "
                              f"({', '.join(GEMM_COLUMNS if is_gemm else CONV_COLUMNS)}), got {len(r)}", file, ln)
        vals = []
        for col, v in zip(header[1:] + [f"column {k}" for k in range(len(header), len(r))], r[1:]):
            if not v.isdigit() or int(v) == 0:
                raise ConfigError(f"{col}: expected a positive integer, got {v!r}", file, ln)
            vals.append(int(v))
        name = unique_name(r[0] or f"layer{ln}", used)
        if is_gemm:
            M, N, K = vals
        else:
            H, W, fh, fw, C, nf, sh = vals[:7]
            sw = vals[7] if len(vals) > 7 else sh
            if fh > H or fw > W:
                raise ConfigError(f"the {fh} x {fw} filter is larger than the {H} x {W} IFMAP", file, ln)
            M, K, N = conv_gemm(H, W, fh, fw, C, nf, sh, sw)
        layers.append(gemm(name, M, K, N))
    stem = Path(file).stem
    return model(stem, f"SCALE-Sim topology {Path(file).name}",
                 f"{stem}: {len(layers)} {'GEMM' if is_gemm else 'convolution'} layers from a SCALE-Sim topology",
                 layers, file)


__all__ = ["import_topology", "conv_gemm"]
