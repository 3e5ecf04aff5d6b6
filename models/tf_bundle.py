"""Reading a TensorFlow checkpoint (the V2 "tensor bundle") without TensorFlow.

A checkpoint `PREFIX` is `PREFIX.index` plus data shards `PREFIX.data-SSSSS-of-NNNNN`.
- The index is an SSTable in LevelDB's table format, written uncompressed by TensorFlow's BundleWriter: a
  48-byte footer (metaindex and index block handles as varints, padding, the magic 0xdb4775248b80fb57), an
  index block mapping each data block's last key to its handle, and data blocks of prefix-compressed
  entries (shared, unshared and value lengths as varints, then a restart array) each followed by a 5-byte
  trailer (compression type, CRC).
- Each key is a tensor's name (the empty key holds the BundleHeaderProto); each value a BundleEntryProto:
  dtype (1), shape (2: TensorShapeProto, dims (2) with size (1)), shard_id (3), offset (4), size (5),
  crc32c (6), slices (7: partitioned variables, not supported here).
- A tensor is `size` raw little-endian bytes at `offset` of its shard.
"""

from __future__ import annotations

import struct
from pathlib import Path

import numpy as np

MAGIC = 0xDB4775248B80FB57
FOOTER = 48
# TensorFlow's DataType enum → numpy (the types a model's variables have)
DTYPES = {1: np.float32, 2: np.float64, 3: np.int32, 4: np.uint8, 5: np.int16, 6: np.int8, 9: np.int64,
          10: np.bool_, 17: np.uint16, 19: np.float16, 22: np.uint32, 23: np.uint64}


class BundleError(ValueError):
    pass


def _varint(buf: bytes, pos: int) -> tuple[int, int]:
    result = shift = 0
    while True:
        if pos >= len(buf):
            raise BundleError("truncated varint")
        b = buf[pos]
        pos += 1
        result |= (b & 0x7F) << shift
        if not b & 0x80:
            return result, pos
        shift += 7


def _fields(buf: bytes) -> list[tuple[int, int, object]]:
    """(field number, wire type, value) of a protobuf message: ints for varints, bytes for length-delimited."""
    out, pos = [], 0
    while pos < len(buf):
        tag, pos = _varint(buf, pos)
        number, wire = tag >> 3, tag & 7
        if wire == 0:
            value, pos = _varint(buf, pos)
        elif wire == 1:
            value, pos = buf[pos:pos + 8], pos + 8
        elif wire == 2:
            n, pos = _varint(buf, pos)
            value, pos = buf[pos:pos + n], pos + n
        elif wire == 5:
            value, pos = buf[pos:pos + 4], pos + 4
        else:
            raise BundleError(f"unsupported protobuf wire type {wire}")
        out.append((number, wire, value))
    return out


def _block(data: bytes, handle: bytes) -> list[tuple[bytes, bytes]]:
    """The (key, value) entries of the block at `handle` (varint offset, varint size)."""
    offset, pos = _varint(handle, 0)
    size, _ = _varint(handle, pos)
    if offset + size + 5 > len(data):
        raise BundleError("a block runs past the end of the index file")
    if data[offset + size] != 0:
        raise BundleError(f"compressed block (type {data[offset + size]}); TensorFlow writes the index uncompressed")
    block = data[offset:offset + size]
    (restarts,) = struct.unpack_from("<I", block, len(block) - 4)
    end = len(block) - 4 - 4 * restarts
    entries, pos, key = [], 0, b""
    while pos < end:
        shared, pos = _varint(block, pos)
        unshared, pos = _varint(block, pos)
        length, pos = _varint(block, pos)
        key = key[:shared] + block[pos:pos + unshared]
        pos += unshared
        entries.append((key, block[pos:pos + length]))
        pos += length
    return entries


def _entries(index: Path) -> dict[str, bytes]:
    data = index.read_bytes()
    if len(data) < FOOTER or struct.unpack_from("<Q", data, len(data) - 8)[0] != MAGIC:
        raise BundleError("not a TensorFlow checkpoint index (no table magic at its end)")
    footer = data[-FOOTER:]
    _, pos = _varint(footer, 0)  # the metaindex handle: offset ...
    _, pos = _varint(footer, pos)  # ... and size (unused)
    index_handle = footer[pos:]
    out = {}
    for _, handle in _block(data, index_handle):
        for key, value in _block(data, handle):
            out[key.decode("utf-8")] = value
    return out


def _entry(value: bytes) -> dict:
    entry = {"dtype": 0, "shape": [], "shard_id": 0, "offset": 0, "size": 0, "slices": False}
    for number, _, v in _fields(value):
        if number == 1:
            entry["dtype"] = v
        elif number == 2:
            entry["shape"] = [next((s for n, _, s in _fields(dim) if n == 1), 0)
                              for n, _, dim in _fields(v) if n == 2]
        elif number == 3:
            entry["shard_id"] = v
        elif number == 4:
            entry["offset"] = v
        elif number == 5:
            entry["size"] = v
        elif number == 7:
            entry["slices"] = True
    return entry


def bundle_prefix(path: str | Path) -> Path:
    """The checkpoint prefix of `path`: a prefix itself, its `.index` file, or a folder holding one index."""
    path = Path(path)
    if path.suffix == ".index":
        return path.with_suffix("")
    if path.is_dir():
        found = sorted(path.glob("*.index"))
        if len(found) != 1:
            raise BundleError(f"{len(found)} checkpoint indexes in the folder; name one (PREFIX or PREFIX.index)")
        return found[0].with_suffix("")
    if Path(f"{path}.index").is_file():
        return path
    raise BundleError("no PREFIX.index here (a TensorFlow checkpoint is PREFIX.index + PREFIX.data-*)")


def read_bundle(path: str | Path) -> dict[str, np.ndarray]:
    """Every tensor of the checkpoint at `path` (see `bundle_prefix`) by its variable name."""
    prefix = bundle_prefix(path)
    entries = _entries(Path(f"{prefix}.index"))
    header = entries.pop("", b"")
    num_shards = next((v for n, _, v in _fields(header) if n == 1), 1)
    endian = next((v for n, _, v in _fields(header) if n == 2), 0)
    if endian != 0:
        raise BundleError("a big-endian checkpoint")
    shards: dict[int, bytes] = {}
    tensors = {}
    for name, value in sorted(entries.items()):
        e = _entry(value)
        if e["slices"]:
            raise BundleError(f"{name}: a partitioned variable (slices), not supported")
        if e["dtype"] not in DTYPES:
            continue  # strings and resources (e.g. a saver's bookkeeping) carry no weights
        if e["shard_id"] not in shards:
            shard = Path(f"{prefix}.data-{e['shard_id']:05d}-of-{num_shards:05d}")
            if not shard.is_file():
                raise BundleError(f"{shard.name} is missing")
            shards[e["shard_id"]] = shard.read_bytes()
        raw = shards[e["shard_id"]][e["offset"]:e["offset"] + e["size"]]
        dtype = np.dtype(DTYPES[e["dtype"]]).newbyteorder("<")
        count = int(np.prod(e["shape"])) if e["shape"] else 1
        if len(raw) != count * dtype.itemsize:
            raise BundleError(f"{name}: {len(raw)} bytes for shape {e['shape']} of {dtype}")
        tensors[name] = np.frombuffer(raw, dtype=dtype).reshape(e["shape"]).astype(dtype.newbyteorder("="))
    return tensors
