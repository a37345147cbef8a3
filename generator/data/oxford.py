"""`make data OXFORD=1`: an annotated set from the official Oxford-IIIT Pet archives.

1. images.tar.gz (about 755 MB) and annotations.tar.gz (about 19 MB) are downloaded into
   data/.source/oxford-iiit-pet/ with fetch.download_resumable (resumed after a break), each checked against the
   md5 that torchvision's dataset class lists; a download becomes <name>.tar.gz only once its md5 matches, and
   one that does not match is deleted.
2. Each archive is unpacked (tarfile's 'data' filter: no member may land outside the folder, no links out of it,
   no device files) into a temporary folder, then renamed to data/.source/oxford-iiit-pet/<images|annotations>/.
   That folder is marked as this tool's the way generator/ownership.py marks the tool's caches (a CACHEDIR.TAG
   naming the tool); a `.complete` file holding the archive's md5 is written last, so a later run reuses it
   without the archive and a half-unpacked folder is never taken for a whole one.
3. data/<set>/ (default `oxford`) gets cat/ and dog/ folders of links to a seeded sample of N photos per breed
   (Oxford's rule: a breed whose name starts with an upper-case letter is a cat breed), and
   data/<set>.annotations.json, a COCO instances file: the head box of each photo that has an xml (category
   `head`) and the pet's outline traced from its trimap (category `pet`, polygons). The build finds that file
   beside the set (config.ANNOTATIONS_BESIDE), so the next `make site` scores the set with no more flags.

The ground truth is read by generator/data/annotations.py itself (its Oxford-IIIT Pet reader, on the sample's
xmls and trimaps only), so what it refuses here it would refuse in a build, and each such sentence is logged.
"""

from __future__ import annotations

import hashlib
import json
import os
import random
import re
import shutil
import tarfile
import tempfile
import zlib
from collections import defaultdict
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from generator.config import ANNOTATIONS_BESIDE
from generator.data.annotations import HEAD, PET, load_annotations
from generator.data.fetch import (
    DataError,
    Log,
    _check_clearable,
    _clear,
    _remove_leftovers,
    _write_error,
    download_resumable,
)
from generator.files import write_text

# The two archives and their md5s as torchvision lists them: torchvision 0.29,
# torchvision/datasets/oxford_iiit_pet.py, OxfordIIITPet._RESOURCES.
IMAGES_URL = "https://www.robots.ox.ac.uk/~vgg/data/pets/data/images.tar.gz"
IMAGES_MD5 = "5c4f3ee8e5d25df40f4fd59a7f44e54c"
ANNOTATIONS_URL = "https://www.robots.ox.ac.uk/~vgg/data/pets/data/annotations.tar.gz"
ANNOTATIONS_MD5 = "95a8c909bbe2e81eed6a22bccdf3f68f"
ARCHIVES = ((IMAGES_URL, IMAGES_MD5), (ANNOTATIONS_URL, ANNOTATIONS_MD5))  # images first, then annotations

SET_NAME = "oxford"
PER_BREED = 10
SEED = 0  # the default of setting seed
WORK = "oxford-iiit-pet"  # under data/.source/
COMPLETE = ".complete"  # written last into an unpacked folder: the md5 of the archive it came from
TAG = "CACHEDIR.TAG"
# ownership.py's convention (the Cache Directory Tagging signature, then "created by cam-report"); data/ may not
# import ownership.py (a layer above it), so the text is written here.
TAG_TEXT = ("Signature: 8a477f597d28d172789f06886806bc55\n"
            "# This file is a cache directory tag created by cam-report (python -m generator): an Oxford-IIIT Pet\n"
            "# archive unpacked by `make data OXFORD=1`, which may delete and unpack it again.\n"
            "# For information about cache directory tags see https://bford.info/cachedir/\n")
TOOL_MARK = "created by cam-report "
PHOTO_NAME = re.compile(r"(?P<breed>.+)_(?P<number>\d+)\.jpg")
OUTLINE_TOLERANCE_PX = 1.0  # Douglas-Peucker tolerance of the traced outline: one pixel, far below a head's size


@dataclass(frozen=True)
class Photo:
    stem: str  # "Abyssinian_101"
    breed: str
    label: str  # "cat" or "dog"
    path: Path  # the unpacked file


def breed_label(breed: str) -> str:
    """Oxford's rule: cat breeds are capitalised (Abyssinian, Bengal), dog breeds are not (beagle, pug)."""
    return "cat" if breed[:1].isupper() else "dog"


# ---- download and md5 -----------------------------------------------------------------------------------------


def md5_of(path: Path) -> str:
    digest = hashlib.md5(usedforsecurity=False)
    with open(path, "rb") as fh:
        while chunk := fh.read(1 << 20):
            digest.update(chunk)
    return digest.hexdigest()


def _archive(url: str, md5: str, work: Path, allow_network: bool, progress: bool, log: Log) -> Path:
    """The archive at url, checked against md5: the copy in work, or downloaded there (resumed after a break)."""
    name = Path(url.rsplit("/", 1)[-1]).name
    final = work / name
    other = f"put the images.tar.gz and annotations.tar.gz you already have into {work} (their md5s are checked)"
    if final.is_file():
        got = md5_of(final)
        if got != md5:
            raise DataError(f"{final} has md5 {got}, not the {md5} that torchvision lists for {name}: delete it "
                            "and run the same command again to download it afresh.")
        return final
    if not allow_network:
        raise DataError(f"{final} is missing and downloading is off: run the same command without --no-download "
                        f"on a machine with a network, or {other}.")
    part = download_resumable(url, final.with_name(name + ".part"), progress=progress, log=log, other=other)
    got = md5_of(part)
    if got != md5:
        part.unlink(missing_ok=True)  # a resume would only extend a bad file
        raise DataError(f"{name} downloaded from {url} has md5 {got}, not the {md5} that torchvision lists for it, "
                        "so it was deleted: run the same command again to download it afresh.")
    os.replace(part, final)
    log(f"downloaded {url} -> {final} (md5 checked)")
    return final


# ---- unpacking ------------------------------------------------------------------------------------------------


def is_ours(folder: Path) -> bool:
    """Whether folder holds the tool's tag (ownership.py's rule for its caches)."""
    tag = folder / TAG
    try:
        return tag.is_file() and not tag.is_symlink() and TOOL_MARK in tag.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError):
        return False


def _unpacked(folder: Path, md5: str) -> bool:
    done = folder / COMPLETE
    try:
        return is_ours(folder) and done.read_text(encoding="utf-8").strip() == md5
    except OSError:
        return False


def _unpack(archive: Path, md5: str, dest: Path) -> None:
    """Unpack archive into dest (replacing the tool's earlier copy) through a temporary folder beside it."""
    if (dest.exists() or dest.is_symlink()) and (dest.is_symlink() or not dest.is_dir() or not is_ours(dest)):
        raise DataError(f"{dest} is in the way and was not unpacked by this tool (it has no {TAG} naming "
                        "cam-report); move it away and run the same command again.")
    tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=dest.parent))
    try:
        try:
            with tarfile.open(archive, "r:gz") as tf:
                tf.extractall(tmp, filter="data")  # refuses members outside tmp, links out of it, device files
        except tarfile.FilterError as exc:
            name = exc.tarinfo.name if exc.tarinfo is not None else "?"
            raise DataError(f"{archive}: member {name!r} was refused ({exc}), so nothing was unpacked; delete "
                            "the archive and run the same command again.") from None
        except (tarfile.TarError, EOFError, zlib.error) as exc:
            raise DataError(f"{archive} is not a readable .tar.gz ({exc}); delete it and run the same command "
                            "again.") from None
        except OSError as exc:
            raise _write_error(dest, exc) from exc
        write_text(tmp / TAG, TAG_TEXT)
        write_text(tmp / COMPLETE, md5 + "\n")
        if dest.exists():
            shutil.rmtree(dest)
        os.replace(tmp, dest)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _inner(folder: Path, name: str) -> Path:
    """The archive's own top folder (images/ or annotations/) inside the unpacked folder, else that folder."""
    return folder / name if (folder / name).is_dir() else folder


# ---- the sample ------------------------------------------------------------------------------------------------


def photos(images: Path) -> tuple[list[Photo], list[str]]:
    """Every photo <breed>_<number>.jpg in images, and the names of the other files (not photos of a breed)."""
    found, other = [], []
    for p in sorted(images.iterdir()):
        m = PHOTO_NAME.fullmatch(p.name)
        if m is None or not p.is_file() or p.name.startswith("."):
            other.append(p.name)
            continue
        found.append(Photo(p.name[:-4], m["breed"], breed_label(m["breed"]), p))
    return found, other


def sample(found: list[Photo], per_breed: int, seed: int) -> dict[str, list[Photo]]:
    """Breed -> per_breed of its photos (all of them when it has fewer), drawn with a generator seeded by the seed
    and the breed's name: the same sample on every machine and run, and one breed's draw does not shift another's."""
    by_breed: dict[str, list[Photo]] = defaultdict(list)
    for p in found:
        by_breed[p.breed].append(p)
    out = {}
    for breed in sorted(by_breed):
        pool = sorted(by_breed[breed], key=lambda p: p.stem)
        chosen = random.Random(f"{seed}/{breed}").sample(pool, min(per_breed, len(pool)))
        out[breed] = sorted(chosen, key=lambda p: p.stem)
    return out


def _set_file(p: Photo) -> str:
    return f"{p.label}/{p.path.name}"


# ---- the COCO file --------------------------------------------------------------------------------------------


def outline_polygons(mask: np.ndarray) -> list[list[float]]:
    """The mask's outlines as COCO polygons [x, y, x, y, ...] in pixels (edges of the pixels, 0 to width).

    Traced with skimage.measure.find_contours at the 0.5 level (on the mask padded by one pixel, so a pet cut by
    the frame still gets a closed outline), simplified within OUTLINE_TOLERANCE_PX. A hole in the mask is traced too
    and, COCO polygons being a union, filled when the file is read back (trimaps of pets rarely have holes).
    """
    from skimage import measure

    h, w = mask.shape
    polys = []
    for c in measure.find_contours(np.pad(mask.astype(np.uint8), 1), 0.5):
        c = measure.approximate_polygon(c, OUTLINE_TOLERANCE_PX)
        if len(c) > 1 and np.array_equal(c[0], c[-1]):
            c = c[:-1]  # closed: the first point repeated at the end
        if len(c) < 3:
            continue
        # contour points are in pixel-centre coordinates of the padded mask: (row - 1) + 0.5 is the edge between
        # the two pixels it passes through
        xs = np.clip(c[:, 1] - 0.5, 0, w)
        ys = np.clip(c[:, 0] - 0.5, 0, h)
        polys.append([round(float(v), 2) for xy in zip(xs, ys, strict=True) for v in xy])
    return polys


def coco(chosen: list[Photo], annotations: Path, urls: tuple[str, ...], scratch: Path,
         log: Log) -> tuple[dict, dict[str, int]]:
    """The COCO instances document of the chosen photos, and counts for the log; scratch: a folder for a
    temporary one (named so that the next run removes it if this one is killed)."""
    from PIL import Image, UnidentifiedImageError

    sizes: dict[str, tuple[int, int]] = {}
    unreadable = []
    for p in chosen:
        try:
            with Image.open(p.path) as img:
                sizes[_set_file(p)] = img.size
        except (OSError, UnidentifiedImageError, ValueError):
            unreadable.append(p.path.name)
    for name in unreadable:
        log(f"{name} cannot be read as an image, so it has no ground truth (the build lists it as unreadable)")
    # The annotations module reads the sample's own xmls and trimaps, linked into a temporary Oxford layout (all
    # 7,390 trimaps would take over a gigabyte as masks).
    with tempfile.TemporaryDirectory(prefix=".unpack-truth-", dir=scratch) as tmp:
        for sub, ext in (("xmls", ".xml"), ("trimaps", ".png")):
            (Path(tmp) / sub).mkdir()
            for p in chosen:
                src = annotations / sub / (p.stem + ext)
                if src.is_file():
                    os.symlink(src.resolve(), Path(tmp) / sub / src.name)
        truth = load_annotations(tmp, list(sizes), kinds=(HEAD, PET), sizes=sizes)
        left = [s.replace(tmp, str(annotations)) for s in truth.left_out]
    for sentence in left:
        log(sentence)
    images, anns = [], []
    for i, file in enumerate(sizes, start=1):
        w, h = sizes[file]
        images.append({"id": i, "file_name": file, "width": w, "height": h})
        t = truth.photos.get(file)
        if t is None:
            continue
        if HEAD in t.regions:
            for x0, y0, x1, y1 in t.regions[HEAD].boxes:
                anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 1, "iscrowd": 0,
                             "bbox": [x0, y0, x1 - x0, y1 - y0], "area": (x1 - x0) * (y1 - y0)})
        if PET in t.regions:
            region = t.regions[PET]
            polys = outline_polygons(region.mask)
            if polys:
                x0, y0, x1, y1 = region.box
                anns.append({"id": len(anns) + 1, "image_id": i, "category_id": 2, "iscrowd": 0,
                             "segmentation": polys, "bbox": [x0, y0, x1 - x0, y1 - y0],
                             "area": round(region.area_share * w * h)})
    counts = {"photos": len(chosen), "sized": len(sizes), "unreadable": len(unreadable), "left_out": len(left),
              "head": sum(HEAD in t.regions for t in truth.photos.values()),
              "pet": sum(a["category_id"] == 2 for a in anns)}
    counts["outline_only"] = sum(PET in t.regions and HEAD not in t.regions for t in truth.photos.values())
    doc = {"info": {"description": "Oxford-IIIT Pet (Parkhi et al., CVPR 2012): head boxes from xmls/, pet "
                                   "outlines traced from trimaps/, for a seeded sample per breed",
                    "tool": "cam-report", "url": list(urls)},
           "images": images, "annotations": anns,
           "categories": [{"id": 1, "name": HEAD}, {"id": 2, "name": PET}]}
    return doc, counts


def _json_is_ours(path: Path) -> bool:
    try:
        doc = json.loads(path.read_bytes())
    except (OSError, ValueError):
        return False
    return isinstance(doc, dict) and isinstance(doc.get("info"), dict) and doc["info"].get("tool") == "cam-report"


# ---- the one entry point --------------------------------------------------------------------------------------


def import_oxford(data_dir: Path, *, set_name: str = SET_NAME, per_breed: int = PER_BREED, seed: int = SEED,
                  allow_network: bool = True, archives: tuple[tuple[str, str], ...] | None = None,
                  progress: bool = True, log: Log = print) -> list[str]:
    """Build data/<set_name>/ and data/<set_name>.annotations.json from the Oxford-IIIT Pet archives; one line
    per thing done. archives: ((images URL, md5), (annotations URL, md5)); None: the official ones (ARCHIVES)."""
    from generator.config import _set_name

    (images_url, images_md5), (ann_url, ann_md5) = archives or ARCHIVES
    _set_name("oxford_set", set_name)  # a SettingsError (one sentence) for a name that is not a folder's
    if per_breed < 1:
        raise DataError(f"--oxford-per-breed {per_breed} is not a number of photos; give 1 or more (the default is "
                        f"{PER_BREED}).")
    data_dir = Path(data_dir)
    target = data_dir / set_name
    truth_file = data_dir / ANNOTATIONS_BESIDE.format(set=set_name)
    _check_clearable(target)  # before any download: a user's own files there stop the import
    if truth_file.is_symlink() or (truth_file.exists() and not _json_is_ours(truth_file)):
        raise DataError(f"{truth_file} was not written by this tool, and the import would replace it; move it "
                        "away, or give another --oxford-set.")
    work = data_dir / ".source" / WORK
    try:
        work.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(work)
    except OSError as exc:
        raise _write_error(work, exc) from exc
    done: list[str] = []
    folders = []
    for url, md5, name in ((images_url, images_md5, "images"), (ann_url, ann_md5, "annotations")):
        folder = work / name
        folders.append(folder)
        if _unpacked(folder, md5):
            continue
        archive = _archive(url, md5, work, allow_network, progress, log)
        log(f"unpacking {archive}")
        _unpack(archive, md5, folder)
        done.append(f"unpacked {archive} -> {folder}")
    images, annotations = _inner(folders[0], "images"), _inner(folders[1], "annotations")
    if not (annotations / "xmls").is_dir() or not (annotations / "trimaps").is_dir():
        raise DataError(f"{folders[1]} has no xmls/ and trimaps/ folders, so it is not the Oxford-IIIT Pet "
                        "annotations archive; check the URL, delete it and run the same command again.")
    found, other = photos(images) if images.is_dir() else ([], [])
    if other:
        log(f"{images}: {len(other)} file(s) are not photos named <breed>_<number>.jpg (such as {other[0]}) and are "
            "not sampled")
    if not found:
        raise DataError(f"{images} holds no photos named <breed>_<number>.jpg, so it is not the Oxford-IIIT Pet "
                        "images archive; check the URL, delete it and run the same command again.")
    drawn = sample(found, per_breed, seed)
    chosen = [p for breed in drawn for p in drawn[breed]]
    short = [f"{b} ({len(v)})" for b, v in drawn.items() if len(v) < per_breed]
    if short:
        log(f"{len(short)} breed(s) have fewer than {per_breed} photos, so all of theirs are taken: {', '.join(short)}")

    doc, counts = coco(chosen, annotations, (images_url, ann_url), work, log)
    _clear(target)
    for left in data_dir.glob(f".{set_name}-new-*"):  # folders of links a killed run left (hidden: never a set)
        shutil.rmtree(left, ignore_errors=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{set_name}-new-", dir=data_dir))
    try:
        for p in chosen:
            (tmp / p.label).mkdir(exist_ok=True)
            os.symlink(p.path.resolve(), tmp / _set_file(p))
        os.replace(tmp, target)
    except OSError as exc:
        shutil.rmtree(tmp, ignore_errors=True)
        raise _write_error(target, exc) from exc
    write_text(truth_file, json.dumps(doc, separators=(",", ":")))
    cats = sorted({p.breed for p in chosen if p.label == "cat"})
    dogs = sorted({p.breed for p in chosen if p.label == "dog"})
    done.append(f"{set_name} <- {len(chosen)} Oxford-IIIT Pet photos ({len(cats)} cat and {len(dogs)} dog breeds, "
                f"up to {per_breed} per breed, seed {seed})")
    done.append(f"{truth_file}: {counts['head']} head box(es) and {counts['pet']} pet outline(s) on "
                f"{counts['sized']} photos; {counts['outline_only']} photo(s) without an xml keep their outline "
                f"only, {counts['unreadable']} cannot be read, {counts['left_out']} annotation(s) left out")
    return done
