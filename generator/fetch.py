"""`make data`: bring the image sets into data/.

- train/test from the public cats_and_dogs_filtered.zip (downloaded only when asked, `--download`), or from a
  local folder or .zip of the same layout (train/{cats,dogs}, validation/{cats,dogs}).
- personal/unrelated from local folders, or by default from the photos that scikit-image ships.

Local folders are linked, not copied: the photos stay where they are and are never duplicated.
"""

from __future__ import annotations

import os
import shutil
import urllib.request
import zipfile
from pathlib import Path

PUBLIC_ZIP_URL = "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip"
SKIMAGE_PERSONAL = ("chelsea.png",)
SKIMAGE_UNRELATED = (
    "astronaut.png", "camera.png", "coffee.png", "rocket.jpg", "coins.png", "hubble_deep_field.jpg",
    "retina.jpg", "clock_motion.png", "brick.png", "grass.png", "gravel.png", "moon.png", "text.png",
)
LAYOUT = {"train": "train", "test": "validation"}


class DataError(ValueError):
    """The source of a set is missing or not of the expected layout; the message names it and the fix."""


def _clear(target: Path) -> None:
    """Remove what `make data` put at target (a link, or a folder of links); never a user's own files."""
    if target.is_symlink():
        target.unlink()
    elif target.is_dir():
        own = [p for p in target.rglob("*") if not p.is_dir() and not p.is_symlink()]
        if own:
            raise DataError(f"{target} holds files of its own (e.g. {own[0].name}); move them away or delete "
                            f"{target} before importing another folder there.")
        shutil.rmtree(target)
    elif target.exists():
        raise DataError(f"{target} is a file; delete it first.")


def _replace_with_link(target: Path, source: Path) -> None:
    _clear(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(source.resolve(), target, target_is_directory=source.is_dir())


def _archive_root(folder: Path) -> Path:
    """The folder that holds train/ and validation/ (an archive may wrap them in one more folder)."""
    if (folder / "train").is_dir() and (folder / "validation").is_dir():
        return folder
    subs = [p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__"))]
    for sub in subs:
        if (sub / "train").is_dir() and (sub / "validation").is_dir():
            return sub
    raise DataError(
        f"{folder}: expected train/ and validation/ folders (each with cats/ and dogs/), as in "
        "cats_and_dogs_filtered.zip; point SOURCE at such a folder or zip."
    )


def _unzip(zip_path: Path, dest: Path) -> Path:
    """Extract safely (no member may land outside dest) and return the layout root."""
    try:
        zf = zipfile.ZipFile(zip_path)
    except (OSError, zipfile.BadZipFile) as exc:
        raise DataError(f"{zip_path}: not a readable zip file ({exc}); download it again.") from exc
    dest.mkdir(parents=True, exist_ok=True)
    root = dest.resolve()
    with zf:
        for member in zf.infolist():
            out = (dest / member.filename).resolve()
            if not out.is_relative_to(root):
                raise DataError(f"{zip_path}: member {member.filename!r} would unpack outside {dest}; refused.")
        zf.extractall(dest)
    return _archive_root(dest)


def import_source(source: Path, data_dir: Path) -> list[str]:
    """train/ and test/ from a local folder (linked) or zip (extracted into data/.source/)."""
    source = Path(source)
    if not source.exists():
        raise DataError(f"{source}: no such folder or zip; give SOURCE=<folder or .zip of cats_and_dogs_filtered>.")
    if source.is_file():
        root = _unzip(source, Path(data_dir) / ".source")
    else:
        root = _archive_root(source)
    done = []
    for name, sub in LAYOUT.items():
        _replace_with_link(Path(data_dir) / name, root / sub)
        done.append(f"{name} <- {root / sub}")
    return done


def download_public_zip(data_dir: Path) -> Path:
    """Fetch the public archive (needs a network). Never called unless asked for."""
    target = Path(data_dir) / ".source" / "cats_and_dogs_filtered.zip"
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_suffix(".part")
    with urllib.request.urlopen(PUBLIC_ZIP_URL, timeout=60) as resp, open(tmp, "wb") as out:
        shutil.copyfileobj(resp, out)
    os.replace(tmp, target)
    return target


def skimage_data_dir() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data"


def import_folder(name: str, folder: Path | None, data_dir: Path, defaults: tuple[str, ...],
                  default_sub: str = "") -> str:
    """Link a local folder as set `name`, or build the set from scikit-image's bundled photos."""
    target = Path(data_dir) / name
    if folder is not None:
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(f"{folder}: no such folder for the {name} set.")
        _replace_with_link(target, folder)
        return f"{name} <- {folder}"
    _clear(target)
    dest = target / default_sub if default_sub else target
    dest.mkdir(parents=True, exist_ok=True)
    src = skimage_data_dir()
    for f in defaults:
        if (src / f).is_file():
            os.symlink(src / f, dest / f"skimage_{f}")
    return f"{name} <- scikit-image bundled photos ({len(defaults)})"


def have_set(data_dir: Path, name: str) -> bool:
    p = Path(data_dir) / name
    return p.is_dir() and any(p.iterdir())


def import_all(data_dir: Path, source: Path | None, personal: Path | None, unrelated: Path | None,
               download: bool = False, only_missing: bool = False) -> list[str]:
    """What `make data` does. With only_missing, sets already present are left alone (for `make site`)."""
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    done: list[str] = []
    need_main = not (only_missing and have_set(data_dir, "train") and have_set(data_dir, "test"))
    if source is not None:
        done += import_source(source, data_dir)
    elif need_main:
        if not download:
            raise DataError(
                f"{data_dir / 'train'} and {data_dir / 'test'} are missing: run `make data SOURCE=<folder or zip of "
                "cats_and_dogs_filtered>` (here: SOURCE=../shared/datasets/cats_and_dogs_filtered), or "
                "`make data DOWNLOAD=1` where a network exists."
            )
        done += import_source(download_public_zip(data_dir), data_dir)
    if personal is not None or not (only_missing and have_set(data_dir, "personal")):
        done.append(import_folder("personal", personal, data_dir, SKIMAGE_PERSONAL, default_sub="cat"))
    if unrelated is not None or not (only_missing and have_set(data_dir, "unrelated")):
        done.append(import_folder("unrelated", unrelated, data_dir, SKIMAGE_UNRELATED))
    return done
