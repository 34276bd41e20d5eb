"""IntensityAugment, NoiseAugment, GammaAugment, BlurAugment: formulas, ranges, p, errors."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from scipy import ndimage
from test_elastic_augment import Arrays

import gunpowder as gp
from gunpowder.errors import PipelineRequestError
from gunpowder.nodes import BlurAugment, GammaAugment, IntensityAugment, NoiseAugment
from gunpowder.transforms.augment_intensity import count_slabs, slabs

RAW, OTHER = gp.ArrayKey("INT_RAW"), gp.ArrayKey("INT_OTHER")
VS = gp.Coordinate(40, 4, 4)


def source(data, key=RAW, offset=(0, 0, 0)):
    roi = gp.Roi(gp.Coordinate(offset) * VS, gp.Coordinate(data.shape[-3:]) * VS)
    return gp.Array(data, gp.ArraySpec(roi=roi, voxel_size=VS, interpolatable=True))


def run(node, arrays, seed=0, roi=None):
    request = gp.BatchRequest(random_seed=seed)
    for key, array in arrays.items():
        request[key] = gp.ArraySpec(roi=roi or array.spec.roi)
    with gp.build(Arrays(arrays) + node) as pipeline:
        return pipeline.request_batch(request)


def raw_data(seed, shape=(6, 10, 12)):
    return np.random.default_rng(seed).random(shape).astype(np.float32)


@given(st.integers(0, 2**31), st.booleans())
def test_intensity_is_affine_per_section_within_ranges(seed, section_wise):
    data = raw_data(seed)
    node = IntensityAugment(RAW, 0.8, 1.2, -0.1, 0.1, z_section_wise=section_wise, clip=False)
    out = run(node, {RAW: source(data)}, seed)[RAW].data
    assert out.dtype == np.float32 and out.shape == data.shape
    blocks = [data[z] for z in range(6)] if section_wise else [data]
    outs = [out[z] for z in range(6)] if section_wise else [out]
    scales = []
    for a, b in zip(blocks, outs):
        scale = np.polyfit(a.ravel(), b.ravel(), 1)[0]
        shift = b.mean() - a.mean()  # mean + (a - mean) * s + t has mean (mean + t)
        assert 0.8 - 1e-4 <= scale <= 1.2 + 1e-4 and -0.1 - 1e-4 <= shift <= 0.1 + 1e-4
        np.testing.assert_allclose(b, a.mean() + (a - a.mean()) * scale + shift, atol=1e-5)
        scales.append(scale)
    if section_wise:
        assert len(set(np.round(scales, 6))) > 1  # drawn per section


def test_intensity_fixed_values_clip_and_slab():
    data = raw_data(1)
    out = run(IntensityAugment(RAW, 2.0, 2.0, 0.5, 0.5), {RAW: source(data)})[RAW].data
    np.testing.assert_allclose(
        out, np.clip(data.mean() + (data - data.mean()) * 2 + 0.5, 0, 1), atol=1e-6
    )
    node = IntensityAugment(RAW, 0.5, 1.5, 0, 0, clip=False, slab=(2, -1, -1))
    out = run(node, {RAW: source(data)}, seed=3)[RAW].data
    for z in (0, 2, 4):
        block_in, block_out = data[z : z + 2], out[z : z + 2]
        s = np.polyfit(block_in.ravel(), block_out.ravel(), 1)[0]
        np.testing.assert_allclose(
            block_out, block_in.mean() + (block_in - block_in.mean()) * s, atol=1e-5
        )
    assert count_slabs((6, 10, 12), (2, -1, -1)) == 3 == len(list(slabs((6, 10, 12), (2, -1, -1))))
    assert count_slabs((2, 6, 10, 12), (1, -1, -1)) == 6


def test_intensity_errors_and_p():
    data = raw_data(2)
    out = run(IntensityAugment(RAW, 0.5, 0.5, 0.3, 0.3, p=0.0), {RAW: source(data)})[RAW].data
    np.testing.assert_array_equal(out, data)
    with pytest.raises(PipelineRequestError, match=r"INT_RAW has values in .*, expected \[0, 1\]"):
        run(IntensityAugment(RAW, 1, 1, 0, 0), {RAW: source(data * 2)})
    with pytest.raises(PipelineRequestError, match="floats"):
        run(IntensityAugment(RAW, 1, 1, 0, 0), {RAW: source((data * 255).astype(np.uint8))})
    with pytest.raises(PipelineRequestError, match="z_section_wise needs a 3D"):
        roi = gp.Roi((0, 0), (40, 48))
        flat = gp.Array(data[0], gp.ArraySpec(roi=roi, voxel_size=(4, 4), interpolatable=True))
        run(IntensityAugment(RAW, 1, 1, 0, 0, z_section_wise=True), {RAW: flat})
    with pytest.raises(ValueError, match="p must be"):
        IntensityAugment(RAW, 1, 1, 0, 0, p=-0.1)


@settings(max_examples=10)
@given(st.integers(0, 2**31))
def test_noise_modes(seed):
    data = np.full((6, 40, 40), 0.5, np.float32)
    arrays = {RAW: source(data)}
    out = run(NoiseAugment(RAW, "gaussian", var=0.04, clip=False), arrays, seed)[RAW].data
    assert out.dtype == np.float32
    assert abs(out.mean() - 0.5) < 0.01 and abs(out.std() - 0.2) < 0.01
    out = run(NoiseAugment(RAW, "gaussian", mean=0.6, var=0.01), arrays, seed)[RAW].data
    assert out.max() <= 1.0 and (out == 1.0).mean() > 0.8  # clipped to [0, 1]
    out = run(NoiseAugment(RAW, "s&p", amount=0.2), arrays, seed)[RAW].data
    changed = out != 0.5
    assert abs(changed.mean() - 0.2) < 0.03 and set(np.unique(out[changed])) <= {0.0, 1.0}
    out = run(NoiseAugment(RAW, "salt", amount=0.1), arrays, seed)[RAW].data
    assert set(np.unique(out)) <= {0.5, 1.0}
    out = run(NoiseAugment(RAW, "pepper", amount=0.1), arrays, seed)[RAW].data
    assert set(np.unique(out)) <= {0.0, 0.5}
    ramp = source(raw_data(seed))
    out = run(NoiseAugment(RAW, "poisson"), {RAW: ramp}, seed)[RAW].data
    assert 0 <= out.min() and out.max() <= 1 and abs(out.mean() - ramp.data.mean()) < 0.01
    out = run(NoiseAugment(RAW, "speckle", var=0.01, clip=False), {RAW: ramp}, seed)[RAW].data
    ratio = out / np.maximum(ramp.data, 1e-3)
    assert abs(np.median(ratio) - 1) < 0.02
    a = run(NoiseAugment(RAW, "gaussian"), arrays, seed)[RAW].data
    b = run(NoiseAugment(RAW, "gaussian"), arrays, seed)[RAW].data
    np.testing.assert_array_equal(a, b)


def test_noise_on_signed_data_and_errors():
    data = raw_data(3) * 2 - 1
    out = run(NoiseAugment(RAW, "s&p", amount=0.5), {RAW: source(data)})[RAW].data
    changed = out != data
    assert set(np.unique(out[changed])) <= {-1.0, 1.0}
    out = run(NoiseAugment(RAW, p=0.0), {RAW: source(data)})[RAW].data
    np.testing.assert_array_equal(out, data)
    with pytest.raises(ValueError, match="unknown mode"):
        NoiseAugment(RAW, "pink")
    with pytest.raises(PipelineRequestError, match="values in"):
        run(NoiseAugment(RAW), {RAW: source(data * 3)})


@given(st.integers(0, 2**31))
def test_gamma_same_power_for_all_arrays(seed):
    a, b = raw_data(seed) * 0.98 + 0.01, raw_data(seed + 1) * 0.98 + 0.01
    batch = run(
        GammaAugment([RAW, OTHER], 0.5, 2.0), {RAW: source(a), OTHER: source(b, OTHER)}, seed
    )
    ga = np.log(batch[RAW].data) / np.log(a)
    gb = np.log(batch[OTHER].data) / np.log(b)
    assert 0.5 - 1e-3 <= ga.mean() <= 2.0 + 1e-3
    np.testing.assert_allclose(ga, ga.mean(), rtol=1e-3)
    np.testing.assert_allclose(gb, ga.mean(), rtol=1e-3)
    single = run(GammaAugment(RAW, 2.0, 2.0), {RAW: source(a)})[RAW].data
    np.testing.assert_allclose(single, a**2, rtol=1e-6)
    with pytest.raises(PipelineRequestError, match="negative"):
        run(GammaAugment(RAW, 1, 2), {RAW: source(a - 0.5)})
    with pytest.raises(ValueError, match="gamma_min"):
        GammaAugment(RAW, 0, 1)


@settings(max_examples=10)
@given(st.integers(0, 2**31))
def test_blur_uses_context_and_only_chosen_sections(seed):
    data = raw_data(seed, (8, 40, 40))
    arrays = {RAW: source(data)}
    roi = gp.Roi((80, 40, 40), (160, 80, 80))  # sections 2..5, centre 20x20
    node = BlurAugment(RAW, prob_blur=1.0, sigma_min=1.0, sigma_max=1.0)
    out = run(node, arrays, seed, roi)[RAW].data
    for i, z in enumerate(range(2, 6)):
        expected = ndimage.gaussian_filter(data[z], 1.0)[10:30, 10:30]
        np.testing.assert_allclose(out[i], expected, atol=1e-5)
    out = run(BlurAugment(RAW, prob_blur=0.5, sigma_min=1, sigma_max=2), arrays, seed)[RAW].data
    assert out.shape == data.shape
    for z in range(8):  # a section is either untouched or blurred (less contrast)
        assert np.array_equal(out[z], data[z]) or out[z].std() < 0.8 * data[z].std()
    out = run(BlurAugment(RAW, prob_blur=0.0), arrays, seed)[RAW].data
    np.testing.assert_array_equal(out, data)
    out = run(BlurAugment(RAW, prob_blur=1.0, p=0.0), arrays, seed)[RAW].data
    np.testing.assert_array_equal(out, data)
    with pytest.raises(PipelineRequestError, match="axis 3"):
        run(BlurAugment(RAW, axis=3), arrays, seed)
