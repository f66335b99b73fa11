"""sim.network: the network between a level and its spatial children, against closed forms.

The nests are small enough to derive every number by hand; each test states its derivation.
Mesh coordinates: child (x, y) with x from ``spatial.X``, y from ``spatial.Y``; XY routing (row
of the source first, then the destination's column); a multicast tree is the union of its XY
paths; a reduction runs the tree backwards.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from einsum.errors import ConfigError
from mapping.components import wire_energy_pj
from mapping.config import load_config
from sim.network import mesh_link_loads
from sim.nest import simulate_nest

ROOT = Path(__file__).resolve().parents[2]

# Z[m, n] = A[k] * B[k, m, n] on a 4 x 4 PE mesh: n over X, m over Y, k in time (K steps). Per k
# step every PE needs the same A[k] (a broadcast) and its own B[k, m, n] (16 unicasts); each PE's
# Z[m, n] stays in it over k and goes up once (16 unicasts up).
BCAST = """
einsum:
  version: 1
  name: bcast
  ranks: {{K: {K}, M: {Y}, N: {X}}}
  inputs: {{A: [K], B: [K, M, N]}}
  outputs: [Z]
  expressions:
    - Z[m, n] = A[k] * B[k, m, n]
"""
# Z[m] = A[k, m, i, j] * B[i, j]: j over X, i over Y, then k (2) and m (3) in time, k outer. Every
# PE adds into the same Z[m] (a 16-way spatial reduction per step); Z[m] comes back when k steps
# (a partial-sum refill); B stays in the PEs; A is a new word per PE per step.
REDUCE = """
einsum:
  version: 1
  name: reduce
  ranks: {{K: 2, M: 3, I: 4, J: 4}}
  inputs: {{A: [K, M, I, J], B: [I, J]}}
  outputs: [Z]
  expressions:
    - Z[m] = A[k, m, i, j] * B[i, j]
"""


def _config(tmp_path, einsum: str, network: str, nest: str, X: int = 4, Y: int = 4, K: int = 8):
    p = tmp_path / "c.yaml"
    p.write_text(einsum.format(K=K, X=X, Y=Y) + f"""
arch:
  version: 1
  name: mesh
  clock_hz: 1.0e9
  hierarchy:
    - {{name: Parent, word_bits: 16, energy: {{read: 1.0, write: 1.0, update: 1.0}}, network: {network}}}
    - {{name: PE, word_bits: 16, capacity_words: 8, mesh: [{X}, {Y}], energy: {{read: 0.1, write: 0.1, update: 0.1}}}}
  compute: {{name: MAC, mesh: [{X}, {Y}], energy: {{compute: 1.0}}}}
mapping:
  version: 1
  nest:
    Parent: {nest}
""")
    return load_config(p, allow_hierarchy=True)


def _mesh(src: str, e: float = 0.5, lat: int = 1, width: int = 1) -> str:
    return (f"{{topology: mesh, link_words: {width}, hop_latency: {lat}, source: {src}, "
            f"energy_pj_per_word_hop: {e}}}")


BCAST_NEST = "{temporal: {K: 8}, spatial: {X: {N: 4}, Y: {M: 4}}}"


@pytest.mark.parametrize("src, b_hops, z_hops, busiest, link, depth", [
    # From the corner (0, 0). A broadcast's tree spans all 16 routers: 15 links, whatever the
    # source (any tree on 16 nodes has 15 edges; XY gives 3 along row 0 + 3 in each of 4 columns).
    # B: each PE its own word, sum of |x| + |y| = 4 (0+1+2+3) + 4 (0+1+2+3) = 48 per k. Z: the
    # same 48, once. Busiest link (0,0)->(1,0): A (someone beyond) + the B words of columns 1-3
    # (12) = 13 per k, 104 over 8 steps. Depth: (3, 3) is 6 hops away, down and up.
    ("[0, 0]", 48, 48, 13 * 8, "(0,0)->(1,0)", 6),
    # From (1, 1), the middle: A still 15 (a tree). B: sum |x - 1| = 1+0+1+2 = 4 per row, 16 over
    # the rows, the same for y: 32 per k; Z 32. Busiest (1,1)->(2,1): A + the B words of columns
    # 2-3 (8) = 9 per k; to the left only column 0 (4 + 1 = 5). Depth: (3, 3) is 4 hops.
    ("[1, 1]", 32, 32, 9 * 8, "(1,1)->(2,1)", 4),
])
def test_broadcast_and_unicast_on_a_4x4_mesh(tmp_path, src, b_hops, z_hops, busiest, link, depth):
    """... and on the timeline, where each k step's refill of the (single-buffered) PEs crosses
    the mesh before that step's MACs: busiest / 8 words on the busiest link plus depth hops, then
    1 cycle of MACs, 8 times; then Z drains up, its busiest link (into the source from the columns
    beyond it: 12 words from the corner, 8 from the middle) plus depth hops."""
    res = simulate_nest(_config(tmp_path, BCAST, _mesh(src), BCAST_NEST))
    (nw,) = res.networks
    t = nw.tensors
    assert (t["A"].hops_out, t["A"].words_out) == (15 * 8, 8)  # one word per k reaches all 16
    assert (t["B"].hops_out, t["B"].words_out) == (b_hops * 8, 16 * 8)
    assert (t["Z"].hops_in, t["Z"].words_in, t["Z"].hops_out, t["Z"].words_out) == (z_hops, 16, 0, 0)
    assert (nw.busiest_words, nw.busiest) == (busiest, link)
    assert nw.cycles == busiest and nw.latency == 2 * depth
    # Timeloop-style, the network's link bound (1 word per cycle) is above the compute (8 cycles)
    assert res.compute_cycles == 8 and res.bound_cycles == busiest + 2 * depth
    z_up = {"[0, 0]": 12, "[1, 1]": 8}[src]
    assert res.cycles == res.timeline.cycles == 8 * (busiest // 8 + depth + 1) + z_up + depth
    assert res.timeline.stalls == {"PE": 8 * (busiest // 8 + depth)}
    assert res.bound_by == f"the timeline: waits for PE ({8 * (busiest // 8 + depth):,} cycles), drain {z_up + depth}"
    hops = 15 * 8 + b_hops * 8 + z_hops
    assert nw.energy_pj == pytest.approx(0.5 * hops)
    no_net = simulate_nest(_config(tmp_path, BCAST, "null", BCAST_NEST))
    assert res.energy_pj == pytest.approx(no_net.energy_pj + 0.5 * hops)
    # the words at the source are the parent's Timeloop counts
    par = res.levels[0].tensors
    assert (par["A"].reads, par["B"].reads, par["Z"].updates) == (8, 128, 16)


def test_broadcast_and_unicast_on_a_ring_of_16(tmp_path):
    """The 4 x 4 PEs as a ring (row by row) fed at (0, 0): A's broadcast takes the 8 routers
    clockwise (the tie at 8 hops goes clockwise) and 7 counter-clockwise, 15 links; each PE's B
    goes the shorter way, 2 x (1 + .. + 7) + 8 = 64 hops a k; Z comes back the same ways, 64. The
    busiest link, (0,0)->(1,0), carries A and the 8 clockwise B words a k: 9 x 8 = 72; depth 8."""
    res = simulate_nest(_config(tmp_path, BCAST, "{topology: ring, link_words: 1, hop_latency: 1, "
                                "source: [0, 0], energy_pj_per_word_hop: 0.5}", BCAST_NEST))
    (nw,) = res.networks
    t = nw.tensors
    assert (t["A"].hops_out, t["B"].hops_out, t["Z"].hops_in) == (15 * 8, 64 * 8, 64)
    assert (nw.busiest, nw.busiest_words, nw.latency) == ("(0,0)->(1,0)", 72, 2 * 8)
    assert res.bound_cycles == 72 + 16
    # the timeline: per k, 9 words on the busiest link + 8 hops, then the MACs' cycle; Z drains
    # up its busiest link (the 8 clockwise PEs' words) + 8 hops
    assert res.cycles == 8 * (9 + 8 + 1) + 8 + 8


def test_broadcast_on_a_bus_is_one_transfer_per_word(tmp_path):
    """A bus reaches every child in one hop: A 8 words, B 128, Z 16 up: 152 words over one medium
    of 4 words per cycle = 38 cycles (> 8 of compute), latency 2 cycles x (1 down + 1 up). On the
    timeline each k step's 17 words take ceil(17 / 4) + 2 = 7 cycles before its MACs (8 x 8), and
    Z drains in 16 / 4 + 2: 70."""
    res = simulate_nest(_config(tmp_path, BCAST, "{topology: bus, link_words: 4, hop_latency: 2, "
                                "energy_pj_per_word_hop: 1.5}", BCAST_NEST))
    (nw,) = res.networks
    assert {k: (v.words_out, v.words_in, v.word_hops) for k, v in nw.tensors.items()} == \
        {"A": (8, 0, 8), "B": (128, 0, 128), "Z": (0, 16, 16)}
    assert (nw.busiest, nw.busiest_words, nw.cycles, nw.latency) == ("bus", 152, 38, 4)
    assert res.bound_cycles == 42 and nw.energy_pj == pytest.approx(1.5 * 152)
    assert res.cycles == 8 * (5 + 2 + 1) + 4 + 2


def test_spatial_reduction_and_psum_refill_on_a_4x4_mesh(tmp_path):
    """Per (k, m) step (6 steps) the 16 PEs' partial sums of Z[m] combine up the reduction tree
    of the corner source: 15 links, one combined word each, 6 x 15 = 90 word-hops up. Timeloop's
    parent counts: Z updates 6, reads 6 - 3 = 3 (k = 1 refills the 3 Z[m]); each refill goes down
    the same 15 links (per link: 6 crossings up minus its 3 distinct elements' first) = 45. A: 16
    unicasts per step, 48 hops each step, 288; B: 16 unicasts once, 48. Busiest (0,0)->(1,0): A
    12 x 6 + B 12 + Z's refills 3 = 87 words; up, (1,0)->(0,0) carries 6. On the timeline, per
    step down (0,0)->(1,0) carries A's 12 (and B's 12 at the first, a Z refill's 1 at k = 1) while
    Z's previous word goes up (1 per link), each + 6 hops: 30 + 18 + 18 + 19 + 19 + 19 = 123
    stalls, 6 MAC cycles, and Z's last word drains in 1 + 6."""
    res = simulate_nest(_config(tmp_path, REDUCE, _mesh("[0, 0]"),
                                "{temporal: {K: 2, M: 3}, spatial: {X: {J: 4}, Y: {I: 4}}}"))
    (nw,) = res.networks
    t = nw.tensors
    assert (t["Z"].words_in, t["Z"].hops_in, t["Z"].words_out, t["Z"].hops_out) == (6, 90, 3, 45)
    par = res.levels[0].tensors["Z"]
    assert (par.updates, par.reads) == (6, 3)
    assert (t["A"].hops_out, t["B"].hops_out) == (288, 48)
    assert (nw.busiest, nw.busiest_words) == ("(0,0)->(1,0)", 87)
    assert res.bound_cycles == 87 + 12
    tl = res.timeline
    assert (tl.stalls, tl.compute, tl.drain, res.cycles) == ({"PE": 123}, 6, 7, 136)


@pytest.mark.parametrize("src, hops", [((0, 0), 3), ((1, 1), 3), ((1, 0), 3)])
def test_2x2_broadcast_and_per_link_loads(src, hops):
    """On 2 x 2 a broadcast takes 3 links from any source. Two words, one for (1, 1) only and
    one for all: from (0, 0) link (0,0)->(1,0) carries both, (1,0)->(1,1) both, (0,0)->(0,1) one."""
    S = {(0, 0): 0b01, (1, 0): 0b01, (0, 1): 0b01, (1, 1): 0b11}
    loads = mesh_link_loads({k: v & 0b01 for k, v in S.items()}, (2, 2), src)
    assert sum(loads.values()) == hops
    if src == (0, 0):
        assert mesh_link_loads(S, (2, 2), src) == {((0, 0), (1, 0)): 2, ((1, 0), (1, 1)): 2,
                                                   ((0, 0), (0, 1)): 1}


def test_wire_energy_from_the_component_library(tmp_path):
    """``wire: {estimate, hop_mm}`` is the library's per-bit-per-mm figure x the level's 16-bit
    word x the hop length: Keckler 2011 (121.09375 fJ/bit/mm random data) x 16 x 1.5 mm."""
    net = "{topology: mesh, link_words: 1, hop_latency: 0, source: [0, 0], wire: {estimate: keckler2011-40nm, hop_mm: 1.5}}"
    res = simulate_nest(_config(tmp_path, BCAST, net, BCAST_NEST))
    e = wire_energy_pj(16, 1.5, "keckler2011-40nm")
    assert e == pytest.approx(121.09375 * 16 * 1.5 / 1000)
    assert res.networks[0].energy_pj == pytest.approx(e * (120 + 384 + 48))
    assert res.network_latency == 0


def test_eyeriss_network_words_are_the_parents_counts(tmp_path):
    """A mesh on Eyeriss's global buffer (source at the corner of the 14 x 12 PEs): the words it
    carries per tensor are exactly the Timeloop counts of the tensor's parent (Weights bypass the
    buffer: DRAM's reads; Inputs: the buffer's reads; Outputs: its reads down and updates up)."""
    arch = (ROOT / "mapping" / "arch" / "eyeriss-like.yaml").read_text().replace(
        "keeps: [Inputs, Outputs],", "keeps: [Inputs, Outputs], network: {topology: mesh, link_words: 4, "
        "hop_latency: 1, source: [0, 0], energy_pj_per_word_hop: 2.0},")
    (tmp_path / "arch.yaml").write_text(arch)
    cfg_text = (ROOT / "examples" / "eyeriss" / "alexnet-conv3.yaml").read_text().replace(
        "einsum: conv2d.yaml", f"einsum: {ROOT / 'examples' / 'eyeriss' / 'conv2d.yaml'}").replace(
        "arch: eyeriss-like", f"arch: {tmp_path / 'arch.yaml'}")
    (tmp_path / "c.yaml").write_text(cfg_text)
    res = simulate_nest(load_config(tmp_path / "c.yaml", allow_hierarchy=True))
    (nw,) = res.networks
    dram, gb = res.levels[0].tensors, res.levels[1].tensors
    assert nw.tensors["Weights"].words_out == dram["Weights"].reads
    assert nw.tensors["Inputs"].words_out == gb["Inputs"].reads
    assert (nw.tensors["Outputs"].words_out, nw.tensors["Outputs"].words_in) == \
        (gb["Outputs"].reads, gb["Outputs"].updates)
    # 13 x 12 PEs used; the deepest, (12, 11), is 23 hops from (0, 0), down and up
    assert nw.latency == 2 * 23
    assert res.bound_cycles == max(res.compute_cycles, nw.cycles) + nw.latency
    assert res.cycles == res.timeline.cycles > res.bound_cycles  # single-buffered scratchpads


@pytest.mark.parametrize("net, msg", [
    ("{topology: torus, link_words: 1, hop_latency: 1, energy_pj_per_word_hop: 1}", "expected one of mesh, ring, bus"),
    ("{topology: ring, link_words: 1, hop_latency: 1, energy_pj_per_word_hop: 1}", "a ring needs 'source: [x, y]'"),
    ("{topology: mesh, link_words: 0, hop_latency: 1, source: [0, 0], energy_pj_per_word_hop: 1}",
     "link width > 0"),
    ("{topology: mesh, link_words: 1, hop_latency: -1, source: [0, 0], energy_pj_per_word_hop: 1}",
     "hop latency"),
    ("{topology: mesh, link_words: 1, hop_latency: 1, energy_pj_per_word_hop: 1}", "needs 'source: [x, y]'"),
    ("{topology: mesh, link_words: 1, hop_latency: 1, source: [4, 0], energy_pj_per_word_hop: 1}",
     "outside Parent's 4 x 4 children"),
    ("{topology: bus, link_words: 1, hop_latency: 1, source: [0, 0], energy_pj_per_word_hop: 1}",
     "a bus has no source"),
    ("{topology: bus, link_words: 1, hop_latency: 1}", "exactly one of energy_pj_per_word_hop"),
    ("{topology: bus, link_words: 1, hop_latency: 1, wire: {estimate: nope, hop_mm: 1}}", "unknown wire estimate"),
    ("{topology: bus, link_words: 1, hop_latency: 1, energy_pj_per_word_hop: 1, width: 2}", "unknown key 'width'"),
])
def test_bad_networks_are_located_errors(tmp_path, net, msg):
    with pytest.raises(ConfigError) as e:
        _config(tmp_path, BCAST, net, BCAST_NEST)
    assert msg in str(e.value)
    assert "c.yaml" in str(e.value) and "network" in str(e.value)


def test_a_network_needs_children(tmp_path):
    p = tmp_path / "c.yaml"
    p.write_text(BCAST.format(K=2, X=1, Y=1) + """
arch:
  version: 1
  name: one
  clock_hz: 1.0e9
  hierarchy:
    - {name: Parent, energy: {read: 1.0}, network: {topology: bus, link_words: 1, hop_latency: 1, energy_pj_per_word_hop: 1}}
  compute: {name: MAC, energy: {compute: 1.0}}
mapping: {version: 1, nest: {Parent: {temporal: {K: 2}}}}
""")
    with pytest.raises(ConfigError, match="one child per instance"):
        load_config(p, allow_hierarchy=True)


# ------------------------------------------------------------------------------------
# sim.network against the element-by-element oracle (tests/sim/network_oracle.py) on the random
# nests of tests/sim/test_nest.py (L0 -> 3 x 1 L1s -> 1 x 2 L2s each -> 2 x 2 L3s each), with
# networks on L0, L1 and L2 (random topology: mesh, ring or bus, and source), random keep/bypass (a bypassed tensor
# crosses several networks), exact iteration
def _random_network_config(problem: str, seed: int) -> str:
    import random

    from tests.sim.test_nest import _random_nest

    rng = random.Random(1000 + seed)
    text = _random_nest(problem, seed).replace("extrapolate: true", "extrapolate: false")
    for name, (fx, fy) in (("L0", (3, 1)), ("L1", (1, 2)), ("L2", (2, 2))):
        k = rng.random()
        if k < 0.25:
            net = "{topology: bus, link_words: 2, hop_latency: 1, energy_pj_per_word_hop: 1.0}"
        else:
            topo = "ring" if k < 0.5 else "mesh"
            net = (f"{{topology: {topo}, link_words: 1, hop_latency: 1, source: [{rng.randrange(fx)}, "
                   f"{rng.randrange(fy)}], energy_pj_per_word_hop: 1.0}}")
        head = f"- {{name: {name}, "
        assert head in text
        text = text.replace(head, f"- {{name: {name}, network: {net}, ")
    return text


@pytest.mark.parametrize("seed", range(6))
@pytest.mark.parametrize("problem", ["conv1d-stride2", "conv2d", "gemm", "skew2", "flip"])
def test_network_counts_equal_the_element_oracle(problem, seed, tmp_path):
    from tests.sim.network_oracle import oracle_network

    p = tmp_path / "c.yaml"
    p.write_text(_random_network_config(problem, seed))
    cfg = load_config(p, allow_hierarchy=True)
    res = simulate_nest(cfg)
    got = {nw.level: {t: (s.words_out, s.words_in, s.hops_out, s.hops_in) for t, s in nw.tensors.items()}
           for nw in res.networks}
    assert got == oracle_network(cfg), p.read_text()


@pytest.mark.parametrize("mu", [1, 3, 8, 64, 1000])
def test_repunit_is_the_sum_of_its_copies(mu):
    from sim.network import _repunit

    for n in range(1, 70):
        assert _repunit(mu, n) == sum(1 << (mu * i) for i in range(n))
