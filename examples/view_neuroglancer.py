"""Show a zarr that gunpowder wrote (a snapshot, a prediction) in neuroglancer.

    pip install neuroglancer
    python examples/view_neuroglancer.py snapshots/batch_1.zarr [--port 8000]

Serves the zarr folder over a local HTTP server that allows cross-origin reads (neuroglancer
fetches the chunks from the browser), adds one layer per OME-NGFF image group
(`zarr://http://localhost:PORT/volumes/raw`, `zarr3://...` for zarr 3) and per plain array
(placed by its `resolution`/`offset` attributes), and prints the viewer's URL. Integer label
arrays (uint32/uint64/int64, ...) become segmentation layers. Ctrl-C stops it.
"""

from __future__ import annotations

import argparse
import functools
import http.server
import os
import sys
import threading
from collections.abc import Iterator
from typing import Any

SEGMENTATION_DTYPES = ("uint16", "uint32", "uint64", "int16", "int32", "int64")


class CORSRequestHandler(http.server.SimpleHTTPRequestHandler):
    """Serves files, allowing every origin to read them (neuroglancer runs in the browser)."""

    def end_headers(self) -> None:
        self.send_header("Access-Control-Allow-Origin", "*")
        self.send_header("Access-Control-Allow-Headers", "*")
        super().end_headers()

    def do_OPTIONS(self) -> None:  # noqa: N802 (http.server's naming)
        self.send_response(200)
        self.end_headers()

    def log_message(self, format: str, *args: Any) -> None:  # quiet
        pass


def serve(folder: str, port: int) -> http.server.ThreadingHTTPServer:
    """Serve `folder` on localhost:`port` in a background thread (port 0: any free one)."""
    handler = functools.partial(CORSRequestHandler, directory=folder)
    server = http.server.ThreadingHTTPServer(("localhost", port), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    return server


def layers(container: str) -> Iterator[tuple[str, str, bool, dict[str, Any] | None]]:
    """(name, path, is_segmentation, placement) for each image group and each array outside
    an image group in the zarr `container`; placement (voxel size, offset) for plain arrays
    without channel axes (others are shown in voxels)."""
    import zarr

    root = zarr.open_group(container, mode="r")
    members = [("", root), *root.members(max_depth=None)]
    images = [p for p, m in members if isinstance(m, zarr.Group) and _is_image(m)]
    for path, member in members:
        inside = any(path == i or path.startswith(f"{i}/") or i == "" for i in images)
        if isinstance(member, zarr.Group) and path in images:
            first = member[_first_dataset(member)]
            yield path or "image", path, str(first.dtype) in SEGMENTATION_DTYPES, None
        elif isinstance(member, zarr.Array) and not inside and "gunpowder_done" not in path:
            attrs = member.attrs.asdict()
            placement = None
            if "resolution" in attrs and len(attrs["resolution"]) == member.ndim:
                placement = {"voxel_size": attrs["resolution"], "offset": attrs.get("offset")}
            yield path, path, str(member.dtype) in SEGMENTATION_DTYPES, placement


def _is_image(group: Any) -> bool:
    attrs = group.attrs.asdict()
    return "multiscales" in attrs or "multiscales" in attrs.get("ome", {})


def _first_dataset(group: Any) -> str:
    attrs = group.attrs.asdict()
    multiscales = attrs.get("multiscales") or attrs["ome"]["multiscales"]
    return multiscales[0]["datasets"][0]["path"]


def show(container: str, port: int = 8000, bind: str = "127.0.0.1") -> Any:
    """Serve `container` and open a neuroglancer viewer with its layers; returns the viewer."""
    import neuroglancer
    import zarr

    container = os.path.abspath(container)
    server = serve(container, port)
    base = f"http://localhost:{server.server_address[1]}"
    zarr_format = zarr.open_group(container, mode="r").metadata.zarr_format
    scheme = "zarr3" if zarr_format == 3 else "zarr"
    neuroglancer.set_server_bind_address(bind)
    viewer = neuroglancer.Viewer()
    with viewer.txn() as state:
        for name, path, segmentation, placement in layers(container):
            url = f"{scheme}://{base}/{path}".rstrip("/")
            source: Any = url
            if placement is not None:
                source = neuroglancer.LayerDataSource(url=url, transform=_transform(placement))
            layer = neuroglancer.SegmentationLayer if segmentation else neuroglancer.ImageLayer
            state.layers[name] = layer(source=source)
    return viewer


def _transform(placement: dict[str, Any]) -> Any:
    """Voxel size (nm) and offset of a plain array as a neuroglancer transform."""
    import neuroglancer

    voxel_size = [float(v) for v in placement["voxel_size"]]
    offset = placement["offset"] or [0] * len(voxel_size)
    names = ["z", "y", "x"][-len(voxel_size) :] if len(voxel_size) <= 3 else None
    names = names or [f"d{i}" for i in range(len(voxel_size))]
    dims = len(voxel_size)
    matrix = [[1.0 if j == i else 0.0 for j in range(dims)] + [o / v] for i, (o, v) in
              enumerate(zip(offset, voxel_size))]  # fmt: skip
    space = neuroglancer.CoordinateSpace(names=names, units="nm", scales=voxel_size)
    return neuroglancer.CoordinateSpaceTransform(output_dimensions=space, matrix=matrix)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("container", help="a zarr folder, e.g. snapshots/batch_1.zarr")
    parser.add_argument("--port", type=int, default=8000, help="port of the file server")
    parser.add_argument("--bind", default="127.0.0.1", help="address of the viewer's server")
    args = parser.parse_args(argv)
    if not os.path.isdir(args.container):
        print(f"view_neuroglancer: {args.container} is not a zarr folder", file=sys.stderr)
        return 2
    try:
        import neuroglancer  # noqa: F401
    except ImportError:
        print("view_neuroglancer: needs the neuroglancer package (pip install neuroglancer)",
              file=sys.stderr)  # fmt: skip
        return 2
    viewer = show(args.container, args.port, args.bind)
    print(viewer)
    try:
        threading.Event().wait()
    except KeyboardInterrupt:
        pass
    return 0


if __name__ == "__main__":
    sys.exit(main())
