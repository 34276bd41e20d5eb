"""Compile the package's numba kernels ahead of time, so the first batch pays no compilation.

    python -m gunpowder.warmup          # after `pip install`; a second run is a cache hit

Every kernel is compiled with `cache=True` (`transforms/_jit.py` picks a writable cache
folder), but numba compiles a kernel only when it is first called, for the argument types of
that call (dtype, number of dimensions, memory layout), and a cold compile of the warp and
intensity kernels takes about ten seconds. numba keys its cache on the path and modification
time of the kernel's source file, so a cache built elsewhere cannot ship inside a wheel:
this command builds it on the machine, after installing.

The kernels are not listed by hand: small representative pipelines (the CREMI training
chain, the intensity and geometric augmentations, on uint8, float32 and float64 data in the
memory layouts the nodes produce) run on tiny temporary volumes, and the kernels they reach
compile for exactly the argument types real pipelines pass. Afterwards every numba kernel of
the package is listed with what was compiled and what was loaded from the cache; kernels no
exercise reached are named, so that one can be added here for a new kernel.

Why not compile in a background thread at `import gunpowder`: numba holds the GIL for most
of a compile, so the thread competes with the pipeline instead of overlapping it (measured:
the first CREMI batch with a cold cache took 12.2-12.7 s with such a thread against 8.8-9.9 s
without), it would compile signatures the pipeline never uses, and a PreCache worker forked
while the thread holds numba's compiler lock would deadlock on it.
"""

from __future__ import annotations

import argparse
import dataclasses
import importlib
import json
import math
import pkgutil
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

__all__ = ["KernelReport", "WarmUpReport", "kernels", "main", "warm_up"]

#: the packages whose modules may define numba kernels (imported before looking for them)
KERNEL_PACKAGES = ("gunpowder.transforms", "gunpowder.nodes")

_VOXEL_SIZE = (40, 4, 4)


@dataclass
class KernelReport:
    """One numba kernel: the signatures compiled in this process and those loaded from cache."""

    name: str
    compiled: list[str] = field(default_factory=list)
    loaded: list[str] = field(default_factory=list)

    @property
    def reached(self) -> bool:
        return bool(self.compiled or self.loaded)


@dataclass
class WarmUpReport:
    """What `warm_up` did: seconds per exercise, the kernels, the cache folder, failures."""

    cache_dir: str | None
    exercises: dict[str, float] = field(default_factory=dict)
    failures: dict[str, str] = field(default_factory=dict)
    kernels: list[KernelReport] = field(default_factory=list)
    seconds: float = 0.0

    @property
    def compiled(self) -> int:
        return sum(len(k.compiled) for k in self.kernels)

    @property
    def loaded(self) -> int:
        return sum(len(k.loaded) for k in self.kernels)

    def lines(self) -> list[str]:
        """The report as printable lines."""
        where = {None: "nowhere (no writable folder: compiled for this process only)"}.get(
            self.cache_dir, self.cache_dir or "beside the sources (__pycache__)"
        )
        out = [f"gunpowder warm-up: numba cache {where}"]
        for name, seconds in self.exercises.items():
            status = "FAILED: " + self.failures[name] if name in self.failures else "ok"
            out.append(f"  {name:<28} {seconds:7.2f} s  {status}")
        for k in self.kernels:
            if k.reached:
                out.append(
                    f"  kernel {k.name}: {len(k.compiled)} compiled, {len(k.loaded)} from cache"
                )
        missed = [k.name for k in self.kernels if not k.reached]
        if missed:
            out.append(
                "  not called directly (inlined into a kernel above, or for diagnostics): "
                + ", ".join(missed)
            )
        out.append(
            f"total {self.seconds:.2f} s: {self.compiled} signatures compiled, "
            f"{self.loaded} loaded from cache"
        )
        return out


def _import_kernel_modules() -> None:
    for package_name in KERNEL_PACKAGES:
        package = importlib.import_module(package_name)
        for info in pkgutil.iter_modules(package.__path__, package_name + "."):
            try:
                importlib.import_module(info.name)
            except ImportError:  # an optional dependency (MONAI, TorchIO, ...) is missing
                pass


def kernels() -> Iterator[tuple[str, Any]]:
    """(module.name, dispatcher) of every numba kernel defined in the package's modules."""
    from numba.core.dispatcher import Dispatcher

    _import_kernel_modules()
    seen: set[int] = set()
    for module_name in sorted(sys.modules):
        if not module_name.startswith("gunpowder."):
            continue
        module = sys.modules[module_name]
        for attr, value in sorted(vars(module).items()):
            if (
                isinstance(value, Dispatcher)
                and id(value) not in seen
                and getattr(value.py_func, "__module__", None) == module_name
            ):
                seen.add(id(value))
                yield f"{module_name.removeprefix('gunpowder.')}.{attr}", value


# ---- the exercises: tiny pipelines that reach the kernels as real pipelines do ----------------


def _request(**shapes: tuple[int, ...]) -> Any:
    import gunpowder as gp

    request = gp.BatchRequest()
    for name, shape in shapes.items():
        request.add(gp.ArrayKey(name.upper()), gp.Coordinate(shape) * gp.Coordinate(_VOXEL_SIZE))
    return request


def _run(pipeline: Any, request: Any, seeds: range) -> None:
    import gunpowder as gp

    with gp.build(pipeline):
        for seed in seeds:
            pipeline.request_batch(request.with_seed(seed))


def _volume(shape: tuple[int, int, int]) -> tuple[np.ndarray, np.ndarray]:
    """A smooth uint8 raw volume and uint64 labels of blocks (boundaries between them)."""
    z, y, x = np.indices(shape)
    raw = (127 + 100 * np.sin(y / 5.0) * np.cos(x / 7.0) + z).astype(np.uint8)
    labels = (1 + (y // 16) * 8 + x // 16 + 64 * (z // 8)).astype(np.uint64)
    return raw, labels


def _cremi(tmp: Path) -> None:
    """The CREMI training chain (examples/cremi/train.py, benchmarks/cremi) from HDF5.

    The volume is wide (CREMI's sections are 1250 voxels wide): a narrow read of a wide
    contiguous dataset takes the row-by-row reader, as it does on real data."""
    import h5py

    import gunpowder as gp

    raw, labels = _volume((20, 96, 1024))
    path = tmp / "cremi.hdf"
    with h5py.File(path, "w") as f:
        for name, data in (("raw", raw), ("labels", labels), ("mask", np.ones_like(raw))):
            f[name] = data
            f[name].attrs["resolution"] = _VOXEL_SIZE
    RAW, LABELS, MASK = gp.ArrayKey("RAW"), gp.ArrayKey("LABELS"), gp.ArrayKey("MASK")
    AFFS, AFFS_MASK, SCALE = gp.ArrayKey("AFFS"), gp.ArrayKey("AFFS_MASK"), gp.ArrayKey("SCALE")
    pipeline = (
        gp.Hdf5Source(
            str(path),
            {RAW: "raw", LABELS: "labels", MASK: "mask"},
            array_specs={
                RAW: gp.ArraySpec(interpolatable=True),
                LABELS: gp.ArraySpec(interpolatable=False),
                MASK: gp.ArraySpec(interpolatable=False),
            },
        )
        + gp.Normalize(RAW)
        + gp.RandomLocation()
        + gp.ElasticAugment(
            [4, 40, 40],
            [0, 2, 2],
            [0, math.pi / 2.0],
            prob_slip=0.2,
            prob_shift=0.2,
            max_misalign=4,
            subsample=8,
        )
        + gp.SimpleAugment(transpose_only=[1, 2])
        + gp.IntensityAugment(RAW, 0.9, 1.1, -0.1, 0.1, z_section_wise=True)
        + gp.GrowBoundary(LABELS, MASK, steps=1, only_xy=True)
        + gp.AddAffinities(
            [[-1, 0, 0], [0, -1, 0], [0, 0, -1]],
            LABELS,
            AFFS,
            labels_mask=MASK,
            affinities_mask=AFFS_MASK,
        )
        + gp.BalanceLabels(AFFS, SCALE, AFFS_MASK)
    )
    small = (6, 20, 20)
    request = _request(
        raw=(10, 40, 40), labels=small, mask=small, affs=small, affs_mask=small, scale=small
    )
    _run(pipeline, request, range(8))


def _augmentations(dtype: Any) -> Callable[[Path], None]:
    """Intensity, noise and geometric augmentations of raw data normalised to `dtype`."""

    def exercise(tmp: Path) -> None:
        import gunpowder as gp

        raw, labels = _volume((20, 64, 64))
        RAW, LABELS = gp.ArrayKey("RAW"), gp.ArrayKey("LABELS")
        roi = gp.Roi((0, 0, 0), gp.Coordinate(raw.shape) * gp.Coordinate(_VOXEL_SIZE))
        sources = (
            gp.ArraySource(RAW, gp.Array(raw, gp.ArraySpec(roi=roi, voxel_size=_VOXEL_SIZE)), True)
            + gp.Normalize(RAW, dtype=dtype),
            gp.ArraySource(LABELS, gp.Array(labels, gp.ArraySpec(roi=roi, voxel_size=_VOXEL_SIZE))),
        )
        pipeline = (
            sources
            + gp.MergeProvider()
            + gp.Pad(RAW, None)
            + gp.Pad(LABELS, None)
            + gp.RandomLocation()
            + gp.DeformAugment([4, 16, 16], [0, 2, 2], subsample=4)
            + gp.ElasticAugment([4, 16, 16], [0, 1, 1], [0, 0.3], subsample=2)
            + gp.SimpleAugment()
            + gp.IntensityAugment(RAW, 0.9, 1.1, -0.1, 0.1)
            + gp.IntensityAugment(RAW, 0.9, 1.1, -0.1, 0.1, z_section_wise=True)
            + gp.NoiseAugment(RAW, var=0.001)
        )
        request = _request(raw=(8, 24, 24), labels=(8, 24, 24))
        _run(pipeline, request, range(8))

    return exercise


def _uint8_warp(tmp: Path) -> None:
    """Warping raw data that was not normalised (integers are warped through float32)."""
    import gunpowder as gp

    raw, _ = _volume((16, 48, 48))
    RAW = gp.ArrayKey("RAW")
    roi = gp.Roi((0, 0, 0), gp.Coordinate(raw.shape) * gp.Coordinate(_VOXEL_SIZE))
    pipeline = (
        gp.ArraySource(RAW, gp.Array(raw, gp.ArraySpec(roi=roi, voxel_size=_VOXEL_SIZE)), True)
        + gp.RandomLocation()
        + gp.ElasticAugment([4, 16, 16], [0, 1, 1], [0, 0.3], subsample=2)
        + gp.SimpleAugment(transpose_only=[1, 2])
    )
    _run(pipeline, _request(raw=(6, 20, 20)), range(4))


#: (name, exercise(tmp_dir)): each runs a tiny pipeline that reaches some kernels
EXERCISES: list[tuple[str, Callable[[Path], None]]] = [
    ("cremi training chain", _cremi),
    ("augmentations float32", _augmentations(np.float32)),
    ("augmentations float64", _augmentations(np.float64)),
    ("warp of uint8 raw", _uint8_warp),
]


def warm_up(verbose: bool = False) -> WarmUpReport:
    """Compile (or load from numba's cache) every kernel for the types pipelines use.

    Runs `EXERCISES` on tiny temporary volumes and returns what was compiled. Idempotent: a
    second run, in any process, loads everything from the cache. An exercise that fails is
    recorded in `failures` (the others still run). `verbose` prints each exercise's time
    as it finishes.
    """
    import warnings

    from .transforms._jit import cache_dir

    t0 = time.perf_counter()
    report = WarmUpReport(cache_dir=cache_dir())
    with tempfile.TemporaryDirectory(prefix="gunpowder-warmup-") as tmp:
        for name, exercise in EXERCISES:
            t = time.perf_counter()
            try:
                with warnings.catch_warnings():
                    warnings.simplefilter("ignore")
                    exercise(Path(tmp))
            except Exception as e:  # reported, and the command exits non-zero
                report.failures[name] = f"{type(e).__name__}: {e}"
            report.exercises[name] = time.perf_counter() - t
            if verbose:
                print(f"  {name:<28} {report.exercises[name]:7.2f} s", flush=True)
    for name, dispatcher in kernels():
        stats = dispatcher.stats
        report.kernels.append(
            KernelReport(
                name,
                compiled=[str(s) for s in stats.cache_misses],
                loaded=[str(s) for s in stats.cache_hits],
            )
        )
        if not stats.cache_misses and not stats.cache_hits and dispatcher.signatures:
            # compiled without a cache (no writable folder): still worth reporting
            report.kernels[-1].compiled = [str(s) for s in dispatcher.signatures]
    report.seconds = time.perf_counter() - t0
    return report


def main(argv: list[str] | None = None) -> int:
    """`python -m gunpowder.warmup`: warm up, print the report; 1 if an exercise failed."""
    parser = argparse.ArgumentParser(
        prog="python -m gunpowder.warmup", description=__doc__.splitlines()[0]
    )
    parser.add_argument("-q", "--quiet", action="store_true", help="print only failures")
    parser.add_argument("--json", action="store_true", help="print the report as one JSON line")
    args = parser.parse_args(argv)
    report = warm_up()
    if args.json:
        print(json.dumps(dataclasses.asdict(report)))
    elif not args.quiet:
        print("\n".join(report.lines()))
    for name, error in report.failures.items():
        print(f"gunpowder warm-up: exercise {name!r} failed: {error}", file=sys.stderr)
    return 1 if report.failures else 0


if __name__ == "__main__":
    sys.exit(main())
