"""`python -m gunpowder.predict`: run a trained torch network over a whole volume, blockwise.

    python -m gunpowder.predict --model mynet:build_unet --checkpoint model_checkpoint_100000 \\
        --input data.zarr/volumes/raw --output pred.zarr/affinities \\
        --input-shape 84 268 268 --workers 4

Blocks run on Dask (a LocalCluster of `--workers` processes, or the cluster at
`--scheduler-address`), resume where a previous run stopped, and report failed blocks.
The output array is written exactly at the path given; in a new container its parent group
(here the root of pred.zarr) is an OME-NGFF image of it (0.4 for `--zarr-format 2`, the
default; 0.5 for 3), which napari-ome-zarr and neuroglancer open in place.
"""

from __future__ import annotations

import argparse
import hashlib
import importlib
import importlib.util
import os
import sys
from collections.abc import Sequence
from functools import partial
from typing import Any, NoReturn

import numpy as np

from .geometry import Coordinate, Roi
from .spec import ArrayKey, ArraySpec, BatchRequest, ProviderSpec

RAW = ArrayKey("RAW")
PREDICTION = ArrayKey("PREDICTION")

_ZARR_SUFFIXES = (".zarr", ".n5", ".zr")
_HDF5_SUFFIXES = (".h5", ".hdf", ".hdf5")


def split_dataset_path(path: str) -> tuple[str, str, str]:
    """'data.zarr/volumes/raw' → ('data.zarr', 'volumes/raw', 'zarr') (or 'hdf5')."""
    parts = path.rstrip("/").split("/")
    for i, part in enumerate(parts):
        for suffixes, kind in ((_ZARR_SUFFIXES, "zarr"), (_HDF5_SUFFIXES, "hdf5")):
            if part.lower().endswith(suffixes):
                dataset = "/".join(parts[i + 1 :])
                if not dataset:
                    raise ValueError(f"{path!r} names a container but no dataset inside it")
                return "/".join(parts[: i + 1]), dataset, kind
    raise ValueError(
        f"{path!r} must be CONTAINER/DATASET with a container ending in "
        f"{', '.join(_ZARR_SUFFIXES + _HDF5_SUFFIXES)}"
    )


def load_factory(spec: str) -> Any:
    """The callable named by 'package.module:function' or 'path/to/file.py:function'."""
    module_name, sep, attr = spec.rpartition(":")
    if not sep or not module_name or not attr:
        raise ValueError(f"--model must be MODULE:FACTORY (e.g. mynet:build), got {spec!r}")
    if module_name.endswith(".py") or os.sep in module_name:
        path = os.path.abspath(module_name)
        stem = os.path.splitext(os.path.basename(path))[0]
        digest = hashlib.sha1(path.encode()).hexdigest()[:12]  # two files of one name differ
        name = f"_gunpowder_model_{stem}_{digest}"
        module = sys.modules.get(name)
        if module is None:
            folder = os.path.dirname(path)
            if folder not in sys.path:  # the file may import its neighbours (examples/cremi)
                sys.path.insert(0, folder)
            loader = importlib.util.spec_from_file_location(name, path)
            if loader is None or loader.loader is None:
                raise ValueError(f"--model: can not load {path}")
            module = importlib.util.module_from_spec(loader)
            sys.modules[name] = module
            loader.loader.exec_module(module)
    else:
        module = importlib.import_module(module_name)
    try:
        return getattr(module, attr)
    except AttributeError:
        raise ValueError(f"--model: module {module_name!r} has no {attr!r}") from None


def _volume_model_class() -> type:
    import torch

    class VolumeModel(torch.nn.Module):
        """A network taking (N, C, *spatial) float tensors, fed one block: adds the batch (and
        channel) axes, scales the input to float, drops the batch axis of the output."""

        def __init__(self, net: torch.nn.Module, spatial_dims: int, scale: float) -> None:
            super().__init__()
            self.net = net
            self.spatial_dims = spatial_dims
            self.scale = scale

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            x = x.float() * self.scale
            while x.ndim < self.spatial_dims + 2:
                x = x.unsqueeze(0)
            return self.net(x)[0]

        # checkpoints hold the network's parameters: load and save them unprefixed
        def load_state_dict(self, state_dict: Any, strict: bool = True, assign: bool = False):
            return self.net.load_state_dict(state_dict, strict=strict, assign=assign)

        def state_dict(self, *args: Any, **kwargs: Any) -> Any:
            return self.net.state_dict(*args, **kwargs)

    return VolumeModel


def input_scale(dtype: Any, scale: str | float | None) -> float:
    """The factor applied to the raw input: 'auto' maps unsigned ints to [0, 1]."""
    if scale is None or scale == "auto":
        dtype = np.dtype(dtype)
        return 1.0 / np.iinfo(dtype).max if dtype.kind == "u" else 1.0
    return float(scale)


def make_source(path: str) -> Any:
    """A source serving the dataset `path` ('file.zarr/ds' or 'file.hdf/ds') as RAW."""
    container, dataset, kind = split_dataset_path(path)
    from .nodes import Hdf5Source, ZarrSource

    specs = {RAW: ArraySpec(interpolatable=True)}  # raw intensities
    if kind == "zarr":
        return ZarrSource(container, {RAW: dataset}, array_specs=specs)
    return Hdf5Source(container, {RAW: dataset}, array_specs=specs)


def predict_pipeline(
    net: Any,
    input_path: str,
    checkpoint: str | None = None,
    scale: str | float | None = "auto",
    device: str | None = None,
) -> Any:
    """source(RAW) + Predict(net): PREDICTION from RAW. `net` is a torch module taking
    (N, C, *spatial) tensors, or a zero-argument factory of one."""
    from .pipeline import build
    from .torch import Predict

    source = make_source(input_path)
    with build(make_source(input_path)) as probe:
        raw_spec = probe.spec[RAW]
    if not isinstance(net, _torch_module()) and callable(net):
        net = net()
    model = _volume_model_class()(net, raw_spec.roi.dims, input_scale(raw_spec.dtype, scale))
    return source + Predict(
        model, inputs={0: RAW}, outputs={0: PREDICTION}, checkpoint=checkpoint, device=device
    )


def _torch_module() -> type:
    import torch

    return torch.nn.Module


def output_shape_of(net: Any, input_shape: Sequence[int], in_channels: int) -> Coordinate:
    """The spatial output shape of `net` for an input block of `input_shape` voxels.

    Probed on torch's meta device (shapes only, nothing allocated: a 400³ block costs no
    memory); a network that can not run there is probed on a real zero block on the CPU.
    """
    import copy

    import torch

    n = len(input_shape)
    with torch.no_grad():
        try:
            meta = copy.deepcopy(net).to("meta").eval()
            out = meta(torch.zeros((1, in_channels, *input_shape), device="meta"))
            return Coordinate(out.shape[-n:])
        except Exception:  # an op without a meta kernel, or a net that can not be copied
            pass
        net.eval()
        out = net(torch.zeros((1, in_channels, *input_shape)))
    return Coordinate(out.shape[-n:])


def block_request(
    input_shape: Sequence[int], output_shape: Sequence[int], voxel_size: Coordinate
) -> BatchRequest:
    """The reference request: RAW of `input_shape` voxels at the origin, PREDICTION of
    `output_shape` centred in it (as Predict places it)."""
    from .torch.model_io import centred_roi

    raw = Roi((0,) * len(voxel_size), Coordinate(input_shape) * voxel_size)
    reference = BatchRequest()
    reference[RAW] = ArraySpec(roi=raw)
    reference[PREDICTION] = ArraySpec(roi=centred_roi(raw, Coordinate(output_shape), voxel_size))
    return reference


class _Parser(argparse.ArgumentParser):
    """Usage errors in one line (exit status 2), not the whole usage text."""

    def error(self, message: str) -> NoReturn:
        self.exit(2, f"{self.prog}: error: {message} (see --help)\n")


def _one_line(error: BaseException) -> str:
    """The message of `error` on one line (a listing after a colon is kept, joined)."""
    lines = [line.strip() for line in str(error).splitlines() if line.strip()]
    text = ""
    for line in lines:
        text += line if not text else (" " if text.endswith(":") else "; ") + line
    return text or type(error).__name__


def _positive_shape(name: str, shape: Sequence[int] | None) -> None:
    if shape is not None and any(s < 1 for s in shape):
        raise ValueError(f"{name} must be positive voxel counts, got {' '.join(map(str, shape))}")


def _parser() -> argparse.ArgumentParser:
    p = _Parser(
        prog="python -m gunpowder.predict",
        description="Predict on a whole volume, blockwise on Dask; reruns resume.",
    )
    p.add_argument("--model", required=True, help="MODULE:FACTORY returning a torch.nn.Module")
    p.add_argument("--checkpoint", help="checkpoint (from Train) or state dict to load")
    p.add_argument("--input", required=True, help="input dataset, e.g. data.zarr/volumes/raw")
    p.add_argument("--output", required=True, help="output zarr dataset, e.g. out.zarr/pred")
    p.add_argument("--input-shape", type=int, nargs="+", required=True, help="block input, voxels")
    p.add_argument("--output-shape", type=int, nargs="+", help="block output (default: probe)")
    p.add_argument("--workers", type=int, default=2, help="local worker processes (0: here)")
    p.add_argument("--scheduler-address", help="Dask scheduler to use instead of local workers")
    p.add_argument("--max-in-flight", type=int, help="blocks submitted at a time")
    p.add_argument("--retries", type=int, default=2, help="retries of a failing block")
    p.add_argument("--chunk-shape", type=int, nargs="+", help="output chunks (divide the block)")
    p.add_argument("--dtype", help="output dtype (default: the network's)")
    p.add_argument("--compression", default=None, help="gzip, zstd, blosc, lz4 or none")
    p.add_argument(
        "--zarr-format", type=int, choices=(2, 3), default=2,
        help="format of a new output: 2 (OME-NGFF 0.4, default) or 3 (OME-NGFF 0.5)",
    )  # fmt: skip
    p.add_argument("--scale", default="auto", help="input factor ('auto': uint to [0, 1])")
    p.add_argument("--device", help="torch device of the workers (default: cuda if available)")
    p.add_argument("--in-channels", type=int, default=1, help="input channels (for the probe)")
    p.add_argument("--dry-run", action="store_true", help="print the plan, compute nothing")
    p.add_argument("--overwrite", action="store_true", help="discard a previous run's output")
    p.add_argument("--no-progress", action="store_true", help="no progress bar")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    """Run the command line; returns the exit status: 0 ok, 1 failed blocks, 2 a usage or
    input error (one line on stderr: a missing file or dataset, bad shapes, a model that
    can not be loaded or run on the block), 130 Ctrl-C."""
    from .blockwise import BlockwiseInterrupted, make_plan, run_blockwise
    from .errors import GunpowderError
    from .pipeline import build

    args = _parser().parse_args(argv)
    try:
        _positive_shape("--input-shape", args.input_shape)
        _positive_shape("--output-shape", args.output_shape)
        _positive_shape("--chunk-shape", args.chunk_shape)
        if args.workers < 0:
            raise ValueError(f"--workers must be >= 0, got {args.workers}")
        if args.retries < 0:
            raise ValueError(f"--retries must be >= 0, got {args.retries}")
        if args.max_in_flight is not None and args.max_in_flight < 1:
            raise ValueError(f"--max-in-flight must be >= 1, got {args.max_in_flight}")
        out_container, out_dataset, out_kind = split_dataset_path(args.output)
        if out_kind != "zarr":
            raise ValueError(f"--output must be a zarr dataset (out.zarr/name), got {args.output}")
        if args.checkpoint is not None and not os.path.isfile(args.checkpoint):
            raise ValueError(f"--checkpoint {args.checkpoint} does not exist")
        factory = load_factory(args.model)
        with build(make_source(args.input)) as source:
            raw_spec = source.spec[RAW]
        dims = raw_spec.roi.dims
        if len(args.input_shape) != dims:
            raise ValueError(f"--input-shape needs {dims} values, got {args.input_shape}")
        if args.output_shape is None:
            try:
                output_shape = output_shape_of(factory(), args.input_shape, args.in_channels)
            except RuntimeError as e:  # torch: the network does not take this block
                raise ValueError(
                    f"the network can not run on an input block of "
                    f"{' '.join(map(str, args.input_shape))} voxels with {args.in_channels} "
                    f"channel(s) (--input-shape, --in-channels): {_one_line(e)}"
                ) from e
        else:
            output_shape = Coordinate(args.output_shape)
        reference = block_request(args.input_shape, output_shape, raw_spec.voxel_size)
        provided = ProviderSpec({RAW: raw_spec})
        provided[PREDICTION] = raw_spec.replace(dtype=np.float32, interpolatable=True)
        plan = make_plan(
            provided, reference, {PREDICTION: out_dataset}, out_container,
            chunk_shape=args.chunk_shape,
        )  # fmt: skip
    except (ValueError, OSError, ImportError, GunpowderError) as e:
        print(f"gunpowder.predict: {_one_line(e)}", file=sys.stderr)
        return 2
    pipeline = partial(
        predict_pipeline, factory_spec(args.model), args.input, args.checkpoint,
        args.scale, args.device,
    )  # fmt: skip
    try:
        summary = run_blockwise(
            pipeline, reference, {PREDICTION: out_dataset}, out_container,
            workers=args.workers, scheduler_address=args.scheduler_address,
            max_in_flight=args.max_in_flight, retries=args.retries,
            dataset_dtypes={PREDICTION: args.dtype} if args.dtype else None,
            compression_type=args.compression, zarr_format=args.zarr_format,
            progress=not args.no_progress,
            dry_run=args.dry_run, overwrite=args.overwrite, plan=plan,
        )  # fmt: skip
    except BlockwiseInterrupted as e:
        print(e.summary, file=sys.stderr)
        return 130
    except (ValueError, GunpowderError) as e:
        message = _one_line(e).replace("pass overwrite=True", "pass --overwrite")
        print(f"gunpowder.predict: {message}", file=sys.stderr)
        return 2
    print(summary, file=sys.stderr)
    return 0 if summary.ok else 1


def factory_spec(spec: str) -> Any:
    """A picklable zero-argument factory for the network named by `spec` (for workers)."""
    return partial(_build_named, spec)


def _build_named(spec: str) -> Any:
    return load_factory(spec)()


if __name__ == "__main__":
    # run the imported module's main, so that what workers unpickle names gunpowder.predict
    from gunpowder.predict import main as _main

    sys.exit(_main())
