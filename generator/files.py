"""One way to write a file: into a temporary sibling, then renamed over the target.

A killed run, a full disk or a read-only folder therefore never leaves half a file under the real name, and
the error a user can fix (disk full, folder not writable) becomes one sentence naming the file.
"""

from __future__ import annotations

import hashlib
import io
import os
import re
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import TYPE_CHECKING, Any, BinaryIO

from generator.errors import from_os_error

if TYPE_CHECKING:  # numpy is imported where arrays are read or written: the nothing-changed rerun never does
    import numpy as np


def write_with(path: Path | str, write: Callable[[BinaryIO], Any], durable: bool = False,
               mkdir: bool = True) -> Path:
    """Call write(file) on a temporary sibling of `path`, then rename it to `path`.

    durable: fsync before the rename (for files that must survive a power cut, such as checkpoints).
    mkdir: create the folder first (callers that write many files into known folders skip it).
    """
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        if mkdir:
            path.parent.mkdir(parents=True, exist_ok=True)
        with open(tmp, "wb") as fh:
            write(fh)
            if durable:
                fh.flush()
                os.fsync(fh.fileno())
        os.replace(tmp, path)
    except OSError as exc:
        _remove(tmp)
        user = from_os_error(exc, path, "writing")
        if user is not None:
            raise user from None
        raise
    except BaseException:
        _remove(tmp)
        raise
    return path


def write_bytes(path: Path | str, data: bytes, durable: bool = False, mkdir: bool = True) -> Path:
    return write_with(path, lambda fh: fh.write(data), durable, mkdir)


def write_text(path: Path | str, text: str, mkdir: bool = True) -> Path:
    return write_bytes(path, text.encode("utf-8"), mkdir=mkdir)


def save_npz(path: Path | str, arrays: dict[str, np.ndarray]) -> Path:
    """Arrays to an uncompressed .npz (fast to write and read; the maps are small)."""
    import numpy as np

    buf = io.BytesIO()
    np.savez(buf, **arrays)
    return write_bytes(path, buf.getvalue())


def load_npz(path: Path | str) -> dict[str, np.ndarray] | None:
    """The arrays of an .npz, or None when it is missing or damaged (a cache entry is recomputed, never
    trusted: truncated, bad CRC or not an npz at all)."""
    import numpy as np

    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception:
        return None


def _remove(path: Path) -> None:
    try:
        path.unlink()
    except OSError:
        pass


def keep_newest(folder: Path | str, name: re.Pattern[str], keep: int, in_use: Iterable[Path | str] = ()) -> list[Path]:
    """Delete all but the `keep` most recently used files of `folder` whose whole name matches `name` (the
    names the caller's own cache files have: nothing else there is touched, nor any file in use). A file's use
    is its modification time: callers touch a cache file when they read it (touch). Returns what was deleted.

    For caches with one file per code and settings key (page data, result bundles): without it every code or
    settings change would leave another file of several MB behind, for good."""
    folder = Path(folder)
    spared = {Path(p).resolve() for p in in_use}
    try:
        mine = [p for p in folder.iterdir() if name.fullmatch(p.name) and p.is_file() and not p.is_symlink()]
    except OSError:
        return []

    def used(p: Path) -> float:
        try:
            return p.stat().st_mtime
        except OSError:
            return float("inf")

    mine.sort(key=used, reverse=True)
    gone = []
    for p in mine[keep:]:
        if p.resolve() not in spared:
            _remove(p)
            gone.append(p)
    return gone


def touch(path: Path | str) -> None:
    """Mark a cache file as used now (keep_newest keeps the most recently used); a missing file is left so."""
    try:
        os.utime(path)
    except OSError:
        pass


def file_sha256(path: str | Path) -> str:
    """Hex sha256 of a file's bytes, read 1 MiB at a time."""
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()
