"""Faults under a running pipeline: files that change or break while being read, a kill during
a checkpoint write. Each ends in a clear error naming file, dataset and ROI, never a crash or
a silent wrong batch. (Worker kills, Ctrl-C and kill-and-resume of blockwise runs are
covered in test_parallel.py and test_blockwise.py.)"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
import textwrap
import time
import traceback

import h5py
import numpy as np
import pytest
import zarr

import gunpowder as gp
from gunpowder.nodes.hdf5like_source_base import (
    SourceReadError,
    _contiguous_reader,
    check_zarr_chunks,
    zarr_reader,
)

pytestmark = pytest.mark.timeout(120)

RAW = gp.ArrayKey("RAW")
SHAPE = (32, 128, 128)


def _request(begin=(0, 0, 0), shape=SHAPE):
    request = gp.BatchRequest()
    request[RAW] = gp.ArraySpec(roi=gp.Roi(begin, shape))
    return request


def _volume():
    return np.random.default_rng(0).integers(0, 255, SHAPE, dtype=np.uint8)


def _hdf5(path, **kwargs):
    data = _volume()
    with h5py.File(path, "w") as f:
        f.create_dataset("volumes/raw", data=data, **kwargs)
    return data


# --------------------------------------------------------------------------------------------
# HDF5: a file truncated by another process during reads


def _data_offset(path):
    with h5py.File(path, "r") as f:
        return f["volumes/raw"].id.get_offset()


def _read_until_told(path, expected, stop_file, out):
    """The reader (a forked child): serve whole-volume batches until `stop_file` exists;
    every batch must equal the file's data, every failure must be a SourceReadError.

    (A read that a truncate-and-restore spans is caught by the file's size and modification
    time changing; timestamps are exact on Linux >= 6.13, else one clock tick coarse, which
    is why the truncator restores the file at most once per tick.)"""
    counts = {"ok": 0, "errors": 0}
    source = gp.Hdf5Source(path, {RAW: "volumes/raw"})
    with gp.build(source) as pipeline:
        while not os.path.exists(stop_file):
            try:
                batch = pipeline.request_batch(_request())
            except SourceReadError as e:
                assert path in str(e) and "volumes/raw" in str(e) and "ROI" in str(e), e
                counts["errors"] += 1
                continue
            assert np.array_equal(batch[RAW].data, expected), "a silently wrong batch"
            counts["ok"] += 1
    with open(out, "w") as f:
        f.write(f"{counts['ok']} {counts['errors']}")


def test_hdf5_truncated_by_another_process_never_kills_the_reader(tmp_path):
    path = str(tmp_path / "raw.h5")
    expected = _hdf5(path)
    size = os.path.getsize(path)
    cut = _data_offset(path) + expected.nbytes // 3
    with open(path, "rb") as f:
        f.seek(cut)
        tail = f.read()
    results = []
    for attempt in range(20):
        stop, out = str(tmp_path / f"stop{attempt}"), str(tmp_path / f"out{attempt}")
        pid = os.fork()
        if pid == 0:  # the reader
            code = 1
            try:
                _read_until_told(path, expected, stop, out)
                code = 0
            except BaseException:
                with open(out, "w") as f:
                    f.write(traceback.format_exc())
            finally:
                os._exit(code)
        # a second process truncates the file while the first reads, and restores it
        truncator = subprocess.Popen(
            [sys.executable, "-c", _TRUNCATE, path, str(cut), str(size), "0.25"],
            stdin=subprocess.DEVNULL,
        )
        assert truncator.wait(timeout=30) == 0
        with open(path, "r+b") as f:  # make sure the reader also sees an intact file
            f.seek(cut)
            f.write(tail)
        time.sleep(0.05)
        open(stop, "w").close()
        _, status = os.waitpid(pid, 0)
        assert not os.WIFSIGNALED(status), (
            f"attempt {attempt}: the reader died by signal {os.WTERMSIG(status)}"
        )
        assert os.WEXITSTATUS(status) == 0, f"attempt {attempt}: {open(out).read()}"
        results.append(tuple(map(int, open(out).read().split())))
    assert sum(ok for ok, _ in results) > 0
    assert sum(errors for _, errors in results) > 0, "the truncation was never seen"


_TRUNCATE = textwrap.dedent(
    """
    import os, sys, time
    path, cut, size, seconds = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4])
    with open(path, "rb") as f:
        f.seek(cut)
        tail = f.read()
    end = time.monotonic() + seconds
    with open(path, "r+b") as f:
        while time.monotonic() < end:
            f.truncate(cut)
            time.sleep(0.001)
            f.seek(cut)
            f.write(tail)
            f.flush()
            time.sleep(0.012)  # restores a clock tick apart: a read spanning one is seen
    """
)


def test_hdf5_read_of_a_truncated_file_names_file_dataset_and_roi(tmp_path):
    path = str(tmp_path / "raw.h5")
    expected = _hdf5(path)
    source = gp.Hdf5Source(path, {RAW: "volumes/raw"})
    with gp.build(source) as pipeline:
        pipeline.request_batch(_request())
        os.truncate(path, _data_offset(path) + expected.nbytes // 2)
        with pytest.raises(SourceReadError) as info:
            pipeline.request_batch(_request((16, 0, 0), (16, 128, 128)))
    message = str(info.value)
    assert isinstance(info.value, OSError)
    for part in (path, "volumes/raw", "[16:32, 0:128, 0:128]", "shrank", "Hdf5Source"):
        assert part in message, message
    assert info.value.node_name.startswith("Hdf5Source")


@pytest.mark.parametrize(
    "index",
    [
        (slice(0, 32), slice(0, 128), slice(0, 128)),  # everything: one read
        (slice(3, 9), slice(0, 128), slice(0, 128)),  # whole sections
        (slice(3, 9), slice(5, 77), slice(0, 128)),  # whole rows
        (slice(3, 9), slice(5, 77), slice(11, 100)),  # a box
        (slice(3, 4), slice(5, 6), slice(11, 12)),  # one voxel
        (slice(3, 20, 4), slice(5, 77, 9), slice(11, 100, 2)),  # strided
        (slice(3, 3), slice(0, 128), slice(0, 128)),  # empty
    ],
)
@pytest.mark.parametrize("dtype", [np.uint8, np.float32, np.uint64])
def test_contiguous_reader_reads_exactly_what_h5py_reads(tmp_path, index, dtype):
    path = str(tmp_path / "raw.h5")
    with h5py.File(path, "w") as f:
        f.create_dataset("raw", data=_volume().astype(dtype))
    with h5py.File(path, "r") as f:
        dataset = f["raw"]
        read = _contiguous_reader(path, dataset.id.get_offset(), dataset.shape, dataset.dtype)
        got = read(index)
        assert got.dtype == dtype and got.flags.c_contiguous
        np.testing.assert_array_equal(got, dataset[index])


def test_hdf5_filter_failure_names_file_dataset_and_roi(tmp_path):
    path = str(tmp_path / "raw.h5")
    _hdf5(path, chunks=(8, 64, 64), compression="gzip")
    with h5py.File(path, "r") as f:
        info = f["volumes/raw"].id.get_chunk_info(0)
    with open(path, "r+b") as f:  # garble the first chunk's compressed bytes
        f.seek(info.byte_offset)
        f.write(b"\xff" * info.size)
    source = gp.Hdf5Source(path, {RAW: "volumes/raw"})
    with gp.build(source) as pipeline:
        pipeline.request_batch(_request((16, 0, 0), (8, 64, 64)))  # other chunks are fine
        with pytest.raises(SourceReadError) as info:
            pipeline.request_batch(_request((0, 0, 0), (8, 64, 64)))
    message = str(info.value)
    for part in (path, "volumes/raw", "ROI", "[0:8, 0:64, 0:64]", "OSError"):
        assert part in message, message
    assert "filter" in str(info.value.__cause__) or "read" in str(info.value.__cause__)


def test_read_errors_travel_from_workers_with_their_message(tmp_path):
    path = str(tmp_path / "raw.h5")
    expected = _hdf5(path)
    pipeline = gp.Hdf5Source(path, {RAW: "volumes/raw"}) + gp.PreCache(num_workers=1)
    with gp.build(pipeline), pytest.raises(gp.GunpowderError) as info:
        os.truncate(path, _data_offset(path) + expected.nbytes // 2)
        pipeline.request_batch(_request())
    assert path in str(info.value) and "volumes/raw" in str(info.value)


# --------------------------------------------------------------------------------------------
# zarr: chunks missing from the store, a store that vanished


class CheckedZarrSource(gp.ZarrSource):
    """ZarrSource reading through `zarr_reader` (as ZarrSource itself should)."""

    def __init__(self, store, datasets, missing_chunks="error"):
        super().__init__(store, datasets)
        self.missing_chunks = missing_chunks

    def make_reader(self, container, dataset):
        return zarr_reader(dataset, self.missing_chunks)


def _zarr(path, zarr_format=3, shards=None):
    kwargs = {"shards": shards} if shards else {}
    array = zarr.create_array(
        store=path,
        name="volumes/raw",
        shape=SHAPE,
        chunks=(8, 64, 64),
        dtype="uint8",
        zarr_format=zarr_format,
        **kwargs,
    )
    data = _volume()
    array[:] = data
    return data


def _chunk_file(path, zarr_format, coords):
    if zarr_format == 3:
        return os.path.join(path, "volumes/raw/c", *map(str, coords))
    return os.path.join(path, "volumes/raw", ".".join(map(str, coords)))


@pytest.mark.parametrize("zarr_format", [2, 3])
def test_zarr_chunk_missing_is_an_error_naming_store_dataset_and_roi(tmp_path, zarr_format):
    path = str(tmp_path / "data.zarr")
    data = _zarr(path, zarr_format)
    os.remove(_chunk_file(path, zarr_format, (1, 0, 1)))
    with gp.build(CheckedZarrSource(path, {RAW: "volumes/raw"})) as pipeline:
        batch = pipeline.request_batch(_request((0, 0, 0), (8, 128, 128)))
        np.testing.assert_array_equal(batch[RAW].data, data[:8])
        with pytest.raises(SourceReadError) as info:
            pipeline.request_batch(_request((4, 0, 0), (8, 128, 128)))
    message = str(info.value)
    for part in (path, "volumes/raw", "[4:12, 0:128, 0:128]", "missing", "missing_chunks"):
        assert part in message, message


def test_zarr_missing_chunks_fill_reads_the_fill_value(tmp_path):
    path = str(tmp_path / "data.zarr")
    data = _zarr(path)
    os.remove(_chunk_file(path, 3, (1, 0, 1)))
    source = CheckedZarrSource(path, {RAW: "volumes/raw"}, missing_chunks="fill")
    with gp.build(source) as pipeline:
        got = pipeline.request_batch(_request((8, 0, 0), (8, 128, 128)))[RAW].data
    np.testing.assert_array_equal(got[:, :, :64], data[8:16, :, :64])
    assert not got[:, :64, 64:].any()


def test_zarr_store_deleted_during_a_run_is_an_error_also_with_fill(tmp_path):
    path = str(tmp_path / "data.zarr")
    _zarr(path)
    for policy in ("error", "fill"):
        copy = str(tmp_path / f"{policy}.zarr")
        shutil.copytree(path, copy)
        with gp.build(CheckedZarrSource(copy, {RAW: "volumes/raw"}, policy)) as pipeline:
            pipeline.request_batch(_request())
            shutil.rmtree(copy)
            with pytest.raises(SourceReadError, match="no longer holds") as info:
                pipeline.request_batch(_request())
        assert copy in str(info.value) and "volumes/raw" in str(info.value)


def test_zarr_sharded_checks_shards(tmp_path):
    path = str(tmp_path / "data.zarr")
    _zarr(path, shards=(16, 128, 128))
    array = zarr.open(store=path, mode="r")["volumes/raw"]
    check_zarr_chunks(array, (slice(0, 32), slice(0, 128), slice(0, 128)))
    os.remove(os.path.join(path, "volumes/raw/c/1/0/0"))
    check_zarr_chunks(array, (slice(0, 16), slice(0, 128), slice(0, 128)))
    with pytest.raises(OSError, match="1 of the 1 shards"):
        check_zarr_chunks(array, (slice(16, 17), slice(0, 1), slice(0, 1)))


def test_zarr_chunk_check_works_on_other_stores():
    store = zarr.storage.MemoryStore()
    array = zarr.create_array(store=store, shape=(8, 8), chunks=(4, 4), dtype="uint8")
    array[:4, :] = 1
    read = zarr_reader(array)
    assert read((slice(0, 4), slice(0, 8))).sum() == 32
    with pytest.raises(OSError, match="'c/1/0'"):
        read((slice(2, 6), slice(0, 4)))
    assert not zarr_reader(array, "fill")((slice(4, 8), slice(0, 8))).any()


def test_zarr_corrupt_chunk_names_store_dataset_and_roi(tmp_path):
    path = str(tmp_path / "data.zarr")
    _zarr(path)
    with open(_chunk_file(path, 3, (0, 0, 0)), "wb") as f:
        f.write(b"garbage, not a compressed chunk")
    with gp.build(CheckedZarrSource(path, {RAW: "volumes/raw"})) as pipeline:
        with pytest.raises(SourceReadError) as info:
            pipeline.request_batch(_request((0, 0, 0), (8, 64, 64)))
    assert path in str(info.value) and "volumes/raw" in str(info.value)
    assert "[0:8, 0:64, 0:64]" in str(info.value)


def test_missing_chunks_policy_is_validated():
    with pytest.raises(ValueError, match="missing_chunks"):
        zarr_reader(zarr.create_array(store={}, shape=(4,), dtype="uint8"), "zeros")


# --------------------------------------------------------------------------------------------
# python -m gunpowder.predict: usage and input errors exit 2 with one line

NET = """
import torch

def build():
    return torch.nn.Conv3d(1, 2, 3)
"""


@pytest.fixture
def predict_inputs(tmp_path):
    pytest.importorskip("torch")
    (tmp_path / "net.py").write_text(NET)
    src = str(tmp_path / "in.zarr")
    zarr.create_array(store=src, name="raw", shape=(12, 12, 12), dtype="uint8")[:] = 1
    return tmp_path, src


def _predict(capsys, args):
    from gunpowder.predict import main

    try:
        status = main(args)
    except SystemExit as e:  # argparse
        status = e.code
    return status, capsys.readouterr().err


@pytest.mark.parametrize(
    "case",
    [
        "missing file",
        "missing dataset",
        "input shape of 2 values",
        "negative input shape",
        "no such model module",
        "no such factory",
        "block too small for the network",
        "missing checkpoint",
        "missing argument",
        "not a number",
    ],
)
def test_predict_usage_and_input_errors_exit_2_with_one_line(predict_inputs, capsys, case):
    tmp_path, src = predict_inputs
    args = {
        "--model": f"{tmp_path / 'net.py'}:build",
        "--input": f"{src}/raw",
        "--output": f"{tmp_path / 'out.zarr'}/pred",
        "--input-shape": ["8", "8", "8"],
    }
    expect = {
        "missing file": ("--input", f"{tmp_path / 'nope.zarr'}/raw", "nope.zarr"),
        "missing dataset": ("--input", f"{src}/volumes/raw", "volumes/raw"),
        "input shape of 2 values": ("--input-shape", ["8", "8"], "--input-shape"),
        "negative input shape": ("--input-shape", ["8", "-8", "8"], "--input-shape"),
        "no such model module": ("--model", "no_such_module_xyz:build", "no_such_module_xyz"),
        "no such factory": ("--model", f"{tmp_path / 'net.py'}:nope", "nope"),
        "block too small for the network": ("--input-shape", ["2", "2", "2"], "--input-shape"),
        "missing checkpoint": ("--checkpoint", str(tmp_path / "ckpt"), "ckpt"),
        "missing argument": ("--model", None, "--model"),
        "not a number": ("--input-shape", ["8", "x", "8"], "--input-shape"),
    }[case]
    flag, value, named = expect
    args[flag] = value
    argv = []
    for k, v in args.items():
        if v is not None:
            argv += [k, *(v if isinstance(v, list) else [v])]
    status, err = _predict(capsys, [*argv, "--workers", "0", "--no-progress"])
    assert status == 2, err
    lines = err.strip().splitlines()
    assert len(lines) == 1, err
    assert named in lines[0] and "Traceback" not in err
    assert not (tmp_path / "out.zarr").exists()


def test_predict_module_exits_2_in_a_subprocess(tmp_path):
    proc = subprocess.run(
        [sys.executable, "-m", "gunpowder.predict", "--model", "m:f", "--input",
         f"{tmp_path / 'missing.zarr'}/raw", "--output", f"{tmp_path / 'o.zarr'}/p",
         "--input-shape", "4", "4", "4"],
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr


# --------------------------------------------------------------------------------------------
# a kill during a checkpoint write: the temporary is removed on the next start

WRITER = """
import sys, time
import torch
from gunpowder.torch.checkpoint import checkpoint_path, save_atomic

class Stall:
    def __reduce__(self):  # called by torch.save mid-write
        open(sys.argv[2], "w").close()
        time.sleep(600)
        return (int, ())

save_atomic({"model_state_dict": {"w": torch.zeros(1000)}, "stall": Stall()},
            checkpoint_path(sys.argv[1], 2))
"""


def test_kill_during_checkpoint_write_leaves_a_temporary_that_the_next_start_removes(tmp_path):
    torch = pytest.importorskip("torch")
    from gunpowder.torch.checkpoint import (
        checkpoint_path,
        latest_checkpoint,
        load_checkpoint,
        save_atomic,
    )

    basename = tmp_path / "model"
    save_atomic({"iteration": 1}, checkpoint_path(basename, 1))
    (tmp_path / "writer.py").write_text(WRITER)
    ready = tmp_path / "ready"
    proc = subprocess.Popen(
        [sys.executable, str(tmp_path / "writer.py"), str(basename), str(ready)]
    )
    try:
        deadline = time.monotonic() + 60
        while not ready.exists():
            assert proc.poll() is None, "the writer ended before stalling"
            assert time.monotonic() < deadline
            time.sleep(0.05)
        proc.send_signal(signal.SIGKILL)
        proc.wait(timeout=10)
    finally:
        if proc.poll() is None:
            proc.kill()
    left = [p for p in os.listdir(tmp_path) if p.endswith(".tmp")]
    assert len(left) == 1 and left[0].startswith(".model_checkpoint_2.")
    # an unrelated temporary of a live writer (this process) and other files stay
    (tmp_path / "other.tmp").write_text("x")
    found = latest_checkpoint(basename)  # what Train does when it starts
    assert found is not None and found[0] == 1
    assert load_checkpoint(found[1]) == {"iteration": 1}
    assert sorted(p for p in os.listdir(tmp_path) if p.endswith(".tmp")) == ["other.tmp"]
    assert not checkpoint_path(basename, 2).exists()
    del torch


def test_stale_temporaries_keep_live_and_recent_ones(tmp_path):
    pytest.importorskip("torch")
    from gunpowder.torch import checkpoint as ck

    host = ck._host()
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    names = {
        f".m_checkpoint_5.{host}-{dead.pid}.abc.tmp": True,  # this host, writer gone
        f".m_checkpoint_5.{host}-{os.getpid()}.abd.tmp": False,  # this process: writing
        f".m_checkpoint_5.{host}-1.abe.tmp": False,  # alive (init)
        ".m_checkpoint_5.otherhost-1.abf.tmp": False,  # another host, recent
        ".m_checkpoint_5.old.tmp": False,  # no owner, recent
        ".m_checkpoint_6.otherhost-1.abg.tmp": True,  # another host, old
        ".m_checkpoint_7.older.tmp": True,  # no owner, old
        ".n_checkpoint_5.xyz.tmp": False,  # another basename
    }
    for name, _ in names.items():
        (tmp_path / name).write_text("partial")
    old = time.time() - 3600
    for name in (".m_checkpoint_6.otherhost-1.abg.tmp", ".m_checkpoint_7.older.tmp",
                 ".n_checkpoint_5.xyz.tmp"):  # fmt: skip
        os.utime(tmp_path / name, (old, old))
    removed = {p.name for p in ck.remove_stale_temporaries(tmp_path / "m")}
    assert removed == {name for name, stale in names.items() if stale}
    assert all((tmp_path / n).exists() for n, stale in names.items() if not stale)


def test_model_file_that_imports_its_neighbours_loads(tmp_path):
    """`--model path/to/file.py:factory` works when the file imports modules beside it."""
    from gunpowder.predict import load_factory

    (tmp_path / "helper_mod_for_model.py").write_text("SIZE = 3\n")
    (tmp_path / "net.py").write_text(
        "import helper_mod_for_model\n\ndef make():\n    return helper_mod_for_model.SIZE\n"
    )
    assert load_factory(f"{tmp_path}/net.py:make")() == 3


def test_shape_probe_allocates_no_full_size_input():
    """The output-shape probe runs on torch's meta device: a huge block costs no memory."""
    import resource

    import torch

    from gunpowder.predict import output_shape_of

    net = torch.nn.Sequential(torch.nn.Conv3d(1, 4, 3), torch.nn.ReLU(), torch.nn.Conv3d(4, 3, 3))
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    shape = output_shape_of(net, (400, 400, 400), 1)  # 256 MB as float32, 1 GB after conv 1
    after = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    assert tuple(shape) == (396, 396, 396)
    assert (after - before) * 1024 < 200 * 2**20  # ru_maxrss is in KiB on Linux
    assert next(net.parameters()).device.type == "cpu"  # the user's net is left where it was
