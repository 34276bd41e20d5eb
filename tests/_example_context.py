"""The `Example::` blocks of the public nodes' docstrings, and the context they run in.

Used by tests/test_docstring_examples.py: each example's free names (found with `ast`) get
realistic values: `gp`, `np`, `math`, `torch`; keys named after the variable
(`gt_labels` -> ArrayKey("GT_LABELS")); `pipeline`/`source` made of ArraySources at
40 x 4 x 4 nm; small models; the zarr/hdf5/n5/csv/npz files the example reads, in the
test's folder. `RECIPES` holds what a node needs beyond that.
"""

from __future__ import annotations

import ast
import builtins
import inspect
import math
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

import gunpowder as gp
import gunpowder.contrib as gp_contrib
from gunpowder.nodes import BatchProvider
from gunpowder.pipeline import Node


@dataclass(frozen=True)
class Example:
    """One docstring example: the node, where its docstring is and the code."""

    name: str  # e.g. "gp.AddAffinities"
    cls: type
    file: str
    line: int  # line of "Example::" in `file`
    code: str


def public_nodes() -> list[tuple[str, type]]:
    """(qualified name, class) of every public node, each class once (first name wins)."""
    modules: list[tuple[Any, str]] = [(gp, "gp")]
    try:
        import gunpowder.torch as gp_torch

        modules.append((gp_torch, "gp.torch"))
    except ImportError:  # no torch: its nodes are not public here
        pass
    modules.append((gp_contrib, "gunpowder.contrib"))
    seen: set[int] = set()
    out = []
    for module, prefix in modules:
        for name in sorted(dir(module)):
            obj = getattr(module, name)
            if (
                inspect.isclass(obj)
                and issubclass(obj, (Node, BatchProvider))
                and id(obj) not in seen
            ):
                seen.add(id(obj))
                out.append((f"{prefix}.{name}", obj))
    return out


def extract_example(name: str, cls: type) -> Example | None:
    """The indented block after `Example::` in the class docstring, dedented; None if none."""
    raw = cls.__doc__ or ""
    lines = raw.expandtabs().splitlines()
    start = next((i for i, line in enumerate(lines) if line.strip() == "Example::"), None)
    if start is None:
        return None
    head_indent = len(lines[start]) - len(lines[start].lstrip())
    body: list[str] = []
    for line in lines[start + 1 :]:
        if line.strip() and len(line) - len(line.lstrip()) <= head_indent:
            break
        body.append(line)
    code = textwrap.dedent("\n".join(body)).strip("\n") + "\n"
    file = inspect.getsourcefile(cls) or "?"
    try:
        source_lines, first = inspect.getsourcelines(cls)
        offset = next(i for i, s in enumerate(source_lines) if s.strip() == "Example::")
        line_no = first + offset
    except (OSError, StopIteration):
        line_no = 0
    return Example(name, cls, file, line_no, code)


def free_names(code: str) -> set[str]:
    """Names the code reads without binding them first (at module level), builtins excluded."""
    tree = ast.parse(code)
    bound: set[str] = set()
    free: set[str] = set()

    class Visitor(ast.NodeVisitor):
        def visit_Name(self, node: ast.Name) -> None:
            if isinstance(node.ctx, ast.Load) and node.id not in bound:
                free.add(node.id)
            else:
                bound.add(node.id)

        def visit_AugAssign(self, node: ast.AugAssign) -> None:
            self.visit(node.value)
            if isinstance(node.target, ast.Name) and node.target.id not in bound:
                free.add(node.target.id)
            bound.add(getattr(node.target, "id", ""))

        def visit_Assign(self, node: ast.Assign) -> None:
            self.visit(node.value)
            for t in node.targets:
                self.visit(t)

        def visit_Import(self, node: ast.Import | ast.ImportFrom) -> None:
            bound.update((a.asname or a.name).split(".")[0] for a in node.names)

        visit_ImportFrom = visit_Import  # type: ignore[assignment]

        def visit_FunctionDef(self, node: ast.FunctionDef) -> None:
            bound.add(node.name)
            args = {a.arg for a in node.args.args}
            inner = free_names_in(node, args)
            free.update(n for n in inner if n not in bound)

        def visit_ClassDef(self, node: ast.ClassDef) -> None:
            for b in node.bases:
                self.visit(b)
            bound.add(node.name)
            for stmt in node.body:
                if isinstance(stmt, ast.FunctionDef):
                    inner = free_names_in(stmt, {a.arg for a in stmt.args.args})
                    free.update(n for n in inner if n not in bound)

        def visit_Lambda(self, node: ast.Lambda) -> None:
            inner = free_names_in(node, {a.arg for a in node.args.args})
            free.update(n for n in inner if n not in bound)

        def visit_GeneratorExp(self, node: ast.GeneratorExp) -> None:
            targets = {
                n.id for g in node.generators for n in ast.walk(g.target) if isinstance(n, ast.Name)
            }
            for g in node.generators:
                self.visit(g.iter)
            inner = {n.id for n in ast.walk(node.elt) if isinstance(n, ast.Name)} - targets
            free.update(n for n in inner if n not in bound)

        visit_ListComp = visit_GeneratorExp  # type: ignore[assignment]

    Visitor().visit(tree)
    return {n for n in free if not hasattr(builtins, n)}


def free_names_in(node: ast.AST, local: set[str]) -> set[str]:
    """Names read in a function body that are neither its arguments nor assigned in it."""
    assigned = set(local)
    for n in ast.walk(node):
        if isinstance(n, ast.Name) and not isinstance(n.ctx, ast.Load):
            assigned.add(n.id)
        elif isinstance(n, (ast.FunctionDef, ast.Lambda)) and n is not node:
            assigned.update(a.arg for a in n.args.args)
    reads = {
        n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)
    }
    return reads - assigned


# --- the namespace the examples run in -------------------------------------------------

VOXEL = (40, 4, 4)
SHAPE = (12, 48, 48)  # voxels of the in-memory arrays (480 x 192 x 192 nm)
FILE_SHAPE = (12, 112, 112)  # voxels of the arrays in files (a 400 nm request fits)
REQUEST = (4, 16, 16)  # voxels of the batch requested from a pipeline an example leaves

SEED = 20240611  # of the batches requested here (an example's own requests are unseeded)

GRAPH_NAMES = {"presyn", "postsyn", "skeletons", "synapses", "points"}
# keys the upstream `pipeline`/`source` provides when an example reads them (other key
# names are the node's outputs); RAW is always provided
INPUT_NAMES = {
    "raw",
    "labels",
    "mask",
    "gt_labels",
    "gt_mask",
    "gt",
    "pred",
    "raw_coarse",
    "pre_mask",
    "post_mask",
    "gt_syn_binary",
    "presyn",
    "postsyn",
    "skeletons",
}
MODULES = {"gp": gp, "np": np, "math": math}


def key_for(name: str) -> gp.ArrayKey | gp.GraphKey:
    """The key an example's free name stands for: `gt_labels` -> ArrayKey("GT_LABELS")."""
    return gp.GraphKey(name.upper()) if name in GRAPH_NAMES else gp.ArrayKey(name.upper())


def _seed(name: str) -> int:
    return sum(ord(c) * 31**i for i, c in enumerate(name)) % 2**32


def labels_volume(shape: tuple[int, ...]) -> np.ndarray:
    """Blocks of ids 1..: segments of 4 x 12 x 12 voxels, as many labels as in EM data."""
    z, y, x = np.indices(shape, sparse=True)
    return (1 + (z // 4) * 64 + (y // 12) * 8 + x // 12).astype(np.uint64)


def blobs_volume(shape: tuple[int, ...], seed: int) -> np.ndarray:
    """A binary uint8 volume with a few small boxes (synaptic clefts, partner masks)."""
    rng = np.random.default_rng(seed)
    out = np.zeros(shape, np.uint8)
    for _ in range(6):
        c = [int(rng.integers(0, s)) for s in shape]
        box = (slice(max(0, c[0] - 1), c[0] + 2),) + tuple(
            slice(max(0, ci - 4), ci + 5) for ci in c[1:]
        )
        out[box] = 1
    return out


def array_data(name: str, shape: tuple[int, ...] = SHAPE) -> tuple[np.ndarray, tuple, bool]:
    """(data, voxel size, interpolatable) of the in-memory array an example's name means."""
    rng = np.random.default_rng(_seed(name))
    if name in ("raw", "gt"):
        return rng.random(shape, dtype=np.float32), VOXEL, True
    if name in ("labels", "gt_labels"):
        return labels_volume(shape), VOXEL, False
    if name in ("mask", "gt_mask"):
        mask = np.ones(shape, np.uint8)
        mask[:, :4, :4] = 0
        return mask, VOXEL, False
    if name == "pred":  # (batch, channels, z, y, x) as a model returns it
        return rng.random((1, 3) + tuple(shape), dtype=np.float32), VOXEL, True
    if name == "raw_coarse":
        coarse = tuple(s // 2 for s in shape)
        return rng.random(coarse, dtype=np.float32), tuple(2 * v for v in VOXEL), True
    if name == "gt_affs":
        return rng.integers(0, 2, (3,) + tuple(shape), np.uint8), VOXEL, False
    if name == "gt_affs_mask":
        return np.ones((3,) + tuple(shape), np.uint8), VOXEL, False
    if name in ("pre_mask", "post_mask", "gt_syn_binary"):
        return blobs_volume(tuple(shape), _seed(name)), VOXEL, False
    raise KeyError(f"no in-memory data for {name!r}: add it to tests/_example_context.py")


def world_roi(shape: tuple[int, ...] = SHAPE) -> gp.Roi:
    return gp.Roi((0, 0, 0), tuple(s * v for s, v in zip(shape, VOXEL)))


# synaptic sites around the centre of a ROI (nm): presynaptic ids 1..3, their partners
# 101..103 next to them
PRESYN = ((-40, -8, -8), (40, 8, 12), (0, -20, 16))
POSTSYN = ((-40, 0, 4), (40, 16, 20), (0, -12, 24))


def around_centre(roi: gp.Roi, offsets: Iterable[Iterable[int]]) -> np.ndarray:
    return np.array([[c + o for c, o in zip(roi.center, off)] for off in offsets], np.float64)


def graph(name: str, roi: gp.Roi) -> gp.Graph:
    """A graph around the centre of `roi`: synaptic partners (`partner_ids`) or a skeleton
    (a chain of 8 nodes)."""
    spec = gp.GraphSpec(roi=roi)
    if name == "skeletons":
        offsets = [(-140 + 40 * i, -28 + 8 * i, -21 + 6 * i) for i in range(8)]
        return gp.Graph.from_arrays(
            around_centre(roi, offsets), edges=[[i, i + 1] for i in range(7)], spec=spec
        )
    if name in ("presyn", "postsyn"):
        pre = name == "presyn"
        return gp.Graph.from_arrays(
            around_centre(roi, PRESYN if pre else POSTSYN),
            ids=[1, 2, 3] if pre else [101, 102, 103],
            spec=spec,
            node_attrs=[{"partner_ids": [101 + i if pre else 1 + i]} for i in range(3)],
        )
    raise KeyError(f"no in-memory graph for {name!r}: add it to tests/_example_context.py")


def source_for(
    names: Iterable[str], shape: tuple[int, ...] = SHAPE, uint8: Iterable[str] = ()
) -> Any:
    """ArraySources (and GraphSources) providing the keys of `names`, merged; the float
    arrays named in `uint8` as uint8 0..255 (as EM raw data is stored)."""
    nodes = []
    for name in sorted(set(names)):
        if name in GRAPH_NAMES:
            nodes.append(gp.GraphSource(key_for(name), graph(name, world_roi(shape))))
            continue
        data, voxel_size, interpolatable = array_data(name, shape)
        if name in uint8:
            data = (data * 255).astype(np.uint8)
        spatial = data.shape[-3:]
        spec = gp.ArraySpec(
            roi=gp.Roi((0, 0, 0), tuple(s * v for s, v in zip(spatial, voxel_size))),
            voxel_size=voxel_size,
            interpolatable=interpolatable,
        )
        nodes.append(gp.ArraySource(key_for(name), gp.Array(data, spec)))
    if len(nodes) == 1:
        return nodes[0]
    return tuple(nodes) + gp.MergeProvider()


def torch_objects(crop: bool = False) -> dict[str, Any]:
    """`model`, `loss`, `optimizer`, `unet` (empty without torch).

    `model` keeps its input's shape (`input * w + b`); with `crop` it returns the middle
    third of each spatial axis (a valid-convolution network's output: 1320 -> 440).
    """
    try:
        import torch
    except ImportError:
        return {}

    class Model(torch.nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = torch.nn.Parameter(torch.ones(()))
            self.b = torch.nn.Parameter(torch.zeros(()))

        def forward(self, input: Any) -> Any:  # noqa: A002 (the examples' argument name)
            out = input.float() * self.w + self.b
            if crop:
                out = out[(..., *(slice(s // 3, 2 * s // 3) for s in out.shape[-3:]))]
            return out

    model = Model()
    unet = torch.nn.Sequential(torch.nn.Conv3d(1, 3, 1), torch.nn.Sigmoid())
    return {
        "torch": torch,
        "model": model,
        "loss": torch.nn.MSELoss(),
        "optimizer": torch.optim.SGD(model.parameters(), lr=1e-4),
        "unet": unet,
    }


# --- files the examples name -----------------------------------------------------------

ZARR_DATASETS = (
    "raw",
    "labels",
    "labels_mask",
    "mask",
    "pred",
    "volumes/raw",
    "volumes/labels",
)
HDF_DATASETS = (
    "volumes/raw",
    "volumes/labels/neuron_ids",
    "volumes/labels/mask",
    "raw",
    "mask",
)


def file_data(path: str, shape: tuple[int, ...]) -> np.ndarray:
    """What a dataset path holds in the files: uint8 raw (as EM data), labels, masks."""
    leaf = path.rsplit("/", 1)[-1]
    if leaf == "pred":  # a network's prediction
        return np.random.default_rng(_seed(path)).random(shape, dtype=np.float32)
    if leaf == "raw":
        return np.random.default_rng(_seed(path)).integers(0, 256, shape, dtype=np.uint8)
    if leaf in ("labels", "neuron_ids"):
        return labels_volume(shape)
    mask = np.ones(shape, np.uint8)
    mask[:, : shape[1] // 8, : shape[2] // 8] = 0
    return mask


def write_zarr(path: Path, shape: tuple[int, ...], named: set[str]) -> None:
    import zarr

    group = zarr.open_group(str(path), mode="w")
    for name in (n for n in ZARR_DATASETS if n in named):
        data = file_data(name, shape)
        array = group.create_array(name, shape=data.shape, dtype=data.dtype, chunks=(4, 64, 64))
        array[:] = data
        array.attrs.update(resolution=list(VOXEL), offset=[0, 0, 0])


def write_n5(path: Path, shape: tuple[int, ...], named: set[str]) -> None:
    from gunpowder.io_n5 import N5Container

    container = N5Container(path, mode="a")
    for name in (n for n in ZARR_DATASETS if n in named):
        data = file_data(name, shape)
        ds = container.create_dataset(name, data.shape, (4, 64, 64), data.dtype, "gzip")
        ds[...] = data
        ds.attrs["resolution"] = list(VOXEL[::-1])  # N5 attributes are in x, y, z order
        ds.attrs["offset"] = [0, 0, 0]


def write_hdf(
    path: Path, file_shape: tuple[int, ...], named: set[str], shape: tuple[int, ...]
) -> None:
    import h5py

    with h5py.File(path, "w") as f:
        for name in (n for n in HDF_DATASETS if n in named):
            data = file_data(name, file_shape)
            if path.name.startswith("artifacts") and name == "mask":
                data = data * np.uint8(255)  # an alpha mask, [0, 1] after Normalize
            ds = f.create_dataset(name, data=data)
            ds.attrs["resolution"] = VOXEL
            ds.attrs["offset"] = (0, 0, 0)
        if "annotations" not in named:
            return
        # CREMI synapse annotations: locations relative to the volume, in nm, around the
        # centre of the in-memory volume (the example's `roi`)
        f["annotations/ids"] = np.array([1, 2, 3, 101, 102, 103], np.uint64)
        f["annotations/locations"] = around_centre(world_roi(shape), PRESYN + POSTSYN)
        f["annotations/presynaptic_site/partners"] = np.array(
            [[1, 101], [2, 102], [3, 103]], np.uint64
        )


def write_csv(path: Path, shape: tuple[int, ...], world: bool) -> None:
    """Points spread over a volume of `shape` voxels, the first in its centre: world units,
    or voxels (for `scale=(40, 4, 4)`)."""
    size = np.array(shape)
    points = np.array([size // 2, size // 8, size - 1 - size // 8, size * [1, 3, 1] // 4])
    if world:
        points = points * np.array(VOXEL)
    path.write_text("".join(" ".join(str(int(c)) for c in p) + "\n" for p in points))


def input_files(code: str) -> set[str]:
    """The file names the example reads: its string constants, except those it writes
    (`output_filename=...`)."""
    tree = ast.parse(code)
    outputs = {
        k.value.value
        for n in ast.walk(tree)
        if isinstance(n, ast.Call)
        for k in n.keywords
        if k.arg == "output_filename" and isinstance(k.value, ast.Constant)
    }
    return string_constants(code) - outputs


def string_constants(code: str) -> set[str]:
    return {
        n.value
        for n in ast.walk(ast.parse(code))
        if isinstance(n, ast.Constant) and isinstance(n.value, str)
    }


def write_files(
    code: str, folder: Path, file_shape: tuple[int, ...], shape: tuple[int, ...]
) -> None:
    """Create the files the example reads in `folder`, with the datasets it names."""
    names = string_constants(code)
    for name in input_files(code):
        path = folder / name
        if name.endswith(".zarr"):
            write_zarr(path, file_shape, names)
        elif name.endswith(".n5"):
            write_n5(path, file_shape, names)
        elif name.endswith((".hdf", ".h5", ".hdf5")):
            write_hdf(path, file_shape, names, shape)
        elif name == "synapses.csv":  # read with scale=(40, 4, 4), next to in-memory raw
            write_csv(path, shape, world=False)
        elif name.endswith(".csv"):
            write_csv(path, file_shape, world=True)
        elif name.endswith(".npz"):
            np.savez(path, raw=file_data("raw", file_shape))


# --- per-node recipes ------------------------------------------------------------------


@dataclass
class Recipe:
    """What a node's example needs beyond the defaults.

    inputs: extra names the upstream `pipeline`/`source` provides (beside the free key names
    in INPUT_NAMES and RAW); shape: in-memory array shape (voxels); file_shape: of the files;
    crop_model: `model` returns the middle third (a valid network); checkpoint: a checkpoint
    file of `model` to write; request: names to request from the pipeline the example leaves
    (default: everything it provides); request_voxels: the size of that request; request_at:
    its offset (world units; default: centred in the data); uint8: in-memory arrays stored
    as uint8 (raw as in EM files); check: called with the batches requested here and the
    folder, to assert what the example's comments promise.
    """

    inputs: tuple[str, ...] = ()
    shape: tuple[int, ...] = SHAPE
    file_shape: tuple[int, ...] = FILE_SHAPE
    crop_model: bool = False
    checkpoint: str | None = None
    request: tuple[str, ...] | None = None
    request_voxels: tuple[int, ...] = REQUEST
    request_at: tuple[int, ...] | None = None
    uint8: tuple[str, ...] = ()
    check: Callable[[list[Any], Path], None] | None = None


def _array(batches: list[Any], name: str) -> np.ndarray:
    return batches[0][key_for(name)].data


def _expect(name: str, ok: Callable[[np.ndarray], bool], what: str) -> Callable:
    def check(batches: list[Any], folder: Path) -> None:
        data = _array(batches, name)
        assert ok(data), f"{name} should be {what}, got {data.dtype} {data.shape}"

    return check


def _check_files(*paths: str) -> Callable[[list[Any], Path], None]:
    def check(batches: list[Any], folder: Path) -> None:
        for path in paths:
            assert list(folder.glob(path)), f"the example wrote no {path} in {folder}"

    return check


def _check_copy(batches: list[Any], folder: Path) -> None:
    import h5py
    import zarr

    with h5py.File(folder / "out" / "copy.hdf", "r") as f:
        copy = f["volumes/raw"][:]
    np.testing.assert_array_equal(copy, zarr.open_array(str(folder / "sample.zarr"), path="raw")[:])


RECIPES: dict[str, Recipe] = {
    # reads affinities and their mask: the upstream provides them
    # context around the request: max_distance=80 nm; 3 sigma = 240 nm
    "gp.AddBoundaryDistance": Recipe(shape=(12, 64, 64)),
    "gp.AddLocalShapeDescriptor": Recipe(shape=(20, 144, 144)),
    # pad_for_partners=(0, 400, 400): the points are requested 400 nm beyond the map
    "gp.AddVectorMap": Recipe(shape=(12, 256, 256)),
    "gp.BalanceLabels": Recipe(inputs=("gt_affs", "gt_affs_mask")),
    # the 2017 README's source: RAW, GT_LABELS, GT_MASK at least the size of its request
    "gp.Train": Recipe(inputs=("gt_labels", "gt_mask"), shape=(90, 280, 280)),
    # 1320^3 nm in, 440^3 nm out: one Scan block of a 1320^3 nm volume
    "gp.Scan": Recipe(
        file_shape=(33, 330, 330), crop_model=True, check=_check_files("pred.zarr/pred")
    ),
    # locations up to (1200, 800, 3000) nm, 400 nm around them
    "gp.SpecifiedLocation": Recipe(file_shape=(36, 256, 816)),
    # the example's graph has nodes at (0, 0, 0) and (40, 40, 40)
    "gp.GraphSource": Recipe(request_at=(0, 0, 0)),
    "gp.torch.Predict": Recipe(checkpoint="model_checkpoint_5000"),
    "gp.PreCache": Recipe(inputs=("gt",)),
    # what the examples' comments promise
    "gp.Normalize": Recipe(
        uint8=("raw",),
        check=_expect(
            "raw",
            lambda a: a.dtype == np.float32 and 0 <= a.min() < a.max() <= 1,
            "float32 in [0, 1]",
        ),
    ),
    "gp.IntensityScaleShift": Recipe(check=_expect("raw", lambda a: a.min() < 0, "in [-1, 1]")),
    "gp.AsType": Recipe(check=_expect("raw_float", lambda a: a.dtype == np.float32, "float32")),
    "gp.Stack": Recipe(check=_expect("raw", lambda a: a.shape[:2] == (8, 4), "(8, z, y, x)")),
    "gp.Unsqueeze": Recipe(check=_expect("raw", lambda a: a.ndim == 5, "(1, 1, z, y, x)")),
    "gp.Squeeze": Recipe(check=_expect("pred", lambda a: a.shape[:2] == (3, 4), "(c, z, y, x)")),
    "gp.Snapshot": Recipe(check=_check_files("snapshots/batch_*.zarr/volumes/pred_affs")),
    "gp.Hdf5Write": Recipe(check=_check_copy),
    "gp.ZarrWrite": Recipe(check=_check_files("out/scaled.zarr/raw_scaled")),
    "gp.torch.Train": Recipe(inputs=("gt",)),
}


# --- running an example ----------------------------------------------------------------


TORCH_NAMES = {"torch", "model", "loss", "optimizer", "unet"}


def needs_torch(example: Example) -> bool:
    """True if the example uses torch (a model, gp.torch, the seed-era Train)."""
    return bool(free_names(example.code) & TORCH_NAMES) or "gp.torch" in example.code


def imported_modules(code: str) -> set[str]:
    """The top-level modules the example imports (`import torchio as tio` -> "torchio")."""
    out = set()
    for n in ast.walk(ast.parse(code)):
        if isinstance(n, ast.Import):
            out.update(a.name.split(".")[0] for a in n.names)
        elif isinstance(n, ast.ImportFrom) and n.module and not n.level:
            out.add(n.module.split(".")[0])
    return out


def assigned_names(code: str) -> set[str]:
    """Names the example binds at its top level (`x = ...`, `x += ...`)."""
    out = set()
    for stmt in ast.parse(code).body:
        targets = stmt.targets if isinstance(stmt, ast.Assign) else []
        if isinstance(stmt, ast.AugAssign):
            targets = [stmt.target]
        for t in targets:
            out.update(n.id for n in ast.walk(t) if isinstance(n, ast.Name))
    return out


def namespace(example: Example, folder: Path) -> dict[str, Any]:
    """The globals the example runs in: modules, keys, sources, models, files in `folder`."""
    recipe = RECIPES.get(example.name, Recipe())
    free = free_names(example.code)
    ns: dict[str, Any] = {"__name__": "docstring_example", **MODULES}
    objects = torch_objects(crop=recipe.crop_model)
    inputs = {"raw", *recipe.inputs, *(free & INPUT_NAMES)}
    if example.name.startswith("gunpowder.contrib."):
        ns.update({n: getattr(gp_contrib, n) for n in gp_contrib.__all__})
    for name in free - set(ns):
        if name in objects:
            ns[name] = objects[name]
        elif name == "pipeline":
            ns[name] = source_for(inputs, recipe.shape, recipe.uint8)
            if not inputs & GRAPH_NAMES:  # a training pipeline: data at random locations
                ns[name] += gp.RandomLocation()
        elif name == "source":
            ns[name] = source_for(inputs, recipe.shape, recipe.uint8)
        elif name in ("raw_source", "source_a", "source_b"):
            ns[name] = source_for({"raw"}, recipe.shape)
        elif name == "roi":
            ns[name] = world_roi(recipe.shape)
        else:
            ns[name] = key_for(name)
    write_files(example.code, folder, recipe.file_shape, recipe.shape)
    if recipe.checkpoint is not None:
        import torch

        torch.save(
            {"model_state_dict": objects["model"].state_dict(), "iteration": 5000},
            folder / recipe.checkpoint,
        )
    return ns


def small_request(
    spec: Any,
    names: Iterable[str] | None,
    voxels: tuple[int, ...],
    at: tuple[int, ...] | None = None,
) -> Any:
    """A request for `names` (default: every key of `spec`) of `voxels` voxels (of the
    coarsest grid of their voxel sizes), at `at` or centred in the ROI the keys share."""
    keys = [key_for(n) for n in names] if names is not None else list(spec.keys())
    specs = {k: spec[k] for k in keys}
    spatial = {
        k: s for k, s in specs.items() if s.roi is not None and not getattr(s, "nonspatial", False)
    }
    dims = next(iter(spatial.values())).roi.dims if spatial else 0
    grid = [1] * dims
    shared = gp.Roi((None,) * dims, (None,) * dims)
    for s in spatial.values():
        if getattr(s, "voxel_size", None) is not None:
            grid = [math.lcm(g, int(v)) for g, v in zip(grid, s.voxel_size)]
        shared = shared.intersect(s.roi)
    if dims == len(VOXEL) and not any(getattr(s, "voxel_size", None) for s in spatial.values()):
        grid = list(VOXEL)  # graphs only: a request the size of the arrays' one
    shape = [g * v for g, v in zip(grid, voxels[-dims:])]
    begin = []
    for d in range(dims):
        lo, hi = shared.begin[d], shared.end[d]
        if lo is None or hi is None:
            begin.append(0)
            continue
        shape[d] = min(shape[d], (int(hi - lo) // grid[d]) * grid[d])
        start = (int(lo) + int(hi) - shape[d]) // 2 // grid[d] * grid[d]
        begin.append(start + grid[d] if start < lo else start)
    roi = gp.Roi(tuple(begin) if at is None else at, tuple(shape))
    request = gp.BatchRequest(random_seed=SEED)
    for key in specs:
        if key in spatial:
            kind = gp.ArraySpec if isinstance(key, gp.ArrayKey) else gp.GraphSpec
            request[key] = kind(roi=roi)
        elif isinstance(key, gp.ArrayKey):
            request[key] = gp.ArraySpec(nonspatial=True)
    return request


def run_example(example: Example, folder: Path) -> list[tuple[str, Any, Any]]:
    """Execute the example; then build each pipeline it leaves (`pipeline`, `source`) and
    request one small batch, unless the example requests batches itself.

    Returns (name, request, batch) of each batch requested here.
    """
    recipe = RECIPES.get(example.name, Recipe())
    ns = namespace(example, folder)
    code = compile(example.code, f"<{example.name} docstring example>", "exec")
    exec(code, ns)  # noqa: S102 (the point of the test)
    done = []
    for name in ("pipeline", "source"):
        if "request_batch" in example.code or name not in assigned_names(example.code):
            continue
        with gp.build(ns[name]) as p:
            request = small_request(
                p.spec, recipe.request, recipe.request_voxels, recipe.request_at
            )
            done.append((name, request, p.request_batch(request)))
    if recipe.check is not None:
        recipe.check([batch for _, _, batch in done], folder)
    return done
