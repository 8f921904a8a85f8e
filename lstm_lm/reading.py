"""Reading the files a user names (corpora, test sets, run-directory files): one line naming the file on any
failure, never a traceback."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Callable

from .errors import UserError


def read_text(path: Path, encoding: str, errors: str = "strict",
              warn: Callable[[str], None] = lambda message: None, errors_key: str | None = None) -> str:
    """A text file's content. A binary file (a NUL byte) is refused; undecodable bytes are an error naming their
    offset, or with errors="replace" become U+FFFD, said once in `warn`. `errors_key` names the config key that
    chooses between the two (data.errors for a corpus), for the message to point at."""
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise UserError(f"{path}: file not found") from None
    except OSError as error:
        raise UserError(f"{path}: cannot read: {error.strerror}") from None
    try:
        # Only where NUL is one zero byte (ASCII-compatible encodings): in UTF-16 zero bytes are ordinary.
        nul = data.find(b"\0") if "\0".encode(encoding) == b"\0" else -1
    except LookupError:
        raise UserError(f"{path}: unknown encoding {encoding!r} (data.encoding)") from None
    if nul >= 0:
        raise UserError(f"{path}: a binary file, not text (NUL byte at offset {nul})")
    try:
        return data.decode(encoding)
    except UnicodeDecodeError as error:
        if errors != "replace":
            hint = f" ({errors_key}=replace decodes such bytes as U+FFFD)" if errors_key else ""
            raise UserError(f"{path}: not valid {encoding} at byte offset {error.start}{hint}") from None
        warn(f"warning: {path}: not valid {encoding} from byte offset {error.start}; invalid bytes read as U+FFFD "
             f"({errors_key}=replace)")
        return data.decode(encoding, errors="replace")


def read_json(path: Path, missing: str = "not found") -> Any:
    """A UTF-8 JSON file's value; `missing` says what a missing file means to the caller."""
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise UserError(f"{path}: {missing}") from None
    except (OSError, ValueError) as error:  # ValueError: bad JSON, and bytes that are not UTF-8
        raise UserError(f"{path}: cannot read ({error})") from None
