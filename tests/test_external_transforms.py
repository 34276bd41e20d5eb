"""MONAI and TorchIO transforms as nodes: reproducible from the request seed, numpy out in the
key's dtype and layout, shape changes refused with the node and key named."""

from __future__ import annotations

import numpy as np
import pytest

import gunpowder as gp
from gunpowder.nodes._external_transform import library_of
from gunpowder.nodes.monai_transform import MonaiTransform
from gunpowder.nodes.torchio_transform import TorchioTransform

mt = pytest.importorskip("monai.transforms")
tio = pytest.importorskip("torchio")
torch = pytest.importorskip("torch")

RAW, LABELS, AFFS = gp.ArrayKey("RAW"), gp.ArrayKey("LABELS"), gp.ArrayKey("AFFS")
VS = gp.Coordinate(10, 4, 4)
ROI = gp.Roi((20, -8, 40), (80, 64, 64))  # 8 x 16 x 16 voxels, non-zero offset
_rng = np.random.default_rng(0)
RAW_DATA = _rng.random((8, 16, 16)).astype(np.float32)
LABEL_DATA = _rng.integers(1, 6, (8, 16, 16)).astype(np.uint64)
AFFS_DATA = _rng.random((2, 8, 16, 16)).astype(np.float32)


def source(labels: np.ndarray = LABEL_DATA) -> gp.Pipeline:
    spec = gp.ArraySpec(roi=ROI, voxel_size=VS, interpolatable=True)
    return (
        gp.ArraySource(RAW, gp.Array(RAW_DATA, spec)),
        gp.ArraySource(LABELS, gp.Array(labels, spec.replace(interpolatable=False))),
        gp.ArraySource(AFFS, gp.Array(AFFS_DATA, spec)),
    ) + gp.MergeProvider()


def fetch(node: gp.PipelineNode, seed: int, keys=(RAW, LABELS), labels=LABEL_DATA) -> gp.Batch:
    pipeline = source(labels) + node
    request = gp.BatchRequest(random_seed=seed)
    for key in keys:
        request[key] = gp.ArraySpec(roi=ROI)
    with gp.build(pipeline):
        return pipeline.request_batch(request)


def monai_dict() -> MonaiTransform:
    return MonaiTransform(
        mt.Compose(
            [
                mt.RandGaussianNoised(keys=["image"], prob=1.0, std=0.1),
                mt.RandRotate90d(keys=["image", "label"], prob=0.5, spatial_axes=(1, 2)),
                mt.RandFlipd(keys=["image", "label"], prob=0.5, spatial_axis=0),
            ]
        ),
        keys={"image": RAW, "label": LABELS},
    )


def torchio_compose() -> TorchioTransform:
    return TorchioTransform(
        tio.Compose(
            [
                tio.RandomFlip(axes=(0, 1, 2), flip_probability=0.5),
                tio.RandomNoise(std=0.05),
                tio.RandomAffine(degrees=10, scales=0),
            ]
        ),
        keys=[RAW, LABELS],
    )


def assert_reproducible(make_node, keys=(RAW, LABELS)) -> None:
    node = make_node()
    a, b = fetch(node, 7, keys), fetch(node, 7, keys)
    fresh = fetch(make_node(), 7, keys)  # another instance, same seed: same batch
    other = fetch(node, 8, keys)
    for key in keys:
        assert np.array_equal(a[key].data, b[key].data), key
        assert np.array_equal(a[key].data, fresh[key].data), key
    assert not np.array_equal(a[RAW].data, other[RAW].data)


@pytest.mark.parametrize("make_node", [monai_dict, torchio_compose], ids=["monai", "torchio"])
def test_same_request_seed_same_batch_other_seed_other_batch(make_node):
    assert_reproducible(make_node)


@pytest.mark.parametrize("make_node", [monai_dict, torchio_compose], ids=["monai", "torchio"])
def test_output_is_numpy_in_the_keys_dtype_and_layout(make_node):
    batch = fetch(make_node(), 3)
    for key, dtype in ((RAW, np.float32), (LABELS, np.uint64)):
        data = batch[key].data
        assert type(data) is np.ndarray, type(data)
        assert data.dtype == dtype and data.shape == (8, 16, 16)
        assert batch[key].spec.roi == ROI and batch[key].spec.voxel_size == VS
    # labels are only moved (nearest neighbour), never blended or noised
    assert set(np.unique(batch[LABELS].data)) <= set(np.unique(LABEL_DATA)) | {0}
    assert not np.allclose(batch[RAW].data, RAW_DATA)  # the noise was applied


def test_monai_array_transform_on_one_key_with_channels():
    node = MonaiTransform(mt.RandGaussianNoise(prob=1.0, std=0.2), keys=AFFS)
    a, b = fetch(node, 1, (AFFS,)), fetch(node, 1, (AFFS,))
    assert a[AFFS].data.shape == (2, 8, 16, 16) and a[AFFS].data.dtype == np.float32
    assert np.array_equal(a[AFFS].data, b[AFFS].data)
    assert not np.array_equal(a[AFFS].data, fetch(node, 2, (AFFS,))[AFFS].data)
    noise = a[AFFS].data - AFFS_DATA
    assert 0.1 < noise.std() < 0.3  # std 0.2 noise, both channels


def test_torchio_single_key_and_label_maps_keep_their_values():
    node = TorchioTransform(tio.RandomNoise(std=0.5), keys=LABELS)  # LabelMap: untouched
    batch = fetch(node, 1, (LABELS,))
    assert np.array_equal(batch[LABELS].data, LABEL_DATA)
    node = TorchioTransform(tio.RandomNoise(std=0.5), keys=RAW)
    assert not np.array_equal(fetch(node, 1, (RAW,))[RAW].data, RAW_DATA)


def test_torchio_sees_the_voxel_size_as_spacing():
    seen = {}

    class Spy(tio.Transform):
        def apply_transform(self, subject):
            seen["spacing"] = subject["RAW"].spacing
            return subject

    fetch(TorchioTransform(Spy(), keys=[RAW]), 1, (RAW,))
    assert seen["spacing"] == (10.0, 4.0, 4.0)


def test_user_transform_and_torch_generator_are_left_alone():
    transform = mt.RandGaussianNoised(keys=["RAW"], prob=1.0, std=0.1)
    state = transform.R.get_state()[1].copy()
    torch.manual_seed(123)
    torch_state = torch.random.get_rng_state()
    fetch(MonaiTransform(transform, keys=[RAW]), 1, (RAW,))
    fetch(TorchioTransform(tio.RandomNoise(std=0.1), keys=[RAW]), 1, (RAW,))
    assert np.array_equal(transform.R.get_state()[1], state)  # a deep copy was seeded
    assert torch.equal(torch.random.get_rng_state(), torch_state)


def test_keys_missing_from_the_request():
    with pytest.raises(gp.PipelineRequestError, match="LABELS .'label'.*allow_missing_keys"):
        fetch(monai_dict(), 5, (RAW,))
    partial = MonaiTransform(
        mt.RandGaussianNoised(keys=["image", "label"], prob=1.0, std=0.1, allow_missing_keys=True),
        keys={"image": RAW, "label": LABELS},
        dtypes={LABELS: np.float32},  # noise on ids: floats, on purpose
    )
    alone, both = fetch(partial, 5, (RAW,)), fetch(partial, 5, (RAW, LABELS))
    assert LABELS not in alone
    assert np.array_equal(alone[RAW].data, both[RAW].data)  # one draw for the whole dict


@pytest.mark.parametrize(
    "make_node",
    [
        lambda: MonaiTransform(mt.SpatialPadd(keys=["RAW"], spatial_size=(10, 20, 20)), [RAW]),
        lambda: TorchioTransform(tio.CropOrPad((6, 16, 16)), keys=[RAW]),
    ],
    ids=["monai", "torchio"],
)
def test_shape_change_is_an_error_naming_node_and_key(make_node):
    with pytest.raises(gp.PipelineRequestError) as info:
        fetch(make_node(), 1, (RAW,))
    message = str(info.value)
    assert "Transform(" in message and "RAW" in message and "(8, 16, 16)" in message


def test_declared_resampling_keeps_the_roi():
    node = MonaiTransform(
        mt.Zoomd(keys=["RAW"], zoom=(1, 0.5, 0.5), keep_size=False),
        keys=[RAW],
        voxel_sizes={RAW: (10, 8, 8)},
    )
    batch = fetch(node, 1, (RAW,))
    assert batch[RAW].data.shape == (8, 8, 8)
    assert batch[RAW].spec.voxel_size == (10, 8, 8) and batch[RAW].spec.roi == ROI


def test_labels_through_float32_beyond_its_precision_are_an_error():
    big = LABEL_DATA + np.uint64(2**30)
    node = MonaiTransform(mt.RandGaussianSmoothd(keys=["L"], prob=0.0), keys={"L": LABELS})
    node_float = MonaiTransform(mt.CastToTyped(keys=["L"], dtype=np.float32), keys={"L": LABELS})
    assert np.array_equal(fetch(node, 1, (LABELS,), labels=big)[LABELS].data, big)
    with pytest.raises(gp.PipelineRequestError, match="exactly only up to"):
        fetch(node_float, 1, (LABELS,), labels=big)
    # small ids through float32 come back exact, as uint64
    out = fetch(node_float, 1, (LABELS,))[LABELS].data
    assert out.dtype == np.uint64 and np.array_equal(out, LABEL_DATA)


def test_integer_intensities_made_fractional_need_a_declared_dtype():
    raw8 = gp.ArraySource(
        RAW, gp.Array((RAW_DATA * 255).astype(np.uint8), gp.ArraySpec(roi=ROI, voxel_size=VS))
    )
    request = gp.BatchRequest(random_seed=1)
    request[RAW] = gp.ArraySpec(roi=ROI)
    noise = mt.RandGaussianNoise(prob=1.0, std=0.1)
    with pytest.raises(gp.PipelineRequestError, match="dtypes="):
        pipeline = raw8 + MonaiTransform(noise, keys=RAW)
        with gp.build(pipeline):
            pipeline.request_batch(request)
    pipeline = raw8 + MonaiTransform(noise, keys=RAW, dtypes={RAW: np.float32})
    with gp.build(pipeline):
        assert pipeline.spec[RAW].dtype == np.float32
        assert pipeline.request_batch(request)[RAW].data.dtype == np.float32


def test_torchio_2d_arrays():
    key = gp.ArrayKey("IMG")
    spec = gp.ArraySpec(roi=gp.Roi((0, 0), (32, 32)), voxel_size=(2, 2), interpolatable=True)
    data = _rng.random((16, 16)).astype(np.float32)
    pipeline = gp.ArraySource(key, gp.Array(data, spec)) + TorchioTransform(
        tio.RandomFlip(axes=(0,), flip_probability=1.0), keys=key
    )
    request = gp.BatchRequest(random_seed=1)
    request[key] = gp.ArraySpec(roi=spec.roi)
    with gp.build(pipeline):
        out = pipeline.request_batch(request)[key].data
    assert np.array_equal(out, data[::-1])


def test_bad_arguments_name_the_node():
    with pytest.raises(TypeError, match="MonaiTransform.*keys"):
        MonaiTransform(mt.RandGaussianNoise(), keys="RAW")
    with pytest.raises(TypeError, match="TorchioTransform.*transform"):
        TorchioTransform(42, keys=[RAW])
    with pytest.raises(ValueError, match="voxel_sizes.*LABELS"):
        MonaiTransform(mt.Zoomd(keys=["RAW"], zoom=2), [RAW], voxel_sizes={LABELS: (1, 1, 1)})
    with pytest.raises(gp.PipelineSetupError, match="MonaiTransform"):
        with gp.build(
            gp.ArraySource(RAW, gp.Array(RAW_DATA, gp.ArraySpec(roi=ROI, voxel_size=VS)))
            + MonaiTransform(mt.RandGaussianNoise(), keys=[LABELS])
        ):
            pass


def test_library_of_detects_both_libraries_without_importing_them():
    assert library_of(mt.RandGaussianNoise()) == "monai"
    assert library_of(tio.RandomNoise()) == "torchio"
    assert library_of(np.sqrt) is None
    assert library_of(lambda x: x) is None


def test_lift_turns_a_monai_transform_into_a_seeded_node():
    monai = pytest.importorskip("monai.transforms")
    node = gp.lift(monai.RandGaussianNoise(prob=1.0), gp.ArrayKey("LIFT_RAW"))
    assert type(node).__name__ == "MonaiTransform"
