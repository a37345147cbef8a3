"""`make data`: local folders are linked, zips unpacked safely, defaults come from scikit-image."""

from __future__ import annotations

import zipfile
from pathlib import Path

import pytest

from generator import fetch


def layout(root: Path) -> Path:
    for split in ("train", "validation"):
        for c in ("cats", "dogs"):
            (root / split / c).mkdir(parents=True)
            (root / split / c / f"{c}.1.jpg").write_bytes(b"x")
    return root


def test_local_folder_is_linked_not_copied(tmp_path):
    src = layout(tmp_path / "src")
    data = tmp_path / "data"
    fetch.import_all(data, src, None, None)
    assert (data / "train").is_symlink() and (data / "test").resolve() == (src / "validation").resolve()
    assert (data / "train" / "cats" / "cats.1.jpg").read_bytes() == b"x"
    # defaults: scikit-image's bundled photos
    assert (data / "personal" / "cat" / "skimage_chelsea.png").is_file()
    assert len(list((data / "unrelated").iterdir())) >= 10


def test_zip_source_is_unpacked(tmp_path):
    src = layout(tmp_path / "cats_and_dogs_filtered")
    zpath = tmp_path / "c.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        for f in src.rglob("*.jpg"):
            z.write(f, f.relative_to(tmp_path).as_posix())
    data = tmp_path / "data"
    fetch.import_all(data, zpath, None, None)
    assert (data / "test" / "dogs" / "dogs.1.jpg").is_file()


def test_zip_slip_is_refused(tmp_path):
    zpath = tmp_path / "evil.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("../../outside.txt", "x")
    with pytest.raises(fetch.DataError, match="outside"):
        fetch.import_all(tmp_path / "data", zpath, None, None)
    assert not (tmp_path / "outside.txt").exists()


def test_missing_data_names_the_command(tmp_path):
    with pytest.raises(fetch.DataError, match=r"make data SOURCE="):
        fetch.import_all(tmp_path / "data", None, None, None, only_missing=True)


def test_wrong_layout_says_what_is_expected(tmp_path):
    (tmp_path / "flat").mkdir()
    with pytest.raises(fetch.DataError, match="train/ and validation/"):
        fetch.import_all(tmp_path / "data", tmp_path / "flat", None, None)


def test_users_own_files_are_never_deleted(tmp_path):
    data = tmp_path / "data"
    own = data / "personal" / "cat" / "mine.jpg"
    own.parent.mkdir(parents=True)
    own.write_bytes(b"precious")
    other = tmp_path / "other"
    other.mkdir()
    with pytest.raises(fetch.DataError, match="holds files of its own"):
        fetch.import_folder("personal", other, data, ())
    assert own.read_bytes() == b"precious"
