"""scan_set: one row per file under a set folder, whatever is there; nothing dropped, nothing counted twice.
Also the worker-side reading of files that cannot be read, and the missing-data message."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
from PIL import Image

from generator.data import scan as datasets
from generator.data.imaging import SkipImage, read_image_file
from generator.data.scan import as_table, discover_sets, label_for, scan_rows, scan_set
from generator.data.workers import decode_for_model, decode_for_report

ROOT = Path(__file__).resolve().parents[2]


def jpeg(path: Path, color=(200, 100, 50), size=(8, 6)) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.new("RGB", size, color).save(path, "JPEG")
    return path


def by_file(rows) -> dict[str, str]:
    return {r.file: r.status for r in rows}


def test_every_file_is_a_row(tmp_path):
    s = tmp_path / "set"
    jpeg(s / "cats" / "a.jpg")
    jpeg(s / "Dogs" / "deep" / "er" / "b.JPEG")
    jpeg(s / "c.png")
    (s / "notes.txt").write_text("hello")
    (s / "noext").write_bytes(b"\xff\xd8")
    (s / "empty.jpg").write_bytes(b"")
    (s / ".DS_Store").write_bytes(b"junk")
    jpeg(s / ".hidden" / "inside.jpg")
    jpeg(s / "cats" / ".thumb.jpg")
    (s / "emptydir").mkdir()
    rows = scan_set("mine", s)
    st = by_file(rows)
    assert len(rows) == len(st)  # no file twice
    assert st["cats/a.jpg"] == "ok"
    assert st["Dogs/deep/er/b.JPEG"] == "ok"
    assert st["c.png"] == "ok"
    assert st["empty.jpg"] == "ok"  # the decoder says why it is skipped (empty file)
    assert st["notes.txt"].startswith("skipped: unknown extension")
    assert st["noext"].startswith("skipped: unknown extension")
    assert st[".DS_Store"] == "skipped: hidden file, ignored"
    assert st[".hidden"] == "skipped: hidden folder, ignored"
    assert st["cats/.thumb.jpg"] == "skipped: hidden file, ignored"
    assert "emptydir" not in st and ".hidden/inside.jpg" not in st
    labels = {r.file: r.label for r in rows}
    assert labels["cats/a.jpg"] == "cat" and labels["Dogs/deep/er/b.JPEG"] == "dog" and labels["c.png"] == ""
    assert all(r.set == "mine" and Path(r.path).name == Path(r.file).name for r in rows)


def test_symlinks_followed_loops_refused(tmp_path):
    photos = tmp_path / "elsewhere"
    jpeg(photos / "p1.jpg")
    jpeg(photos / "p2.jpg")
    s = tmp_path / "set"
    (s / "cat").mkdir(parents=True)
    (s / "cat" / "link.jpg").symlink_to(photos / "p1.jpg")  # file link out of the set: followed
    (s / "linked").symlink_to(photos, target_is_directory=True)  # folder link out of the set: followed
    (s / "zagain").symlink_to(photos, target_is_directory=True)  # second link to the same folder
    (s / "cat" / "up").symlink_to(s, target_is_directory=True)  # loop back to the set
    (s / "cat" / "self").symlink_to(s / "cat", target_is_directory=True)  # loop to its own folder
    (s / "broken.jpg").symlink_to(tmp_path / "missing.jpg")
    (s / "selfloop.jpg").symlink_to(s / "selfloop.jpg")
    os.mkfifo(s / "pipe.jpg")
    st = by_file(scan_set("s", s))
    assert st["cat/link.jpg"] == "ok"
    assert st["linked/p1.jpg"] == "ok" and st["linked/p2.jpg"] == "ok"
    assert st["zagain"].startswith("skipped: folder link to 'linked', which is already scanned")
    assert st["cat/up"].startswith("skipped: folder link loop: leads back to the set folder itself")
    assert st["cat/self"].startswith("skipped: folder link loop: leads back to 'cat'")
    assert st["broken.jpg"] == "skipped: broken symbolic link"
    assert st["selfloop.jpg"].startswith("skipped: cannot be read (Too many levels of symbolic links")
    assert st["pipe.jpg"] == "skipped: not a regular file"
    assert len(st) == 9


def test_unreadable_folder(tmp_path, monkeypatch):
    """chmod 000 does not stop root, so the refusal is simulated where scan_set lists a folder."""
    s = tmp_path / "set"
    jpeg(s / "ok.jpg")
    jpeg(s / "locked" / "x.jpg")
    real_scandir = os.scandir

    def scandir(path):
        if Path(path).name == "locked":
            raise PermissionError(13, "Permission denied", str(path))
        return real_scandir(path)

    monkeypatch.setattr(datasets.os, "scandir", scandir)
    st = by_file(scan_set("s", s))
    assert st == {"locked": "skipped: folder cannot be read (Permission denied)", "ok.jpg": "ok"}


def test_unreadable_file(tmp_path, monkeypatch):
    """An unreadable photo becomes a skip in the workers (simulated: tests run as root), never an exception."""
    p = jpeg(tmp_path / "locked.jpg")
    real_open = open

    def fake_open(path, *a, **kw):
        if str(path) == str(p):
            raise PermissionError(13, "Permission denied", str(path))
        return real_open(path, *a, **kw)

    monkeypatch.setattr("builtins.open", fake_open)
    with pytest.raises(SkipImage, match=r"^cannot be read \(Permission denied\)$"):
        read_image_file(p, 10_000)
    arr, status = decode_for_model((str(p), 16, 10_000))
    assert arr is None and status == "skipped: cannot be read (Permission denied)"
    job = {"path": str(p), "asset_dir": str(tmp_path / "a"), "input_size": 16, "display_size": 16,
           "thumb_size": 8, "strip_size": 8, "max_pixels": 10_000}
    assert decode_for_report(job) == {"status": "skipped: cannot be read (Permission denied)"}


def test_worker_skips(tmp_path):
    """What the workers report for files gone, turned into folders, too big on disk, empty or damaged."""
    jpeg(tmp_path / "fine.jpg")
    (tmp_path / "dir.jpg").mkdir()
    (tmp_path / "empty.jpg").write_bytes(b"")
    (tmp_path / "text.jpg").write_text("not a photo")
    (tmp_path / "huge.bmp").write_bytes(b"BM" + b"\0" * (17 << 20))
    out = {n: decode_for_model((str(tmp_path / n), 16, 100))[1]
           for n in ("fine.jpg", "gone.jpg", "dir.jpg", "empty.jpg", "text.jpg", "huge.bmp")}
    assert out["fine.jpg"] == "ok"
    assert out["gone.jpg"] == "skipped: cannot be read (No such file or directory)"
    assert out["dir.jpg"] == "skipped: cannot be read (Is a directory)"
    assert out["empty.jpg"] == "skipped: empty file (0 bytes)"
    assert out["text.jpg"].startswith("skipped: not a readable image")
    assert out["huge.bmp"].startswith("skipped: file too large")


def test_odd_names_and_labels(tmp_path):
    s = tmp_path / "set"
    names = ["<img src=x onerror=alert(1)>.jpg", "a&b \"q\" 'x' #?%.jpg", "\u202egpj.exe.jpg",
             "caf\u00e9.jpg", "cafe\u0301.jpg", "Case.jpg", "case.jpg"]
    for n in names:
        jpeg(s / n)
    bad = os.fsencode(s) + b"/bad-\xff\xfe.jpg"
    with open(bad, "wb") as fh:  # a name that is not valid UTF-8
        Image.new("RGB", (4, 4)).save(fh, "JPEG")
    rows = scan_set("s", s)
    files = {r.file for r in rows}
    assert set(names) <= files and len(rows) == len(names) + 1
    assert all(r.status == "ok" for r in rows)
    assert label_for("Cats/x.jpg") == "cat" and label_for("DOGS/x.jpg") == "dog"
    assert label_for("cat.jpg") == "" and label_for("kittens/x.jpg") == ""


def test_discover_and_scan_table(tmp_path):
    data = tmp_path / "data"
    jpeg(data / "train" / "cats" / "a.jpg")
    jpeg(data / "extra" / "b.jpg")
    (data / ".cache").mkdir()
    (data / "README.md").write_text("x")
    (data / "emptyset").mkdir()
    sets = discover_sets(data, "train", ("test", "personal"))
    assert sets == ["train", "emptyset", "extra"]
    table = as_table(scan_rows(data, sets))
    assert list(table.columns) == ["set", "file", "path", "label", "status"]
    assert len(table) == 2 and set(table["set"]) == {"train", "extra"}
    assert discover_sets(tmp_path / "nowhere", "train", ()) == []


def test_missing_data_gives_the_command(tmp_path):
    empty = tmp_path / "data"
    empty.mkdir()
    proc = subprocess.run(
        [sys.executable, "-m", "generator", "site", "--quiet", "--no-download", "--data-dir", str(empty),
         "--site-dir", str(tmp_path / "site"), "--weights-dir", str(tmp_path / "w"),
         "--cache-dir", str(tmp_path / "c")],
        cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error: ") and "SOURCE=" in lines[0] and "make site" in lines[0]
    assert "DOWNLOAD=" not in proc.stderr and "../shared" not in proc.stderr
    assert not (tmp_path / "site").exists()


# ---- the classes: the training set's class folders, or a classes file ------------------------------------------


def breed_names(k: int) -> list[str]:
    """k class names of mixed case and spelling, like the Oxford breeds (Abyssinian ... yorkshire_terrier)."""
    return [f"{'Breed' if i % 2 else 'breed'}_{i:02d}" for i in range(k)]


@pytest.mark.parametrize("k", [2, 3, 37])
def test_classes_are_the_training_folders_sorted(tmp_path, k):
    data = tmp_path / "data"
    names = breed_names(k)
    for n in reversed(names):  # made in another order than sorted
        jpeg(data / "train" / n / "a.jpg")
        jpeg(data / "test" / n.upper() / "b.jpg")  # an evaluation folder in another case names the same class
    jpeg(data / "test" / "elsewhere" / "c.jpg")
    jpeg(data / "test" / "d.jpg")
    jpeg(data / "unrelated" / "e.jpg")
    found = datasets.scan(data, ["train", "test", "unrelated"], "train")
    assert found.classes == tuple(sorted(names)) and len(found.classes) == k
    labels = {(r.set, r.file): r.label for r in found.rows}
    for n in names:
        assert labels["train", f"{n}/a.jpg"] == n and labels["test", f"{n.upper()}/b.jpg"] == n
    assert labels["test", "elsewhere/c.jpg"] == labels["test", "d.jpg"] == labels["unrelated", "e.jpg"] == ""


def test_default_folders_give_cat_and_dog(tmp_path):
    data = tmp_path / "data"
    jpeg(data / "train" / "dogs" / "a.jpg")
    jpeg(data / "train" / "cats" / "b.jpg")
    jpeg(data / "personal" / "Cat" / "c.jpg")
    found = datasets.scan(data, ["train", "personal"], "train")
    assert found.classes == datasets.DEFAULT_CLASSES == ("cat", "dog")
    assert [r.label for r in found.rows] == ["cat", "dog", "cat"]


def test_a_classes_file_sets_names_and_order(tmp_path):
    data = tmp_path / "data"
    for n in ("zebra", "apple", "Mango"):
        jpeg(data / "train" / n / "a.jpg")
    listed = tmp_path / "classes.txt"
    listed.write_text("# the model's outputs, in order\nzebra\n\nmango\napple\n", encoding="utf-8")
    found = datasets.scan(data, ["train"], "train", listed)
    assert found.classes == ("zebra", "mango", "apple")
    assert {r.file: r.label for r in found.rows} == {"zebra/a.jpg": "zebra", "Mango/a.jpg": "mango",
                                                     "apple/a.jpg": "apple"}


def one_sentence(exc: pytest.ExceptionInfo) -> str:
    text = str(exc.value)
    assert "\n" not in text and text.endswith(".")
    return text


def test_bad_class_layouts_are_one_sentence(tmp_path):
    data = tmp_path / "data"
    jpeg(data / "train" / "only" / "a.jpg")
    with pytest.raises(datasets.UserError) as exc:  # one class folder
        datasets.scan(data, ["train"], "train")
    assert "only one, 'only'" in one_sentence(exc)
    (data / "train" / "empty").mkdir()
    (data / "train" / "empty" / "notes.txt").write_text("no photo here")
    with pytest.raises(datasets.UserError) as exc:  # an empty class folder
        datasets.scan(data, ["train"], "train")
    assert "class 'empty' has no photo" in one_sentence(exc)
    jpeg(data / "train" / "Only" / "b.jpg")  # two folders, one class
    with pytest.raises(datasets.UserError) as exc:
        datasets.scan(data, ["train"], "train")
    assert "name the same class" in one_sentence(exc)


def test_bad_class_names_are_one_sentence(tmp_path):
    data = tmp_path / "data"
    jpeg(data / "train" / "a" / "x.jpg")
    jpeg(data / "train" / "b\u202ec" / "x.jpg")  # a right-to-left override: not a printable name
    with pytest.raises(datasets.UserError) as exc:
        datasets.scan(data, ["train"], "train")
    assert "is not a valid folder name" in one_sentence(exc)
    (data / "train" / "b\u202ec" / "x.jpg").unlink()
    (data / "train" / "b\u202ec").rename(data / "train" / "b")
    listed = tmp_path / "classes.txt"
    for text, says in (("a\nb/c\n", "is not a valid folder name"), ("a\nA\n", "is named twice"),
                       ("a\nb\nz\n", "has no folder for class 'z'"), ("a\n", "is a class folder that")):
        listed.write_text(text, encoding="utf-8")
        with pytest.raises(datasets.UserError) as exc:
            datasets.find_classes(data / "train", listed)
        assert says in one_sentence(exc), text
