"""Keys (names of arrays and graphs), specs (what an array or graph is) and requests.

A `ProviderSpec` says what a pipeline can deliver; a `BatchRequest` (the same mapping plus a
random seed) says what a caller wants. Both map `ArrayKey`/`GraphKey` to a spec.
"""

from __future__ import annotations

import copy as _copy
from collections.abc import Iterator, Mapping, MutableMapping
from typing import Any, Union

import numpy as np

from .geometry import Coordinate, Roi


class _KeyRegistry:
    """Attribute access to every key created so far: `ArrayKeys.RAW`."""

    def __init__(self, kind: str) -> None:
        object.__setattr__(self, "_kind", kind)
        object.__setattr__(self, "_keys", {})

    def _register(self, key: Any) -> None:
        self._keys[key.identifier] = key

    def __getattr__(self, name: str) -> Any:
        try:
            return self._keys[name]
        except KeyError:
            raise AttributeError(
                f"{self._kind} {name!r} does not exist; create it with {self._kind[:-1]}({name!r}). "
                f"Known: {sorted(self._keys)}"
            ) from None

    def __setattr__(self, name: str, value: Any) -> None:
        self._keys[name] = value

    def __dir__(self) -> list[str]:
        return sorted(self._keys)

    def __iter__(self) -> Iterator[Any]:
        return iter(self._keys.values())


ArrayKeys = _KeyRegistry("ArrayKeys")
GraphKeys = _KeyRegistry("GraphKeys")


class _Key:
    """A named key; two keys with the same identifier are equal (also across processes)."""

    registry: _KeyRegistry

    def __init__(self, identifier: str) -> None:
        if not isinstance(identifier, str) or not identifier:
            raise TypeError(
                f"{type(self).__name__} needs a non-empty string name, got {identifier!r}"
            )
        self.identifier = identifier
        self.hash = hash((type(self).__name__, identifier))
        type(self).registry._register(self)

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and other.identifier == self.identifier  # type: ignore[attr-defined]

    def __hash__(self) -> int:
        return self.hash

    def __lt__(self, other: _Key) -> bool:
        return (type(self).__name__, self.identifier) < (type(other).__name__, other.identifier)

    def __reduce__(self):
        return (type(self), (self.identifier,))

    def __repr__(self) -> str:
        return self.identifier

    __str__ = __repr__


class ArrayKey(_Key):
    """The name of an array in a batch, e.g. `ArrayKey("RAW")`."""

    registry = ArrayKeys


class GraphKey(_Key):
    """The name of a graph (points, skeletons) in a batch."""

    registry = GraphKeys


# keys of the seed-era API, so `ArrayKeys.RAW` works out of the box
for _name in (
    "RAW",
    "GT_LABELS",
    "GT_MASK",
    "GT_AFFINITIES",
    "GT_AFFINITIES_MASK",
    "GT_AFFINITIES_SCALE",
):
    ArrayKey(_name)


def _coord_or_none(value: Any) -> Coordinate | None:
    return None if value is None else Coordinate(value)


class ArraySpec:
    """What an array is: ROI (world units), voxel size, dtype, interpolatable, nonspatial.

    Every field may be `None` (unknown); a pipeline fills them in as specs flow through it.
    """

    __slots__ = ("roi", "voxel_size", "interpolatable", "nonspatial", "dtype", "placeholder")

    def __init__(
        self,
        roi: Roi | None = None,
        voxel_size: Any = None,
        interpolatable: bool | None = None,
        nonspatial: bool = False,
        dtype: Any = None,
        placeholder: bool = False,
    ) -> None:
        if roi is not None and not isinstance(roi, Roi):
            raise TypeError(f"ArraySpec roi must be a Roi, got {type(roi).__name__}")
        self.roi = roi
        self.voxel_size = _coord_or_none(voxel_size)
        self.interpolatable = interpolatable
        self.nonspatial = nonspatial
        self.dtype = None if dtype is None else np.dtype(dtype)
        self.placeholder = placeholder
        if nonspatial and roi is not None:
            raise ValueError("a nonspatial ArraySpec can not have a ROI")

    def __setattr__(self, name: str, value: Any) -> None:
        if name == "voxel_size":
            value = _coord_or_none(value)
        elif name == "dtype" and value is not None:
            value = np.dtype(value)
        object.__setattr__(self, name, value)

    def copy(self) -> ArraySpec:
        return _copy.copy(self)

    def replace(self, **changes: Any) -> ArraySpec:
        """A copy with some fields changed (the functional way to derive a spec)."""
        new = self.copy()
        for k, v in changes.items():
            setattr(new, k, v)
        return new

    def update_with(self, other: ArraySpec) -> ArraySpec:
        """Update this spec in place with `other` (1.x) and return it.

        The ROI becomes the union of both (or `other`'s if this one has none); every other
        field of `other` that is not None overrides this spec's. For a changed copy use
        `spec.copy().update_with(other)` or `replace`.
        """
        _update_spec(self, other)
        return self

    def _values(self) -> tuple:
        return tuple(getattr(self, n) for n in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ArraySpec) and self._values() == other._values()

    def __getstate__(self):
        return self._values()

    def __setstate__(self, state):
        for n, v in zip(self.__slots__, state):
            object.__setattr__(self, n, v)

    def __repr__(self) -> str:
        return f"ArraySpec({_set_fields(self)})"


class GraphSpec:
    """What a graph is: its ROI (world units), whether directed, attribute dtype."""

    __slots__ = ("roi", "directed", "dtype", "placeholder")

    def __init__(
        self,
        roi: Roi | None = None,
        directed: bool | None = None,
        dtype: Any = np.float32,
        placeholder: bool = False,
    ) -> None:
        if roi is not None and not isinstance(roi, Roi):
            raise TypeError(f"GraphSpec roi must be a Roi, got {type(roi).__name__}")
        self.roi = roi
        self.directed = directed
        self.dtype = dtype
        self.placeholder = placeholder

    def copy(self) -> GraphSpec:
        return _copy.copy(self)

    def replace(self, **changes: Any) -> GraphSpec:
        new = self.copy()
        for k, v in changes.items():
            setattr(new, k, v)
        return new

    def update_with(self, other: GraphSpec) -> GraphSpec:
        """Update this spec in place with `other` (as `ArraySpec.update_with`) and return it."""
        _update_spec(self, other)
        return self

    def _values(self) -> tuple:
        return tuple(getattr(self, n) for n in self.__slots__)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, GraphSpec) and self._values() == other._values()

    def __getstate__(self):
        return self._values()

    def __setstate__(self, state):
        for n, v in zip(self.__slots__, state):
            object.__setattr__(self, n, v)

    def __repr__(self) -> str:
        return f"GraphSpec({_set_fields(self)})"


_QUIET = {"placeholder": False, "nonspatial": False}  # defaults a repr need not repeat


def _set_fields(spec: Any) -> str:
    """`name=value` for the fields of `spec` that say something (not None, not a default)."""
    parts = []
    for name in spec.__slots__:
        value = getattr(spec, name)
        if value is None or _QUIET.get(name, object()) is value:
            continue
        if name == "dtype":
            value = np.dtype(value).name if not isinstance(value, str) else value
            parts.append(f"dtype={value}")
            continue
        parts.append(f"{name}={value!r}")
    return ", ".join(parts)


def _update_spec(spec: Any, other: Any) -> None:
    if not isinstance(other, type(spec)):
        raise TypeError(
            f"{type(spec).__name__}.update_with needs a {type(spec).__name__}, "
            f"got {type(other).__name__}"
        )
    for name in spec.__slots__:
        value = getattr(other, name)
        if value is None:
            continue
        if name == "roi" and spec.roi is not None:
            if spec.roi.dims != value.dims:
                raise ValueError(
                    f"{type(spec).__name__}.update_with: can not unite the {spec.roi.dims}D "
                    f"ROI {spec.roi} with the {value.dims}D ROI {value}"
                )
            value = spec.roi.union(value)
        setattr(spec, name, value)


def override_spec(spec: Any, other: Any) -> Any:
    """A copy of `spec` in which every field of `other` that is not None replaces its own
    (the ROI too: unlike `update_with`, which unites the ROIs as 1.x did)."""
    if not isinstance(other, type(spec)):
        raise TypeError(
            f"override_spec: needs two {type(spec).__name__}s, got {type(other).__name__}"
        )
    new = spec.copy()
    for name in spec.__slots__:
        value = getattr(other, name)
        if value is not None:
            setattr(new, name, value)
    return new


Key = Union[ArrayKey, GraphKey]
Spec = Union[ArraySpec, GraphSpec]


class KindView(MutableMapping):
    """The entries of one key kind (arrays or graphs) of a mapping, live: reading, assigning
    (`request.array_specs[key] = spec`, `batch.arrays[key] = array`, as 1.x code does) and
    deleting go through to the owner, with the owner's checks."""

    __slots__ = ("_owner", "_kind")

    def __init__(self, owner: Any, kind: type) -> None:
        self._owner = owner
        self._kind = kind

    def __getitem__(self, key: Any) -> Any:
        if not isinstance(key, self._kind):
            raise KeyError(key)
        return self._owner[key]

    def __setitem__(self, key: Any, value: Any) -> None:
        if not isinstance(key, self._kind):
            raise TypeError(f"{key!r} is not a {self._kind.__name__}")
        self._owner[key] = value

    def __delitem__(self, key: Any) -> None:
        if not isinstance(key, self._kind) or key not in self._owner:
            raise KeyError(key)
        del self._owner[key]

    def __contains__(self, key: object) -> bool:
        return isinstance(key, self._kind) and key in self._owner

    def __iter__(self) -> Iterator[Any]:
        return (k for k in list(self._owner) if isinstance(k, self._kind))

    def __len__(self) -> int:
        return sum(1 for k in self._owner if isinstance(k, self._kind))

    def copy(self) -> dict:
        return dict(self.items())

    def __eq__(self, other: object) -> bool:
        if not isinstance(other, Mapping):
            return NotImplemented
        return dict(self.items()) == dict(other.items())

    def __repr__(self) -> str:
        return repr(dict(self.items()))


class ProviderSpec(MutableMapping):
    """A mapping from keys to specs: what a pipeline (or node) can provide."""

    def __init__(self, array_specs: dict | None = None, graph_specs: dict | None = None) -> None:
        self._specs: dict[Key, Spec] = {}
        for k, v in (array_specs or {}).items():
            self[k] = v
        for k, v in (graph_specs or {}).items():
            self[k] = v

    def __setitem__(self, key: Key, spec: Spec) -> None:
        if isinstance(key, ArrayKey):
            if isinstance(spec, Roi):
                spec = ArraySpec(roi=spec)
            if not isinstance(spec, ArraySpec):
                raise TypeError(f"{key}: expected an ArraySpec, got {type(spec).__name__}")
        elif isinstance(key, GraphKey):
            if isinstance(spec, Roi):
                spec = GraphSpec(roi=spec)
            if not isinstance(spec, GraphSpec):
                raise TypeError(f"{key}: expected a GraphSpec, got {type(spec).__name__}")
        else:
            raise TypeError(f"only ArrayKey or GraphKey can be used as keys, got {key!r}")
        self._specs[key] = spec.copy()

    def __getitem__(self, key: Key) -> Spec:
        try:
            return self._specs[key]
        except KeyError:
            raise KeyError(
                f"{key} is not in this {type(self).__name__} (has {sorted(self._specs)})"
            ) from None

    def __delitem__(self, key: Key) -> None:
        del self._specs[key]

    def __contains__(self, key: object) -> bool:
        return key in self._specs

    def __iter__(self) -> Iterator[Key]:
        return iter(self._specs)

    def __len__(self) -> int:
        return len(self._specs)

    @property
    def array_specs(self) -> KindView:
        """The array entries (a live mapping: `spec.array_specs[key] = ...` works)."""
        return KindView(self, ArrayKey)

    @property
    def graph_specs(self) -> KindView:
        """The graph entries (a live mapping)."""
        return KindView(self, GraphKey)

    @property
    def points_specs(self) -> KindView:
        return self.graph_specs

    def copy(self) -> ProviderSpec:
        new = _copy.copy(self)
        new._specs = {k: v.copy() for k, v in self._specs.items()}
        return new

    def update_with(self, other: ProviderSpec) -> ProviderSpec:
        """A copy with the keys of `other` added; a key in both gets its spec updated with
        `other`'s (`ArraySpec.update_with`: union of the ROIs, other fields from `other`),
        as 1.x `BatchRequest.update_with`. This spec is not changed."""
        if not isinstance(other, ProviderSpec):
            raise TypeError(
                f"{type(self).__name__}.update_with needs a ProviderSpec or BatchRequest, "
                f"got {type(other).__name__}"
            )
        new = self.copy()
        for k, v in other.items():
            if k in new._specs:
                if type(new._specs[k]) is not type(v):
                    raise TypeError(
                        f"{k}: can not update a {type(new._specs[k]).__name__} "
                        f"with a {type(v).__name__}"
                    )
                new._specs[k].update_with(v)
            else:
                new[k] = v
        return new

    def remove_placeholders(self) -> None:
        for k in [k for k, v in self._specs.items() if v.placeholder]:
            del self._specs[k]

    def get_total_roi(self) -> Roi | None:
        """The union of all ROIs (None if there are none)."""
        total = None
        for spec in self._specs.values():
            if spec.roi is None:
                continue
            total = spec.roi if total is None else total.union(spec.roi)
        return total

    def get_common_roi(self) -> Roi | None:
        """The intersection of all ROIs (None if there are none)."""
        common = None
        for spec in self._specs.values():
            if spec.roi is None:
                continue
            common = spec.roi if common is None else common.intersect(spec.roi)
        return common

    def get_lcm_voxel_size(self, array_keys: Any = None) -> Coordinate | None:
        """The least common multiple of the voxel sizes of `array_keys` (default: all arrays)."""
        keys = list(self.array_specs.keys()) if array_keys is None else array_keys
        sizes = [
            self[k].voxel_size
            for k in keys
            if isinstance(k, ArrayKey) and self[k].voxel_size is not None
        ]
        if not sizes:
            return None
        return Coordinate(np.lcm.reduce(np.array(sizes, dtype=np.int64), axis=0))

    def _items_repr(self) -> str:
        return "".join(f"\n\t{k}: {v}" for k, v in self._specs.items())

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProviderSpec) and self._specs == other._specs

    def __repr__(self) -> str:
        return f"{type(self).__name__}({self._items_repr()}\n)"

    def _repr_html_(self) -> str:
        """A table of the keys and their specs, for notebooks."""
        from .html_repr import spec_rows, table

        seed = getattr(self, "random_seed", None)
        title = type(self).__name__ + ("" if seed is None else f" (seed {seed})")
        return table(title, spec_rows(self))


class BatchRequest(ProviderSpec):
    """What a caller wants: key → spec with ROIs, plus a `random_seed`.

    `add(key, shape)` requests `shape` (world units) and centres all ROIs on each other, as in
    gunpowder 1.x. Two requests are equal when their specs are, whatever their seeds.
    """

    def __init__(
        self,
        array_specs: dict | None = None,
        graph_specs: dict | None = None,
        random_seed: int | None = None,
    ) -> None:
        super().__init__(array_specs, graph_specs)
        self._random_seed = None if random_seed is None else int(random_seed)

    @property
    def random_seed(self) -> int | None:
        return self._random_seed

    @random_seed.setter
    def random_seed(self, value: int | None) -> None:
        self._random_seed = None if value is None else int(value)

    def with_seed(self, seed: int | None) -> BatchRequest:
        new = self.copy()
        new._random_seed = None if seed is None else int(seed)
        return new

    def add(
        self,
        key: Key,
        shape: Any,
        voxel_size: Any = None,
        directed: bool | None = None,
        placeholder: bool = False,
    ) -> None:
        """Request `key` with a ROI of `shape` (world units), centred with the other ROIs."""
        shape = Coordinate(shape)
        roi = Roi((0,) * len(shape), shape)
        if isinstance(key, ArrayKey):
            self[key] = ArraySpec(roi=roi, voxel_size=voxel_size, placeholder=placeholder)
        elif isinstance(key, GraphKey):
            self[key] = GraphSpec(roi=roi, directed=directed, placeholder=placeholder)
        else:
            raise TypeError(f"only ArrayKey or GraphKey can be requested, got {key!r}")
        self._center_rois()

    def _center_rois(self) -> None:
        total = self.get_total_roi()
        if total is None or total.unbounded:
            return
        center = total.center
        for spec in self._specs.values():
            if spec.roi is not None and not spec.roi.unbounded:
                spec.roi = spec.roi.shift(center - spec.roi.center)

    def update_with(self, other: ProviderSpec) -> BatchRequest:  # type: ignore[override]
        return super().update_with(other)  # type: ignore[return-value]

    def merge(self, request: ProviderSpec) -> BatchRequest:
        """A new request asking for both: keys of `request` are added, and a key in both gets
        the union of the two ROIs (1.x `BatchRequest.merge`)."""
        merged = self.copy()
        for key, spec in request.items():
            if key not in merged:
                merged[key] = spec
                continue
            have = merged[key]
            if getattr(have, "nonspatial", False) or have.roi is None:
                merged[key] = spec
            elif spec.roi is not None:
                merged._specs[key] = have.replace(roi=have.roi.union(spec.roi))
        return merged

    def __eq__(self, other: object) -> bool:
        return isinstance(other, ProviderSpec) and self._specs == other._specs

    def __repr__(self) -> str:
        return f"BatchRequest(random_seed={self._random_seed},{self._items_repr()}\n)"
