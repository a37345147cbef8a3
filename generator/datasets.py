"""Find the image sets on disk: one row per file, labels from folder names, nothing dropped silently."""

from __future__ import annotations

import hashlib
import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from .imaging import IMAGE_EXTENSIONS

CLASSES = ("cat", "dog")
_LABEL_FOLDERS = {"cat": "cat", "cats": "cat", "dog": "dog", "dogs": "dog"}


@dataclass(frozen=True)
class ScanRow:
    set: str
    file: str  # path inside the set folder, POSIX separators, as the user named it
    path: str  # absolute path to read
    label: str  # "cat", "dog" or "" (unlabeled)
    status: str  # "ok" or "skipped: <reason>"


def label_for(relative: str) -> str:
    """Label from the first folder under the set: cat/cats/dog/dogs (any case); otherwise unlabeled."""
    parts = relative.split("/")
    if len(parts) < 2:
        return ""
    return _LABEL_FOLDERS.get(unicodedata.normalize("NFC", parts[0]).lower(), "")


def scan_set(name: str, root: Path) -> list[ScanRow]:
    """Every file under `root`, sorted by name. Symlinks are followed inside the set; loops are refused.

    Hidden files and folders (name starting with '.') are listed as skipped, with what they were.
    """
    rows: list[ScanRow] = []
    root = Path(root)
    seen_dirs: set[str] = set()

    def skip(rel: str, path: str, reason: str) -> None:
        rows.append(ScanRow(name, rel, path, label_for(rel), f"skipped: {reason}"))

    def walk(folder: Path, prefix: str) -> None:
        real = os.path.realpath(folder)
        if real in seen_dirs:
            skip(prefix.rstrip("/") or ".", str(folder), "folder link loop (already visited); not followed")
            return
        seen_dirs.add(real)
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            skip(prefix.rstrip("/") or ".", str(folder), f"folder cannot be read ({exc.strerror})")
            return
        for entry in entries:
            rel = prefix + entry.name
            if entry.name.startswith("."):
                what = "folder" if entry.is_dir() else "file"
                skip(rel, entry.path, f"hidden {what}, ignored")
                continue
            try:
                is_dir = entry.is_dir()  # follows symlinks
                is_file = entry.is_file()
            except OSError as exc:
                skip(rel, entry.path, f"cannot be read ({exc.strerror})")
                continue
            if is_dir:
                walk(Path(entry.path), rel + "/")
            elif not is_file:
                reason = "broken symbolic link" if entry.is_symlink() else "not a regular file"
                skip(rel, entry.path, reason)
            elif Path(entry.name).suffix.lower() not in IMAGE_EXTENSIONS:
                exts = " ".join(sorted(IMAGE_EXTENSIONS))
                skip(rel, entry.path, f"unknown extension (expected one of {exts})")
            else:
                rows.append(ScanRow(name, rel, entry.path, label_for(rel), "ok"))

    if root.is_dir():
        walk(root, "")
    return rows


def discover_sets(data_dir: Path, train_set: str, eval_sets: tuple[str, ...]) -> list[str]:
    """The configured sets that exist plus any other visible folder in data/ (so none is ignored)."""
    data_dir = Path(data_dir)
    present = sorted(p.name for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if data_dir.is_dir() else []
    ordered = [train_set, *eval_sets]
    return [s for s in ordered if s in present] + [s for s in present if s not in ordered]


def scan(data_dir: Path, sets: list[str]) -> pd.DataFrame:
    """The image table: one row per file of every set (columns of ScanRow)."""
    rows = [r for s in sets for r in scan_set(s, Path(data_dir) / s)]
    return pd.DataFrame(rows, columns=["set", "file", "path", "label", "status"])


def file_sha256(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            h.update(block)
    return h.hexdigest()


def content_key(paths: list[str]) -> str:
    """A hash of the files' contents and their names, in the given order (the training data's identity)."""
    h = hashlib.sha256()
    for p in paths:
        h.update(p.encode("utf-8", "surrogateescape"))
        h.update(file_sha256(p).encode())
    return h.hexdigest()
