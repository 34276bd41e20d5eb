from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from ..errors import PipelineSetupError
from ..spec import ArrayKey, ArraySpec
from .hdf5like_source_base import DatasetSource, Reader, _describe_directory, _hdf5_reader


class Hdf5Source(DatasetSource):
    """Serve datasets of an HDF5 file: `Hdf5Source(filename, {RAW: "volumes/raw"})`.

    Voxel size and offset come from the datasets' `resolution` / `offset` attributes (world
    units), else voxel size 1 and offset 0; non-None fields of `array_specs[key]` override
    what the file says. `channels_first=False` reads (spatial..., channels) datasets.

    The file is opened read-only, lazily and once per process (so the source can be used
    under `PreCache`); uncompressed contiguous datasets are read through a memory map.

    Args:
        filename: path of the HDF5 file.
        datasets: a non-empty dict ArrayKey -> dataset path in the file (e.g.
            `{raw: "volumes/raw"}`).
        array_specs: a dict ArrayKey -> ArraySpec whose non-None fields override the file's
            metadata: `voxel_size`, `roi` (world units, on the voxel grid, inside the data),
            `interpolatable`, `nonspatial`; a `dtype` must match the dataset's. Default None:
            the file's metadata (`interpolatable` then True for float and uint8, else False).
        channels_first: True (default) if channel axes come before the spatial axes in the
            datasets; False for (spatial..., channels) datasets (served channels first).

    Example::

        raw, labels = gp.ArrayKey("RAW"), gp.ArrayKey("LABELS")
        pipeline = gp.Hdf5Source(
            "sample_A.hdf",
            {raw: "volumes/raw", labels: "volumes/labels/neuron_ids"},
            array_specs={raw: gp.ArraySpec(interpolatable=True),
                         labels: gp.ArraySpec(interpolatable=False)})
        pipeline += gp.RandomLocation()
    """

    def __init__(
        self,
        filename: str | os.PathLike,
        datasets: dict[ArrayKey, str],
        array_specs: dict[ArrayKey, ArraySpec] | None = None,
        channels_first: bool = True,
    ) -> None:
        super().__init__(datasets, array_specs, channels_first)
        self.filename = os.fspath(filename)

    def location(self) -> str:
        return self.filename

    def check_exists(self) -> None:
        if not os.path.isfile(self.filename):
            raise PipelineSetupError(
                f"{self._where()}: file does not exist; {_describe_directory(self.filename)}"
            )

    def open_container(self) -> Any:
        import h5py

        return h5py.File(self.filename, "r")

    def close_container(self, container: Any) -> None:
        container.close()

    def get_node(self, container: Any, path: str) -> Any:
        path = path.strip("/") or "/"
        if path != "/" and path not in container:
            raise KeyError(path)
        return container[path]

    def is_array(self, obj: Any) -> bool:
        import h5py

        return isinstance(obj, h5py.Dataset)

    def attrs_of(self, obj: Any) -> dict[str, Any]:
        return dict(obj.attrs)

    def list_arrays(self, container: Any) -> Iterator[tuple[str, tuple[int, ...], Any]]:
        import h5py

        found: list[tuple[str, tuple[int, ...], Any]] = []

        def visit(name: str, obj: Any) -> None:
            if isinstance(obj, h5py.Dataset):
                found.append((name, obj.shape, obj.dtype))

        container.visititems(visit)
        return iter(found)

    def make_reader(self, container: Any, dataset: Any) -> Reader:
        return _hdf5_reader(dataset)
