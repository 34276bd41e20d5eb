"""The wire between worker processes and their parent: pickled messages over a pipe, with
large array buffers out of band in reusable shared-memory slots (no copy into the stream)."""

from __future__ import annotations

import io
import mmap
import os
import pickle
import struct
import weakref
from typing import Any

import numpy as np

_IN_BAND_BYTES = 1 << 16  # smaller buffers travel inside the pickle stream


_HEADER = struct.Struct("<QQ")  # envelope length, payload length


_SHM_DIR = "/dev/shm"


_SLOT_MIN_BYTES = 1 << 20  # a message with less out-of-band data uses the pipe


_SLOT_GRAIN = 1 << 20  # slot sizes are multiples of this


_ALIGN = 64


class _Pickler(pickle.Pickler):
    """Pickles a strided view (a transposed or flipped array) as its contiguous base buffer
    plus strides, so it travels out of band instead of being copied into the stream."""

    def reducer_override(self, obj: Any) -> Any:
        if type(obj) is not np.ndarray or obj.nbytes < _IN_BAND_BYTES or obj.dtype.hasobject:
            return NotImplemented
        if obj.flags.c_contiguous or obj.flags.f_contiguous:
            return NotImplemented
        base = obj
        while isinstance(base.base, np.ndarray):
            base = base.base
        if base is obj or not base.flags.c_contiguous or base.nbytes > 2 * obj.nbytes:
            return np.ascontiguousarray, (np.ascontiguousarray(obj),)  # one copy, then out of band
        offset = obj.__array_interface__["data"][0] - base.__array_interface__["data"][0]
        flat = base.reshape(-1).view(np.uint8)
        return _strided, (pickle.PickleBuffer(flat), offset, obj.shape, obj.strides, obj.dtype)


def _strided(buffer: Any, offset: int, shape: tuple, strides: tuple, dtype: Any) -> np.ndarray:
    return np.ndarray(shape, dtype, buffer=buffer, offset=offset, strides=strides)


def _pickle(message: Any) -> tuple[memoryview, list[memoryview]]:
    buffers: list[memoryview] = []

    def out_of_band(buffer: pickle.PickleBuffer) -> bool:
        try:
            raw = buffer.raw()
        except BufferError:  # not contiguous: in band
            return True
        if raw.nbytes < _IN_BAND_BYTES:
            return True
        buffers.append(raw)
        return False

    stream = io.BytesIO()
    _Pickler(stream, protocol=5, buffer_callback=out_of_band).dump(message)
    return stream.getbuffer(), buffers


def _aligned(n: int) -> int:
    return -(-n // _ALIGN) * _ALIGN


def shm_available() -> bool:
    return os.name == "posix" and os.path.isdir(_SHM_DIR) and os.access(_SHM_DIR, os.W_OK)


class _Slot:
    __slots__ = ("id", "path", "size", "mm", "busy")

    def __init__(self, id: int, path: str, size: int, mm: mmap.mmap) -> None:
        self.id, self.path, self.size, self.mm, self.busy = id, path, size, mm, False


class SlotSender:
    """Worker side: puts a message's out-of-band buffers into a free shared-memory slot.

    Slot files are named `<prefix><n>`; the receiver unlinks each once it has mapped it.
    A slot is busy until the receiver reports it free (`free(ids)`).
    """

    def __init__(self, prefix: str | None) -> None:
        self.prefix = prefix  # None: everything crosses the pipe
        self.slots: dict[int, _Slot] = {}
        self.count = 0

    def free(self, ids: Any) -> None:
        for i in ids:
            slot = self.slots.get(i)
            if slot is not None:
                slot.busy = False

    def place(self, buffers: list[memoryview]) -> tuple[Any, list[int]]:
        """Copy `buffers` into a slot: (slot id, path if new, size, spans), retired ids."""
        total = sum(_aligned(b.nbytes) for b in buffers)
        if self.prefix is None or total < _SLOT_MIN_BYTES:
            return None, []
        free = [s for s in self.slots.values() if not s.busy]
        fitting = [s for s in free if s.size >= total]
        retired: list[int] = []
        if fitting:
            slot, path = min(fitting, key=lambda s: s.size), None
        else:
            for s in free:  # too small for what comes now: give their memory back
                del self.slots[s.id]
                s.mm.close()
                _unlink(s.path)
                retired.append(s.id)
            slot = self._new_slot(-(-total // _SLOT_GRAIN) * _SLOT_GRAIN)
            if slot is None:
                return None, retired
            path = slot.path
        spans = []
        offset = 0
        for b in buffers:
            slot.mm[offset : offset + b.nbytes] = b
            spans.append((offset, b.nbytes))
            offset += _aligned(b.nbytes)
        slot.busy = True
        return (slot.id, path, slot.size, spans), retired

    def _new_slot(self, size: int) -> _Slot | None:
        path = f"{self.prefix}{self.count}"
        try:
            fd = os.open(path, os.O_CREAT | os.O_EXCL | os.O_RDWR, 0o600)
        except OSError:
            return None
        try:
            if hasattr(os, "posix_fallocate"):
                os.posix_fallocate(fd, 0, size)  # no SIGBUS later on a full /dev/shm
            else:  # pragma: no cover
                os.ftruncate(fd, size)
            mm = mmap.mmap(fd, size)
        except OSError:
            _unlink(path)
            return None
        finally:
            os.close(fd)
        slot = _Slot(self.count, path, size, mm)
        self.slots[slot.id] = slot
        self.count += 1
        return slot

    def unlink_all(self) -> None:
        for slot in list(self.slots.values()):
            _unlink(slot.path)


class SlotReceiver:
    """Main side: maps a worker's slots once; arrays of a batch view its slot, which is
    reported free (`on_free(slot id)`) when the last of them is garbage collected."""

    def __init__(self, on_free: Any = None) -> None:
        self.maps: dict[int, mmap.mmap] = {}
        self.on_free = on_free

    def buffers(self, slot: Any, retired: list[int]) -> list[Any]:
        for i in retired:
            self.maps.pop(i, None)  # unmapped when the last array viewing it is gone
        if slot is None:
            return []
        slot_id, path, size, spans = slot
        if path is not None:
            fd = os.open(path, os.O_RDWR)
            try:
                self.maps[slot_id] = mmap.mmap(fd, size)
            finally:
                os.close(fd)
                _unlink(path)
        end = max(o + n for o, n in spans) if spans else 0
        backing = np.frombuffer(self.maps[slot_id], dtype=np.uint8, count=end)
        if self.on_free is not None:
            weakref.finalize(backing, self.on_free, slot_id)
        return [backing[o : o + n] for o, n in spans]


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except OSError:
        pass


def send_message(fd: int, message: Any, sender: SlotSender | None = None) -> None:
    """Write `message` to the pipe `fd`; array data goes through a slot of `sender` if it
    has one free (or can make one), else through the pipe from where it lies."""
    payload, buffers = _pickle(message)
    slot, retired = sender.place(buffers) if sender is not None else (None, [])
    inline = buffers if slot is None else []
    envelope = pickle.dumps(([b.nbytes for b in inline], slot, retired), protocol=5)
    _write_all(fd, _HEADER.pack(len(envelope), payload.nbytes) + envelope)
    _write_all(fd, payload)
    for b in inline:
        _write_all(fd, b)


def receive_message(fd: int, receiver: SlotReceiver | None = None) -> Any:
    """Read one message from the pipe `fd` (EOFError if the writer is gone)."""
    header = bytearray(_HEADER.size)
    _read_into(fd, header)
    envelope_length, payload_length = _HEADER.unpack(header)
    envelope = bytearray(envelope_length)
    _read_into(fd, envelope)
    inline_sizes, slot, retired = pickle.loads(envelope)
    payload = bytearray(payload_length)
    _read_into(fd, payload)
    buffers: list[Any] = []
    for size in inline_sizes:
        buffer = bytearray(size)
        _read_into(fd, buffer)
        buffers.append(buffer)
    if slot is not None or retired:
        if receiver is None:
            raise ValueError("a message in shared memory needs a SlotReceiver")
        buffers += receiver.buffers(slot, retired)
    return pickle.loads(payload, buffers=buffers)


def _write_all(fd: int, data: Any) -> None:
    view = memoryview(data).cast("B")
    while view.nbytes:
        view = view[os.write(fd, view) :]


def _read_into(fd: int, buffer: bytearray) -> None:
    view = memoryview(buffer)
    pos = 0
    while pos < len(view):
        n = os.readv(fd, [view[pos:]])
        if n == 0:
            raise EOFError("the worker closed its pipe")
        pos += n


def _grow_pipe(fd: int) -> None:
    """Ask for a 1 MiB pipe buffer (Linux), so a batch crosses in few system calls."""
    try:
        import fcntl

        fcntl.fcntl(fd, getattr(fcntl, "F_SETPIPE_SZ", 1031), 1 << 20)
    except (ImportError, OSError):
        pass
