"""Laws of the ROI algebra: grow, shift, intersect, union, snap, contains, division."""

import pytest
from hypothesis import given
from hypothesis import strategies as st

from gunpowder import Coordinate, Roi
from gunpowder.geometry import is_multiple_of, roi_key
from gunpowder.testing import coordinates, rois, voxel_sizes


def test_geometry_is_funlibs():
    import funlib.geometry

    assert Coordinate is funlib.geometry.Coordinate and Roi is funlib.geometry.Roi
    roi = Roi((0, 0, 0), (10, 20, 30))
    assert (6,) + roi.shape == (6, 10, 20, 30)  # tuples concatenate, as in 1.x
    assert roi_key(roi) == roi_key(Roi((0, 0, 0), (10, 20, 30))) != roi_key(roi.shift(1))


def test_coordinate_arithmetic_and_none():
    a = Coordinate(40, 4, 4)
    assert a == Coordinate((40, 4, 4))
    assert a * 2 == (80, 8, 8)
    assert Coordinate(80, 8, 9) / a == (2, 2, 2)
    assert a + Coordinate(None, 1, 1) == (None, 5, 5)
    with pytest.raises(AssertionError):
        _ = a + Coordinate(1, 1)


def test_is_multiple_of_skips_unbounded_axes():
    assert is_multiple_of(Coordinate(None, 8), Coordinate(4, 4))
    assert not is_multiple_of(Coordinate(None, 6), Coordinate(4, 4))


def test_roi_accessors():
    r = Roi((10, 20), (30, 40))
    assert r.begin == (10, 20) and r.end == (40, 60) and r.shape == (30, 40)
    assert r.center == (25, 40)
    assert r.size == 1200
    assert not r.empty and not r.unbounded
    assert r / Coordinate(10, 20) == Roi((1, 1), (3, 2))


@given(rois(), coordinates())
def test_shift_roundtrip(roi, by):
    assert roi.shift(by).shift(-by) == roi
    assert roi.shift(by).shape == roi.shape


@given(rois(), st.tuples(*[st.integers(0, 100)] * 3), st.tuples(*[st.integers(0, 100)] * 3))
def test_grow_contains_original(roi, neg, pos):
    grown = roi.grow(neg, pos)
    assert grown.contains(roi) or roi.empty
    assert grown.shape == roi.shape + Coordinate(neg) + Coordinate(pos)
    assert grown.grow(-Coordinate(neg), -Coordinate(pos)) == roi


@given(rois(), rois())
def test_intersect_union_laws(a, b):
    i = a.intersect(b)
    assert i == b.intersect(a) or (i.empty and b.intersect(a).empty)
    if not i.empty:
        assert a.contains(i) and b.contains(i)
    assert a.intersects(b) == (not i.empty)
    u = a.union(b)
    assert u == b.union(a) or (u.empty and b.union(a).empty)
    if not a.empty:
        assert u.contains(a)
    if not b.empty:
        assert u.contains(b)


@given(rois(), coordinates())
def test_contains_point_matches_bounds(roi, p):
    inside = all(b <= x < e for b, x, e in zip(roi.begin, p, roi.end))
    assert roi.contains(p) == inside


@given(rois(), voxel_sizes())
def test_snap_to_grid(roi, vs):
    grown = roi.snap_to_grid(vs, mode="grow")
    shrunk = roi.snap_to_grid(vs, mode="shrink")
    closest = roi.snap_to_grid(vs, mode="closest")
    for r in (grown, shrunk, closest):
        assert r.offset.is_multiple_of(vs) and r.shape.is_multiple_of(vs)
    assert grown.contains(roi) or roi.empty
    assert roi.contains(shrunk) or shrunk.empty
    assert grown.snap_to_grid(vs) == grown
    for b, cb, v in zip(roi.begin, closest.begin, vs):
        assert abs(b - cb) <= v / 2


def test_unbounded():
    u = Roi((None, None), (None, None))
    assert u.unbounded and u.size is None
    r = Roi((0, 0), (5, 5))
    assert u.contains(r) and not r.contains(u)
    assert u.intersect(r) == r
    assert r.intersect(u) == r
    half = Roi((0, None), (10, None))
    assert half.intersect(Roi((5, 5), (10, 10))) == Roi((5, 5), (5, 10))
