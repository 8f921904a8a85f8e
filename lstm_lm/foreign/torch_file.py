"""Reading a file `torch.save` wrote, in either of its formats, without torch.load: the pickle through the
restricted unpickler (lstm_lm/foreign/safe_pickle.py), the storages' bytes straight into CPU tensors.

The zip format (torch 1.6 on; 1.5 could write it on request): an uncompressed zip archive with one top folder
(named after the file when torch.save is given a path, `archive` when given an open file, as the example's main.py
does) holding `data.pkl`, whose persistent ids name storages by key, and each storage's bytes as `data/<key>`, in
the byte order the `byteorder` record names (from torch 2.1; before it, the saving machine's, in practice always
little-endian).

The legacy format (torch 0.1.10 to 1.5, and later with `_use_new_zipfile_serialization=False`): five things back
to back, four pickles and the raw storages:

    MAGIC_NUMBER              a pickled int
    PROTOCOL_VERSION          1001
    sys_info                  {"protocol_version", "little_endian", "type_sizes"}
    the object                whose persistent ids name storages by key (and classes, with their source)
    storage keys              a pickled list, the order of the storages that follow
    per key: numel, bytes     an 8-byte little-endian element count, then that many elements, little-endian
"""

from __future__ import annotations

import os
import pickle
import struct
import zipfile
from pathlib import Path
from typing import Any, BinaryIO

import torch

from ..errors import UserError
from .safe_pickle import PickleRefused, RestrictedUnpickler, StorageRecord, shown

ZIP_SIGNATURE = b"PK\x03\x04"
LEGACY_MAGIC_NUMBER = 0x1950A86A20F9469CFC6C
LEGACY_PROTOCOL_VERSION = 1001
# What goes wrong reading a file that is not a checkpoint, or a cut or damaged one.
DAMAGE = (pickle.UnpicklingError, EOFError, ValueError, TypeError, AttributeError, KeyError, IndexError,
          OverflowError, struct.error, zipfile.BadZipFile, RuntimeError)


def read_checkpoint(path: Path) -> Any:
    """The object the file holds, as inert data: Inert objects for modules, TensorRecords for tensors (their
    `tensor()` gives them, on the CPU), plain Python for the rest. Any problem is one line naming the file."""
    try:
        with open(path, "rb") as file:
            zipped = file.read(len(ZIP_SIGNATURE)) == ZIP_SIGNATURE
            file.seek(0)
            return read_zip(file, path) if zipped else read_legacy(file, path)
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read: {error.strerror or error}") from None
    except PickleRefused as refusal:
        raise UserError(f"{path}: not loaded: {refusal}") from None
    except DAMAGE as error:
        raise UserError(f"{path}: not a file torch.save wrote, or a damaged one ({type(error).__name__}: "
                        f"{shown(str(error))})") from None


def read_zip(file: BinaryIO, path: Path) -> Any:
    with zipfile.ZipFile(file) as archive:
        names = archive.namelist()
        pickles = [name for name in names if name.endswith("/data.pkl") and name.count("/") == 1]
        if any(name.endswith("/constants.pkl") for name in names):
            raise UserError(f"{path}: a TorchScript archive (torch.jit.save), not a module saved with torch.save")
        if len(pickles) != 1:
            raise UserError(f"{path}: a zip file, but not one torch.save wrote (no top-level */data.pkl)")
        folder = pickles[0].removesuffix("data.pkl")
        if f"{folder}byteorder" in names and archive.read(f"{folder}byteorder").strip() != b"little":
            raise UserError(f"{path}: saved on a big-endian machine; only little-endian checkpoints are read")
        storages: dict[str, StorageRecord] = {}
        with archive.open(pickles[0]) as pickled:
            obj = RestrictedUnpickler(pickled, storages).load()
        for key, record in storages.items():
            name = f"{folder}data/{key}"
            if name not in names:
                raise UserError(f"{path}: damaged: the pickle names storage {shown(key)}, but its bytes are missing")
            size = archive.getinfo(name).file_size
            if size != record.numel * record.dtype.itemsize:
                raise UserError(f"{path}: damaged: storage {shown(key)} holds {size:,} bytes, not the "
                                f"{record.numel:,} {record.dtype} elements the pickle says")
            with archive.open(name) as stored:
                record.data = read_elements(stored, record, path)
    return obj


def read_legacy(file: BinaryIO, path: Path) -> Any:
    # Each pickle goes through the restricted unpickler, the small ones too: all of the file is the stranger's.
    if RestrictedUnpickler(file, {}).load() != LEGACY_MAGIC_NUMBER:
        raise UserError(f"{path}: not a checkpoint torch.save wrote: neither its zip format nor its legacy one")
    if RestrictedUnpickler(file, {}).load() != LEGACY_PROTOCOL_VERSION:
        raise UserError(f"{path}: a legacy torch checkpoint of an unknown protocol version")
    sys_info = RestrictedUnpickler(file, {}).load()
    if not (isinstance(sys_info, dict) and sys_info.get("little_endian") is True):
        raise UserError(f"{path}: saved on a big-endian machine; only little-endian checkpoints are read")
    file_size = os.fstat(file.fileno()).st_size
    storages: dict[str, StorageRecord] = {}
    # The C unpickler peeks at a buffered file and consumes only its own pickle, so the next read starts at the
    # next part: what torch.load's legacy reader relies on too.
    obj = RestrictedUnpickler(file, storages).load()
    keys = RestrictedUnpickler(file, {}).load()
    if not (isinstance(keys, list) and all(isinstance(key, str) for key in keys)):
        raise UserError(f"{path}: damaged: the list of storage keys is {type(keys).__name__}")
    for key in keys:
        if key not in storages:
            raise UserError(f"{path}: damaged: storage {shown(key)} has bytes but no tensor names it")
        record = storages[key]
        (numel,) = struct.unpack("<q", read_exactly(file, 8, path))
        if numel != record.numel:
            raise UserError(f"{path}: damaged: storage {shown(key)} has {numel:,} elements, the pickle says "
                            f"{record.numel:,}")
        if numel * record.dtype.itemsize > file_size - file.tell():  # before allocating what a false count asks
            raise UserError(f"{path}: damaged: it ends inside storage {shown(key)}")
        record.data = read_elements(file, record, path)
    missing = [key for key, record in storages.items() if record.data is None]
    if missing:
        raise UserError(f"{path}: damaged: no bytes for storage {shown(missing[0])} ({len(missing)} storage(s) "
                        f"missing)")
    return obj


def read_elements(file: BinaryIO, record: StorageRecord, path: Path) -> torch.Tensor:
    """(numel,): the storage's elements, read into memory of their own."""
    nbytes = record.numel * record.dtype.itemsize
    if nbytes == 0:
        return torch.empty(0, dtype=record.dtype)
    return torch.frombuffer(read_exactly(file, nbytes, path), dtype=record.dtype)


def read_exactly(file: BinaryIO, nbytes: int, path: Path) -> bytearray:
    buffer = bytearray(nbytes)
    if file.readinto(buffer) != nbytes:
        raise UserError(f"{path}: damaged: it ends inside a storage")
    return buffer
