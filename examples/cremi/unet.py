"""A small 3D U-Net with valid convolutions, and the affinity network of the CREMI example.

Valid convolutions make the output smaller than the input, so every output voxel sees the
same context: predictions do not depend on where a block was cut. `UNet.output_shape` does
the size arithmetic, `UNet.valid_input_shape` finds the nearest input size the net accepts.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
from torch import nn

Shape = tuple[int, ...]


def _conv_pass(in_ch: int, out_ch: int, kernel_sizes: Sequence[Shape]) -> nn.Sequential:
    layers: list[nn.Module] = []
    for k in kernel_sizes:
        layers += [nn.Conv3d(in_ch, out_ch, tuple(k)), nn.ReLU(inplace=True)]
        in_ch = out_ch
    return nn.Sequential(*layers)


def _centre_crop(x: torch.Tensor, shape: Sequence[int]) -> torch.Tensor:
    """The centre of `x` with spatial `shape` (the last len(shape) axes)."""
    offsets = [(s - t) // 2 for s, t in zip(x.shape[-len(shape) :], shape)]
    index = (Ellipsis,) + tuple(slice(o, o + t) for o, t in zip(offsets, shape))
    return x[index]


class UNet(nn.Module):
    """3D U-Net: `len(downsample_factors) + 1` levels, feature maps multiplied per level.

    Args:
        in_channels: channels of the input.
        num_fmaps: feature maps at the top level.
        fmap_inc_factor: factor between the feature maps of two levels.
        downsample_factors: one (z, y, x) max-pool factor per level transition.
        kernel_size_down: per level, the kernel sizes of its convolutions (default 2 × 3³).
        kernel_size_up: per level except the bottom, the kernels on the way up.

    Example: ``UNet(1, 6, 2, [(1, 2, 2), (1, 2, 2)])``.
    """

    def __init__(
        self,
        in_channels: int,
        num_fmaps: int,
        fmap_inc_factor: int,
        downsample_factors: Sequence[Shape],
        kernel_size_down: Sequence[Sequence[Shape]] | None = None,
        kernel_size_up: Sequence[Sequence[Shape]] | None = None,
    ) -> None:
        super().__init__()
        levels = len(downsample_factors) + 1
        self.downsample_factors = [tuple(f) for f in downsample_factors]
        self.kernel_size_down = [
            [tuple(k) for k in ks] for ks in (kernel_size_down or [[(3, 3, 3)] * 2] * levels)
        ]
        self.kernel_size_up = [
            [tuple(k) for k in ks] for ks in (kernel_size_up or [[(3, 3, 3)] * 2] * (levels - 1))
        ]
        if len(self.kernel_size_down) != levels or len(self.kernel_size_up) != levels - 1:
            raise ValueError(
                f"UNet: {levels} levels need {levels} kernel_size_down and {levels - 1} "
                f"kernel_size_up entries, got {len(self.kernel_size_down)} and "
                f"{len(self.kernel_size_up)}"
            )
        fmaps = [num_fmaps * fmap_inc_factor**level for level in range(levels)]
        self.out_channels = fmaps[0]
        self.down = nn.ModuleList(
            _conv_pass(in_channels if lvl == 0 else fmaps[lvl - 1], fmaps[lvl], ks)
            for lvl, ks in enumerate(self.kernel_size_down)
        )
        self.pool = nn.ModuleList(nn.MaxPool3d(f, stride=f) for f in self.downsample_factors)
        self.upsample = nn.ModuleList(
            nn.ConvTranspose3d(fmaps[lvl + 1], fmaps[lvl], f, stride=f)
            for lvl, f in enumerate(self.downsample_factors)
        )
        self.up = nn.ModuleList(
            _conv_pass(2 * fmaps[lvl], fmaps[lvl], ks) for lvl, ks in enumerate(self.kernel_size_up)
        )

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        skips = []
        for lvl, factor in enumerate(self.downsample_factors):
            x = self.down[lvl](x)
            if any(s % f for s, f in zip(x.shape[-3:], factor)):
                raise ValueError(
                    f"UNet: feature map of shape {tuple(x.shape[-3:])} at level {lvl} is not "
                    f"divisible by {factor}; use UNet.valid_input_shape to pick the input size"
                )
            skips.append(x)
            x = self.pool[lvl](x)
        x = self.down[-1](x)
        for lvl in reversed(range(len(self.downsample_factors))):
            x = self.upsample[lvl](x)
            skip = _centre_crop(skips[lvl], x.shape[-3:])
            x = self.up[lvl](torch.cat([skip, x], dim=1))
        return x

    def output_shape(self, input_shape: Sequence[int]) -> Shape | None:
        """The spatial output shape for `input_shape`, or None if the net can not take it."""
        sizes = [self._axis_output(d, int(s)) for d, s in enumerate(input_shape)]
        return None if any(s is None for s in sizes) else tuple(sizes)  # type: ignore[arg-type]

    def valid_input_shape(self, min_shape: Sequence[int]) -> Shape:
        """The smallest input shape ≥ `min_shape` (per axis) that the net accepts."""
        result = []
        for d, size in enumerate(min_shape):
            size = int(size)
            while self._axis_output(d, size) is None:
                size += 1
            result.append(size)
        return tuple(result)

    def _axis_output(self, d: int, size: int) -> int | None:
        """Output size along axis `d` for an input of `size`, None if not valid."""
        for lvl, factor in enumerate(self.downsample_factors):
            size -= sum(k[d] - 1 for k in self.kernel_size_down[lvl])
            if size <= 0 or size % factor[d]:
                return None
            size //= factor[d]
        size -= sum(k[d] - 1 for k in self.kernel_size_down[-1])
        if size <= 0:
            return None
        for lvl in reversed(range(len(self.downsample_factors))):
            size = size * self.downsample_factors[lvl][d]
            size -= sum(k[d] - 1 for k in self.kernel_size_up[lvl])
            if size <= 0:
                return None
        return size


class AffinityNet(nn.Module):
    """A U-Net, a 1×1×1 convolution to one channel per affinity, and a sigmoid.

    Takes raw as (z, y, x), (c, z, y, x) or (b, c, z, y, x) and returns affinities with as
    many leading axes as it was given channels for: (3, z, y, x) for an unbatched input.
    """

    def __init__(self, unet: UNet, num_affinities: int = 3) -> None:
        super().__init__()
        self.unet = unet
        self.head = nn.Conv3d(unet.out_channels, num_affinities, 1)

    def forward(self, raw: torch.Tensor) -> torch.Tensor:
        dims = raw.dim()
        x = raw.reshape((1,) * (5 - dims) + tuple(raw.shape)) if dims < 5 else raw
        y = torch.sigmoid(self.head(self.unet(x)))
        return y[0] if dims < 5 else y

    def output_shape(self, input_shape: Sequence[int]) -> Shape | None:
        return self.unet.output_shape(input_shape)


def small_unet(num_fmaps: int = 6, fmap_inc_factor: int = 2) -> UNet:
    """The demo's U-Net for 40×4×4 nm data: in-plane pooling, z-context only at the bottom."""
    return UNet(
        in_channels=1,
        num_fmaps=num_fmaps,
        fmap_inc_factor=fmap_inc_factor,
        downsample_factors=[(1, 2, 2), (1, 2, 2)],
        kernel_size_down=[[(1, 3, 3), (1, 3, 3)], [(1, 3, 3), (1, 3, 3)], [(3, 3, 3), (3, 3, 3)]],
        kernel_size_up=[[(1, 3, 3), (1, 3, 3)], [(1, 3, 3), (1, 3, 3)]],
    )
