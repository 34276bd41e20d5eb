"""A small N5 reader and writer (the N5 spec, version 4): `N5Container` and `N5Dataset`.

N5 is a directory format: a group or dataset is a directory with an `attributes.json`; a
dataset's blocks are files `<dataset>/<i_0>/<i_1>/...` (block grid indices, fastest-varying
axis first), each a big-endian header (mode, number of axes, block shape) followed by the
compressed big-endian data in Fortran order. Compression `raw`, `gzip` (also `useZlib`),
`bzip2`, `xz` (standard library), `blosc` and `zstd` (numcodecs).

Arrays are presented in C order, as zarr-python 2's `N5Store` (what gunpowder 1.x used) did:
the N5 `dimensions` [x, y, z] are the numpy shape (z, y, x). The gunpowder `resolution` and
`offset` attributes are stored in N5's (x, y, z) order too; `N5Dataset.spatial_attrs`
returns them in (z, y, x).

Why not tensorstore (a maintained N5 reader): once used, it aborts any forked child process
("fork() use detected"), and `PreCache` forks its workers by default (as gunpowder 1.x);
zarr-python 3 has no N5 support. This module is cross-checked against tensorstore in the
tests (in a subprocess).
"""

from __future__ import annotations

import bz2
import gzip
import itertools
import json
import lzma
import os
import tempfile
import zlib
from collections.abc import Iterator, Mapping
from typing import Any

import numpy as np

N5_VERSION = "4.0.0"
_RESERVED = ("dimensions", "blockSize", "dataType", "compression", "n5")
_DTYPES = {
    "uint8",
    "uint16",
    "uint32",
    "uint64",
    "int8",
    "int16",
    "int32",
    "int64",
    "float32",
    "float64",
}


class N5Error(ValueError):
    """A malformed or unsupported N5 container, dataset or block."""


def _read_json(path: str) -> dict[str, Any]:
    file = os.path.join(path, "attributes.json")
    if not os.path.exists(file):
        return {}
    with open(file) as f:
        try:
            attrs = json.load(f)
        except json.JSONDecodeError as e:
            raise N5Error(f"{file} is not valid JSON: {e}") from None
    if not isinstance(attrs, dict):
        raise N5Error(f"{file} does not hold a JSON object")
    return attrs


def _write_atomic(file: str, content: bytes) -> None:
    """Write `content` to `file` through a temporary file and a rename (readers never see a
    half-written file)."""
    directory = os.path.dirname(file)
    os.makedirs(directory, exist_ok=True)
    fd, tmp = tempfile.mkstemp(dir=directory, prefix=".tmp_")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(content)
        os.replace(tmp, file)
    except BaseException:
        if os.path.exists(tmp):
            os.unlink(tmp)
        raise


def _write_json(path: str, attrs: Mapping[str, Any]) -> None:
    _write_atomic(os.path.join(path, "attributes.json"), json.dumps(dict(attrs)).encode())


# ------------------------------------------------------------------------------------------
# compression


def compression_for(compression_type: Any) -> dict[str, Any]:
    """The N5 `compression` entry for `compression_type`: None/"gzip" (the default), "raw" or
    "none", "bzip2", "xz", "blosc", "zstd", or a ready N5 compression dict."""
    if isinstance(compression_type, Mapping):
        entry = dict(compression_type)
    else:
        name = "gzip" if compression_type is None else str(compression_type).lower()
        entry = {
            "gzip": {"type": "gzip", "level": -1},
            "zlib": {"type": "gzip", "level": -1, "useZlib": True},
            "raw": {"type": "raw"},
            "none": {"type": "raw"},
            "bzip2": {"type": "bzip2", "blockSize": 9},
            "xz": {"type": "xz", "preset": 6},
            "blosc": {"type": "blosc", "cname": "zstd", "clevel": 3, "shuffle": 1},
            "zstd": {"type": "zstd", "level": 3},
        }.get(name)
        if entry is None:
            raise N5Error(
                f"unknown N5 compression {compression_type!r}; use one of gzip, zlib, raw, "
                "bzip2, xz, blosc, zstd or an N5 compression dict"
            )
    _codec(entry)  # checks the type
    return entry


def _codec(entry: Mapping[str, Any]) -> tuple[Any, Any]:
    """(compress, decompress) functions for an N5 compression entry."""
    kind = entry.get("type", "raw")
    if kind == "raw":
        return (lambda b: b), (lambda b: b)
    if kind == "gzip":
        level = int(entry.get("level", -1))
        level = 6 if level < 0 else level
        if entry.get("useZlib", False):
            return (lambda b: zlib.compress(b, level)), zlib.decompress
        return (lambda b: gzip.compress(b, level, mtime=0)), gzip.decompress
    if kind == "bzip2":
        size = int(entry.get("blockSize", 9))
        return (lambda b: bz2.compress(b, size)), bz2.decompress
    if kind == "xz":
        preset = int(entry.get("preset", 6))
        return (lambda b: lzma.compress(b, preset=preset)), lzma.decompress
    if kind == "blosc":
        import numcodecs

        codec = numcodecs.Blosc(
            cname=entry.get("cname", "lz4"),
            clevel=int(entry.get("clevel", 5)),
            shuffle=int(entry.get("shuffle", 1)),
            blocksize=int(entry.get("blocksize", 0)),
        )
        return (lambda b: bytes(codec.encode(b))), (lambda b: bytes(codec.decode(b)))
    if kind == "zstd":
        import numcodecs

        codec = numcodecs.Zstd(level=int(entry.get("level", 3)))
        return (lambda b: bytes(codec.encode(b))), (lambda b: bytes(codec.decode(b)))
    raise N5Error(f"N5 compression {kind!r} is not supported (raw, gzip, bzip2, xz, blosc, zstd)")


# ------------------------------------------------------------------------------------------
# blocks


def encode_block(data: np.ndarray, compress: Any) -> bytes:
    """An N5 block file for C-order `data` (mode 0: header, then big-endian Fortran data)."""
    header = np.array([0, data.ndim], dtype=">u2").tobytes()
    header += np.array(data.shape[::-1], dtype=">u4").tobytes()
    payload = np.ascontiguousarray(data, dtype=data.dtype.newbyteorder(">")).tobytes()
    return header + compress(payload)


def decode_block(
    content: bytes, dtype: np.dtype, ndim: int, decompress: Any, where: str
) -> np.ndarray:
    """The C-order array stored in an N5 block file (modes 0 and 1)."""
    if len(content) < 4:
        raise N5Error(f"{where}: block file too short")
    mode, n = (int(v) for v in np.frombuffer(content[:4], dtype=">u2"))
    if n != ndim or mode not in (0, 1):
        raise N5Error(f"{where}: block has mode {mode} and {n} axes; expected mode 0/1, {ndim}")
    start = 4 + 4 * n
    shape = tuple(int(v) for v in np.frombuffer(content[4:start], dtype=">u4"))[::-1]
    if mode == 1:
        start += 4  # number of elements (varlength mode): the shape says as much
    data = np.frombuffer(decompress(content[start:]), dtype=np.dtype(dtype).newbyteorder(">"))
    count = int(np.prod(shape))
    if data.size < count:
        raise N5Error(f"{where}: block holds {data.size} values, its header says {shape}")
    return data[:count].reshape(shape)


# ------------------------------------------------------------------------------------------
# datasets and containers


class N5Attributes(dict):
    """The user attributes of an N5 group or dataset (a dict); `put` writes them back."""

    def __init__(self, path: str, values: Mapping[str, Any]) -> None:
        super().__init__({k: v for k, v in values.items() if k not in _RESERVED})
        self.path = path

    def asdict(self) -> dict[str, Any]:
        return dict(self)

    def __setitem__(self, key: str, value: Any) -> None:
        if key in _RESERVED:
            raise N5Error(f"{self.path}: attribute {key!r} is reserved by N5")
        super().__setitem__(key, value)
        attrs = _read_json(self.path)
        attrs[key] = value
        _write_json(self.path, attrs)


class N5Dataset:
    """One N5 dataset, indexed in C order with slices (`ds[index]`, `ds[index] = data`)."""

    def __init__(self, path: str) -> None:
        attrs = _read_json(path)
        if "dimensions" not in attrs:
            raise N5Error(f"{path} is not an N5 dataset (no 'dimensions' in attributes.json)")
        self.path = path
        self.shape = tuple(int(v) for v in attrs["dimensions"])[::-1]
        self.chunks = tuple(int(v) for v in attrs["blockSize"])[::-1]
        kind = attrs.get("dataType")
        if kind not in _DTYPES:
            raise N5Error(f"{path}: N5 dataType {kind!r} is not supported ({sorted(_DTYPES)})")
        self.dtype = np.dtype(kind)
        self.compression = dict(attrs.get("compression") or {"type": "raw"})
        self._compress, self._decompress = _codec(self.compression)
        self.attrs = N5Attributes(path, attrs)

    @property
    def ndim(self) -> int:
        return len(self.shape)

    def _block_file(self, index: tuple[int, ...]) -> str:
        return os.path.join(self.path, *(str(i) for i in index[::-1]))

    def _box(self, index: Any) -> tuple[tuple[int, int], ...]:
        if index is Ellipsis:
            index = ()
        if not isinstance(index, tuple):
            index = (index,)
        if any(i is Ellipsis for i in index):
            at = next(i for i, v in enumerate(index) if v is Ellipsis)
            fill = (slice(None),) * (self.ndim - len(index) + 1)
            index = index[:at] + fill + index[at + 1 :]
        index = index + (slice(None),) * (self.ndim - len(index))
        box = []
        for s, size in zip(index, self.shape):
            if not isinstance(s, slice) or s.step not in (None, 1):
                raise N5Error(f"{self.path}: only contiguous slices index an N5 dataset, got {s}")
            b, e, _ = s.indices(size)
            box.append((b, max(b, e)))
        return tuple(box)

    def _blocks(self, box: tuple[tuple[int, int], ...]) -> Iterator[tuple[int, ...]]:
        ranges = [range(b // c, -(-e // c)) for (b, e), c in zip(box, self.chunks)]
        return itertools.product(*ranges)

    def _block_box(self, block: tuple[int, ...]) -> tuple[tuple[int, int], ...]:
        return tuple(
            (i * c, min((i + 1) * c, s)) for i, c, s in zip(block, self.chunks, self.shape)
        )

    def read_block(self, block: tuple[int, ...]) -> np.ndarray | None:
        file = self._block_file(block)
        try:
            with open(file, "rb") as f:
                content = f.read()
        except FileNotFoundError:
            return None
        return decode_block(content, self.dtype, self.ndim, self._decompress, file)

    def __getitem__(self, index: Any) -> np.ndarray:
        box = self._box(index)
        out = np.zeros(tuple(e - b for b, e in box), dtype=self.dtype)
        for block in self._blocks(box):
            data = self.read_block(block)
            if data is None:
                continue
            bbox = self._block_box(block)
            common = [(max(b, bb), min(e, be)) for (b, e), (bb, be) in zip(box, bbox)]
            src = tuple(slice(c0 - bb, c1 - bb) for (c0, c1), (bb, _) in zip(common, bbox))
            dst = tuple(slice(c0 - b, c1 - b) for (c0, c1), (b, _) in zip(common, box))
            out[dst] = data[src]
        return out

    def __setitem__(self, index: Any, value: Any) -> None:
        box = self._box(index)
        value = np.broadcast_to(np.asarray(value), tuple(e - b for b, e in box))
        for block in self._blocks(box):
            bbox = self._block_box(block)
            common = [(max(b, bb), min(e, be)) for (b, e), (bb, be) in zip(box, bbox)]
            src = tuple(slice(c0 - b, c1 - b) for (c0, c1), (b, _) in zip(common, box))
            full = all(c == bb for c, bb in zip(common, bbox))
            if full:
                data = np.asarray(value[src], dtype=self.dtype)
            else:
                data = np.zeros(tuple(e - b for b, e in bbox), dtype=self.dtype)
                old = self.read_block(block)
                if old is not None:
                    data[tuple(slice(0, s) for s in old.shape)] = old
                dst = tuple(slice(c0 - bb, c1 - bb) for (c0, c1), (bb, _) in zip(common, bbox))
                data[dst] = value[src]
            _write_atomic(self._block_file(block), encode_block(data, self._compress))


class N5Container:
    """An N5 container (a directory): groups and datasets by '/'-separated path."""

    def __init__(self, path: str | os.PathLike, mode: str = "r") -> None:
        self.path = os.fspath(path)
        if mode == "r":
            if not os.path.isdir(self.path):
                raise N5Error(f"N5 container {self.path} does not exist")
        else:
            os.makedirs(self.path, exist_ok=True)
            root = _read_json(self.path)
            if "n5" not in root:
                root["n5"] = N5_VERSION
                _write_json(self.path, root)
        self.mode = mode

    def _dir(self, path: str) -> str:
        parts = [p for p in path.strip("/").split("/") if p]
        if any(p in (".", "..") for p in parts):
            raise N5Error(f"invalid N5 path {path!r}")
        return os.path.join(self.path, *parts)

    def is_dataset(self, path: str) -> bool:
        return "dimensions" in _read_json(self._dir(path))

    def __contains__(self, path: str) -> bool:
        return os.path.isdir(self._dir(path))

    def __getitem__(self, path: str) -> N5Dataset | N5Group:
        directory = self._dir(path)
        if not os.path.isdir(directory):
            raise KeyError(path)
        if self.is_dataset(path):
            return N5Dataset(directory)
        return N5Group(self, path.strip("/"))

    @property
    def attrs(self) -> N5Attributes:
        return N5Attributes(self.path, _read_json(self.path))

    def datasets(self) -> Iterator[tuple[str, N5Dataset]]:
        """(path, dataset) of every dataset, depth first, in name order."""
        for directory, subdirs, files in os.walk(self.path):
            subdirs.sort()
            if "attributes.json" in files and "dimensions" in _read_json(directory):
                subdirs[:] = []  # block directories
                rel = os.path.relpath(directory, self.path).replace(os.sep, "/")
                yield ("" if rel == "." else rel), N5Dataset(directory)

    def create_dataset(
        self,
        path: str,
        shape: tuple[int, ...],
        chunks: tuple[int, ...],
        dtype: Any,
        compression: Any = None,
    ) -> N5Dataset:
        """A new dataset at `path` (C-order `shape` and `chunks`); its parents become groups."""
        if self.mode == "r":
            raise N5Error(f"{self.path} is open read-only")
        dtype = np.dtype(dtype)
        if dtype.name not in _DTYPES:
            raise N5Error(f"N5 can not store dtype {dtype} ({sorted(_DTYPES)})")
        directory = self._dir(path)
        if os.path.exists(os.path.join(directory, "attributes.json")):
            raise N5Error(f"{directory} exists already")
        _write_json(
            directory,
            {
                "dimensions": [int(s) for s in shape[::-1]],
                "blockSize": [max(1, int(c)) for c in chunks[::-1]],
                "dataType": dtype.name,
                "compression": compression_for(compression),
            },
        )
        return N5Dataset(directory)


class N5Group:
    """A group inside an N5 container: attributes and '/'-paths relative to it."""

    def __init__(self, container: N5Container, path: str) -> None:
        self.container = container
        self.path = path

    @property
    def attrs(self) -> N5Attributes:
        directory = self.container._dir(self.path)
        return N5Attributes(directory, _read_json(directory))

    def __contains__(self, path: str) -> bool:
        return f"{self.path}/{path}" in self.container

    def __getitem__(self, path: str) -> N5Dataset | N5Group:
        return self.container[f"{self.path}/{path}"]


def spatial_attrs(attrs: Mapping[str, Any]) -> dict[str, Any]:
    """`attrs` with the N5 (x, y, z)-ordered `resolution`/`offset` (or n5-viewer's
    `pixelResolution`) turned into gunpowder's (z, y, x) `resolution`/`offset`."""
    out = dict(attrs)
    for name in ("resolution", "offset"):
        if isinstance(out.get(name), list):
            out[name] = out[name][::-1]
    pixel = out.get("pixelResolution")
    if "resolution" not in out and isinstance(pixel, Mapping):
        dims = pixel.get("dimensions")
        if isinstance(dims, list):
            out["resolution"] = dims[::-1]
    return out


def n5_order(values: Any) -> list[int]:
    """gunpowder's (z, y, x) numbers in N5's (x, y, z) attribute order."""
    return [int(v) for v in values][::-1]
