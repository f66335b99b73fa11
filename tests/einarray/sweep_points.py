"""Point evaluators used by the sweep tests (plain module-level functions, picklable)."""

import os


def cost(task):
    """A closed form of the point's config: fast, and any change of rows or M shows."""
    data = task.data()
    rows = data["arch"]["array2d"]["rows"]
    m = data["workload"]["ranks"]["M"]
    if m == 48:
        raise ValueError("unlucky size")
    return {"latency_s": m / rows * 1e-6, "energy_pj": m * rows * 10.0}


def dies_on_big(task):
    if dict(task.overrides).get("workload.ranks.M") == 999:
        os._exit(3)
    return cost(task)
