from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from ..errors import PipelineSetupError
from ..spec import ArrayKey, ArraySpec
from .hdf5like_source_base import (
    DatasetSource,
    Reader,
    _describe_directory,
    check_missing_chunks,
    zarr_reader,
)


def _is_n5_path(path: Any) -> bool:
    return isinstance(path, (str, os.PathLike)) and os.fspath(path).rstrip("/").endswith(".n5")


def _store_and_datasets(store: Any, datasets: Any, filename: Any) -> tuple[Any, Any]:
    """(store, datasets) from the arguments of any gunpowder version: `filename` is the older
    name of `store`; a path given as `datasets` and a dict as `store`/`filename` (the two
    swapped, as old keyword calls did) are put back in place."""
    if store is None:
        store = filename
    elif filename is not None:
        raise TypeError(f"ZarrSource: give store ({store!r}) or filename ({filename!r}), not both")
    if isinstance(datasets, (str, os.PathLike)) and isinstance(store, dict):
        store, datasets = datasets, store
    return store, datasets


class ZarrSource(DatasetSource):
    """Serve arrays of a zarr store (zarr v2 or v3 format): `ZarrSource("x.zarr", {RAW: "raw"})`.

    `store` is a path, URL or zarr (3) store object (`zarr.storage.LocalStore`, ...); a path
    ending in `.n5` is read as N5 (an `N5Source`), as gunpowder 1.x did. Voxel size and offset come from `resolution` /
    `offset` attributes, else from OME-NGFF `multiscales` of an enclosing group (a dataset
    path naming a multiscale group serves its first level), else voxel size 1, offset 0;
    non-None fields of `array_specs[key]` override them.

    The store is opened read-only, lazily and once per process (so the source can be used
    under `PreCache`); only the chunks a request touches are read.

    Args:
        store: the zarr store: a path, a URL, or a zarr store object. Required (or
            `filename`).
        datasets: a non-empty dict ArrayKey -> array path in the store (e.g. `{raw: "raw"}`);
            a path may name an OME-NGFF multiscale group (its first level is served).
        array_specs: a dict ArrayKey -> ArraySpec whose non-None fields override the store's
            metadata: `voxel_size`, `roi` (world units, on the voxel grid, inside the data),
            `interpolatable`, `nonspatial`; a `dtype` must match the array's. Default None:
            the store's metadata (`interpolatable` then True for float and uint8, else False).
        channels_first: True (default) if channel axes come before the spatial axes in the
            arrays; False for (spatial..., channels) arrays (served channels first).
        filename: the older gunpowder 1.x name of `store`, used when `store` is None (the
            1.x calls `ZarrSource(datasets=path, filename={...})` work too).
        missing_chunks: what a read of a chunk that is not in the store gives: "fill"
            (default: the fill value, as zarr does; zarr 3 does not store chunks that hold
            only the fill value, so an absent chunk is usually an empty one) or "error" (an
            error naming file, dataset and ROI: for datasets known to be written densely,
            where an absent chunk means lost data). Either way a store or array deleted
            during a run is an error, never zeros.

    Example::

        raw, labels = gp.ArrayKey("RAW"), gp.ArrayKey("LABELS")
        pipeline = gp.ZarrSource(
            "sample.zarr",
            {raw: "volumes/raw", labels: "volumes/labels"},
            array_specs={labels: gp.ArraySpec(interpolatable=False)})
        pipeline += gp.RandomLocation()
    """

    def __new__(cls, *args: Any, **kwargs: Any) -> Any:
        if cls is ZarrSource:
            store, _ = _store_and_datasets(
                args[0] if args else kwargs.get("store"),
                args[1] if len(args) > 1 else kwargs.get("datasets"),
                args[4] if len(args) > 4 else kwargs.get("filename"),
            )
            if _is_n5_path(store):
                from .n5_source import N5Source

                cls = N5Source
        return super().__new__(cls)

    def __init__(
        self,
        store: Any = None,
        datasets: dict[ArrayKey, str] | None = None,
        array_specs: dict[ArrayKey, ArraySpec] | None = None,
        channels_first: bool = True,
        filename: Any = None,
        missing_chunks: str = "fill",
    ) -> None:
        self.missing_chunks = check_missing_chunks(type(self).__name__, missing_chunks)
        store, datasets = _store_and_datasets(store, datasets, filename)
        if store is None:
            raise TypeError(f"{type(self).__name__} needs a store (a path, URL or zarr store)")
        super().__init__(datasets, array_specs, channels_first)  # type: ignore[arg-type]
        self.store = os.fspath(store) if isinstance(store, os.PathLike) else store

    def location(self) -> str:
        return self.store if isinstance(self.store, str) else repr(self.store)

    def check_exists(self) -> None:
        if isinstance(self.store, str) and "://" not in self.store:
            if not os.path.exists(self.store):
                raise PipelineSetupError(
                    f"{self._where()}: store does not exist; {_describe_directory(self.store)}"
                )

    def open_container(self) -> Any:
        import zarr

        return zarr.open(store=self.store, mode="r")

    def get_node(self, container: Any, path: str) -> Any:
        path = path.strip("/")
        if not path:
            return container
        if not self.is_group(container):
            raise KeyError(path)
        return container[path]

    @staticmethod
    def is_group(obj: Any) -> bool:
        import zarr

        return isinstance(obj, zarr.Group)

    def is_array(self, obj: Any) -> bool:
        return not self.is_group(obj)

    def attrs_of(self, obj: Any) -> dict[str, Any]:
        return dict(obj.attrs.asdict())

    def list_arrays(self, container: Any) -> Iterator[tuple[str, tuple[int, ...], Any]]:
        if not self.is_group(container):
            return iter([("", container.shape, container.dtype)])
        return (
            (name, obj.shape, obj.dtype)
            for name, obj in container.members(max_depth=None)
            if not self.is_group(obj)
        )

    def make_reader(self, container: Any, dataset: Any) -> Reader:
        return zarr_reader(dataset, self.missing_chunks)
