"""Optional imports, as gunpowder 1.x's `gunpowder.ext`: each name is the module when it can be
imported, else a `NoSuchModule` that says what is missing when it is used.

`isinstance(torch, NoSuchModule)` tells whether torch is there, without importing it twice.

Example::

    >>> from gunpowder.ext import NoSuchModule, h5py
    >>> isinstance(h5py, NoSuchModule)
    False
"""

from __future__ import annotations

import importlib
from typing import Any

__all__ = ["NoSuchModule", "ZarrFile"]  # and every name of _OPTIONAL, imported on use


class NoSuchModule:
    """Stands in for a module that could not be imported; using it raises ImportError."""

    def __init__(self, name: str, error: BaseException | None = None) -> None:
        self.__name = name
        self.__error = error

    def __getattr__(self, item: str) -> Any:
        raise ImportError(
            f"gunpowder needs the module {self.__name!r} for this, but it could not be "
            f"imported ({self.__error}); install it with `pip install {self.__name}`"
        )

    def __bool__(self) -> bool:
        return False

    def __repr__(self) -> str:
        return f"NoSuchModule({self.__name!r})"


_OPTIONAL = {
    "augment": "augment",
    "daisy": "daisy",
    "dvision": "dvision",
    "funlib": "funlib",
    "h5py": "h5py",
    "haiku": "haiku",
    "jax": "jax",
    "malis": "malis",
    "optax": "optax",
    "pyklb": "pyklb",
    "tensorflow": "tensorflow",
    "tensorstore": "tensorstore",
    "torch": "torch",
    "waterz": "waterz",
    "zarr": "zarr",
}


def _load(name: str) -> Any:
    try:
        return importlib.import_module(_OPTIONAL[name])
    except Exception as e:  # ImportError, or a broken install
        return NoSuchModule(name, e)


def __getattr__(name: str) -> Any:
    """Import each optional module on first use only (`import gunpowder.ext` stays cheap)."""
    if name in _OPTIONAL:
        module = _load(name)
        globals()[name] = module
        return module
    raise AttributeError(f"module 'gunpowder.ext' has no attribute {name!r}")


class ZarrFile:
    """A zarr group opened like an HDF5 file: `with ZarrFile(path, mode="w") as f: ...`.

    Args:
        store: the path (or zarr store) of the container.
        mode: "r", "r+", "a" or "w", as for `zarr.open_group`.

    Example::

        with ZarrFile("data.zarr", mode="w") as f:
            f.create_dataset("raw", shape=(10, 10), dtype="uint8", chunks=(10, 10))
    """

    def __init__(self, store: Any, mode: str = "a") -> None:
        import zarr

        self.store = str(store) if hasattr(store, "__fspath__") else store
        self.mode = mode
        self._group = zarr.open_group(self.store, mode=mode)

    def __enter__(self) -> Any:
        return _GroupWithCreate(self._group)

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Nothing to flush: zarr writes each chunk as it is set."""

    def __getattr__(self, item: str) -> Any:
        return getattr(_GroupWithCreate(self._group), item)

    def __getitem__(self, key: str) -> Any:
        return self._group[key]


class _GroupWithCreate:
    """A zarr 3 group that also takes h5py's `create_dataset(name, data=..., ...)`."""

    def __init__(self, group: Any) -> None:
        self._group = group

    def create_dataset(self, name: str, data: Any = None, **kwargs: Any) -> Any:
        import numpy as np

        if data is not None:
            data = np.asarray(data)
            kwargs.setdefault("shape", data.shape)
            kwargs.setdefault("dtype", data.dtype)
        kwargs.setdefault("chunks", kwargs.get("shape"))
        kwargs.pop("compression", None)
        array = self._group.create_array(name, overwrite=True, **kwargs)
        if data is not None:
            array[...] = data
        return array

    def __getattr__(self, item: str) -> Any:
        return getattr(self._group, item)

    def __getitem__(self, key: str) -> Any:
        return self._group[key]

    def __contains__(self, key: str) -> bool:
        return key in self._group
