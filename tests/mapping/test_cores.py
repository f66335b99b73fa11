"""Several cores and their network (mapping/cores.py): hops, routes and link capacities in
closed form, and located errors for bad ``arch.cores`` sections."""

from __future__ import annotations

from fractions import Fraction

import pytest
import yaml

from einsum.errors import ConfigError
from mapping.cores import Noc, cores_from_data
from einsum.yamlsrc import loads


def _cores(text: str):
    data, src = loads("cores: " + text, "a.yaml")
    return cores_from_data(data["cores"], src, ("arch", "cores"))


def _mesh(x: int, y: int, ctl=(0, 0), bw=1) -> Noc:
    return Noc("mesh", (x, y), ctl, Fraction(bw), 0, 0.0)


def test_mesh_hops_are_manhattan_distances_from_the_controller():
    assert [_mesh(2, 2).hops(k) for k in range(4)] == [0, 1, 1, 2]
    # 4 x 4, controller at (1, 2): |x - 1| + |y - 2|, cores row-major
    m = _mesh(4, 4, (1, 2))
    assert [m.hops(k) for k in range(16)] == [abs(k % 4 - 1) + abs(k // 4 - 2) for k in range(16)]


def test_mesh_routes_are_x_first_both_ways():
    m = _mesh(2, 2)
    assert m.route(3, "read") == [((0, 0), (1, 0)), ((1, 0), (1, 1))]   # along row 0, then column 1
    assert m.route(3, "write") == [((1, 1), (0, 1)), ((0, 1), (0, 0))]  # along row 1, then column 0
    assert m.route(0, "read") == []


@pytest.mark.parametrize("x,y,ctl,n,direction,busiest", [
    (2, 2, (0, 0), 4, "read", 2),    # (0,0)->(1,0) carries cores 1 and 3
    (2, 2, (0, 0), 4, "write", 2),   # (0,1)->(0,0) carries cores 2 and 3
    (2, 2, (0, 0), 2, "read", 1),    # cores 0, 1: one link, one core
    (4, 4, (0, 0), 16, "read", 12),  # (0,0)->(1,0): every core of columns 1-3
    (4, 4, (1, 1), 16, "read", 8),   # (1,1)->(2,1): columns 2 and 3
    (4, 1, (0, 0), 4, "read", 3),    # a row: the first link carries cores 1-3
])
def test_link_cap_is_the_busiest_links_share(x, y, ctl, n, direction, busiest):
    # n cores moving equal words: the busiest link carries busiest / n of them, so the
    # network carries link_bw * n / busiest words per cycle
    assert _mesh(x, y, ctl, bw=3).link_cap(n, direction) == Fraction(3 * n, busiest)


def test_a_core_at_the_controller_uses_no_link():
    assert _mesh(2, 2).link_cap(1, "read") is None


def test_ring_goes_the_short_way_and_ties_go_up():
    r = Noc("ring", (4, 1), (0, 0), Fraction(2), 0, 0.0)
    assert [r.hops(k) for k in range(4)] == [0, 1, 2, 1]
    assert r.route(2, "read") == [(0, 1), (1, 2)]
    assert r.route(3, "read") == [(0, 3)]
    assert r.route(2, "write") == [(2, 1), (1, 0)]
    assert r.link_cap(4, "read") == Fraction(2 * 4, 2)  # (0, 1) carries cores 1 and 2


def test_bus_is_one_hop_and_one_link():
    b = _cores("{count: 3, noc: {topology: bus, link_bw: 5}}").noc
    assert [b.hops(k) for k in range(3)] == [1, 1, 1]
    assert b.link_cap(3, "read") == 5 and b.link_cap(3, "write") == 5


def test_parsed_mesh():
    c = _cores("{count: 4, noc: {topology: mesh, dims: [2, 2], controller: [1, 0], link_bw: 0.5, "
               "hop_latency: 2, energy_per_word_hop: 0.1}}")
    assert c.count == 4 and c.noc == Noc("mesh", (2, 2), (1, 0), Fraction(1, 2), 2, 0.1)
    assert _cores("8").count == 8 and _cores("8").noc is None


@pytest.mark.parametrize("text,where,msg", [
    ("0", "arch.cores.count", "expected a number of cores > 0"),
    ("{count: 4, noc: {topology: torus, link_bw: 1}}", "arch.cores.noc.topology", "unknown topology 'torus'"),
    ("{count: 4, noc: {topology: mesh, dims: [2, 3], link_bw: 1}}", "arch.cores.noc.dims",
     "a 2 x 3 mesh has 6 routers for 4 cores"),
    ("{count: 4, noc: {topology: mesh, link_bw: 1}}", "arch.cores.noc.dims", "a mesh needs dims"),
    ("{count: 4, noc: {topology: mesh, dims: [2, 2], controller: [2, 0], link_bw: 1}}",
     "arch.cores.noc.controller", "a router of the 2 x 2 mesh"),
    ("{count: 4, noc: {topology: bus, controller: 1, link_bw: 1}}", "arch.cores.noc.controller", "a bus has no"),
    ("{count: 4, noc: {topology: ring, dims: [4, 1], link_bw: 1}}", "arch.cores.noc.dims", "applies to a mesh"),
    ("{count: 4, noc: {topology: ring, link_bw: 0}}", "arch.cores.noc.link_bw", "a link bandwidth"),
    ("{count: 4, noc: {topology: ring, link_bw: 1, hops: 2}}", "arch.cores.noc.hops", "unknown key 'hops'"),
])
def test_bad_cores_sections_are_located(text, where, msg):
    with pytest.raises(ConfigError) as ei:
        _cores(text)
    assert ".".join(map(str, ei.value.ypath)) == where and msg in ei.value.message
    assert ei.value.file == "a.yaml" and ei.value.line == 1


@pytest.mark.parametrize("instances,parallel,n,want", [
    (6, None, 4, ((4, 1), (2, 1))),      # 6 = 1 x 4 + 2
    (8, None, 4, ((4, 2),)),
    (2, None, 4, ((2, 1),)),             # two cores idle
    (24, 2, 2, ((2, 12),)),              # a batch of 2, 12 blocks in sequence each
    (36, 3, 2, ((2, 12), (1, 12))),      # 3 heads on 2 cores: 2, then 1, each 12 blocks
])
def test_phases_split_what_may_run_at_once(instances, parallel, n, want):
    from mapping.cores import phases

    assert phases(instances, parallel, n) == want
