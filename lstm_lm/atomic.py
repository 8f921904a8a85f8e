"""Atomic file writes: a reader (or a run killed mid-write) sees the old file or the new one, never half of one."""

from __future__ import annotations

import os
import secrets
from pathlib import Path

from .errors import UserError


def atomic_write_bytes(path: Path, data: bytes) -> None:
    """Write to a temporary file in the same directory, fsync it, then rename it over `path`.

    A full disk or an unwritable directory raises a UserError naming `path`; the previous file is left intact.
    """
    path = Path(path)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        handle, temporary = create_temporary(path)
    except OSError as error:
        raise cannot_write(path, error) from None
    try:
        with os.fdopen(handle, "wb") as file:
            file.write(data)
            file.flush()
            os.fsync(file.fileno())
        os.replace(temporary, path)
    except BaseException as error:
        Path(temporary).unlink(missing_ok=True)
        if isinstance(error, OSError):
            raise cannot_write(path, error) from None
        raise
    sync_directory(path.parent)


def create_temporary(path: Path) -> tuple[int, Path]:
    """A new file beside `path`, open for writing, with the mode the umask gives any file a program writes
    (mkstemp's would be 0600: on a shared server the group could not read a colleague's runs)."""
    temporary = path.parent / f".{path.name}.{secrets.token_hex(8)}.tmp"
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL | getattr(os, "O_BINARY", 0)  # Windows: no newline translation
    return os.open(temporary, flags, 0o666), temporary


def cannot_write(path: Path, error: OSError) -> UserError:
    return UserError(f"{path}: cannot write: {error.strerror or error}; the previous version, if any, is intact")


def atomic_write_text(path: Path, text: str) -> None:
    atomic_write_bytes(path, text.encode("utf-8"))


def sync_directory(directory: Path) -> None:
    """Make the rename itself durable (POSIX); a no-op where directories cannot be opened."""
    try:
        descriptor = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)
