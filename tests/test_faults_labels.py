"""Label and intensity nodes: layouts they can not use and invalid constructor arguments are
errors naming the node and the key or argument; a single channel axis on labels is dropped."""

from __future__ import annotations

import numpy as np
import pytest

import gunpowder as gp
from gunpowder.nodes import (
    AddAffinities,
    AddBoundaryDistance,
    BalanceLabels,
    BlurAugment,
    ExcludeLabels,
    GammaAugment,
    GrowBoundary,
    NoiseAugment,
    RenumberConnectedComponents,
)

LABELS = gp.ArrayKey("LABELS")
MASK = gp.ArrayKey("MASK")
AFFS = gp.ArrayKey("AFFS")
OUT = gp.ArrayKey("OUT")
RAW = gp.ArrayKey("RAW")
NBH = [[-1, 0, 0], [0, -1, 0], [0, 0, -1]]
SPATIAL = (6, 7, 8)


def _labels(shape=SPATIAL, dtype=np.uint64):
    rng = np.random.default_rng(3)
    return rng.integers(0, 4, shape).astype(dtype)


def _source(data, key=LABELS, spatial=SPATIAL):
    spec = gp.ArraySpec(roi=gp.Roi((0, 0, 0), spatial), voxel_size=(1, 1, 1))
    return gp.ArraySource(key, gp.Array(data, spec), interpolatable=False)


def _run(pipeline, keys, roi=gp.Roi((1, 1, 1), (4, 5, 6))):
    request = gp.BatchRequest()
    for key in keys:
        request[key] = gp.ArraySpec(roi=roi)
    with gp.build(pipeline):
        return pipeline.request_batch(request)


def _add_affinities(**kwargs):
    return AddAffinities(NBH, LABELS, AFFS, **kwargs)


# -- channel axes ----------------------------------------------------------------------------


def test_add_affinities_drops_a_single_channel_axis():
    labels = _labels()
    plain = _run(_source(labels) + _add_affinities(), [AFFS])[AFFS].data
    channel = _run(_source(labels[None]) + _add_affinities(), [AFFS])[AFFS].data
    assert plain.shape == (3, 4, 5, 6)
    assert channel.shape == (3, 4, 5, 6)
    np.testing.assert_array_equal(channel, plain)


@pytest.mark.parametrize(
    "node",
    [
        lambda: _add_affinities(),
        lambda: GrowBoundary(LABELS),
        lambda: RenumberConnectedComponents(LABELS),
        lambda: AddBoundaryDistance(LABELS, OUT, max_distance=2),
        lambda: ExcludeLabels(LABELS, [1], ignore_mask=OUT),
    ],
)
def test_labels_with_several_channels_are_an_error_naming_node_and_key(node):
    n = node()
    keys = [k for k in (AFFS, OUT) if k in (getattr(n, "affinities", None),
                                           getattr(n, "distance", None),
                                           getattr(n, "ignore_mask", None))] or [LABELS]  # fmt: skip
    with pytest.raises(gp.PipelineRequestError) as info:
        _run(_source(_labels((2, *SPATIAL))) + n, keys)
    message = str(info.value)
    assert type(n).__name__ in message and "LABELS" in message and "shape (2, " in message


@pytest.mark.parametrize(
    "node, keys",
    [
        (lambda: GrowBoundary(LABELS, steps=1), [LABELS]),
        (lambda: RenumberConnectedComponents(LABELS), [LABELS]),
        (lambda: AddBoundaryDistance(LABELS, OUT, max_distance=2), [OUT]),
        (lambda: ExcludeLabels(LABELS, [1], ignore_mask=OUT), [LABELS, OUT]),
    ],
)
def test_label_nodes_keep_a_single_channel_axis(node, keys):
    labels = _labels()
    plain = _run(_source(labels) + node(), keys)
    channel = _run(_source(labels[None]) + node(), keys)
    for key in keys:
        if key == LABELS:
            assert channel[key].data.shape == (1, 4, 5, 6)
            np.testing.assert_array_equal(channel[key].data[0], plain[key].data)
        else:
            np.testing.assert_array_equal(channel[key].data.reshape(plain[key].data.shape),
                                          plain[key].data)  # fmt: skip


# -- dtypes ----------------------------------------------------------------------------------


def test_float_labels_with_fractions_or_nan_are_an_error():
    whole = _labels().astype(np.float32)
    assert _run(_source(whole) + _add_affinities(), [AFFS])[AFFS].data.shape == (3, 4, 5, 6)
    for bad, what in ((whole + 0.5, "fractional"), (np.full(SPATIAL, np.nan, np.float32), "NaN")):
        with pytest.raises(gp.PipelineRequestError, match=what) as info:
            _run(_source(bad) + _add_affinities(), [AFFS])
        assert "AddAffinities" in str(info.value) and "LABELS" in str(info.value)


def test_non_numeric_labels_are_a_setup_error():
    data = np.zeros(SPATIAL, dtype="<U1")
    with pytest.raises(gp.PipelineSetupError, match="LABELS") as info:
        _run(_source(data) + GrowBoundary(LABELS), [LABELS])
    assert "GrowBoundary" in str(info.value)


# -- constructor arguments -------------------------------------------------------------------


@pytest.mark.parametrize(
    "make, argument",
    [
        (lambda: AddAffinities([[1, 0], [0]], LABELS, AFFS), "affinity_neighborhood"),
        (lambda: AddAffinities([[0.5, 0, 0]], LABELS, AFFS), "affinity_neighborhood"),
        (lambda: AddAffinities([], LABELS, AFFS), "affinity_neighborhood"),
        (lambda: AddAffinities(NBH, "LABELS", AFFS), "labels"),
        (lambda: AddAffinities(NBH, LABELS, AFFS, dtype="U3"), "dtype"),
        (lambda: GrowBoundary(LABELS, steps=-1), "steps"),
        (lambda: GrowBoundary(LABELS, steps=1.5), "steps"),
        (lambda: GrowBoundary(LABELS, steps="x"), "steps"),
        (lambda: GrowBoundary(LABELS, background=0.5), "background"),
        (lambda: BalanceLabels(LABELS, OUT, num_classes=0), "num_classes"),
        (lambda: BalanceLabels(LABELS, OUT, clipmin=-0.1), "clipmin"),
        (lambda: BalanceLabels(LABELS, OUT, clipmax=1.5), "clipmax"),
        (lambda: BalanceLabels(LABELS, OUT, clipmin=0.9, clipmax=0.1), "clipmin"),
        (lambda: BalanceLabels(LABELS, OUT, slab=(0, -1, -1)), "slab"),
        (lambda: BalanceLabels(LABELS, OUT, mask="MASK"), "mask"),
        (lambda: ExcludeLabels(LABELS, [1.5]), "exclude"),
        (lambda: ExcludeLabels(LABELS, None), "exclude"),
        (lambda: ExcludeLabels(LABELS, [1], ignore_mask_erode=-1), "ignore_mask_erode"),
        (lambda: AddBoundaryDistance(LABELS, OUT, max_distance=0), "max_distance"),
        (lambda: AddBoundaryDistance(LABELS, OUT, max_distance=float("nan")), "max_distance"),
        (lambda: RenumberConnectedComponents("LABELS"), "labels"),
        (lambda: NoiseAugment(RAW, var=-0.1), "var"),
        (lambda: NoiseAugment(RAW, mode="s&p", amount=2), "amount"),
        (lambda: NoiseAugment(RAW, mode="s&p", salt_vs_pepper=-1), "salt_vs_pepper"),
        (lambda: NoiseAugment(RAW, p=1.5), "p"),
        (lambda: BlurAugment(RAW, prob_blur=1.5), "prob_blur"),
        (lambda: BlurAugment(RAW, sigma_min=-1), "sigma_min"),
        (lambda: BlurAugment(RAW, sigma_max=float("inf")), "sigma_max"),
        (lambda: BlurAugment(RAW, sigma_min=3, sigma_max=2), "sigma_min"),
        (lambda: BlurAugment(RAW, axis=-1), "axis"),
        (lambda: GammaAugment(RAW, gamma_min=0, gamma_max=1), "gamma_min"),
        (lambda: GammaAugment(RAW, gamma_min=2, gamma_max=1), "gamma_min"),
        (lambda: GammaAugment(RAW, gamma_min="a", gamma_max=1), "gamma_min"),
    ],
)
def test_invalid_arguments_name_node_and_argument(make, argument):
    with pytest.raises((ValueError, TypeError)) as info:
        make()
    message = str(info.value)
    node = message.split(":")[0]
    assert node in (
        "AddAffinities", "GrowBoundary", "BalanceLabels", "ExcludeLabels", "AddBoundaryDistance",
        "RenumberConnectedComponents", "NoiseAugment", "BlurAugment", "GammaAugment",
    ), message  # fmt: skip
    assert argument in message, message
    assert isinstance(info.value, AssertionError)  # what 1.x's asserts raised
