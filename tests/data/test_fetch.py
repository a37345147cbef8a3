"""`make data`: local folders are linked, zips unpacked safely, defaults come from scikit-image, and the public
archive is downloaded (with resume) and checked before data/ changes, from a local test server."""

from __future__ import annotations

import errno
import io
import os
import socket
import zipfile
from pathlib import Path

import pytest
from conftest import CATS_DOGS, need_datasets
from fixtures_http import Behaviour, serving

from generator.data import fetch

SMALL_COUNTS = {"train/cats": 3, "train/dogs": 3, "validation/cats": 2, "validation/dogs": 2}


def layout(root: Path) -> Path:
    for split in ("train", "validation"):
        for c in ("cats", "dogs"):
            (root / split / c).mkdir(parents=True)
            (root / split / c / f"{c}.1.jpg").write_bytes(b"x")
    return root


def one_sentence(message: str) -> str:
    """The message of a user-facing DataError: one sentence, never a path of our own machines."""
    assert message.endswith(".") and ". " not in message, message
    assert "../shared" not in message and "DOWNLOAD=" not in message, message
    return message


def half_imported(data: Path) -> bool:
    return (data / "train").exists() or (data / "test").exists() or any((data / ".source").glob(".unpack-*"))


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    """Tests wait on 127.0.0.1 only: short timeouts, no pause between tries."""
    monkeypatch.setattr(fetch, "TIMEOUT_S", 2.0)
    monkeypatch.setattr(fetch, "RETRY_PAUSE_S", 0.0)


def zip_bytes(counts: dict[str, int], prefix: str = "cats_and_dogs_filtered/") -> bytes:
    """A stored (uncompressed) zip of the public layout with counts[key] real photos in each class folder."""
    need_datasets()
    buf = io.BytesIO()
    with zipfile.ZipFile(buf, "w", zipfile.ZIP_STORED) as z:
        for key, n in counts.items():
            for photo in sorted((CATS_DOGS / key).iterdir())[:n]:
                z.write(photo, f"{prefix}{key}/{photo.name}")
    return buf.getvalue()


@pytest.fixture(scope="module")
def small_zip() -> bytes:
    return zip_bytes(SMALL_COUNTS)


def bad_crc(body: bytes) -> bytes:
    """body with one byte flipped inside the data of its first member (its CRC no longer matches)."""
    info = zipfile.ZipFile(io.BytesIO(body)).infolist()[0]
    off = info.header_offset
    name_len = int.from_bytes(body[off + 26:off + 28], "little")
    extra_len = int.from_bytes(body[off + 28:off + 30], "little")
    at = off + 30 + name_len + extra_len + info.file_size // 2
    return body[:at] + bytes([body[at] ^ 0xFF]) + body[at + 1:]


def download_all(data: Path, url: str, **kw) -> list[str]:
    kw = {"expected_counts": SMALL_COUNTS, "progress": False, "log": lambda _m: None, **kw}
    return fetch.import_all(data, None, None, None, url=url, **kw)


def assert_complete(data: Path, counts: dict[str, int] = SMALL_COUNTS) -> None:
    for key, n in counts.items():
        split, c = key.split("/")
        folder = data / ("train" if split == "train" else "test") / c
        assert len(list(folder.iterdir())) == n, folder
    assert not list((data / ".source").glob("*.part"))
    assert (data / ".source" / "cats_and_dogs_filtered.zip").is_file()
    assert not list((data / ".source").glob(".unpack-*")) and not list((data / ".source").glob(".old-*"))


# --- local sources --------------------------------------------------------------------------------------------


def test_a_named_data_folder_gets_only_what_is_asked_for(tmp_path):
    """defaults=False (a data folder the user names): nothing downloaded, no scikit-image sets; a set asked for
    is linked, and the folder's own sets are left alone."""
    data = tmp_path / "mine"
    for c in ("a", "b", "c"):
        (data / "train" / c).mkdir(parents=True)
        (data / "train" / c / "x.jpg").write_bytes(b"x")
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    assert fetch.import_all(data, None, None, None, only_missing=True, download=False, defaults=False) == []
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before
    own = tmp_path / "own"
    (own / "a").mkdir(parents=True)
    done = fetch.import_all(data, None, own, None, only_missing=True, download=False, defaults=False)
    assert done == [f"personal <- {own}"] and (data / "personal").resolve() == own.resolve()
    assert not (data / "unrelated").exists() and not (data / "test").exists()


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
    assert not list((data / ".source").glob(".unpack-*"))


def test_zip_source_imported_again_replaces_the_first_copy(tmp_path):
    data = tmp_path / "data"
    for content in (b"old", b"new"):
        zpath = tmp_path / "c.zip"
        with zipfile.ZipFile(zpath, "w") as z:
            for key in fetch.CLASS_DIRS:
                z.writestr(f"cats_and_dogs_filtered/{key}/1.jpg", content)
        fetch.import_all(data, zpath, None, None)
    assert (data / "test" / "dogs" / "1.jpg").read_bytes() == b"new"
    assert [p.name for p in (data / ".source").iterdir()] == ["c"]


def test_corrupt_zip_source_is_named(tmp_path):
    zpath = tmp_path / "mine.zip"
    zpath.write_bytes(b"not a zip")
    with pytest.raises(fetch.DataError) as err:
        fetch.import_all(tmp_path / "data", zpath, None, None)
    msg = one_sentence(str(err.value))
    assert msg.startswith(f"{zpath} is not a readable zip file") and "SOURCE=" in msg
    assert not half_imported(tmp_path / "data")


def test_zip_slip_is_refused(tmp_path):
    zpath = tmp_path / "evil.zip"
    with zipfile.ZipFile(zpath, "w") as z:
        z.writestr("../../outside.txt", "x")
    with pytest.raises(fetch.DataError, match="outside") as err:
        fetch.import_all(tmp_path / "data", zpath, None, None)
    one_sentence(str(err.value))
    assert not (tmp_path / "outside.txt").exists() and not half_imported(tmp_path / "data")


def test_offline_without_data_names_both_ways(tmp_path):
    with pytest.raises(fetch.DataError) as err:
        fetch.import_all(tmp_path / "data", None, None, None, download=False, only_missing=True)
    msg = one_sentence(str(err.value))
    assert "`make site`" in msg and "network" in msg and "SOURCE=<folder or .zip" in msg
    assert "train/{cats,dogs}, validation/{cats,dogs}" in msg
    assert not half_imported(tmp_path / "data")


def test_wrong_layout_says_what_is_expected(tmp_path):
    (tmp_path / "flat").mkdir()
    with pytest.raises(fetch.DataError, match="train/ and validation/") as err:
        fetch.import_all(tmp_path / "data", tmp_path / "flat", None, None)
    one_sentence(str(err.value))


def test_empty_class_folder_is_named(tmp_path):
    src = layout(tmp_path / "src")
    (src / "validation" / "dogs" / "dogs.1.jpg").unlink()
    with pytest.raises(fetch.DataError, match="validation/dogs missing or empty"):
        fetch.import_all(tmp_path / "data", src, None, None)
    assert not half_imported(tmp_path / "data")


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


def test_own_files_in_test_stop_the_import_before_train_changes(tmp_path):
    data = tmp_path / "data"
    (data / "test").mkdir(parents=True)
    (data / "test" / "mine.jpg").write_bytes(b"precious")
    with pytest.raises(fetch.DataError, match="holds files of its own"):
        fetch.import_all(data, layout(tmp_path / "src"), None, None)
    assert not (data / "train").exists() and (data / "test" / "mine.jpg").read_bytes() == b"precious"


# --- download from a local server -------------------------------------------------------------------------------


def test_download_imports_a_checked_archive(tmp_path, small_zip):
    b = Behaviour(body=small_zip)
    with serving(b) as base:
        lines = download_all(tmp_path / "data", f"{base}/cats_and_dogs_filtered.zip")
    assert_complete(tmp_path / "data")
    assert "Range" not in b.requests[0] and len(b.requests) == 1
    assert lines[0].startswith("downloaded http://127.0.0.1:")


def test_download_progress_shows_bytes(tmp_path, small_zip, capsys):
    with serving(Behaviour(body=small_zip)) as base:
        download_all(tmp_path / "data", f"{base}/cats_and_dogs_filtered.zip", progress=True)
    err = capsys.readouterr().err
    size = f"{len(small_zip) / 1024:.0f}k"
    assert "cats_and_dogs_filtered.zip: 100%" in err and f"/{size}" in err and "B/s" in err, err


def test_cut_download_resumes_with_range(tmp_path, small_zip):
    b = Behaviour(body=small_zip, cuts=[50_000])
    with serving(b) as base:
        download_all(tmp_path / "data", f"{base}/cats_and_dogs_filtered.zip")
    assert [r.get("Range") for r in b.requests] == [None, "bytes=50000-"]
    assert_complete(tmp_path / "data")


def test_stalled_download_times_out_and_resumes(tmp_path, small_zip, monkeypatch):
    monkeypatch.setattr(fetch, "TIMEOUT_S", 0.3)
    b = Behaviour(body=small_zip, stalls=[30_000])
    with serving(b) as base:
        download_all(tmp_path / "data", f"{base}/cats_and_dogs_filtered.zip")
    assert b.requests[1].get("Range") == "bytes=30000-"
    assert_complete(tmp_path / "data")


def test_partial_file_of_an_earlier_run_is_resumed(tmp_path, small_zip):
    part = tmp_path / "data" / ".source" / "cats_and_dogs_filtered.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(small_zip[:12_345])
    b = Behaviour(body=small_zip)
    with serving(b) as base:
        download_all(tmp_path / "data", f"{base}/cats_and_dogs_filtered.zip")
    assert [r.get("Range") for r in b.requests] == ["bytes=12345-"]
    assert_complete(tmp_path / "data")


def test_server_ignoring_range_restarts_from_zero(tmp_path, small_zip):
    part = tmp_path / "data" / ".source" / "cats_and_dogs_filtered.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(b"\0" * 1000)  # appended to, these bytes would break the archive
    b = Behaviour(body=small_zip, honor_range=False)
    with serving(b) as base:
        download_all(tmp_path / "data", f"{base}/cats_and_dogs_filtered.zip")
    assert b.requests[0].get("Range") == "bytes=1000-"
    assert_complete(tmp_path / "data")


def test_complete_part_answered_416_is_checked_not_fetched_again(tmp_path, small_zip):
    part = tmp_path / "data" / ".source" / "cats_and_dogs_filtered.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(small_zip)
    b = Behaviour(body=small_zip)
    with serving(b) as base:
        download_all(tmp_path / "data", f"{base}/cats_and_dogs_filtered.zip")
    assert len(b.requests) == 1 and b.requests[0].get("Range") == f"bytes={len(small_zip)}-"
    assert_complete(tmp_path / "data")


def test_part_longer_than_the_file_is_restarted(tmp_path, small_zip):
    part = tmp_path / "data" / ".source" / "cats_and_dogs_filtered.zip.part"
    part.parent.mkdir(parents=True)
    part.write_bytes(small_zip + b"junk")
    b = Behaviour(body=small_zip)
    with serving(b) as base:
        download_all(tmp_path / "data", f"{base}/cats_and_dogs_filtered.zip")
    assert [r.get("Range") for r in b.requests] == [f"bytes={len(small_zip) + 4}-", None]
    assert_complete(tmp_path / "data")


def test_download_that_keeps_breaking_off_keeps_its_part(tmp_path, small_zip):
    b = Behaviour(body=small_zip, cuts=[1000] * fetch.DOWNLOAD_TRIES)
    with serving(b) as base, pytest.raises(fetch.DataError) as err:
        download_all(tmp_path / "data", f"{base}/cats_and_dogs_filtered.zip")
    msg = one_sentence(str(err.value))
    assert base in msg and "run the same command again to resume it" in msg and "SOURCE=" in msg
    assert (tmp_path / "data" / ".source" / "cats_and_dogs_filtered.zip.part").stat().st_size == 4000
    assert not half_imported(tmp_path / "data")


BAD_BODIES = {
    "no folder with both train/ and validation/": lambda: zip_bytes({"train/cats": 3, "train/dogs": 3}),
    "validation/cats has 1 file where 2 were expected": lambda: zip_bytes({**SMALL_COUNTS, "validation/cats": 1}),
    "not a readable zip file": lambda: os.urandom(5000),
    "fails its CRC check": lambda: bad_crc(zip_bytes(SMALL_COUNTS)),
}


@pytest.mark.parametrize("problem", list(BAD_BODIES))
def test_bad_archive_is_deleted_and_named(tmp_path, problem):
    body = BAD_BODIES[problem]()
    with serving(Behaviour(body=body)) as base, pytest.raises(fetch.DataError) as err:
        download_all(tmp_path / "data", f"{base}/cats_and_dogs_filtered.zip")
    msg = one_sentence(str(err.value))
    assert problem in msg and base in msg and "cats_and_dogs_filtered.zip.part" in msg and "afresh" in msg, msg
    assert not half_imported(tmp_path / "data")
    assert not list((tmp_path / "data" / ".source").glob("*.zip*"))


@pytest.mark.parametrize("status", [404, 500])
def test_http_error_status_is_named(tmp_path, status):
    with serving(Behaviour(status=status)) as base, pytest.raises(fetch.DataError) as err:
        download_all(tmp_path / "data", f"{base}/cats_and_dogs_filtered.zip")
    msg = one_sentence(str(err.value))
    assert f"{base}/cats_and_dogs_filtered.zip answered HTTP {status}" in msg and "SOURCE=" in msg
    assert not half_imported(tmp_path / "data")


def test_refused_connection_says_offline(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago and has no listener now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    url = f"http://127.0.0.1:{port}/cats_and_dogs_filtered.zip"
    with pytest.raises(fetch.DataError) as err:
        download_all(tmp_path / "data", url)
    msg = one_sentence(str(err.value))
    assert url in msg and "offline" in msg and "`make site`" in msg and "SOURCE=" in msg
    assert not half_imported(tmp_path / "data")


def test_silent_server_times_out(tmp_path, monkeypatch):
    monkeypatch.setattr(fetch, "TIMEOUT_S", 0.3)
    with socket.socket() as s:  # listens, so the connection opens, but never answers
        s.bind(("127.0.0.1", 0))
        s.listen()
        url = f"http://127.0.0.1:{s.getsockname()[1]}/cats_and_dogs_filtered.zip"
        with pytest.raises(fetch.DataError) as err:
            download_all(tmp_path / "data", url)
    msg = one_sentence(str(err.value))
    assert url in msg and "timed out" in msg and "SOURCE=" in msg
    assert not half_imported(tmp_path / "data")


def test_full_disk_while_downloading_keeps_what_arrived(tmp_path, small_zip, monkeypatch):
    class FullAfter:
        """A file whose disk fills up after its first 20,000 bytes."""

        def __init__(self, path, mode):
            self.f = open(path, mode)  # closed in __exit__

        def write(self, chunk: bytes) -> int:
            room = 20_000 - self.f.tell()
            self.f.write(chunk[:room])
            if len(chunk) > room:
                raise OSError(errno.ENOSPC, "No space left on device")
            return len(chunk)

        def __enter__(self):
            return self

        def __exit__(self, *exc) -> None:
            self.f.close()

    monkeypatch.setattr(fetch, "open", FullAfter, raising=False)
    with serving(Behaviour(body=small_zip)) as base, pytest.raises(fetch.DataError) as err:
        download_all(tmp_path / "data", f"{base}/cats_and_dogs_filtered.zip")
    msg = one_sentence(str(err.value))
    assert "no space left on the disk" in msg and "cats_and_dogs_filtered.zip.part" in msg
    assert 0 < (tmp_path / "data" / ".source" / "cats_and_dogs_filtered.zip.part").stat().st_size == 20_000
    assert not half_imported(tmp_path / "data")


def test_full_disk_while_unpacking_keeps_the_download(tmp_path, small_zip, monkeypatch):
    def full(*_a, **_k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(zipfile.ZipFile, "extractall", full)
    with serving(Behaviour(body=small_zip)) as base, pytest.raises(fetch.DataError) as err:
        download_all(tmp_path / "data", f"{base}/cats_and_dogs_filtered.zip")
    assert "no space left on the disk" in one_sentence(str(err.value))
    assert (tmp_path / "data" / ".source" / "cats_and_dogs_filtered.zip.part").stat().st_size == len(small_zip)
    assert not half_imported(tmp_path / "data")


def test_failed_download_leaves_an_earlier_import_untouched(tmp_path, small_zip):
    data = tmp_path / "data"
    with serving(Behaviour(body=small_zip)) as base:
        download_all(data, f"{base}/cats_and_dogs_filtered.zip")
    before = sorted(p.relative_to(data) for p in data.rglob("*"))
    with serving(Behaviour(body=os.urandom(5000))) as base, pytest.raises(fetch.DataError):
        download_all(data, f"{base}/other.zip")
    assert sorted(p.relative_to(data) for p in data.rglob("*")) == before
    assert_complete(data)


def test_kept_archive_is_imported_without_network(tmp_path, small_zip):
    data = tmp_path / "data"
    b = Behaviour(body=small_zip)
    with serving(b) as base:
        download_all(data, f"{base}/cats_and_dogs_filtered.zip")
        for name in ("train", "test"):
            (data / name).unlink()
        download_all(data, f"{base}/cats_and_dogs_filtered.zip", download=False, only_missing=True)
    assert len(b.requests) == 1
    assert_complete(data)


def test_only_missing_leaves_present_sets_alone(tmp_path, small_zip):
    data = tmp_path / "data"
    b = Behaviour(body=small_zip)
    with serving(b) as base:
        download_all(data, f"{base}/cats_and_dogs_filtered.zip")
        target = os.readlink(data / "train")
        (data / ".source" / "cats_and_dogs_filtered.zip").unlink()  # a download would be needed otherwise
        download_all(data, f"{base}/cats_and_dogs_filtered.zip", only_missing=True)
    assert len(b.requests) == 1 and os.readlink(data / "train") == target


@pytest.mark.slow
def test_a_fresh_project_downloads_its_photos_and_builds(tmp_path, small_zip):
    """As a new user's first `make site`, with the archive served from 127.0.0.1 (the URL is a setting): a copy of
    the project with no data/ downloads, checks and unpacks the photos, takes the own and unrelated photos from
    scikit-image, and builds the site. A second build downloads nothing."""
    import shutil
    import subprocess
    import sys

    from fixtures_http import Behaviour, serving

    root = Path(__file__).resolve().parents[2]
    project = tmp_path / "project"
    for part in ("generator", "templates"):
        shutil.copytree(root / part, project / part, ignore=shutil.ignore_patterns("__pycache__", "node_modules"))
    behaviour = Behaviour(body=small_zip)
    with serving(behaviour) as url:
        cmd = [sys.executable, "-m", "generator", "site", "--data-url", url + "/cats_and_dogs_filtered.zip",
               "--workers", "1", "--faithfulness-sample", "1", "--faithfulness-steps", "2", "--figure-sample", "4"]
        done = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=600)
        assert done.returncode == 0, done.stderr[-3000:]
        assert "downloading" in done.stderr and len(behaviour.requests) == 1
        for split, n in SMALL_COUNTS.items():
            local = project / "data" / ("train" if split.startswith("train") else "test") / split.split("/")[1]
            assert len(list(local.iterdir())) == n
        assert (project / "site" / "report.html").is_file() and (project / "data" / "unrelated").is_dir()
        again = subprocess.run(cmd, cwd=project, capture_output=True, text=True, timeout=600)
        assert again.returncode == 0 and len(behaviour.requests) == 1 and "nothing changed" in again.stderr
