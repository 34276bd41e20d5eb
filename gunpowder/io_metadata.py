"""Voxel size and offset of a stored array, read and written in one place.

Two conventions: gunpowder's `resolution` / `offset` attributes on the array (world units,
spatial axes only), and OME-NGFF `multiscales` metadata on the group holding the array
(`axes` + per-dataset `coordinateTransformations`; v0.4 at the top level of the attributes,
v0.5 under `"ome"`). Sources read both; writers reuse the writing helpers, and write one
image per group (`ome_ngff_image_attrs`), marked as gunpowder's so a writer can take its own
entry away again (`has_own_multiscales`, `remove_multiscales`) but never touches others'.

World units are nanometres: OME-NGFF scales and translations given in another length unit
(e.g. micrometer) are converted to nanometres, and must come out as whole numbers.
"""

from __future__ import annotations

from collections.abc import Mapping, MutableMapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from .geometry import Coordinate

#: nanometres per unit, for the OME-NGFF (UDUNITS-2) length units
LENGTH_UNITS_NM: dict[str, float] = {
    "angstrom": 0.1,
    "picometer": 1e-3,
    "femtometer": 1e-6,
    "nanometer": 1.0,
    "micrometer": 1e3,
    "millimeter": 1e6,
    "centimeter": 1e7,
    "decimeter": 1e8,
    "meter": 1e9,
}

_AXIS_TYPES_FROM_NAME = {"x": "space", "y": "space", "z": "space", "c": "channel", "t": "time"}


@dataclass(frozen=True)
class SpatialMetadata:
    """Voxel size and offset (world units, spatial axes only) of a stored array.

    `voxel_size`/`offset` are None where the metadata does not say; `spatial_dims` is the
    number of spatial axes if the metadata says (OME-NGFF axes), `source` names the convention.
    """

    voxel_size: Coordinate | None
    offset: Coordinate | None
    spatial_dims: int | None
    source: str


NO_METADATA = SpatialMetadata(None, None, None, "none")


def whole_numbers(values: Sequence[Any], what: str) -> Coordinate:
    """`values` as a Coordinate of ints; ValueError if one is not (close to) a whole number."""
    out = []
    floats = np.asarray(values, dtype=np.float64).ravel().tolist()
    for v in floats:
        if not np.isfinite(v) or abs(v - round(v)) > 1e-6 * max(1.0, abs(v)):
            raise ValueError(
                f"{what} {floats} is not a whole number of world units (nm); give voxel_size "
                "and roi explicitly in array_specs"
            )
        out.append(int(round(v)))
    return Coordinate(out)


# ------------------------------------------------------------------------------------------
# gunpowder attributes


def read_gunpowder_attrs(attrs: Mapping[str, Any]) -> SpatialMetadata:
    """`resolution` (voxel size) and `offset` (world units) from an array's attributes.

    `voxel_size` (funlib.persistence's name) is read where `resolution` is absent.
    """
    vs = attrs.get("resolution") if "resolution" in attrs else attrs.get("voxel_size")
    off = attrs.get("offset") if "offset" in attrs else None
    if vs is None and off is None:
        return NO_METADATA
    voxel_size = None if vs is None else whole_numbers(vs, "resolution")
    offset = None if off is None else whole_numbers(off, "offset")
    if voxel_size is not None and offset is not None and len(voxel_size) != len(offset):
        raise ValueError(
            f"resolution {tuple(voxel_size)} and offset {tuple(offset)} differ in dimensions"
        )
    if voxel_size is not None and any(v <= 0 for v in voxel_size):
        raise ValueError(f"resolution {tuple(voxel_size)} must be positive")
    dims = len(voxel_size) if voxel_size is not None else len(offset)  # type: ignore[arg-type]
    return SpatialMetadata(voxel_size, offset, dims, "gunpowder attributes")


def write_spatial_metadata(
    attrs: MutableMapping[str, Any], voxel_size: Sequence[int], offset: Sequence[int]
) -> None:
    """Write gunpowder `resolution` / `offset` attributes (world units, JSON-friendly ints)."""
    voxel_size = Coordinate(voxel_size)
    offset = Coordinate(offset)
    if len(voxel_size) != len(offset):
        raise ValueError(f"voxel size {voxel_size} and offset {offset} differ in dimensions")
    attrs["resolution"] = [int(v) for v in voxel_size]
    attrs["offset"] = [int(v) for v in offset]


# ------------------------------------------------------------------------------------------
# OME-NGFF


def find_multiscales(attrs: Mapping[str, Any]) -> list[dict] | None:
    """The `multiscales` list of a group's attributes (v0.4 top level or v0.5 under "ome")."""
    if "ome" in attrs and isinstance(attrs["ome"], Mapping) and "multiscales" in attrs["ome"]:
        return list(attrs["ome"]["multiscales"])
    if "multiscales" in attrs:
        return list(attrs["multiscales"])
    return None


def _axes(multiscale: Mapping[str, Any], ndim: int) -> list[dict]:
    axes = multiscale.get("axes")
    if axes is None:  # v0.1/v0.2: always t, c, z, y, x
        names = ["t", "c", "z", "y", "x"][-ndim:]
        return [{"name": n, "type": _AXIS_TYPES_FROM_NAME[n]} for n in names]
    out = []
    for axis in axes:
        if isinstance(axis, str):  # v0.3: names only
            axis = {"name": axis, "type": _AXIS_TYPES_FROM_NAME.get(axis.lower())}
        out.append(dict(axis))
    return out


def _compose(transforms: Sequence[Mapping[str, Any]], ndim: int, scale, translation):
    """Apply a list of OME-NGFF transformations after (scale, translation)."""
    for t in transforms or ():
        kind = t.get("type")
        if kind == "identity":
            continue
        if kind not in ("scale", "translation"):
            raise ValueError(f"unsupported OME-NGFF coordinate transformation {kind!r}")
        if kind not in t:
            raise ValueError(
                f"OME-NGFF {kind} transformation without inline values (path={t.get('path')!r})"
            )
        values = np.asarray(t[kind], dtype=np.float64)
        if values.shape != (ndim,):
            raise ValueError(f"OME-NGFF {kind} {list(values)} does not have {ndim} values")
        if kind == "scale":
            scale = scale * values
            translation = translation * values
        else:
            translation = translation + values
    return scale, translation


def read_ome_ngff(group_attrs: Mapping[str, Any], path: str, ndim: int) -> SpatialMetadata:
    """Voxel size and offset of dataset `path` (relative to the group) from `multiscales`.

    The dataset's transformations, then the multiscale's, map voxel indices to world units;
    the translation is taken as the world position of voxel 0 (the ROI's begin).
    """
    multiscales = find_multiscales(group_attrs)
    if not multiscales:
        return NO_METADATA
    path = path.strip("/")
    for ms in multiscales:
        for ds in ms.get("datasets", ()):
            if str(ds.get("path", "")).strip("/") != path:
                continue
            axes = _axes(ms, ndim)
            if len(axes) != ndim:
                raise ValueError(
                    f"OME-NGFF multiscales has {len(axes)} axes, but dataset {path!r} has {ndim}"
                )
            scale, translation = _compose(
                ds.get("coordinateTransformations", ()), ndim, np.ones(ndim), np.zeros(ndim)
            )
            scale, translation = _compose(
                ms.get("coordinateTransformations", ()), ndim, scale, translation
            )
            spatial = [i for i, a in enumerate(axes) if a.get("type") == "space"]
            if not spatial:
                raise ValueError("OME-NGFF multiscales has no axis of type 'space'")
            if spatial != list(range(ndim - len(spatial), ndim)):
                raise ValueError(
                    "OME-NGFF axes "
                    f"{[a.get('name') for a in axes]} do not end with all spatial axes"
                )
            factors = np.array(
                [_unit_to_nm(axes[i].get("unit")) for i in spatial], dtype=np.float64
            )
            return SpatialMetadata(
                whole_numbers(scale[spatial] * factors, "OME-NGFF scale"),
                whole_numbers(translation[spatial] * factors, "OME-NGFF translation"),
                len(spatial),
                "OME-NGFF multiscales",
            )
    return NO_METADATA


def multiscale_datasets(group_attrs: Mapping[str, Any]) -> list[str]:
    """The dataset paths listed in a group's `multiscales` (highest resolution first)."""
    return [
        str(ds.get("path", "")).strip("/")
        for ms in find_multiscales(group_attrs) or ()
        for ds in ms.get("datasets", ())
    ]


def _unit_to_nm(unit: str | None) -> float:
    if unit is None:
        return 1.0
    try:
        return LENGTH_UNITS_NM[unit]
    except KeyError:
        raise ValueError(
            f"OME-NGFF space axis unit {unit!r} is not a length unit ({', '.join(LENGTH_UNITS_NM)})"
        ) from None


def ome_ngff_multiscales(
    datasets: Sequence[tuple[str, Sequence[int], Sequence[int]]],
    ndim: int,
    axis_names: Sequence[str] | None = None,
    unit: str = "nanometer",
    name: str | None = None,
) -> dict[str, Any]:
    """One OME-NGFF `multiscales` entry for `datasets` [(path, voxel_size, offset), ...].

    `ndim` is the number of axes of the arrays; the leading `ndim - spatial dims` axes are
    channels (named "c", "c1", ...); the spatial ones default to ("z",) "y", "x".
    """
    if not datasets:
        raise ValueError("ome_ngff_multiscales needs at least one dataset")
    dims = len(Coordinate(datasets[0][1]))
    if dims > ndim:
        raise ValueError(f"{dims} spatial dimensions do not fit arrays with {ndim} axes")
    n_channels = ndim - dims
    if axis_names is not None:
        spatial_names = list(axis_names)
    elif dims <= 3:
        spatial_names = ["z", "y", "x"][3 - dims :]
    else:
        spatial_names = [f"d{i}" for i in range(dims)]
    if len(spatial_names) != dims:
        raise ValueError(f"axis_names {axis_names} do not name {dims} spatial axes")
    _unit_to_nm(unit)
    axes: list[dict[str, Any]] = [
        {"name": "c" if i == 0 else f"c{i}", "type": "channel"} for i in range(n_channels)
    ]
    axes += [{"name": n, "type": "space", "unit": unit} for n in spatial_names]
    factor = _unit_to_nm(unit)
    entries = []
    for path, voxel_size, offset in datasets:
        voxel_size, offset = Coordinate(voxel_size), Coordinate(offset)
        if len(voxel_size) != dims or len(offset) != dims:
            raise ValueError(f"dataset {path!r}: voxel size / offset must have {dims} values")
        scale = [1.0] * n_channels + [v / factor for v in voxel_size]
        translation = [0.0] * n_channels + [o / factor for o in offset]
        entries.append(
            {
                "path": str(path),
                "coordinateTransformations": [
                    {"type": "scale", "scale": _json_numbers(scale)},
                    {"type": "translation", "translation": _json_numbers(translation)},
                ],
            }
        )
    ms: dict[str, Any] = {"axes": axes, "datasets": entries}
    if name is not None:
        ms["name"] = name
    return ms


def _json_numbers(values: Sequence[float]) -> list[int | float]:
    return [int(v) if float(v).is_integer() else float(v) for v in values]


#: the `metadata` of every `multiscales` entry gunpowder writes: it marks the entry as ours, so a
#: writer may take it away again (a group that comes to hold a second array is no image)
GUNPOWDER_NGFF_MARK: dict[str, str] = {"written_by": "gunpowder"}


def ngff_version(zarr_format: int) -> str:
    """The OME-NGFF version written into a zarr store of `zarr_format`: 0.4 (zarr 2), 0.5 (3)."""
    if zarr_format == 2:
        return "0.4"
    if zarr_format == 3:
        return "0.5"
    raise ValueError(f"zarr_format must be 2 or 3, got {zarr_format!r}")


def ome_ngff_image_attrs(
    datasets: Sequence[tuple[str, Sequence[int], Sequence[int]]],
    ndim: int,
    version: str,
    name: str | None = None,
) -> dict[str, Any]:
    """The attributes making a group ONE OME-NGFF image of `datasets` [(path, vs, offset)].

    One `multiscales` entry (marked with `GUNPOWDER_NGFF_MARK`); v0.4 at the top level of the
    attributes (zarr 2), v0.5 under `"ome"` (zarr 3).
    """
    ms = ome_ngff_multiscales(datasets, ndim, name=name)
    ms["metadata"] = dict(GUNPOWDER_NGFF_MARK)
    if version == "0.4":
        ms["version"] = "0.4"
        return {"multiscales": [ms]}
    if version == "0.5":
        return {"ome": {"version": "0.5", "multiscales": [ms]}}
    raise ValueError(f"OME-NGFF version must be '0.4' or '0.5', got {version!r}")


def has_own_multiscales(attrs: Mapping[str, Any]) -> bool:
    """Whether the group's `multiscales` exist and were all written by gunpowder (marked)."""
    multiscales = find_multiscales(attrs)
    return bool(multiscales) and all(
        isinstance(ms, Mapping) and ms.get("metadata") == GUNPOWDER_NGFF_MARK for ms in multiscales
    )


def remove_multiscales(group_attrs: MutableMapping[str, Any]) -> None:
    """Take the `multiscales` (v0.4 top level, v0.5 under "ome") off a group's attributes."""
    if "multiscales" in group_attrs:
        del group_attrs["multiscales"]
    ome = group_attrs.get("ome")
    if isinstance(ome, Mapping) and "multiscales" in ome:
        rest = {k: v for k, v in ome.items() if k not in ("multiscales", "version")}
        if rest:
            group_attrs["ome"] = {"version": ome.get("version", "0.5"), **rest}
        else:
            del group_attrs["ome"]


def write_ome_ngff_metadata(
    group_attrs: MutableMapping[str, Any],
    datasets: Sequence[tuple[str, Sequence[int], Sequence[int]]],
    ndim: int,
    axis_names: Sequence[str] | None = None,
    unit: str = "nanometer",
    name: str | None = None,
    version: str = "0.4",
) -> None:
    """Write OME-NGFF `multiscales` for `datasets` [(path, voxel_size, offset), ...] on a group.

    version "0.4" writes `multiscales` at the top level (zarr v2 stores), "0.5" under `"ome"`
    (zarr v3 stores).
    """
    ms = ome_ngff_multiscales(datasets, ndim, axis_names, unit, name)
    if version == "0.4":
        ms["version"] = "0.4"
        group_attrs["multiscales"] = [ms]
    elif version == "0.5":
        group_attrs["ome"] = {"version": "0.5", "multiscales": [ms]}
    else:
        raise ValueError(f"OME-NGFF version must be '0.4' or '0.5', got {version!r}")


# ------------------------------------------------------------------------------------------
# both


def read_spatial_metadata(
    attrs: Mapping[str, Any],
    ndim: int,
    group_attrs: Mapping[str, Any] | None = None,
    path_in_group: str | None = None,
) -> SpatialMetadata:
    """The spatial metadata of an array with `ndim` axes.

    The array's own gunpowder attributes (`resolution` / `offset`) win; otherwise the OME-NGFF
    `multiscales` of its parent group (`group_attrs`, naming it `path_in_group`); otherwise
    `NO_METADATA` (the caller defaults to voxel size 1, offset 0).
    """
    meta = read_gunpowder_attrs(attrs)
    if meta.spatial_dims is not None and meta.spatial_dims > ndim:
        raise ValueError(
            f"{meta.source} describe {meta.spatial_dims} spatial dimensions, "
            f"but the array has only {ndim} axes"
        )
    if meta is NO_METADATA and group_attrs is not None and path_in_group is not None:
        meta = read_ome_ngff(group_attrs, path_in_group, ndim)
    return meta


def axis_names(ndim: int, spatial_dims: int) -> list[str]:
    """Names of an array's axes: channel axes first ("c", "c1", ...), then the spatial ones
    ("z", "y", "x", the last `spatial_dims` of them; "s0", ... beyond three).

    Written as zarr 3 `dimension_names` and as zarr 2 `_ARRAY_DIMENSIONS` (xarray's
    convention), so xarray and OME-NGFF 0.5 tools know which axis is which.

    >>> axis_names(4, 3)
    ['c', 'z', 'y', 'x']
    >>> axis_names(2, 2)
    ['y', 'x']
    """
    spatial_dims = min(spatial_dims, ndim)
    spatial = (
        ["z", "y", "x"][-spatial_dims:]
        if spatial_dims <= 3
        else [f"s{i}" for i in range(spatial_dims)]
    )
    channels = ["c" if i == 0 else f"c{i}" for i in range(ndim - spatial_dims)]
    return channels + spatial
