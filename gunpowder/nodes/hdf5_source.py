from __future__ import annotations

import os
from collections.abc import Iterator
from typing import Any

from ..errors import PipelineSetupError
from ..spec import ArrayKey, ArrayKeys, ArraySpec
from .hdf5like_source_base import DatasetSource, Reader, _describe_directory, _hdf5_reader


class Hdf5Source(DatasetSource):
    """Serve datasets of an HDF5 file: `Hdf5Source(filename, {RAW: "volumes/raw"})`.

    The seed-era (2017) form names the datasets of the standard keys instead:
    `Hdf5Source(filename, raw_dataset="volumes/raw", gt_dataset=..., gt_mask_dataset=...)`
    serves `ArrayKeys.RAW`, `GT_LABELS` and `GT_MASK` (labels and mask not interpolatable).

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
        raw_dataset: seed-era form: the dataset served as `ArrayKeys.RAW` (instead of
            `datasets`; also accepted as the second positional argument, a str).
        gt_dataset: seed-era form: the dataset served as `ArrayKeys.GT_LABELS` (optional).
        gt_mask_dataset: seed-era form: the dataset served as `ArrayKeys.GT_MASK` (optional).

    Example::

        raw, labels = gp.ArrayKey("RAW"), gp.ArrayKey("LABELS")
        pipeline = gp.Hdf5Source(
            "sample_A.hdf",
            {raw: "volumes/raw", labels: "volumes/labels/neuron_ids"},
            array_specs={raw: gp.ArraySpec(interpolatable=True),
                         labels: gp.ArraySpec(interpolatable=False)})
        pipeline += gp.RandomLocation()

        # the 2017 README's form, for the standard keys RAW, GT_LABELS, GT_MASK
        source = gp.Hdf5Source(
            "example.hdf",
            raw_dataset="volumes/raw",
            gt_dataset="volumes/labels/neuron_ids",
            gt_mask_dataset="volumes/labels/mask")
    """

    def __init__(
        self,
        filename: str | os.PathLike,
        datasets: dict[ArrayKey, str] | str | None = None,
        array_specs: dict[ArrayKey, ArraySpec] | None = None,
        channels_first: bool = True,
        raw_dataset: str | None = None,
        gt_dataset: str | None = None,
        gt_mask_dataset: str | None = None,
    ) -> None:
        datasets, array_specs = _seed_datasets(
            filename, datasets, array_specs, raw_dataset, gt_dataset, gt_mask_dataset
        )
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


def _seed_datasets(
    filename: Any,
    datasets: Any,
    array_specs: dict[ArrayKey, ArraySpec] | None,
    raw_dataset: str | None,
    gt_dataset: str | None,
    gt_mask_dataset: str | None,
) -> tuple[Any, dict[ArrayKey, ArraySpec] | None]:
    """`datasets`/`array_specs` for the seed-era arguments (RAW, GT_LABELS, GT_MASK).

    Without seed-era arguments `datasets` is passed on unchanged (the base class checks it).
    Labels and mask default to not interpolatable (a uint8 mask would otherwise be blended
    by an elastic augmentation); `array_specs` overrides that.
    """
    if isinstance(datasets, str):  # 2017: Hdf5Source(filename, raw_dataset, ...)
        if raw_dataset is not None:
            raise TypeError(
                f"Hdf5Source({filename!r}): raw dataset given twice: positionally "
                f"({datasets!r}) and as raw_dataset={raw_dataset!r}"
            )
        datasets, raw_dataset = None, datasets
    seed = {
        ArrayKeys.RAW: raw_dataset,
        ArrayKeys.GT_LABELS: gt_dataset,
        ArrayKeys.GT_MASK: gt_mask_dataset,
    }
    seed = {key: path for key, path in seed.items() if path is not None}
    if not seed:
        if datasets is None:
            raise TypeError(
                f"Hdf5Source({filename!r}): give `datasets` (a dict ArrayKey -> dataset path) "
                "or the seed-era raw_dataset=/gt_dataset=/gt_mask_dataset="
            )
        return datasets, array_specs
    if datasets is not None:
        raise TypeError(
            f"Hdf5Source({filename!r}): give either `datasets` ({datasets!r}) or the seed-era "
            f"raw_dataset=/gt_dataset=/gt_mask_dataset= ({sorted(map(str, seed))}), not both"
        )
    for key, path in seed.items():
        if not isinstance(path, str):
            raise TypeError(
                f"Hdf5Source({filename!r}): the dataset for {key} must be a path (str) in the "
                f"file, got {path!r}"
            )
    specs = {
        key: ArraySpec(interpolatable=False)
        for key in (ArrayKeys.GT_LABELS, ArrayKeys.GT_MASK)
        if key in seed
    }
    for key, spec in (array_specs or {}).items():
        specs[key] = specs[key].update_with(spec) if key in specs else spec
    return seed, specs
