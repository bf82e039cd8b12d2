"""Checkpoints: ``st.save(obj, path)`` / ``st.load(path)`` in the safetensors format.

A checkpoint is one safetensors file. Its tensors are stored under dotted keys
(``model.fc.weight``, ``optimizer.state.0.exp_avg``); everything else in ``obj`` (the
nesting, numbers, strings, where each tensor goes) is JSON kept in the header's
``__metadata__``, next to a SHA-256 over that metadata and every tensor's name, dtype,
shape and bytes, so a file that was truncated or changed after it was written is
refused with a :class:`~spiraltorch_nb.errors.CheckpointError` rather than loaded.

Writes are atomic: the bytes go to a temporary file in the same directory, are
flushed and fsync'ed, then renamed over the target (and the directory fsync'ed), so
an interrupted save leaves the previous checkpoint intact.

>>> import os, tempfile
>>> import spiraltorch_nb as st
>>> model = st.nn.Linear(2, 1)
>>> path = os.path.join(tempfile.mkdtemp(), "ckpt.safetensors")
>>> _ = st.save({"model": model, "epoch": 3}, path)
>>> ckpt = st.load(path)
>>> ckpt["epoch"], sorted(ckpt["model"])
(3, ['bias', 'weight'])
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import math
import os
import secrets
import struct
from collections.abc import Mapping
from pathlib import Path
from typing import Any

import numpy as np

from .._version import __version__
from ..device import Device
from ..dtypes import DType, get_dtype
from ..errors import CheckpointError
from ..nn._state import to_device
from ..tensor import Tensor

__all__ = ["save", "load", "read_header", "FORMAT", "FORMAT_VERSION"]

FORMAT = "spiraltorch_nb.checkpoint"
FORMAT_VERSION = "1"
_CHUNK = 16 << 20
_MAX_HEADER = 100 << 20

#: safetensors dtype codes -> item size in bytes
DTYPE_SIZES = {"BOOL": 1, "U8": 1, "I8": 1, "F8_E5M2": 1, "F8_E4M3": 1, "I16": 2, "U16": 2, "F16": 2,
               "BF16": 2, "I32": 4, "U32": 4, "F32": 4, "I64": 8, "U64": 8, "F64": 8}


# ---------------------------------------------------------------------------------
# encoding: Python object -> (JSON structure, flat tensors)
# ---------------------------------------------------------------------------------

class _Encoder:
    def __init__(self) -> None:
        self.tensors: dict[str, np.ndarray] = {}
        self._by_storage: dict[int, str] = {}
        self._alive: list[Any] = []  # keeps ids in _by_storage valid while encoding

    def _key(self, path: str) -> str:
        key = path or "tensor"
        if key == "__metadata__" or key in self.tensors:
            n = 1
            while f"{key}#{n}" in self.tensors:
                n += 1
            key = f"{key}#{n}"
        return key

    def _store(self, storage: Any, arr: np.ndarray, path: str) -> str:
        found = self._by_storage.get(id(storage))
        if found is not None:
            return found
        key = self._key(path)
        self.tensors[key] = np.require(arr, requirements="C")
        self._by_storage[id(storage)] = key
        self._alive.append(storage)
        return key

    def encode(self, obj: Any, path: str) -> Any:
        from ..nn._state import _is_torch_tensor
        from ..nn.module import Module

        if obj is None or isinstance(obj, bool | int | str):
            return obj
        if isinstance(obj, float):
            return obj if math.isfinite(obj) else {"$float": repr(obj)}
        if isinstance(obj, Tensor):
            key = self._store(obj._data, obj.detach().numpy(), path)
            return {"$tensor": key, "device": str(obj.device), "requires_grad": bool(obj.requires_grad)}
        if isinstance(obj, np.ndarray):
            if obj.dtype == object:
                raise self._unsupported(obj, path)
            return {"$tensor": self._store(obj, obj, path), "numpy": True}
        if _is_torch_tensor(obj):
            t = obj.detach().cpu()
            if str(t.dtype) == "torch.bfloat16":
                t = t.float()
            return {"$tensor": self._store(obj, t.numpy(), path), "device": "cpu", "requires_grad": False}
        if isinstance(obj, np.generic):
            return self.encode(obj.item(), path)
        if isinstance(obj, DType):
            return {"$dtype": obj.name}
        if isinstance(obj, Device):
            return {"$device": str(obj)}
        if isinstance(obj, Module):
            return self.encode(obj.state_dict(), path)
        if isinstance(obj, Mapping):
            if all(isinstance(k, str) and not k.startswith("$") for k in obj):
                return {k: self.encode(v, _join(path, k)) for k, v in obj.items()}
            return {"$dict": [[self._encode_key(k, path), self.encode(v, _join(path, str(k)))] for k, v in obj.items()]}
        if isinstance(obj, tuple):
            return {"$tuple": [self.encode(v, _join(path, str(i))) for i, v in enumerate(obj)]}
        if isinstance(obj, list):
            return [self.encode(v, _join(path, str(i))) for i, v in enumerate(obj)]
        if callable(getattr(obj, "state_dict", None)):
            return self.encode(obj.state_dict(), path)
        raise self._unsupported(obj, path)

    def _encode_key(self, k: Any, path: str) -> Any:
        if k is None or isinstance(k, bool | int | float | str):
            return self.encode(k, path)
        if isinstance(k, tuple):
            return {"$tuple": [self._encode_key(v, path) for v in k]}
        raise CheckpointError(f"cannot save the dict at {path or 'the top level'}: its key {k!r} is a "
                              f"{type(k).__name__}; keys must be strings, numbers, None or tuples of those")

    @staticmethod
    def _unsupported(obj: Any, path: str) -> CheckpointError:
        return CheckpointError(
            f"cannot save {path or 'the object'}: a {type(obj).__name__} is not a tensor, array, number, string, "
            "None, list/tuple/dict of those, module, or object with state_dict(). Convert it first "
            "(for example to a dict of numbers and tensors)")


def _join(path: str, key: str) -> str:
    return f"{path}.{key}" if path else key


def _digest(metadata: Mapping[str, str], tensors: Mapping[str, np.ndarray]) -> str:
    """SHA-256 over the metadata (minus the digest) and each tensor's name, dtype, shape and bytes."""
    h = hashlib.sha256()
    meta = {k: v for k, v in metadata.items() if k != "sha256"}
    h.update(json.dumps(meta, sort_keys=True).encode())
    for key in sorted(tensors):
        arr = tensors[key]
        h.update(f"\0{key}\0{arr.dtype.name}\0{list(arr.shape)}\0".encode())
        h.update(np.require(arr, requirements="C").reshape(-1).view(np.uint8).data)
    return h.hexdigest()


# ---------------------------------------------------------------------------------
# writing
# ---------------------------------------------------------------------------------

def _write_chunks(f: Any, data: bytes) -> None:
    view = memoryview(data)
    for start in range(0, len(view), _CHUNK):
        f.write(view[start:start + _CHUNK])


def _fsync_dir(directory: Path) -> None:
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:  # platforms (Windows) that cannot open a directory
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def atomic_write(path: str | os.PathLike, data: bytes) -> Path:
    """Write ``data`` to ``path`` so that readers see either the old file or the complete new one."""
    target = Path(path)
    directory = target.parent if str(target.parent) else Path(".")
    if not directory.is_dir():
        raise CheckpointError(f"cannot save to {target}: the directory {directory} does not exist; create it first "
                              "(Path(...).mkdir(parents=True))", path=str(target))
    tmp = directory / f".{target.name}.{secrets.token_hex(6)}.tmp"
    try:
        with open(tmp, "xb") as f:
            _write_chunks(f, data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, target)
    except BaseException as exc:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        if isinstance(exc, OSError) and not isinstance(exc, CheckpointError):
            raise CheckpointError(f"could not write the checkpoint {target}: {exc}. The previous file, if any, "
                                  "is unchanged", path=str(target)) from exc
        raise
    _fsync_dir(directory)
    return target


def save(obj: Any, path: str | os.PathLike) -> Path:
    """Save tensors, modules, state dicts and plain data to one safetensors file, atomically.

    Parameters
    ----------
    obj : Any
        Typically ``{"model": model, "optimizer": opt.state_dict(), "epoch": 3}``. Modules and
        objects with ``state_dict()`` are saved as their state dict; tensors (spiraltorch,
        NumPy, torch) as safetensors entries; dicts, lists, tuples, numbers, strings and None
        as JSON.
    path : str or PathLike
        The file to write (conventionally ``*.safetensors``); its directory must exist.

    Returns
    -------
    Path
        The path written.

    Raises
    ------
    CheckpointError
        When part of ``obj`` cannot be saved (naming where), or the write fails; the
        previous file at ``path`` is then unchanged.
    """
    import safetensors.numpy

    enc = _Encoder()
    structure = enc.encode(obj, "")
    metadata = {
        "format": FORMAT,
        "format_version": FORMAT_VERSION,
        "library": f"spiraltorch_nb {__version__}",
        "structure": json.dumps(structure, separators=(",", ":")),
    }
    metadata["sha256"] = _digest(metadata, enc.tensors)
    data = safetensors.numpy.save(enc.tensors, metadata=metadata)
    return atomic_write(path, data)


# ---------------------------------------------------------------------------------
# reading
# ---------------------------------------------------------------------------------

def _corrupt(path: Path, what: str) -> CheckpointError:
    return CheckpointError(f"cannot load {path}: {what}", path=str(path))


def read_header(path: str | os.PathLike) -> tuple[dict[str, Any], dict[str, str]]:
    """Read and check a safetensors header: ``(tensor entries, __metadata__)``.

    Checks that the header is complete JSON, that every entry's byte range fits its
    dtype and shape, that the ranges tile the data region, and that the file holds
    exactly that many bytes; anything else raises :class:`CheckpointError` in words.
    """
    p = Path(path)
    try:
        size = p.stat().st_size
        with open(p, "rb") as f:
            head = f.read(8)
            if len(head) < 8:
                raise _corrupt(p, f"the file has only {size} bytes, fewer than the 8-byte safetensors length "
                                  "prefix: it is truncated or not a checkpoint")
            (n,) = struct.unpack("<Q", head)
            if n > _MAX_HEADER or 8 + n > size:
                raise _corrupt(p, f"the header claims {n} bytes but the file has {size}: the file is truncated "
                                  "or is not a safetensors file")
            raw = f.read(n)
    except FileNotFoundError:
        raise CheckpointError(f"no checkpoint at {p}: the file does not exist", path=str(p)) from None
    except IsADirectoryError:
        raise CheckpointError(f"cannot load {p}: it is a directory, not a checkpoint file", path=str(p)) from None
    try:
        header = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise _corrupt(p, f"the header is not valid JSON ({exc}): the file is corrupted") from None
    if not isinstance(header, dict):
        raise _corrupt(p, "the header is not a JSON object: the file is corrupted")
    meta = header.pop("__metadata__", None) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise _corrupt(p, "the header's __metadata__ is not a map of strings: the file is corrupted")
    spans = []
    for key, entry in header.items():
        if (not isinstance(entry, dict) or entry.get("dtype") not in DTYPE_SIZES
                or not isinstance(entry.get("shape"), list) or not isinstance(entry.get("data_offsets"), list)
                or len(entry["data_offsets"]) != 2
                or not all(isinstance(v, int) and v >= 0 for v in entry["shape"] + entry["data_offsets"])):
            raise _corrupt(p, f"the header entry for tensor {key!r} is malformed ({str(entry)[:120]}): "
                              "the file is corrupted")
        begin, end = entry["data_offsets"]
        expected = math.prod(entry["shape"]) * DTYPE_SIZES[entry["dtype"]]
        if end - begin != expected:
            raise _corrupt(p, f"tensor {key!r} ({entry['dtype']} {entry['shape']}) needs {expected} bytes but its "
                              f"offsets span {end - begin}: the file is corrupted")
        spans.append((begin, end, key))
    spans.sort()
    pos = 0
    for begin, end, key in spans:
        if begin != pos:
            raise _corrupt(p, f"tensor {key!r} starts at byte {begin} of the data region, expected {pos}: "
                              "the file is corrupted")
        pos = end
    data_size = size - 8 - n
    if data_size < pos:
        raise _corrupt(p, f"the header describes {pos} bytes of tensor data but only {data_size} are present: the "
                          "file is truncated (an interrupted copy or download?)")
    if data_size > pos:
        raise _corrupt(p, f"{data_size - pos} bytes follow the last tensor: the file is corrupted or was appended to")
    return header, meta


def _bf16_to_f32(raw: bytes, shape: list[int]) -> np.ndarray:
    bits = np.frombuffer(raw, dtype="<u2").astype(np.uint32) << 16
    return bits.view(np.float32).reshape(shape)


def read_tensors(path: str | os.PathLike, header: Mapping[str, Any] | None = None) -> dict[str, np.ndarray]:
    """Every tensor of a safetensors file as NumPy arrays (bfloat16 widened to float32)."""
    from safetensors import SafetensorError, safe_open

    p = Path(path)
    if header is None:
        header, _ = read_header(p)
    out: dict[str, np.ndarray] = {}
    try:
        with safe_open(str(p), framework="np") as f:
            for key in f.keys():  # noqa: SIM118 (safe_open is not a mapping)
                if header[key]["dtype"] == "BF16":
                    continue
                out[key] = f.get_tensor(key)
    except SafetensorError as exc:
        raise _corrupt(p, f"safetensors could not read it ({exc})") from None
    bf16 = [k for k, e in header.items() if e["dtype"] == "BF16"]
    if bf16:
        with open(p, "rb") as fh:
            (n,) = struct.unpack("<Q", fh.read(8))
            for key in bf16:
                begin, end = header[key]["data_offsets"]
                fh.seek(8 + n + begin)
                out[key] = _bf16_to_f32(fh.read(end - begin), header[key]["shape"])
    return {k: out[k] for k in header}


def is_checkpoint(meta: Mapping[str, str]) -> bool:
    """Whether a safetensors ``__metadata__`` belongs to a file written by :func:`save`."""
    return any(k in meta for k in ("format", "structure", "sha256"))


def _decode(node: Any, tensors: Mapping[str, np.ndarray], device: Any, cache: dict[str, Tensor]) -> Any:
    if isinstance(node, list):
        return [_decode(v, tensors, device, cache) for v in node]
    if not isinstance(node, dict):
        return node
    if "$tensor" in node:
        key = node["$tensor"]
        if node.get("numpy"):
            return tensors[key]
        t = cache.get(key)
        if t is None:
            from ..ops.creation import as_tensor

            t = as_tensor(tensors[key])
            if device is not None:
                t = to_device(t, device)
            if node.get("requires_grad") and t.dtype.is_floating_point:
                t.requires_grad_(True)
            cache[key] = t
        return t
    if "$dict" in node:
        return {_decode_key(k): _decode(v, tensors, device, cache) for k, v in node["$dict"]}
    if "$tuple" in node:
        return tuple(_decode(v, tensors, device, cache) for v in node["$tuple"])
    if "$float" in node:
        return float(node["$float"])
    if "$dtype" in node:
        return get_dtype(node["$dtype"])
    if "$device" in node:
        return Device(node["$device"])
    return {k: _decode(v, tensors, device, cache) for k, v in node.items()}


def _decode_key(k: Any) -> Any:
    if isinstance(k, dict) and "$tuple" in k:
        return tuple(_decode_key(v) for v in k["$tuple"])
    if isinstance(k, dict) and "$float" in k:
        return float(k["$float"])
    return k


def load(path: str | os.PathLike, device: Any = None) -> Any:
    """Load what :func:`save` wrote, verifying the checksum first.

    Parameters
    ----------
    path : str or PathLike
        A checkpoint from :func:`save`. A plain safetensors file (from PyTorch or others)
        loads as a dict of tensors; a PyTorch ``.pt``/``.pth`` file (when torch is installed)
        loads with every torch tensor turned into a spiraltorch tensor.
    device : str, optional
        Where to put the tensors (``"cpu"`` when omitted; the model's own
        ``load_state_dict`` then copies them to the model's device).

    Raises
    ------
    CheckpointError
        For a missing, truncated, tampered or unreadable file, saying which and where.
    """
    from .weights import looks_like_torch_file, torch_load

    p = Path(path)
    if looks_like_torch_file(p):
        return torch_load(p, device=device)
    header, meta = read_header(p)
    tensors = read_tensors(p, header)
    cache: dict[str, Tensor] = {}
    if not is_checkpoint(meta):
        return {k: _decode({"$tensor": k}, tensors, device, cache) for k in tensors}
    if "sha256" not in meta or "structure" not in meta:
        raise _corrupt(p, "its metadata lacks the checksum or the structure record: the header was damaged")
    if _digest(meta, tensors) != meta["sha256"]:
        raise _corrupt(p, "the contents do not match the SHA-256 recorded when it was written: the tensor data "
                          "or the header was modified or corrupted after saving. Restore it from a backup")
    version = meta.get("format_version", "")
    if version != FORMAT_VERSION:
        raise _corrupt(p, f"it uses checkpoint format version {version!r}, this spiraltorch_nb reads version "
                          f"{FORMAT_VERSION!r}; upgrade spiraltorch_nb")
    try:
        structure = json.loads(meta["structure"])
    except json.JSONDecodeError as exc:
        raise _corrupt(p, f"its structure record is not valid JSON ({exc})") from None
    missing = [k for k in _tensor_refs(structure) if k not in tensors]
    if missing:
        raise _corrupt(p, f"its structure refers to tensors the file does not hold: {missing[:5]}")
    return _decode(structure, tensors, device, cache)


def _tensor_refs(node: Any) -> list[str]:
    if isinstance(node, list):
        return [k for v in node for k in _tensor_refs(v)]
    if isinstance(node, dict):
        if "$tensor" in node:
            return [node["$tensor"]]
        return [k for v in node.values() for k in _tensor_refs(v)]
    return []
