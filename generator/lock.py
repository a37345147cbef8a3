"""One build of a site at a time.

A second `make site` on the same site folder while one runs stops at once with one sentence (it does not wait:
a build takes minutes, and a user who started two by mistake wants to know now). The lock is an flock on a
file beside the site folder, so the kernel releases it when the process ends, however it ends: a killed build
never leaves a stale lock behind.
"""

from __future__ import annotations

import fcntl
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

from generator.errors import Busy, from_os_error


def lock_path(site_dir: Path) -> Path:
    site_dir = Path(site_dir)
    return site_dir.with_name(f".{site_dir.name}.lock")


@contextmanager
def site_lock(site_dir: Path) -> Iterator[None]:
    path = lock_path(site_dir)
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as exc:
        raise (from_os_error(exc, path.parent, "creating the lock file in") or exc) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "unknown"
            raise Busy(f"another build of {site_dir}/ is running (process {holder}); wait for it to finish, then "
                       "run `make site` again.") from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, str(os.getpid()).encode(), 0)
        yield
    finally:
        os.close(fd)  # closing the file releases the lock
