"""`make data OXFORD=1`: the Oxford-IIIT Pet archives downloaded from a local test server (small archives of the
official layout that the tests build: tiny JPEGs of 3 breeds, their xmls and trimaps), md5-checked, unpacked
safely, sampled with a seed and turned into a set with a COCO file that the annotations reader reads back."""

from __future__ import annotations

import hashlib
import io
import json
import socket
import tarfile
from pathlib import Path

import numpy as np
import pytest
from fixtures_http import Behaviour, serving
from PIL import Image

from generator import ownership
from generator.__main__ import main
from generator.config import Settings, annotation_sources
from generator.data import fetch, oxford
from generator.data.annotations import HEAD, PET, load_annotations
from generator.data.scan import discover_sets, scan_rows

# breed -> photo numbers; Bengal is a cat breed (upper-case), beagle and pug are dog breeds
BREEDS = {"Bengal": (1, 2, 3, 4), "beagle": (1, 2, 3, 4, 5), "pug": (7, 8, 9)}
NO_XML = {"Bengal_3", "pug_9"}  # photos without a head box (as those of the real archive's test split)
W, H = 48, 36


def head_box(stem: str) -> tuple[int, int, int, int]:
    """The xml's (xmin, ymin, xmax, ymax), 1-based and inclusive as VOC writes them; different for each photo."""
    k = sum(map(ord, stem)) % 7
    return 5 + k, 4 + k // 2, 20 + k, 16 + k


def pet_mask(stem: str) -> np.ndarray:
    """True where the trimap says pet: a rectangle, shifted per photo, touching the frame for breed pug."""
    k = sum(map(ord, stem)) % 5
    mask = np.zeros((H, W), bool)
    mask[3 + k:30, (0 if stem.startswith("pug") else 2 + k):40] = True
    return mask


def trimap(mask: np.ndarray) -> bytes:
    """The official coding: 1 pet, 2 background, 3 border (a one-pixel ring around the pet)."""
    from scipy import ndimage

    tri = np.full(mask.shape, 2, np.uint8)
    tri[ndimage.binary_dilation(mask) & ~mask] = 3
    tri[mask] = 1
    buf = io.BytesIO()
    Image.fromarray(tri, mode="L").save(buf, "PNG")
    return buf.getvalue()


def xml(stem: str) -> bytes:
    x0, y0, x1, y1 = head_box(stem)
    return (f"<annotation><folder>OXIIIT</folder><filename>{stem}.jpg</filename><size><width>{W}</width>"
            f"<height>{H}</height><depth>3</depth></size><segmented>0</segmented><object><name>cat</name>"
            f"<pose>Frontal</pose><truncated>0</truncated><occluded>0</occluded><bndbox><xmin>{x0}</xmin>"
            f"<ymin>{y0}</ymin><xmax>{x1}</xmax><ymax>{y1}</ymax></bndbox><difficult>0</difficult></object>"
            "</annotation>").encode()


def jpeg(seed: int) -> bytes:
    rng = np.random.default_rng(seed)
    buf = io.BytesIO()
    Image.fromarray(rng.integers(0, 255, (H, W, 3), dtype=np.uint8)).save(buf, "JPEG")
    return buf.getvalue()


def tar_gz(files: dict[str, bytes]) -> bytes:
    buf = io.BytesIO()
    with tarfile.open(fileobj=buf, mode="w:gz") as tf:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tf.addfile(info, io.BytesIO(data))
    return buf.getvalue()


def stems() -> list[str]:
    return [f"{b}_{n}" for b, ns in BREEDS.items() for n in ns]


@pytest.fixture(scope="module")
def archives() -> dict[str, bytes]:
    images = {f"images/{s}.jpg": jpeg(i) for i, s in enumerate(stems())}
    images["images/Bengal_1.mat"] = b"not a photo"  # the real archive holds a few .mat files
    ann = {"annotations/list.txt": b"# Image CLASS-ID SPECIES BREED ID\n"}
    ann |= {f"annotations/xmls/{s}.xml": xml(s) for s in stems() if s not in NO_XML}
    ann |= {f"annotations/trimaps/{s}.png": trimap(pet_mask(s)) for s in stems()}
    ann["annotations/trimaps/._Bengal_1.png"] = b"\x00\x05\x16\x07"  # a macOS resource fork, as in the real one
    return {"images": tar_gz(images), "annotations": tar_gz(ann)}


def md5(body: bytes) -> str:
    return hashlib.md5(body, usedforsecurity=False).hexdigest()


@pytest.fixture(autouse=True)
def fast_retries(monkeypatch):
    """Tests wait on 127.0.0.1 only: short timeouts (each try ends within 2 s), no pause between tries."""
    monkeypatch.setattr(fetch, "TIMEOUT_S", 2.0)
    monkeypatch.setattr(fetch, "RETRY_PAUSE_S", 0.0)


class Served:
    """The two archives, each on its own local server (the test server answers one body at every path)."""

    def __init__(self, images: bytes, annotations: bytes, images_md5: str | None = None,
                 annotations_md5: str | None = None):
        self.behaviours = (Behaviour(body=images), Behaviour(body=annotations))
        self.md5s = (images_md5 or md5(images), annotations_md5 or md5(annotations))

    def __enter__(self) -> tuple[tuple[str, str], tuple[str, str]]:
        self._servers = [serving(b) for b in self.behaviours]
        bases = [s.__enter__() for s in self._servers]
        return ((f"{bases[0]}/images.tar.gz", self.md5s[0]), (f"{bases[1]}/annotations.tar.gz", self.md5s[1]))

    def __exit__(self, *exc) -> None:
        for s in reversed(self._servers):
            s.__exit__(*exc)

    def requests(self) -> int:
        return sum(len(b.requests) for b in self.behaviours)


def run(data: Path, archives, lines: list[str] | None = None, **kw) -> list[str]:
    log = (lines.append if lines is not None else (lambda _m: None))
    return oxford.import_oxford(data, archives=archives, progress=False, log=log, **kw)


def one_sentence(message: str) -> str:
    assert message.endswith(".") and ". " not in message and "\n" not in message, message
    return message


def nothing_half_made(data: Path) -> None:
    """No set, no COCO file, no download left as if complete or partial, no unpacked folder or leftover."""
    assert not (data / "oxford").exists() and not (data / "oxford.annotations.json").exists()
    work = data / ".source" / oxford.WORK
    if work.is_dir():
        assert sorted(p.name for p in work.iterdir()) == [], sorted(work.iterdir())


def set_files(data: Path, name: str = "oxford") -> list[str]:
    root = data / name
    return sorted(str(p.relative_to(root)) for p in root.rglob("*") if not p.is_dir())


def test_builds_an_annotated_set_that_the_build_finds(tmp_path, archives):
    data = tmp_path / "data"
    lines: list[str] = []
    with Served(archives["images"], archives["annotations"]) as urls:
        done = run(data, urls, lines, per_breed=2)
    files = set_files(data)
    # 2 per breed: Bengal is a cat breed, beagle and pug dog breeds
    assert [f for f in files if f.startswith("cat/")] == [f for f in files if "Bengal" in f]
    assert len(files) == 6 and sum(f.startswith("dog/") for f in files) == 4
    for breed in BREEDS:
        assert sum(Path(f).stem.rsplit("_", 1)[0] == breed for f in files) == 2
    unpacked = data / ".source" / oxford.WORK / "images"
    for f in files:  # links to the unpacked files, not copies
        link = data / "oxford" / f
        assert link.is_symlink() and link.resolve().is_relative_to(unpacked.resolve())
    for folder in ("images", "annotations"):  # marked the way ownership.py recognises the tool's folders
        assert ownership.cache_foreign(data / ".source" / oxford.WORK / folder) is None
    assert not list((data / ".source" / oxford.WORK).glob("*.part"))

    # the build's scan labels them by folder: every photo is read (.mat files and resource forks stay out)
    rows = scan_rows(data, ["oxford"])
    assert sorted(r.file for r in rows) == files and all(r.status == "ok" for r in rows)
    assert all(r.label == ("cat" if "Bengal" in r.file else "dog") for r in rows)

    # the COCO file, read back by the annotations module as a build reads it, holds the xmls' boxes
    coco = data / "oxford.annotations.json"
    assert annotation_sources(Settings(data_dir=data), discover_sets(data, "train", ("oxford",))) == {"oxford": coco}
    truth = load_annotations(coco, files, kinds=(HEAD, PET))
    assert truth.left_out == () and set(truth.photos) == set(files)
    for f in files:
        stem = Path(f).stem
        regions = truth.photos[f].regions
        if stem in NO_XML:
            assert set(regions) == {PET}  # its outline only
        else:
            x0, y0, x1, y1 = head_box(stem)
            assert regions[HEAD].boxes == ((x0 - 1, y0 - 1, x1, y1),)  # VOC's 1-based inclusive -> COCO pixels
        # The traced outline cuts each corner of the rectangle diagonally (marching squares, half a pixel), so the
        # masks agree up to a few pixels of each corner: an IoU above 0.9 on pets this small, 1.0 impossible.
        want, got = pet_mask(stem), regions[PET].mask
        assert (want & got).sum() / (want | got).sum() > 0.9
    heads = sum(Path(f).stem not in NO_XML for f in files)
    assert f"{heads} head box(es) and 6 pet outline(s) on 6 photos" in done[-1]
    assert f"{6 - heads} photo(s) without an xml keep their outline only" in done[-1]
    assert any("not photos named <breed>_<number>.jpg (such as Bengal_1.mat)" in m for m in lines)


def test_sample_is_seeded_and_n_per_breed():
    found = [oxford.Photo(f"{b}_{i}", b, oxford.breed_label(b), Path(f"{b}_{i}.jpg"))
             for b in ("Abyssinian", "beagle", "pug") for i in range(1, 51)]
    first, again = oxford.sample(found, 10, seed=0), oxford.sample(list(reversed(found)), 10, seed=0)
    assert first == again  # the same photos whatever order the folder lists them in
    assert {b: len(v) for b, v in first.items()} == {"Abyssinian": 10, "beagle": 10, "pug": 10}
    other = oxford.sample(found, 10, seed=1)
    assert other != first  # C(50, 10) draws per breed: equal by chance with probability about 1e-30
    assert {b: len(v) for b, v in oxford.sample(found[:53], 10, seed=0).items()} == {"Abyssinian": 10, "beagle": 3}
    assert [p.label for p in first["Abyssinian"]] == ["cat"] * 10 and first["pug"][0].label == "dog"


def test_second_run_reuses_what_was_checked_and_draws_the_same(tmp_path, archives):
    data = tmp_path / "data"
    with Served(archives["images"], archives["annotations"]) as urls:
        run(data, urls, per_breed=3)
    first, truth = set_files(data), json.loads((data / "oxford.annotations.json").read_bytes())
    served = Served(archives["images"], archives["annotations"])
    with served as urls:
        run(data, urls, per_breed=3)
    assert served.requests() == 0  # unpacked and checked before: no network needed
    again = json.loads((data / "oxford.annotations.json").read_bytes())
    assert set_files(data) == first and (again["images"], again["annotations"]) == (truth["images"],
                                                                                    truth["annotations"])
    assert len(first) == 3 + 3 + 3


def test_corrupted_archive_fails_its_md5_and_leaves_nothing(tmp_path, archives):
    body = archives["annotations"]
    bad = body[:100] + bytes([body[100] ^ 0xFF]) + body[101:]
    data = tmp_path / "data"
    with Served(archives["images"], bad, annotations_md5=md5(body)) as urls, pytest.raises(fetch.DataError) as err:
        run(data, urls)
    msg = one_sentence(str(err.value))
    assert f"has md5 {md5(bad)}, not the {md5(body)} that torchvision lists" in msg and "deleted" in msg
    assert not (data / "oxford").exists() and not (data / "oxford.annotations.json").exists()
    work = data / ".source" / oxford.WORK
    assert not (work / "annotations.tar.gz").exists() and not (work / "annotations.tar.gz.part").exists()
    assert not (work / "annotations").exists() and not list(work.glob(".unpack-*"))


def test_corrupted_first_archive_leaves_nothing_at_all(tmp_path, archives):
    body = archives["images"]
    with Served(body[:-10], archives["annotations"], images_md5=md5(body)) as urls, \
            pytest.raises(fetch.DataError, match="md5"):
        run(tmp_path / "data", urls)
    nothing_half_made(tmp_path / "data")


def test_member_escaping_the_folder_is_refused(tmp_path, archives):
    evil = tar_gz({"images/Bengal_1.jpg": jpeg(0), "../../escaped.txt": b"x"})
    data = tmp_path / "data"
    with Served(evil, archives["annotations"]) as urls, pytest.raises(fetch.DataError) as err:
        run(data, urls)
    assert "member '../../escaped.txt' was refused" in one_sentence(str(err.value))
    assert not list(tmp_path.rglob("escaped.txt"))
    assert not (data / ".source" / oxford.WORK / "images").exists()
    assert not list((data / ".source" / oxford.WORK).glob(".unpack-*"))


def test_offline_is_one_sentence(tmp_path):
    with socket.socket() as s:  # a port that was free a moment ago and has no listener now
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    urls = ((f"http://127.0.0.1:{port}/images.tar.gz", "0" * 32), (f"http://127.0.0.1:{port}/a.tar.gz", "0" * 32))
    with pytest.raises(fetch.DataError) as err:
        run(tmp_path / "data", urls)
    msg = one_sentence(str(err.value))
    assert "offline" in msg and "images.tar.gz and annotations.tar.gz you already have" in msg
    assert "SOURCE=" not in msg  # the cats_and_dogs_filtered way around is no way around here
    nothing_half_made(tmp_path / "data")


def test_no_download_is_one_sentence(tmp_path, archives):
    with Served(archives["images"], archives["annotations"]) as urls, pytest.raises(fetch.DataError) as err:
        run(tmp_path / "data", urls, allow_network=False)
    assert "--no-download" in one_sentence(str(err.value))
    nothing_half_made(tmp_path / "data")


def test_users_own_files_stop_it_before_any_download(tmp_path, archives):
    data = tmp_path / "data"
    data.mkdir()
    (data / "oxford.annotations.json").write_text('{"images": [], "annotations": []}')
    served = Served(archives["images"], archives["annotations"])
    with served as urls, pytest.raises(fetch.DataError) as err:
        run(data, urls)
    assert "was not written by this tool" in one_sentence(str(err.value)) and served.requests() == 0
    assert json.loads((data / "oxford.annotations.json").read_text()) == {"images": [], "annotations": []}
    (data / "oxford.annotations.json").unlink()
    (data / "oxford" / "cat").mkdir(parents=True)
    (data / "oxford" / "cat" / "mine.jpg").write_bytes(b"x")
    with served as urls, pytest.raises(fetch.DataError, match="holds files of its own"):
        run(data, urls)
    assert served.requests() == 0 and (data / "oxford" / "cat" / "mine.jpg").read_bytes() == b"x"


def test_command_line(tmp_path, archives, monkeypatch, capsys):
    monkeypatch.setattr(fetch, "import_all", lambda *a, **k: [])  # the cats_and_dogs_filtered part: not tested here
    data = tmp_path / "data"
    with Served(archives["images"], archives["annotations"]) as urls:
        monkeypatch.setattr(oxford, "ARCHIVES", urls)
        assert main(["data", "--data-dir", str(data), "--oxford", "--oxford-per-breed", "1",
                     "--oxford-set", "pets"]) == 0
    assert len(set_files(data, "pets")) == 3 and (data / "pets.annotations.json").is_file()
    assert "pets <- 3 Oxford-IIIT Pet photos (1 cat and 2 dog breeds" in capsys.readouterr().out
    assert main(["data", "--data-dir", str(data), "--oxford", "--oxford-per-breed", "0"]) == 2
    assert "error: --oxford-per-breed 0" in capsys.readouterr().err
