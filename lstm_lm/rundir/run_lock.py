"""One run directory, one trainer: a second `train` (or `--resume`) on a directory that a live process is training
is refused, where before both ran to the end writing the same files and whichever wrote last won.

The lock is an exclusive `flock` on RUN_DIR/train.lock. The OS drops it when its holder's descriptor closes, which
dying closes too, so a trainer killed with `kill -9` leaves no stale lock: its directory can be resumed at once.
The file only says who holds the lock (process id and host, for the refusal line); it is never deleted, because
a trainer that opened it just before the unlink would lock a file no later trainer sees. Linux takes flock over
NFS as a lock on the whole file, seen by every client. Where there is no fcntl (Windows) or the filesystem cannot
lock, training goes on unlocked, as it did before.
"""

from __future__ import annotations

import json
import os
import socket
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

from ..errors import UserError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None

LOCK = "train.lock"


@contextmanager
def run_lock(run_dir: Path) -> Iterator[None]:
    """Hold the run directory's lock for the duration (creating the directory); a UserError naming the process
    that holds it already."""
    if fcntl is None:
        yield
        return
    path = run_dir / LOCK
    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        descriptor = os.open(path, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as error:
        raise UserError(f"{path}: cannot create the run directory's lock: {error.strerror or error}") from None
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise UserError(f"{run_dir}: being trained by {holder(path)} ({LOCK}); wait for it to finish or stop "
                            f"it") from None
        except OSError:  # a filesystem without locks (some FUSE and old NFS mounts): unlocked, as before
            pass
        else:
            os.ftruncate(descriptor, 0)
            os.write(descriptor, (json.dumps({"pid": os.getpid(), "host": socket.gethostname()}) + "\n").encode())
        yield
    finally:
        os.close(descriptor)  # releases the lock; the file stays (see above)


def holder(path: Path) -> str:
    """Who holds the lock, as its file says; it may not have written it yet."""
    try:
        owner = json.loads(path.read_text(encoding="utf-8"))
        return f"process {owner['pid']} on host {owner['host']}"
    except (OSError, ValueError, TypeError, KeyError):
        return "another process"
