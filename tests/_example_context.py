"""Extraction of the `Example::` blocks of public node docstrings (for the doctest test)."""

from __future__ import annotations

import ast
import builtins
import inspect
import textwrap
from dataclasses import dataclass

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
    import gunpowder.torch as gp_torch

    seen: set[int] = set()
    out = []
    for module, prefix in ((gp, "gp"), (gp_torch, "gp.torch"), (gp_contrib, "gunpowder.contrib")):
        for name in sorted(dir(module)):
            obj = getattr(module, name)
            if inspect.isclass(obj) and issubclass(obj, (Node, BatchProvider)) and id(obj) not in seen:
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
            targets = {n.id for g in node.generators for n in ast.walk(g.target) if isinstance(n, ast.Name)}
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
    reads = {n.id for n in ast.walk(node) if isinstance(n, ast.Name) and isinstance(n.ctx, ast.Load)}
    return reads - assigned


# --- the namespace the examples run in -------------------------------------------------

VOXEL = (40, 4, 4)
SHAPE = (12, 48, 48)  # voxels of the in-memory arrays (480 x 192 x 192 nm)
FILE_SHAPE = (12, 112, 112)  # voxels of the arrays in files (a 400 nm request fits)
REQUEST = (160, 64, 64)  # world size of the batch requested from a pipeline an example leaves

GRAPH_NAMES = {"presyn", "postsyn", "skeletons", "synapses", "points"}
# keys an upstream provides when an example reads them (the others are the node's outputs)
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
SOURCE_NAMES = {"pipeline", "source", "raw_source", "source_a", "source_b"}
MODULE_NAMES = {"gp", "np", "math", "torch"}


def key_for(name: str) -> gp.ArrayKey | gp.GraphKey:
    """The key an example's free name stands for: `gt_labels` -> ArrayKey("GT_LABELS")."""
    return gp.GraphKey(name.upper()) if name in GRAPH_NAMES else gp.ArrayKey(name.upper())


def _labels(shape: tuple[int, ...]) -> np.ndarray:
    """Blocks of ids 1..: realistic neuron-like segments with boundaries between them."""
    z, y, x = np.indices(shape)
    return (1 + (z // 4) * 64 + (y // 12) * 8 + x // 12).astype(np.uint64)


def _blobs(shape: tuple[int, ...], seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    out = np.zeros(shape, np.uint8)
    for _ in range(6):
        c = [int(rng.integers(0, s)) for s in shape]
        out[tuple(slice(max(0, ci - 1), ci + 2) for ci in c[:1]) + tuple(
            slice(max(0, ci - 4), ci + 5) for ci in c[1:])] = 1
    return out


def array_data(name: str, shape: tuple[int, ...] = SHAPE) -> tuple[np.ndarray, tuple, bool]:
    """(data, voxel size, interpolatable) of the in-memory array an example's name means."""
    rng = np.random.default_rng(abs(hash(name)) % 2**32)
    if name in ("raw", "gt"):
        return rng.random(shape, dtype=np.float32), VOXEL, True
    if name in ("labels", "gt_labels"):
        return _labels(shape), VOXEL, False
    if name in ("mask", "gt_mask"):
        mask = np.ones(shape, np.uint8)
        mask[:, :4, :4] = 0
        return mask, VOXEL, False
    if name == "pred":
        return rng.random((1, 3) + shape, dtype=np.float32), VOXEL, True
    if name == "raw_coarse":
        coarse = tuple(s // 2 for s in shape)
        return rng.random(coarse, dtype=np.float32), tuple(2 * v for v in VOXEL), True
    if name in ("pre_mask", "post_mask", "gt_syn_binary"):
        return _blobs(shape, len(name)), VOXEL, False
    raise KeyError(f"no in-memory data for {name!r}: add it to tests/_example_context.py")


def world_roi(shape: tuple[int, ...] = SHAPE) -> gp.Roi:
    return gp.Roi((0, 0, 0), tuple(s * v for s, v in zip(shape, VOXEL)))


def graph_source(name: str) -> Any:
    """A GraphSource for a graph name: synaptic partners or a skeleton inside world_roi()."""
    roi = world_roi()
    if name == "skeletons":
        locations = [[40 + 40 * i, 20 + 16 * i, 30 + 12 * i] for i in range(8)]
        graph = gp.Graph.from_arrays(
            locations, edges=[[i, i + 1] for i in range(7)], spec=gp.GraphSpec(roi=roi)
        )
    elif name == "presyn":
        locations = [[100, 60, 60], [300, 120, 100], [220, 150, 40]]
        attrs = [{"partner_ids": [100 + i]} for i in range(3)]
        graph = gp.Graph.from_arrays(
            locations, ids=[1, 2, 3], spec=gp.GraphSpec(roi=roi), node_attrs=attrs
        )
    elif name == "postsyn":
        locations = [[100, 80, 72], [300, 100, 110], [260, 150, 60]]
        attrs = [{"partner_ids": [1 + i]} for i in range(3)]
        graph = gp.Graph.from_arrays(
            locations, ids=[100, 101, 102], spec=gp.GraphSpec(roi=roi), node_attrs=attrs
        )
    else:
        raise KeyError(f"no in-memory graph for {name!r}: add it to tests/_example_context.py")
    return gp.GraphSource(key_for(name), graph)


def source_for(names: Iterable[str], shape: tuple[int, ...] = SHAPE) -> Any:
    """A pipeline of ArraySources (and GraphSources) providing `names`, merged."""
    nodes = []
    for name in sorted(set(names)):
        if name in GRAPH_NAMES:
            nodes.append(graph_source(name))
            continue
        data, voxel_size, interpolatable = array_data(name, shape)
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


class ScaleModel(torch_module_base()):  # type: ignore[misc]
    """A one-parameter model keeping the input's shape: `input * w + b`."""

    def __init__(self) -> None:
        import torch

        super().__init__()
        self.w = torch.nn.Parameter(torch.ones(()))
        self.b = torch.nn.Parameter(torch.zeros(()))

    def forward(self, input: Any) -> Any:  # noqa: A002 (the examples' argument name)
        return input.float() * self.w + self.b
