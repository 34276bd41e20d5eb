"""gunpowder.plot: colours, sections in world coordinates, batch and loss figures as PNG."""

from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from gunpowder.batch import Array, Batch
from gunpowder.geometry import Coordinate, Roi
from gunpowder.plot import (
    affinities_to_rgb,
    guess_kind,
    labels_to_rgb,
    moving_average,
    plot_batch,
    plot_loss,
    read_loss_log,
    section,
)
from gunpowder.spec import ArrayKey, ArraySpec

PNG_MAGIC = b"\x89PNG"


@settings(max_examples=30, deadline=None)
@given(st.lists(st.integers(0, 2**40), min_size=1, max_size=50))
def test_label_colours_are_a_function_of_the_id(ids):
    ids = np.array(ids, dtype=np.uint64)
    rgb = labels_to_rgb(ids)
    assert rgb.shape == (len(ids), 3)
    for i, a in enumerate(ids):
        for j, b in enumerate(ids):
            if a == b:
                np.testing.assert_array_equal(rgb[i], rgb[j])
    assert np.all(rgb[ids == 0] == 0)
    assert np.all(rgb[ids != 0] >= 0.25) and np.all(rgb <= 1.0)


def test_affinity_channels_are_colours():
    affs = np.zeros((3, 2, 2), np.float32)
    affs[1, 0, 1] = 1.0
    rgb = affinities_to_rgb(affs)
    np.testing.assert_array_equal(rgb[0, 1], [0.0, 1.0, 0.0])
    assert affinities_to_rgb(affs[:2]).shape == (2, 2, 3)


@settings(max_examples=30, deadline=None)
@given(
    voxel=st.tuples(st.integers(1, 50), st.integers(1, 5), st.integers(1, 5)),
    offset=st.tuples(*[st.integers(-10, 10)] * 3),
    shape=st.tuples(*[st.integers(1, 6)] * 3),
    pick=st.integers(0, 100),
)
def test_section_is_the_slice_at_world_z(voxel, offset, shape, pick):
    voxel = Coordinate(voxel)
    roi = Roi(Coordinate(offset) * voxel, Coordinate(shape) * voxel)
    data = np.arange(np.prod(shape)).reshape(shape)
    array = Array(data, ArraySpec(roi=roi, voxel_size=voxel))
    index = pick % shape[0]
    z = roi.begin[0] + index * voxel[0] + pick % voxel[0]  # anywhere inside the section
    image, extent = section(array, z)
    np.testing.assert_array_equal(image, data[index])
    assert extent == (roi.begin[2], roi.end[2], roi.end[1], roi.begin[1])
    assert section(array, roi.end[0]) is None


def test_moving_average_matches_definition():
    values = np.random.default_rng(0).random(30)
    smooth = moving_average(values, 4)
    for i in range(30):
        assert np.isclose(smooth[i], values[max(0, i - 3) : i + 1].mean())


def test_plot_batch_and_loss_write_pngs(tmp_path):
    voxel = Coordinate(40, 4, 4)
    roi = Roi((0, 0, 0), Coordinate(6, 20, 20) * voxel)
    small = roi.grow(-voxel, -voxel)
    rng = np.random.default_rng(1)
    batch = Batch()
    raw, labels, affs, pred = (ArrayKey(n) for n in ("RAW", "GT_LABELS", "GT_AFFS", "PRED"))
    batch[raw] = Array(rng.integers(0, 255, (6, 20, 20), dtype=np.uint8), ArraySpec(roi, voxel))
    batch[labels] = Array(rng.integers(0, 5, (6, 20, 20)).astype(np.uint64), ArraySpec(roi, voxel))
    batch[affs] = Array(rng.random((1, 3, 4, 18, 18), dtype=np.float32), ArraySpec(small, voxel))
    batch[pred] = Array(rng.random((1, 4, 18, 18), dtype=np.float32), ArraySpec(small, voxel))
    batch.iteration, batch.loss = 12, 0.5
    assert [guess_kind(batch[k]) for k in (raw, labels, affs, pred)] == [
        "raw",
        "labels",
        "affinities",
        "raw",
    ]
    fig = plot_batch(batch, kinds={pred: "prediction"}, filename=tmp_path / "batch.png")
    assert len(fig.axes) == 4
    assert (tmp_path / "batch.png").read_bytes()[:4] == PNG_MAGIC
    # panels share world coordinates: the smaller output sits inside the raw's extent
    assert fig.axes[0].get_xlim() == fig.axes[2].get_xlim() == (0.0, 80.0)

    log = tmp_path / "loss.csv"
    log.write_text(
        "iteration,loss,seconds\n" + "".join(f"{i},{1 / i},0.01\n" for i in range(1, 101))
    )
    assert read_loss_log(log)["loss"][:2] == [1.0, 0.5]
    fig = plot_loss(log, filename=tmp_path / "loss.png")
    assert fig.axes[0].get_yscale() == "log"
    assert (tmp_path / "loss.png").read_bytes()[:4] == PNG_MAGIC
    # in a notebook, a figure shows as a picture (IPython asks for _repr_png_), not as text
    assert fig._repr_png_()[:4] == PNG_MAGIC


def test_batch_and_request_show_as_html_tables():
    voxel = Coordinate(40, 4, 4)
    roi = Roi((0, 0, 0), Coordinate(2, 4, 4) * voxel)
    raw = ArrayKey("HTML_RAW")
    batch = Batch()
    batch[raw] = Array(np.arange(32, dtype=np.uint8).reshape(2, 4, 4), ArraySpec(roi, voxel))
    html = batch._repr_html_()
    assert "<table>" in html and "HTML_RAW" in html and "0 … 31" in html and "uint8" in html
    from gunpowder.spec import BatchRequest

    request = BatchRequest(random_seed=3)
    request[raw] = ArraySpec(roi=roi)
    assert "seed 3" in request._repr_html_() and str(roi) in request._repr_html_()
    assert "placeholder" not in repr(request)  # short text repr: defaults are left out
