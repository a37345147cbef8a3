"""Find the image sets on disk: one row per file, labels from folder names, nothing dropped silently.

The classes are the training set's class folders (ImageFolder layout: train/<class>/..., names sorted), or the
names of a classes file in its order; cat and dog are the default (folders cats/ and dogs/). An evaluation
set's file is labeled when its first folder names one of the classes (any case), and unlabeled otherwise.
"""

from __future__ import annotations

import os
import unicodedata
from dataclasses import dataclass
from pathlib import Path

from generator.errors import UserError

DEFAULT_CLASSES = ("cat", "dog")  # the classes of the default data (folders cats/ and dogs/ of the public zip)
# Formats a photo may come in. Anything else is reported as skipped, never guessed at.
IMAGE_EXTENSIONS = frozenset({".jpg", ".jpeg", ".png", ".gif", ".webp", ".tif", ".tiff", ".bmp"})
# Folder names that mean a class of another name: the default layout's plural folders (any case).
_FOLDER_ALIASES = {"cats": "cat", "dogs": "dog"}


@dataclass(frozen=True)
class ScanRow:
    set: str
    file: str  # path inside the set folder, POSIX separators, as the user named it
    path: str  # absolute path to read
    label: str  # one of the classes, or "" (unlabeled)
    status: str  # "ok" or "skipped: <reason>"


@dataclass(frozen=True)
class Scan:
    """What the scan found: one row per file of every set, and the classes (in the order of the model's outputs)."""

    rows: list[ScanRow]
    classes: tuple[str, ...]


def class_of_folder(folder: str) -> str:
    """The class a folder name stands for: the name itself (NFC), or cat/dog for cats/dogs in any case."""
    name = unicodedata.normalize("NFC", folder)
    return _FOLDER_ALIASES.get(name.lower(), name)


def _key(name: str) -> str:
    return class_of_folder(name).casefold()


def label_for(relative: str, classes: tuple[str, ...] = DEFAULT_CLASSES) -> str:
    """Label from the first folder under the set when it names one of `classes` (any case, or its plural alias
    for cat and dog); otherwise unlabeled."""
    parts = relative.split("/")
    if len(parts) < 2:
        return ""
    by_key = {c.casefold(): c for c in classes}
    return by_key.get(_key(parts[0]), "")


def check_class_name(name: str, where: str) -> None:
    """A class name is used as a folder name, a column name (p_<class>) and a page's text: UserError unless it is
    a valid, visible folder name of printable characters."""
    bad = (not name or name != name.strip() or name.startswith(".") or any(c in name for c in "/\\\x00")
           or not name.isprintable() or name in (".", ".."))
    try:
        name.encode("utf-8")
    except UnicodeEncodeError:
        bad = True
    if bad:
        raise UserError(f"{where}: class name {name!r} is not a valid folder name (printable characters, no '/' or "
                        "'\\', not starting with '.' or a space); rename it.")


def read_classes_file(path: Path) -> tuple[str, ...]:
    """One class name per line, in the order of the model's outputs; blank lines and lines starting with '#' are
    left out. UserError naming the file for a file that cannot be read, a bad name or a name given twice."""
    try:
        text = Path(path).read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc)
        raise UserError(f"setting classes_file: cannot read {path} ({reason}); give a UTF-8 text file with one "
                        "class name per line.") from None
    names = [unicodedata.normalize("NFC", line.strip()) for line in text.splitlines()]
    names = [n for n in names if n and not n.startswith("#")]
    for n in names:
        check_class_name(n, str(path))
    seen: dict[str, str] = {}
    for n in names:
        if n.casefold() in seen:
            raise UserError(f"{path}: class {n!r} is named twice (as {seen[n.casefold()]!r} too); name each class "
                            "once.")
        seen[n.casefold()] = n
    return tuple(names)


def find_classes(train_root: Path, classes_file: Path | None = None) -> tuple[str, ...]:
    """The classes of the training set at `train_root`: its visible class folders (cats/ and dogs/ stand for cat and
    dog), sorted by name, or the names of `classes_file` in its order. At least two; a UserError of one sentence
    otherwise."""
    train_root = Path(train_root)
    folders: dict[str, str] = {}  # class key -> folder name
    try:
        entries = [e for e in os.scandir(train_root) if not e.name.startswith(".") and e.is_dir()]
    except OSError as exc:
        raise UserError(f"{train_root}: the training set cannot be read ({exc.strerror or exc}).") from None
    for e in sorted(entries, key=lambda e: e.name):
        key = _key(e.name)
        if key in folders:
            raise UserError(f"{train_root}: folders {folders[key]!r} and {e.name!r} name the same class; merge them "
                            "into one folder.")
        folders[key] = e.name
    if classes_file is not None and str(classes_file):
        classes = read_classes_file(Path(classes_file))
        unknown = sorted(set(folders) - {c.casefold() for c in classes})
        if unknown:
            raise UserError(f"{train_root}: {folders[unknown[0]]!r} is a class folder that {classes_file} does not "
                            "name; add the class to the file or move the folder out of the training set.")
        for c in classes:
            if c.casefold() not in folders:
                raise UserError(f"{train_root} has no folder for class {c!r} of {classes_file}; add "
                                f"{train_root}/{c}/ with its photos.")
    else:
        for name in folders.values():
            check_class_name(class_of_folder(name), str(train_root))
        classes = tuple(sorted(class_of_folder(n) for n in folders.values()))
    if len(classes) < 2:
        found = f"only one, {classes[0]!r}" if classes else "none"
        raise UserError(f"{train_root} needs a folder of photos for each class, at least two classes (found "
                        f"{found}); lay it out as {train_root}/<class>/<photo>.")
    return classes


def scan(data_dir: Path, sets: list[str], train_set: str, classes_file: Path | None = None) -> Scan:
    """The classes of the training set and one row per file of every set, labeled with them. A class whose
    folder holds no photo is a UserError."""
    classes = find_classes(Path(data_dir) / train_set, classes_file)
    rows = scan_rows(data_dir, sets, classes)
    found = {r.label for r in rows if r.set == train_set and r.status == "ok"}
    for c in classes:
        if c not in found:
            raise UserError(f"{Path(data_dir) / train_set} has an empty class folder: class {c!r} has no photo "
                            "(files with one of the extensions " + " ".join(sorted(IMAGE_EXTENSIONS)) + "); add "
                            "photos or remove the folder.")
    return Scan(rows, classes)


def scan_set(name: str, root: Path, classes: tuple[str, ...] = DEFAULT_CLASSES) -> list[ScanRow]:
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
        rows.append(ScanRow(name, rel, path, label_for(rel, classes), f"skipped: {reason}"))

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
                rows.append(ScanRow(name, rel, entry.path, label_for(rel, classes), "ok"))

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


def scan_rows(data_dir: Path, sets: list[str], classes: tuple[str, ...] = DEFAULT_CLASSES) -> list[ScanRow]:
    """One row per file of every set, in set order then name order."""
    return [r for s in sets for r in scan_set(s, Path(data_dir) / s, classes)]


def as_table(rows: list[ScanRow]):
    """The image table (a pandas DataFrame with the columns of ScanRow)."""
    from generator.frames import pd

    return pd.DataFrame(rows, columns=["set", "file", "path", "label", "status"])


