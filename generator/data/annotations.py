"""Ground truth for a set of photos: where the head and the pet are, read from the files users have.

Three layouts are read (`load_annotations` tells them apart):
- COCO "instances" JSON (one file): `images` (id, file_name, width, height), `categories` (id, name) and
  `annotations` (id, image_id, category_id, and a `segmentation`: polygons [[x, y, x, y, ...], ...], an RLE mask
  {"size": [h, w], "counts": [...] or "..."}, or none, then the `bbox` [x, y, width, height] is the region).
  Coordinates are in pixels of the photo, (0, 0) its top-left corner; polygons and RLE go through pycocotools,
  as COCO's own tools rasterise them.
- Pascal VOC xml (one .xml, or a folder of them): <filename>, <size> and one <object> per region, whose <name> is
  the category and <bndbox> the box, in the VOC devkit's convention (1-based, xmax and ymax inclusive).
- The Oxford-IIIT Pet layout (a folder holding `xmls/` and/or `trimaps/`, as in the official annotations.tar.gz):
  `xmls/<name>.xml` holds the head box in VOC form (category `head`, whatever its <name> says); `trimaps/<name>.png`
  holds 1 = pet, 2 = background, 3 = border: category `pet` is the pixels that are 1. Files whose names start with
  '.' (the archive's `._*` resource forks) are counted and ignored.

Photos are matched to the set's files by relative path (POSIX separators, Unicode NFC), else by file stem; a
stem that names several photos matches none. Per photo and category: one boolean mask at the photo's size (the
union of the category's regions) and the regions' boxes (x0, y0, x1, y1) in pixels, x1 and y1 exclusive.

Nothing is dropped silently: every entry that cannot be used (malformed, a box outside the photo or of negative
size, a polygon of fewer than 3 points, a photo that is not in the set, a duplicate id, a category that is not
there) becomes one sentence in `Annotations.left_out`, naming the file and the entry, and the other photos are
still read. A whole file that cannot be read at all is a UserError naming it.
"""

from __future__ import annotations

import json
import math
import unicodedata
import warnings
from collections import Counter, defaultdict
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path, PurePosixPath
from typing import Any

import numpy as np

from generator.errors import UserError

HEAD, PET = "head", "pet"
TRIMAP_PET, TRIMAP_BACKGROUND, TRIMAP_BORDER = 1, 2, 3
FORMATS = ("coco", "voc", "oxford-pet")
# Slack for boxes given in floating point (a labelling tool's x + width can land a hair past the edge); far below
# a pixel, so a box that is really outside the photo is still caught.
EDGE_SLACK = 1e-6

BoxXYXY = tuple[float, float, float, float]


@dataclass(frozen=True, eq=False)
class Region:
    """One category's ground truth on one photo: the union of its regions as a COCO RLE, and their boxes."""

    kind: str
    width: int
    height: int
    boxes: tuple[BoxXYXY, ...]  # one per region, pixels, (x0, y0) inclusive, (x1, y1) exclusive
    rle: dict = field(repr=False)  # pycocotools' compressed RLE of the mask; decoded on demand (compact to hold)

    @property
    def mask(self) -> np.ndarray:
        """(height, width) bool: True where the category is."""
        return _decode(self.rle).astype(bool)

    @property
    def box(self) -> BoxXYXY:
        """The bounds of all the regions' boxes."""
        b = np.asarray(self.boxes, dtype=np.float64)
        return float(b[:, 0].min()), float(b[:, 1].min()), float(b[:, 2].max()), float(b[:, 3].max())

    @property
    def area_share(self) -> float:
        """Share of the photo's pixels inside the mask, 0..1 (what a flat map scores in the energy game)."""
        from pycocotools import mask as mask_utils

        return float(mask_utils.area(self.rle)) / (self.width * self.height)


@dataclass(frozen=True)
class PhotoTruth:
    file: str  # the photo's path inside its set, as the set lists it
    width: int
    height: int
    regions: Mapping[str, Region]  # category name -> its region


@dataclass(frozen=True)
class Annotations:
    source: Path
    format: str  # one of FORMATS
    kinds: tuple[str, ...]  # the categories asked for that the source has
    photos: Mapping[str, PhotoTruth]  # set file -> its ground truth (photos with at least one region)
    left_out: tuple[str, ...]  # one sentence per entry that could not be used
    # photo names the source annotates that no photo of the set has: not errors (a set may hold a part of what the
    # file covers, as CI's small build does), counted apart
    not_in_set: tuple[str, ...] = ()

    def count(self, kind: str) -> int:
        return sum(kind in p.regions for p in self.photos.values())


def _decode(rle: dict) -> np.ndarray:
    from pycocotools import mask as mask_utils

    with warnings.catch_warnings():  # pycocotools 2.0.11 under numpy 2 warns about its own np.array(copy=False)
        warnings.filterwarnings("ignore", "__array__ implementation doesn't accept a copy keyword", DeprecationWarning)
        return mask_utils.decode(rle)


# ---- what the parsers hand on: raw shapes, checked and rasterised in one place ------------------------------


@dataclass
class _Shape:
    kind: str
    where: str  # "annotation id 7" / "object 2": completes "<file>, <where> of '<photo>'"
    box: BoxXYXY | None = None  # (x0, y0, x1, y1): exclusive pixel bounds from 0
    shown: str = "box"  # the box as the file writes it, for the sentences: "bbox [x, y, w, h]"
    polygons: Any = None  # COCO segmentation list, unchecked
    rle: Any = None  # COCO RLE dict, unchecked
    mask: np.ndarray | None = None  # a trimap's boolean mask, already at the photo's size


@dataclass
class _Photo:
    name: str  # as the annotation file writes it
    file: str  # the annotation file that holds it (for the sentences)
    where: str  # "image id 3" / "" : how to find the entry in that file
    width: int | None
    height: int | None
    shapes: list[_Shape]


def _whole(x: Any) -> bool:
    return isinstance(x, int) and not isinstance(x, bool)


def _finite(*xs: Any) -> bool:
    return all(isinstance(x, int | float) and not isinstance(x, bool) and math.isfinite(x) for x in xs)


def _fmt(values: Iterable[Any]) -> str:
    return "[" + ", ".join(f"{v:g}" if isinstance(v, float) else str(v) for v in values) + "]"


def _rasterise(shape: _Shape, width: int, height: int) -> tuple[dict, BoxXYXY] | str:
    """A checked shape -> (RLE at width x height, its box), or the reason it cannot be used (a clause)."""
    from pycocotools import mask as mask_utils

    if shape.box is not None:
        x0, y0, x1, y1 = shape.box
        if not _finite(x0, y0, x1, y1):
            return f"its {shape.shown} is not four numbers"
        if x1 <= x0 or y1 <= y0:
            return f"its {shape.shown} has a negative or zero width or height"
        if x0 < -EDGE_SLACK or y0 < -EDGE_SLACK or x1 > width + EDGE_SLACK or y1 > height + EDGE_SLACK:
            return f"its {shape.shown} reaches outside the {width}x{height} photo"
    if shape.mask is not None:
        rle = mask_utils.encode(np.asfortranarray(shape.mask.astype(np.uint8)))
    elif shape.polygons is not None:
        polys = shape.polygons
        if not isinstance(polys, list) or not polys:
            return "its segmentation is neither a list of polygons nor an RLE mask"
        for i, p in enumerate(polys):
            if not isinstance(p, list) or not all(_finite(v) for v in p) or len(p) % 2:
                return f"its polygon {i + 1} is not a list of x, y numbers"
            if len(p) < 6:
                return f"its polygon {i + 1} has {len(p) // 2} point(s), fewer than the 3 a polygon needs"
            xs, ys = p[0::2], p[1::2]
            if min(xs) < -EDGE_SLACK or min(ys) < -EDGE_SLACK or max(xs) > width + EDGE_SLACK \
                    or max(ys) > height + EDGE_SLACK:
                return f"its polygon {i + 1} reaches outside the {width}x{height} photo"
        # Each polygon has >= 6 numbers, so pycocotools reads them as polygons (a 4-number list would be a box).
        rle = mask_utils.merge(mask_utils.frPyObjects(polys, height, width))
    elif shape.rle is not None:
        r = shape.rle
        if not isinstance(r, dict) or "counts" not in r or "size" not in r:
            return "its segmentation is neither a list of polygons nor an RLE mask"
        if not isinstance(r["size"], list) or r["size"] != [height, width]:
            return f"its RLE mask has size {r['size']!r} (height, width), not the photo's [{height}, {width}]"
        counts = r["counts"]
        if isinstance(counts, list):
            if not all(isinstance(c, int) and not isinstance(c, bool) and c >= 0 for c in counts) \
                    or sum(counts) != height * width:
                return (f"its RLE counts are not whole numbers >= 0 adding up to the photo's {height * width} "
                        "pixels")
            rle = mask_utils.frPyObjects({"size": [height, width], "counts": counts}, height, width)
        elif isinstance(counts, str) and counts.isascii():
            rle = {"size": [height, width], "counts": counts.encode("ascii")}
        else:
            return "its RLE counts are neither a list of numbers nor COCO's compressed text"
        try:  # pycocotools checks that the counts cover exactly the mask (ValueError otherwise)
            _decode(rle)
        except (ValueError, TypeError):
            return "its compressed RLE counts do not describe a mask of the photo's size"
    elif shape.box is not None:
        x0, y0, x1, y1 = shape.box
        rle = mask_utils.frPyObjects(np.array([[x0, y0, x1 - x0, y1 - y0]], dtype=np.float64), height, width)[0]
    else:
        return "it has neither a segmentation nor a box"
    if int(mask_utils.area(rle)) == 0:
        return "it covers no pixel of the photo"
    if shape.box is not None:
        box = shape.box
    else:
        x, y, w, h = (float(v) for v in mask_utils.toBbox(rle))
        box = (x, y, x + w, y + h)
    return rle, box


# ---- matching photo names to the set's files ------------------------------------------------------------------


def _norm(name: str) -> str:
    name = unicodedata.normalize("NFC", name.replace("\\", "/"))
    while name.startswith("./"):
        name = name[2:]
    return name.lstrip("/")


class _Matcher:
    def __init__(self, files: Iterable[str]):
        self.by_path: dict[str, str] = {}
        self.by_stem: dict[str, list[str]] = defaultdict(list)
        for f in files:
            self.by_path[_norm(f)] = f
            self.by_stem[PurePosixPath(_norm(f)).stem].append(f)

    def match(self, name: str) -> tuple[str | None, str]:
        """(set file, '') or (None, why not: a clause)."""
        n = _norm(name)
        if n in self.by_path:
            return self.by_path[n], ""
        hits = self.by_stem.get(PurePosixPath(n).stem, [])
        if len(hits) == 1:
            return hits[0], ""
        if hits:
            shown = ", ".join(f"'{h}'" for h in sorted(hits)[:3]) + (", ..." if len(hits) > 3 else "")
            return None, f"its name matches {len(hits)} photos of the set by file stem ({shown}); rename one"
        return None, _NOT_IN_SET


_NOT_IN_SET = "no photo of the set has that path or file stem"


# ---- COCO ---------------------------------------------------------------------------------------------------


def _read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_bytes())
    except OSError as exc:
        raise UserError(f"cannot read the annotation file {path} ({exc.strerror or exc}); check the path.") from None
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise UserError(f"the annotation file {path} is not JSON ({str(exc).splitlines()[0]}); give a COCO "
                        "instances JSON, a Pascal VOC xml folder or the Oxford-IIIT Pet annotations folder.") from None


def _coco(path: Path, left: list[str]) -> tuple[list[_Photo], set[str]]:
    doc = _read_json(path)
    if not isinstance(doc, dict) or not all(isinstance(doc.get(k), list) for k in ("images", "annotations")):
        raise UserError(f"the annotation file {path} is JSON but not COCO instances (it needs an 'images' and an "
                        "'annotations' list); give a COCO instances JSON.")
    src = str(path)

    def key(entry: Any) -> int | None:  # ids that are not whole numbers are reported where the entry is read
        return entry["id"] if isinstance(entry, dict) and _whole(entry.get("id")) else None

    categories: dict[int, str] = {}
    cat_entries = doc.get("categories")
    if not isinstance(cat_entries, list):
        left.append(f"{src} has no 'categories' list; every annotation is left out.")
        cat_entries = []
    cat_ids = Counter(key(c) for c in cat_entries)
    for i, c in enumerate(cat_entries):
        if not isinstance(c, dict) or not _whole(c.get("id")) or not isinstance(c.get("name"), str):
            left.append(f"{src}: category entry {i + 1} has no whole-number id and name; it is left out.")
        elif cat_ids[c["id"]] > 1:
            left.append(f"{src}: category id {c['id']} ('{c['name']}') appears {cat_ids[c['id']]} times; "
                        "its annotations are left out.")
        else:
            categories[c["id"]] = c["name"]

    photos: dict[int, _Photo] = {}
    image_ids = Counter(key(im) for im in doc["images"])
    for i, im in enumerate(doc["images"]):
        ok = isinstance(im, dict) and _whole(im.get("id")) and isinstance(im.get("file_name"), str) \
            and im["file_name"] != ""
        if not ok:
            left.append(f"{src}: image entry {i + 1} has no whole-number id and file_name; it is left out with any "
                        "annotation of it.")
            continue
        w, h = im.get("width"), im.get("height")
        if not (_whole(w) and _whole(h) and w > 0 and h > 0):
            w = h = None  # the set's own photo sizes may still tell (checked when matched)
        if image_ids[im["id"]] > 1:
            left.append(f"{src}: image id {im['id']} ('{im['file_name']}') appears {image_ids[im['id']]} times; "
                        "it is left out with its annotations.")
            continue
        photos[im["id"]] = _Photo(im["file_name"], src, f"image id {im['id']}", w, h, [])

    ann_ids = Counter(key(a) for a in doc["annotations"])
    for i, a in enumerate(doc["annotations"]):
        if not isinstance(a, dict) or not all(_whole(a.get(k)) for k in ("id", "image_id", "category_id")):
            left.append(f"{src}: annotation entry {i + 1} has no whole-number id, image_id and category_id; "
                        "it is left out.")
            continue
        where = f"annotation id {a['id']}"
        if ann_ids[a["id"]] > 1:
            left.append(f"{src}: {where} appears {ann_ids[a['id']]} times; each copy is left out.")
            continue
        if a["image_id"] not in photos:
            if image_ids[a["image_id"]] == 0:  # an image left out above already has its sentence
                left.append(f"{src}: {where} names image id {a['image_id']}, which is not in 'images'; "
                            "it is left out.")
            continue
        if a["category_id"] not in categories:
            if cat_ids[a["category_id"]] == 0:
                left.append(f"{src}: {where} names category id {a['category_id']}, which is not in "
                            "'categories'; it is left out.")
            continue
        shape = _Shape(categories[a["category_id"]], where)
        if "bbox" in a:
            b = a["bbox"]
            if not isinstance(b, list) or len(b) != 4 or not _finite(*b):
                left.append(f"{src}: {where} of '{photos[a['image_id']].name}': its bbox {b!r} is not four numbers "
                            "[x, y, width, height]; it is left out.")
                continue
            shape.box, shape.shown = (b[0], b[1], b[0] + b[2], b[1] + b[3]), f"bbox {_fmt(b)}"
        seg = a.get("segmentation")
        if isinstance(seg, dict):
            shape.rle = seg
        elif seg not in (None, []):
            shape.polygons = seg
        photos[a["image_id"]].shapes.append(shape)
    return list(photos.values()), set(categories.values())


# ---- Pascal VOC and the Oxford-IIIT Pet layout --------------------------------------------------------------


def _xml_root(path: Path):
    """The parsed root element, or the reason it cannot be read (a clause)."""
    from xml.etree.ElementTree import ParseError

    import defusedxml.ElementTree as safe_xml
    from defusedxml import DefusedXmlException

    try:
        return safe_xml.parse(path).getroot()
    except OSError as exc:
        return f"cannot be read ({exc.strerror or exc})"
    except ParseError as exc:
        return f"is not well-formed XML ({exc})"
    except DefusedXmlException as exc:
        return f"uses XML features refused for safety ({type(exc).__name__})"


def _text(el, tag: str) -> str | None:
    node = el.find(tag)
    return node.text.strip() if node is not None and node.text is not None and node.text.strip() else None


def _voc_file(path: Path, left: list[str], kind: str | None = None) -> _Photo | None:
    """One VOC xml -> its photo; `kind` renames every object (the Oxford layout's head boxes)."""
    src = str(path)
    root = _xml_root(path)
    if isinstance(root, str):
        left.append(f"{src} {root}; it is left out.")
        return None
    if root.tag != "annotation":
        left.append(f"{src} is XML but not a Pascal VOC annotation (its root is <{root.tag}>, not <annotation>); "
                    "it is left out.")
        return None
    name = _text(root, "filename") or path.stem
    w = h = None
    size = root.find("size")
    if size is not None:
        try:
            w, h = int(_text(size, "width") or ""), int(_text(size, "height") or "")
        except ValueError:
            w = h = None
        if w is not None and (w <= 0 or h <= 0):
            w = h = None
    photo = _Photo(name, src, "", w, h, [])
    for i, obj in enumerate(root.findall("object")):
        where = f"object {i + 1}"
        label = kind or _text(obj, "name")
        bnd = obj.find("bndbox")
        if label is None or bnd is None:
            left.append(f"{src}, {where} of '{name}': it has no <name> or no <bndbox>; it is left out.")
            continue
        try:
            xmin, ymin, xmax, ymax = (float(_text(bnd, t) or "nan") for t in ("xmin", "ymin", "xmax", "ymax"))
        except ValueError:
            xmin = ymin = xmax = ymax = math.nan
        if not _finite(xmin, ymin, xmax, ymax):
            left.append(f"{src}, {where} of '{name}': its <bndbox> does not hold four numbers xmin, ymin, xmax, "
                        "ymax; it is left out.")
            continue
        # VOC devkit: 1-based pixel indices, xmax/ymax inclusive -> exclusive bounds from 0.
        shown = f"<bndbox> (xmin {xmin:g}, ymin {ymin:g}, xmax {xmax:g}, ymax {ymax:g})"
        photo.shapes.append(_Shape(label, where, box=(xmin - 1, ymin - 1, xmax, ymax), shown=shown))
    return photo


def _visible(paths: Iterable[Path], folder: Path, left: list[str]) -> list[Path]:
    paths = list(paths)
    hidden = [p for p in paths if p.name.startswith(".")]
    if hidden:
        left.append(f"{folder}: {len(hidden)} hidden file(s) (names starting with '.', such as '{hidden[0].name}') "
                    "were ignored.")
    return sorted(p for p in paths if not p.name.startswith("."))


def _trimap(path: Path) -> np.ndarray | str:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as img:
            arr = np.asarray(img)
    except (OSError, UnidentifiedImageError, ValueError) as exc:
        return f"cannot be read as an image ({exc})"
    if arr.ndim != 2:
        return f"is not a one-channel trimap (its array has shape {arr.shape})"
    bad = ~np.isin(arr, (TRIMAP_PET, TRIMAP_BACKGROUND, TRIMAP_BORDER))
    if bad.any():
        return f"holds values other than 1 (pet), 2 (background) and 3 (border), e.g. {int(arr[bad][0])}"
    return arr == TRIMAP_PET


def _oxford(folder: Path, left: list[str]) -> tuple[list[_Photo], set[str]]:
    by_stem: dict[str, _Photo] = {}
    kinds = set()
    xmls, trimaps = folder / "xmls", folder / "trimaps"
    if xmls.is_dir():
        kinds.add(HEAD)
        for p in _visible(xmls.glob("*.xml"), xmls, left):
            photo = _voc_file(p, left, kind=HEAD)
            if photo is not None:
                by_stem[p.stem] = photo
    if trimaps.is_dir():
        kinds.add(PET)
        for p in _visible(trimaps.glob("*.png"), trimaps, left):
            mask = _trimap(p)
            if isinstance(mask, str):
                left.append(f"{p} {mask}; it is left out.")
                continue
            h, w = mask.shape
            photo = by_stem.get(p.stem)
            if photo is None:
                by_stem[p.stem] = photo = _Photo(p.name, str(p), "", w, h, [])
            elif photo.width is not None and (photo.width, photo.height) != (w, h):
                left.append(f"{p} is {w}x{h} pixels but {photo.file} says the photo is {photo.width}x{photo.height}; "
                            "the trimap is left out.")
                continue
            photo.width, photo.height = w, h
            photo.shapes.append(_Shape(PET, f"trimap {p}", mask=mask))
    return list(by_stem.values()), kinds


def _voc(source: Path, left: list[str]) -> tuple[list[_Photo], set[str]]:
    files = [source] if source.is_file() else _visible(source.rglob("*.xml"), source, left)
    photos = [p for p in (_voc_file(f, left) for f in files) if p is not None]
    return photos, {s.kind for p in photos for s in p.shapes}


# ---- the one entry point ------------------------------------------------------------------------------------


def detect_format(source: Path) -> str:
    """'coco', 'voc' or 'oxford-pet' for a file or folder; UserError naming it when it is none of them."""
    source = Path(source)
    if source.is_file():
        if source.suffix.lower() == ".xml":
            return "voc"
        return "coco"
    if source.is_dir():
        if (source / "xmls").is_dir() or (source / "trimaps").is_dir():
            return "oxford-pet"
        if any(p for p in source.rglob("*.xml") if not p.name.startswith(".")):
            return "voc"
        raise UserError(f"the annotation folder {source} holds no .xml files and no xmls/ or trimaps/ folder; give "
                        "a COCO instances JSON file, a folder of Pascal VOC xml files or the Oxford-IIIT Pet "
                        "annotations folder.")
    raise UserError(f"the annotation file or folder {source} does not exist; check the path.")


def load_annotations(source: Path | str, files: Iterable[str], kinds: Iterable[str] | None = None,
                     sizes: Mapping[str, tuple[int, int]] | None = None) -> Annotations:
    """Read the ground truth at `source` for the photos `files` (paths inside their set).

    kinds: the category names to keep (e.g. ("head", "pet") or class names); None keeps every one the source has.
    sizes: set file -> (width, height) of the photo as decoded, when known: an annotation written for another size
    is left out (its coordinates would not fit), and a source that states no size takes it from here.
    """
    source = Path(source)
    fmt = detect_format(source)
    left: list[str] = []
    if fmt == "coco":
        raw, present = _coco(source, left)
    elif fmt == "oxford-pet":
        raw, present = _oxford(source, left)
    else:
        raw, present = _voc(source, left)
    wanted = tuple(dict.fromkeys(kinds)) if kinds is not None else tuple(sorted(present))
    for k in wanted:
        if k not in present:
            have = ", ".join(f"'{p}'" for p in sorted(present)) or "none"
            left.append(f"{source}: there is no category '{k}' (it has {have}); no region of '{k}' is scored.")
    kept = tuple(k for k in wanted if k in present)

    files = list(files)
    matcher = _Matcher(files)
    claims: dict[str, list[_Photo]] = defaultdict(list)
    absent: list[str] = []
    for photo in raw:
        if not any(s.kind in kept for s in photo.shapes):
            continue  # nothing asked for on this photo: not an error, and no need to find it in the set
        found, why = matcher.match(photo.name)
        if found is None and why == _NOT_IN_SET:
            absent.append(photo.name)
        elif found is None:
            left.append(f"{_entry(photo)} names the photo '{photo.name}', but {why}; it is left out.")
        else:
            claims[found].append(photo)

    out: dict[str, PhotoTruth] = {}
    for file in files:
        entries = claims.get(file)
        if not entries:
            continue
        if len(entries) > 1:
            n = len(entries) - 1
            for e in entries:
                left.append(f"{_entry(e)} names the photo '{e.name}' (the set's '{file}'), and so do {n} other "
                            f"entr{'y' if n == 1 else 'ies'}; which is right is unclear, so all are left out.")
            continue
        photo = entries[0]
        size = sizes.get(file) if sizes is not None else None
        if size is not None and photo.width is not None and (photo.width, photo.height) != tuple(size):
            left.append(f"{_entry(photo)} says the photo '{photo.name}' is {photo.width}x{photo.height} pixels, but "
                        f"the set's photo '{file}' is {size[0]}x{size[1]}; it is left out.")
            continue
        width, height = (photo.width, photo.height) if photo.width is not None else (size or (None, None))
        if width is None:
            left.append(f"{_entry(photo)} gives no photo size for '{photo.name}' (width and height); it is left out.")
            continue
        parts: dict[str, list[tuple[dict, BoxXYXY]]] = defaultdict(list)
        for shape in photo.shapes:
            if shape.kind not in kept:
                continue
            done = _rasterise(shape, width, height)
            if isinstance(done, str):
                left.append(f"{photo.file}, {shape.where} of '{photo.name}': {done}; it is left out.")
            else:
                parts[shape.kind].append(done)
        regions = {k: _region(k, width, height, v) for k, v in parts.items()}
        if regions:
            out[file] = PhotoTruth(file, width, height, regions)
    return Annotations(source, fmt, kept, out, tuple(left), tuple(absent))


def _entry(photo: _Photo) -> str:
    return f"{photo.file}, {photo.where}," if photo.where else photo.file


def _region(kind: str, width: int, height: int, parts: list[tuple[dict, BoxXYXY]]) -> Region:
    from pycocotools import mask as mask_utils

    rles = [r for r, _ in parts]
    rle = rles[0] if len(rles) == 1 else mask_utils.merge(rles, intersect=False)
    return Region(kind, width, height, tuple(b for _, b in parts), rle)
