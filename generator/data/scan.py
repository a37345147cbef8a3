"""Find the image sets on disk: one row per file, labels from folder names, nothing dropped silently."""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

CLASSES = ("cat", "dog")
# Formats a photo may come in. Anything else is reported as skipped, never guessed at.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".tif", ".tiff", ".bmp"})
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
    """Every file under `root`, sorted by name, one row each: status "ok" or "skipped: <reason>".

    Symbolic links are followed (the sets themselves are often links to where the photos live); a folder
    link that leads back to a folder being scanned (a loop), or to one already scanned, is listed as skipped
    and not entered, so a scan always ends and no file is counted twice. Hidden files and folders (name
    starting with '.') are listed as skipped ("ignored"), with what they were; a hidden folder's contents
    are not opened.
    """
    rows: list[ScanRow] = []
    root = Path(root)
    scanned: dict[str, str] = {}  # real path of each folder entered -> its path inside the set

    def skip(rel: str, path: str, reason: str) -> None:
        rows.append(ScanRow(name, rel, path, label_for(rel), f"skipped: {reason}"))

    def shown(rel: str) -> str:
        return f"'{rel}'" if rel else "the set folder itself"

    def walk(folder: Path, prefix: str, ancestors: frozenset[str]) -> None:
        rel_here = prefix.rstrip("/")
        real = os.path.realpath(folder)
        if real in ancestors:
            skip(rel_here, str(folder), f"folder link loop: leads back to {shown(scanned[real])}; not followed")
            return
        if real in scanned:
            skip(rel_here, str(folder),
                 f"folder link to {shown(scanned[real])}, which is already scanned; not counted twice")
            return
        scanned[real] = rel_here
        try:
            entries = sorted(os.scandir(folder), key=lambda e: e.name)
        except OSError as exc:
            skip(rel_here or ".", str(folder), f"folder cannot be read ({exc.strerror or exc})")
            return
        inside = ancestors | {real}
        for entry in entries:
            rel = prefix + entry.name
            try:
                is_dir = entry.is_dir()  # follows symlinks
                is_file = entry.is_file()
            except OSError as exc:  # e.g. a link to itself (too many levels of symbolic links)
                skip(rel, entry.path, f"cannot be read ({exc.strerror or exc})")
                continue
            if entry.name.startswith("."):
                skip(rel, entry.path, f"hidden {'folder' if is_dir else 'file'}, ignored")
            elif is_dir:
                walk(Path(entry.path), rel + "/", inside)
            elif not is_file:
                reason = "broken symbolic link" if entry.is_symlink() else "not a regular file"
                skip(rel, entry.path, reason)
            elif Path(entry.name).suffix.lower() not in IMAGE_EXTENSIONS:
                exts = " ".join(sorted(IMAGE_EXTENSIONS))
                skip(rel, entry.path, f"unknown extension (expected one of {exts})")
            else:
                rows.append(ScanRow(name, rel, entry.path, label_for(rel), "ok"))

    if root.is_dir():
        walk(root, "", frozenset())
    return rows


def discover_sets(data_dir: Path, train_set: str, eval_sets: tuple[str, ...]) -> list[str]:
    """The configured sets that exist plus any other visible folder in data/ (so none is ignored)."""
    data_dir = Path(data_dir)
    present = sorted(p.name for p in data_dir.iterdir() if p.is_dir() and not p.name.startswith(".")) \
        if data_dir.is_dir() else []
    ordered = [train_set, *eval_sets]
    return [s for s in ordered if s in present] + [s for s in present if s not in ordered]


def scan_rows(data_dir: Path, sets: list[str]) -> list[ScanRow]:
    """One row per file of every set, in set order then name order."""
    return [r for s in sets for r in scan_set(s, Path(data_dir) / s)]


def as_table(rows: list[ScanRow]):
    """The image table (a pandas DataFrame with the columns of ScanRow)."""
    from generator.frames import pd

    return pd.DataFrame(rows, columns=["set", "file", "path", "label", "status"])


