"""Every zarr the library writes is valid OME-NGFF (0.4 in zarr 2, 0.5 in zarr 3), one image
per group, no clash with the reserved `labels` group, and opens with dask, xarray and
ome-zarr-py's reader (napari-ome-zarr) with the values and placement that were written."""

from __future__ import annotations

import numpy as np
import pytest
import zarr

import gunpowder as gp
from gunpowder.io_metadata import GUNPOWDER_NGFF_MARK, find_multiscales, read_ome_ngff
from gunpowder.nodes import Snapshot, ZarrSource, ZarrWrite
from gunpowder.pipeline import build

RAW = gp.ArrayKey("NGFF_RAW")
AFFS = gp.ArrayKey("NGFF_AFFS")
LABELS = gp.ArrayKey("NGFF_LABELS")
VS = gp.Coordinate(40, 4, 4)
OFFSET = gp.Coordinate(400, -8, 12)
SHAPE = gp.Coordinate(6, 10, 12)  # voxels
TOTAL = gp.Roi(OFFSET, SHAPE * VS)


def volume() -> dict[gp.ArrayKey, np.ndarray]:
    grid = np.indices(tuple(SHAPE)).astype(np.float32)
    raw = (grid[0] * 100 + grid[1] * 10 + grid[2]).astype(np.float32)
    return {
        RAW: raw,
        AFFS: np.stack([raw, raw + 1, raw + 2]) / 1000,
        LABELS: (raw // 7).astype(np.uint64),
    }


def source() -> gp.Pipeline:
    sources = tuple(
        gp.ArraySource(key, gp.Array(data, gp.ArraySpec(roi=TOTAL, voxel_size=VS)))
        for key, data in volume().items()
    )
    return sources + gp.MergeProvider()


def request(*keys: gp.ArrayKey, roi: gp.Roi = TOTAL) -> gp.BatchRequest:
    r = gp.BatchRequest(random_seed=0)
    for key in keys:
        r[key] = gp.ArraySpec(roi=roi)
    return r


# ------------------------------------------------------------------------------------------
# checking a written hierarchy


def _groups(root: zarr.Group) -> dict[str, zarr.Group]:
    found = {"": root}
    for path, member in root.members(max_depth=None):
        if isinstance(member, zarr.Group):
            found[path] = member
    return found


def _is_labels_group(attrs: dict) -> bool:
    return "labels" in attrs or "labels" in attrs.get("ome", {})


def check_hierarchy(path: str, zarr_format: int) -> dict[str, dict]:
    """Validate every image group of the zarr at `path`; returns {image path: multiscale}.

    Each group with `multiscales` lists exactly one, of the right version, and validates as
    an ome-zarr-models Image; an image's `labels` child is a labels group; every array opens
    with dask.array.from_zarr with zarr's shape and values.
    """
    import dask.array as da

    models = pytest.importorskip("ome_zarr_models")  # noqa: F841
    if zarr_format == 2:
        from ome_zarr_models.v04 import Image
    else:
        from ome_zarr_models.v05 import Image

    root = zarr.open_group(path, mode="r")
    assert root.metadata.zarr_format == zarr_format
    images = {}
    for name, group in _groups(root).items():
        attrs = group.attrs.asdict()
        multiscales = find_multiscales(attrs)
        if multiscales is None:
            continue
        assert len(multiscales) == 1, f"{path}/{name} lists {len(multiscales)} images"
        if zarr_format == 2:
            assert "ome" not in attrs and multiscales[0]["version"] == "0.4"
        else:
            assert "multiscales" not in attrs and attrs["ome"]["version"] == "0.5"
        Image.from_zarr(group)  # raises if the metadata is not a valid image
        if "labels" in group:
            child = group["labels"]
            assert isinstance(child, zarr.Group) and _is_labels_group(child.attrs.asdict()), (
                f"{path}/{name} is an image with a 'labels' child that is no labels group"
            )
        images[name] = multiscales[0]
    for name, member in root.members(max_depth=None):
        if isinstance(member, zarr.Array):
            lazy = da.from_zarr(path, component=name)
            assert lazy.shape == member.shape
            np.testing.assert_array_equal(lazy.compute(), member[...])
    return images


def check_image(
    path: str, group: str, zarr_format: int, expected: np.ndarray, mask_and_scale: bool = True
) -> None:
    """The image group `group` opens in xarray and ome-zarr-py, with `expected` at VS, OFFSET.

    `mask_and_scale=False` for ZarrWrite's zarr 2 arrays: their fill value 0 (1.x; unwritten
    chunks read as 0) is what xarray masks as missing by default."""
    root = zarr.open_group(path, mode="r")
    ms = find_multiscales(root[group].attrs.asdict() if group else root.attrs.asdict())
    (level,) = [d["path"] for d in ms[0]["datasets"]]
    array = root[f"{group}/{level}" if group else level]
    meta = read_ome_ngff(
        root[group].attrs.asdict() if group else root.attrs.asdict(), level, array.ndim
    )
    assert (meta.voxel_size, meta.offset) == (VS, OFFSET)
    axes = [a["name"] for a in ms[0]["axes"]]
    xr = pytest.importorskip("xarray")
    ds = xr.open_zarr(
        path, group=group or None, consolidated=False, zarr_format=zarr_format,
        mask_and_scale=mask_and_scale,
    )  # fmt: skip
    assert ds[level].dims == tuple(axes) and ds[level].shape == expected.shape
    np.testing.assert_array_equal(ds[level].values, expected)
    pytest.importorskip("ome_zarr")
    from ome_zarr.format import FormatV04, FormatV05
    from ome_zarr.io import parse_url
    from ome_zarr.reader import Reader

    fmt = FormatV04() if zarr_format == 2 else FormatV05()
    location = parse_url(f"{path}/{group}" if group else path, fmt=fmt)
    assert location is not None
    node = next(iter(Reader(location)()))
    np.testing.assert_array_equal(np.asarray(node.data[0]), expected)
    transforms = node.metadata["coordinateTransformations"][0]
    scale = next(t["scale"] for t in transforms if t["type"] == "scale")
    translation = next(t["translation"] for t in transforms if t["type"] == "translation")
    channels = expected.ndim - 3
    assert scale[channels:] == list(VS) and translation[channels:] == list(OFFSET)


# ------------------------------------------------------------------------------------------
# Snapshot


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_cremi_style_snapshot_is_one_image_per_name(tmp_path, zarr_format):
    names = {
        RAW: "volumes/raw",
        AFFS: "volumes/pred_affs",
        LABELS: "volumes/labels",  # the CREMI name, an image group beside raw
    }
    points = gp.GraphKey("NGFF_POINTS")
    graph = gp.Graph.from_arrays(
        [[440.0, 0.0, 20.0]], [1], [], spec=gp.GraphSpec(roi=gp.Roi((0, -100, 0), (1000, 200, 200)))
    )
    pipeline = (source(), gp.GraphSource(points, graph)) + gp.MergeProvider()
    pipeline += Snapshot(
        {**names, points: "graphs/points"},
        output_dir=tmp_path, output_filename="batch_{iteration}.zarr", zarr_format=zarr_format,
    )  # fmt: skip
    r = request(RAW, AFFS, LABELS)
    r[points] = gp.GraphSpec(roi=TOTAL)
    with build(pipeline) as p:
        p.request_batch(r)
    path = str(tmp_path / "batch_0.zarr")
    images = check_hierarchy(path, zarr_format)
    assert set(images) == set(names.values())  # not `volumes`, not the root, not graphs
    assert all(ms["metadata"] == GUNPOWDER_NGFF_MARK for ms in images.values())
    data = volume()
    for key, name in names.items():
        check_image(path, name, zarr_format, data[key])
    root = zarr.open_group(path, mode="r")
    assert root["graphs/points-ids"][...].tolist() == [1]
    s0 = root["volumes/raw/s0"]
    assert s0.attrs["resolution"] == list(VS) and s0.attrs["offset"] == list(OFFSET)
    # our own source reads the image groups back in place
    back = ZarrSource(path, {key: name for key, name in names.items()})
    with build(back) as p:
        assert p.spec[RAW].roi == TOTAL and p.spec[RAW].voxel_size == VS
        batch = p.request_batch(request(RAW, AFFS, LABELS))
    for key in names:
        np.testing.assert_array_equal(batch[key].data, data[key])


def test_flat_snapshot_has_no_multiscales(tmp_path):
    pipeline = source() + Snapshot(
        {RAW: "volumes/raw", LABELS: "volumes/labels"},
        output_dir=tmp_path, output_filename="flat.zarr", ome_ngff=False,
    )  # fmt: skip
    with build(pipeline) as p:
        p.request_batch(request(RAW, LABELS))
    path = str(tmp_path / "flat.zarr")
    assert check_hierarchy(path, 2) == {}
    np.testing.assert_array_equal(zarr.open_array(path, path="volumes/raw")[...], volume()[RAW])


# ------------------------------------------------------------------------------------------
# ZarrWrite


def write(tmp_path, names, zarr_format=2, container="out.zarr", roi=TOTAL) -> str:
    pipeline = source() + ZarrWrite(
        names, output_dir=str(tmp_path), output_filename=container, zarr_format=zarr_format
    )
    scan = gp.BatchRequest()
    for key in names:
        scan[key] = gp.ArraySpec(roi=gp.Roi((0, 0, 0), gp.Coordinate(3, 5, 6) * VS))
    pipeline += gp.Scan(scan)
    with build(pipeline) as p:
        p.request_batch(request(*names, roi=roi))
    return str(tmp_path / container)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_write_one_array_makes_its_new_parent_an_image(tmp_path, zarr_format):
    path = write(tmp_path, {AFFS: "affinities"}, zarr_format)
    assert set(check_hierarchy(path, zarr_format)) == {""}  # the root is the image
    check_image(path, "", zarr_format, volume()[AFFS], mask_and_scale=zarr_format == 3)
    array = zarr.open_array(path, path="affinities", mode="r")  # exactly where it was named
    names = ["c", "z", "y", "x"]
    if zarr_format == 3:
        assert list(array.metadata.dimension_names) == names
    else:
        assert array.attrs["_ARRAY_DIMENSIONS"] == names
    assert array.attrs["resolution"] == list(VS) and array.attrs["offset"] == list(OFFSET)

    nested = write(tmp_path, {RAW: "volumes/raw"}, zarr_format, "nested.zarr")
    assert set(check_hierarchy(nested, zarr_format)) == {"volumes"}
    check_image(nested, "volumes", zarr_format, volume()[RAW], mask_and_scale=zarr_format == 3)


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_write_a_second_array_unmakes_the_image(tmp_path, zarr_format):
    path = write(tmp_path, {RAW: "volumes/raw", AFFS: "volumes/affs"}, zarr_format)
    assert check_hierarchy(path, zarr_format) == {}  # volumes holds two arrays: no image
    # a later run adding a second array to a group that was an image takes our entry away
    first = write(tmp_path, {AFFS: "pred/affs"}, zarr_format, "later.zarr")
    assert set(check_hierarchy(first, zarr_format)) == {"pred"}
    write(tmp_path, {RAW: "pred/raw"}, zarr_format, "later.zarr")
    assert check_hierarchy(first, zarr_format) == {}
    # ... and so does writing a group into it (the root image gets a `volumes` child)
    root_image = write(tmp_path, {AFFS: "affs"}, zarr_format, "root.zarr")
    write(tmp_path, {RAW: "volumes/raw"}, zarr_format, "root.zarr")
    assert set(check_hierarchy(root_image, zarr_format)) == {"volumes"}
    for name, key in (("affs", AFFS), ("volumes/raw", RAW)):
        np.testing.assert_array_equal(zarr.open_array(root_image, path=name)[...], volume()[key])


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_write_labels_is_never_an_image(tmp_path, zarr_format):
    path = write(tmp_path, {LABELS: "volumes/labels"}, zarr_format)
    assert check_hierarchy(path, zarr_format) == {}
    labels = zarr.open_array(path, path="volumes/labels")
    np.testing.assert_array_equal(labels[...], volume()[LABELS])


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_write_leaves_what_it_did_not_create_alone(tmp_path, zarr_format):
    """Pre-created groups and arrays (daisy, funlib.persistence) get no attributes."""
    path = str(tmp_path / "pre.zarr")
    root = zarr.open_group(path, mode="w", zarr_format=zarr_format)
    root.attrs["owner"] = "me"
    root.require_group("volumes")
    existing = root.create_array("pre", shape=tuple(SHAPE), dtype=np.float32, fill_value=0)
    existing.attrs.update({"resolution": list(VS), "offset": list(OFFSET)})
    before = {name: dict(g.attrs.asdict()) for name, g in _groups(root).items()}
    write(tmp_path, {RAW: "pre", AFFS: "volumes/affs", LABELS: "top"}, zarr_format, "pre.zarr")
    root = zarr.open_group(path, mode="r")
    after = {name: dict(g.attrs.asdict()) for name, g in _groups(root).items()}
    assert after == before
    assert root["pre"].attrs.asdict() == {"resolution": list(VS), "offset": list(OFFSET)}
    np.testing.assert_array_equal(root["pre"][...], volume()[RAW])
    np.testing.assert_array_equal(root["volumes/affs"][...], volume()[AFFS])
    assert check_hierarchy(path, zarr_format) == {}


def test_zarr_write_keeps_foreign_multiscales(tmp_path):
    path = str(tmp_path / "foreign.zarr")
    root = zarr.open_group(path, mode="w", zarr_format=2)
    theirs = {"version": "0.4", "name": "theirs", "axes": [], "datasets": []}
    root.require_group("volumes").attrs["multiscales"] = [theirs]
    write(tmp_path, {RAW: "volumes/raw"}, 2, "foreign.zarr")
    assert zarr.open_group(path, path="volumes").attrs["multiscales"] == [theirs]


# ------------------------------------------------------------------------------------------
# python -m gunpowder.predict

NET = """
import torch

def build():
    torch.manual_seed(3)
    return torch.nn.Conv3d(1, 2, 3)
"""


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_predict_output_is_a_root_image(tmp_path, zarr_format):
    torch = pytest.importorskip("torch")
    from gunpowder.predict import load_factory, main

    raw = volume()[RAW] / 1000
    src = zarr.open_group(str(tmp_path / "in.zarr"), mode="w", zarr_format=2)
    src.create_array("raw", shape=raw.shape, dtype=np.float32)[...] = raw
    src["raw"].attrs.update({"resolution": list(VS), "offset": list(OFFSET)})
    (tmp_path / "net.py").write_text(NET)
    out = str(tmp_path / "pred.zarr")
    args = ["--model", f"{tmp_path / 'net.py'}:build", "--input", str(tmp_path / "in.zarr/raw"),
            "--input-shape", "4", "6", "6", "--output", f"{out}/affinities", "--workers", "0",
            "--no-progress", "--device", "cpu", "--zarr-format", str(zarr_format)]  # fmt: skip
    assert main(args) == 0
    assert set(check_hierarchy(out, zarr_format)) == {""}  # the root is the image
    with torch.no_grad():
        net = load_factory(f"{tmp_path / 'net.py'}:build")()
        expected = net(torch.as_tensor(raw[None, None]))[0].numpy()
    pred = zarr.open_array(out, path="affinities", mode="r")  # where it was named
    assert pred.shape == expected.shape == (2, *(s - 2 for s in SHAPE))
    np.testing.assert_allclose(pred[...], expected, rtol=1e-5, atol=1e-6)
    offset = OFFSET + VS  # valid convolution: one voxel of context on each side
    assert pred.attrs["offset"] == list(offset)
    meta = read_ome_ngff(zarr.open_group(out, mode="r").attrs.asdict(), "affinities", 4)
    assert (meta.voxel_size, meta.offset) == (VS, offset)


# ------------------------------------------------------------------------------------------
# examples/view_neuroglancer.py


def _viewer_script():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "examples" / "view_neuroglancer.py"
    spec = importlib.util.spec_from_file_location("view_neuroglancer", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


def test_view_neuroglancer_finds_the_layers(tmp_path, capsys):
    script = _viewer_script()
    with pytest.raises(SystemExit) as exit_:
        script.main(["--help"])
    assert exit_.value.code == 0 and "neuroglancer" in capsys.readouterr().out
    assert script.main([str(tmp_path / "missing.zarr")]) == 2
    pipeline = source() + Snapshot(
        {RAW: "volumes/raw", LABELS: "volumes/labels"}, output_dir=tmp_path,
        output_filename="s.zarr",
    )  # fmt: skip
    with build(pipeline) as p:
        p.request_batch(request(RAW, LABELS))
    found = {name: seg for name, _, seg, _ in script.layers(str(tmp_path / "s.zarr"))}
    assert found == {"volumes/raw": False, "volumes/labels": True}
    flat = write(tmp_path, {RAW: "volumes/raw", AFFS: "volumes/affs"}, 2, "flat.zarr")
    placed = {name: where for name, _, _, where in script.layers(flat)}
    assert placed == {
        "volumes/raw": {"voxel_size": list(VS), "offset": list(OFFSET)},
        "volumes/affs": None,  # channels: shown in voxels
    }
    neuroglancer = pytest.importorskip("neuroglancer")
    transform = script._transform(placed["volumes/raw"]).to_json()
    assert [row[-1] for row in transform["matrix"]] == [o / v for o, v in zip(OFFSET, VS)]
    assert isinstance(
        script._transform(placed["volumes/raw"]), neuroglancer.CoordinateSpaceTransform
    )
