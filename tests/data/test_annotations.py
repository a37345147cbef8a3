"""Ground-truth parsers on small COCO, Pascal VOC and Oxford-IIIT Pet files written here, whose masks and boxes
are known by construction, and every kind of bad annotation: one sentence naming the file and the entry, the other
photos still read."""

from __future__ import annotations

import errno
import json
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from PIL import Image
from pycocotools import mask as mask_utils

from generator.data.annotations import load_annotations
from generator.errors import UserError

W, H = 10, 8  # every photo here is 10 pixels wide and 8 high


def box_mask(x0: int, y0: int, x1: int, y1: int, width: int = W, height: int = H) -> np.ndarray:
    """Pixels x0 <= x < x1, y0 <= y < y1: a box with integer corners covers exactly these."""
    m = np.zeros((height, width), dtype=bool)
    m[y0:y1, x0:x1] = True
    return m


def runs_column_major(m: np.ndarray) -> list[int]:
    """COCO's uncompressed RLE of a mask: run lengths over the column-major pixels, starting with a 0-run."""
    flat = m.flatten(order="F").astype(int)
    counts, current, n = [], 0, 0
    for v in flat:
        if v != current:
            counts.append(n)
            current, n = v, 0
        n += 1
    counts.append(n)
    return counts


def coco(path: Path, images: list, annotations: list, categories: list | None = None) -> Path:
    categories = [{"id": 1, "name": "head"}, {"id": 2, "name": "pet"}] if categories is None else categories
    path.write_text(json.dumps({"images": images, "annotations": annotations, "categories": categories}))
    return path


def image(i: int, name: str, width: int = W, height: int = H) -> dict:
    return {"id": i, "file_name": name, "width": width, "height": height}


def box(i: int, image_id: int, bbox: list, category: int = 1) -> dict:
    return {"id": i, "image_id": image_id, "category_id": category, "bbox": bbox}


def seg(i: int, image_id: int, segmentation, category: int = 2) -> dict:
    return {"id": i, "image_id": image_id, "category_id": category, "segmentation": segmentation}


# An L-shaped pet: rows 1-2 over columns 1-6, and rows 3-5 over columns 1-2 (12 + 6 = 18 pixels).
L_POLYGON = [1, 1, 7, 1, 7, 3, 3, 3, 3, 6, 1, 6]
L_MASK = box_mask(1, 1, 7, 3) | box_mask(1, 3, 3, 6)


def test_coco_polygon_rle_and_box_give_the_masks_drawn_by_hand(tmp_path):
    rle_mask = box_mask(4, 2, 9, 7) & ~box_mask(6, 4, 7, 5)  # a box with a one-pixel hole
    compressed = mask_utils.encode(np.asfortranarray(L_MASK.astype(np.uint8)))
    src = coco(tmp_path / "a.json",
               [image(1, "cat/a.jpg"), image(2, "dog/b.jpg"), image(3, "dog/c.jpg")],
               [box(1, 1, [2, 1, 3, 4]), seg(2, 1, [L_POLYGON]),
                seg(3, 2, {"size": [H, W], "counts": runs_column_major(rle_mask)}),
                seg(4, 3, {"size": [H, W], "counts": compressed["counts"].decode("ascii")})])
    ann = load_annotations(src, ["cat/a.jpg", "dog/b.jpg", "dog/c.jpg"])
    assert ann.format == "coco" and ann.kinds == ("head", "pet") and ann.left_out == ()
    a = ann.photos["cat/a.jpg"]
    assert (a.width, a.height) == (W, H)
    np.testing.assert_array_equal(a.regions["head"].mask, box_mask(2, 1, 5, 5))
    assert a.regions["head"].boxes == ((2, 1, 5, 5),)
    np.testing.assert_array_equal(a.regions["pet"].mask, L_MASK)
    assert a.regions["pet"].box == (1.0, 1.0, 7.0, 6.0)  # no bbox given: the mask's bounds
    assert a.regions["pet"].area_share == 18 / (W * H)
    np.testing.assert_array_equal(ann.photos["dog/b.jpg"].regions["pet"].mask, rle_mask)
    np.testing.assert_array_equal(ann.photos["dog/c.jpg"].regions["pet"].mask, L_MASK)
    assert ann.count("pet") == 3 and ann.count("head") == 1


def test_regions_of_one_category_are_united_and_keep_their_boxes(tmp_path):
    src = coco(tmp_path / "a.json", [image(1, "a.jpg")], [box(1, 1, [0, 0, 2, 2]), box(2, 1, [5, 4, 3, 3])])
    region = load_annotations(src, ["a.jpg"]).photos["a.jpg"].regions["head"]
    np.testing.assert_array_equal(region.mask, box_mask(0, 0, 2, 2) | box_mask(5, 4, 8, 7))
    assert region.boxes == ((0, 0, 2, 2), (5, 4, 8, 7))
    assert region.box == (0.0, 0.0, 8.0, 7.0)


def test_a_bbox_given_with_a_segmentation_is_the_region_box(tmp_path):
    a = seg(1, 1, [L_POLYGON]) | {"bbox": [0, 0, 8, 7]}
    region = load_annotations(coco(tmp_path / "a.json", [image(1, "a.jpg")], [a]), ["a.jpg"]).photos["a.jpg"]
    assert region.regions["pet"].boxes == ((0, 0, 8, 7),)
    np.testing.assert_array_equal(region.regions["pet"].mask, L_MASK)


def test_photos_match_by_relative_path_then_by_stem(tmp_path):
    src = coco(tmp_path / "a.json",
               [image(1, "cat/a.jpg"), image(2, "elsewhere/b.jpg"), image(3, ".\\dog\\c.jpg")],
               [box(1, 1, [0, 0, 2, 2]), box(2, 2, [0, 0, 2, 2]), box(3, 3, [0, 0, 2, 2])])
    ann = load_annotations(src, ["cat/a.jpg", "dog/a.jpg", "cat/b.png", "dog/c.jpg"])
    assert sorted(ann.photos) == ["cat/a.jpg", "cat/b.png", "dog/c.jpg"]  # path; stem; Windows path
    assert ann.left_out == ()


def test_a_stem_that_names_several_photos_matches_none(tmp_path):
    src = coco(tmp_path / "a.json", [image(1, "x.jpg"), image(2, "y.jpg")],
               [box(1, 1, [0, 0, 2, 2]), box(2, 2, [0, 0, 2, 2])])
    ann = load_annotations(src, ["cat/x.jpg", "dog/x.png", "y.jpg"])
    assert list(ann.photos) == ["y.jpg"]
    (sentence,) = ann.left_out
    assert str(src) in sentence and "image id 1" in sentence and "'cat/x.jpg'" in sentence and "2 photos" in sentence


def test_two_entries_for_one_photo_are_both_left_out(tmp_path):
    src = coco(tmp_path / "a.json", [image(1, "cat/a.jpg"), image(2, "other/a.jpg"), image(3, "b.jpg")],
               [box(1, 1, [0, 0, 2, 2]), box(2, 2, [0, 0, 2, 2]), box(3, 3, [0, 0, 2, 2])])
    ann = load_annotations(src, ["cat/a.jpg", "b.jpg"])
    assert list(ann.photos) == ["b.jpg"]
    assert len(ann.left_out) == 2
    assert any("image id 1" in s for s in ann.left_out) and any("image id 2" in s for s in ann.left_out)


def test_categories_are_chosen_by_name(tmp_path):
    src = coco(tmp_path / "a.json", [image(1, "a.jpg"), image(2, "b.jpg")],
               [box(1, 1, [0, 0, 2, 2]), seg(2, 1, [L_POLYGON]), seg(3, 2, [L_POLYGON])])
    heads = load_annotations(src, ["a.jpg", "b.jpg"], kinds=["head"])
    assert heads.kinds == ("head",) and list(heads.photos) == ["a.jpg"]
    assert list(heads.photos["a.jpg"].regions) == ["head"]
    missing = load_annotations(src, ["a.jpg", "b.jpg"], kinds=["head", "tail"])
    assert missing.kinds == ("head",)
    (sentence,) = missing.left_out
    assert str(src) in sentence and "'tail'" in sentence and "'head', 'pet'" in sentence


def test_photo_sizes_from_the_set_check_and_complete_the_file(tmp_path):
    src = coco(tmp_path / "a.json", [image(1, "a.jpg"), {"id": 2, "file_name": "b.jpg"}, image(3, "c.jpg", 20, 16)],
               [box(1, 1, [0, 0, 2, 2]), box(2, 2, [0, 0, 2, 2]), box(3, 3, [0, 0, 2, 2])])
    ann = load_annotations(src, ["a.jpg", "b.jpg", "c.jpg"], sizes={"a.jpg": (W, H), "b.jpg": (30, 20),
                                                                     "c.jpg": (W, H)})
    assert sorted(ann.photos) == ["a.jpg", "b.jpg"]
    assert ann.photos["b.jpg"].regions["head"].mask.shape == (20, 30)
    (sentence,) = ann.left_out
    assert "image id 3" in sentence and "20x16" in sentence and "10x8" in sentence
    no_size = load_annotations(src, ["b.jpg"])
    assert not no_size.photos and any("image id 2, gives no photo size for 'b.jpg'" in s for s in no_size.left_out)


# Each bad annotation sits on photo bad.jpg (id 2) beside a good photo good.jpg (id 1); it is left out with one
# sentence naming the file and the entry, and good.jpg is still read.
BAD_ANNOTATIONS = {
    "box outside the photo": (box(7, 2, [6, 4, 5, 2]), "annotation id 7", "bbox [6, 4, 5, 2] reaches outside the 10x8"),
    "box with a negative width": (box(7, 2, [6, 4, -2, 2]), "annotation id 7", "negative or zero width"),
    "box of zero height": (box(7, 2, [6, 4, 2, 0]), "annotation id 7", "negative or zero width"),
    "bbox of three numbers": (box(7, 2, [6, 4, 2]), "annotation id 7", "not four numbers"),
    "polygon of 2 points": (seg(7, 2, [[1, 1, 5, 5]]), "annotation id 7", "polygon 1 has 2 point(s), fewer than the 3"),
    "second polygon of 1 point": (seg(7, 2, [L_POLYGON, [1, 1]]), "annotation id 7", "polygon 2 has 1 point"),
    "polygon of odd length": (seg(7, 2, [[1, 1, 5, 5, 1]]), "annotation id 7", "not a list of x, y numbers"),
    "polygon outside the photo": (seg(7, 2, [[1, 1, 12, 1, 12, 5]]), "annotation id 7", "outside the 10x8 photo"),
    "polygon of no area": (seg(7, 2, [[1, 1, 5, 1, 9, 1]]), "annotation id 7", "covers no pixel"),
    "RLE of another size": (seg(7, 2, {"size": [4, 4], "counts": [16]}), "annotation id 7", "has size [4, 4]"),
    "RLE counts too short": (seg(7, 2, {"size": [H, W], "counts": [3, 4]}), "annotation id 7", "adding up to"),
    "RLE text that is not RLE": (seg(7, 2, {"size": [H, W], "counts": "0`lg2"}), "annotation id 7",
                                 "do not describe a mask"),
    "neither box nor segmentation": ({"id": 7, "image_id": 2, "category_id": 1}, "annotation id 7",
                                     "neither a segmentation nor a box"),
    "unknown image id": (box(7, 9, [0, 0, 2, 2]), "annotation id 7", "image id 9, which is not in 'images'"),
    "unknown category id": (box(7, 2, [0, 0, 2, 2], category=5), "annotation id 7", "category id 5"),
    "duplicate annotation id": (box(1, 2, [0, 0, 2, 2]), "annotation id 1", "appears 2 times"),
    "annotation without ids": ({"bbox": [0, 0, 2, 2]}, "annotation entry 3", "no whole-number id"),
}


@pytest.mark.parametrize("case", sorted(BAD_ANNOTATIONS))
def test_a_bad_annotation_is_one_sentence_and_the_others_are_read(tmp_path, case):
    bad, entry, reason = BAD_ANNOTATIONS[case]
    src = coco(tmp_path / "a.json", [image(1, "good.jpg"), image(2, "bad.jpg")],
               [box(1, 1, [2, 1, 3, 4]), seg(2, 1, [L_POLYGON]), bad])
    ann = load_annotations(src, ["good.jpg", "bad.jpg"])
    assert len(ann.left_out) == (2 if case == "duplicate annotation id" else 1), ann.left_out
    sentence = ann.left_out[-1]
    assert str(src) in sentence and entry in sentence and reason in sentence, sentence
    assert sentence.endswith(".") and "\n" not in sentence
    assert "bad.jpg" not in ann.photos
    good = ann.photos["good.jpg"].regions
    np.testing.assert_array_equal(good["pet"].mask, L_MASK)
    if case != "duplicate annotation id":  # there the good photo's own head box is one of the two copies
        np.testing.assert_array_equal(good["head"].mask, box_mask(2, 1, 5, 5))


BAD_IMAGES = {
    "duplicate image id": (image(1, "bad.jpg"), "image id 1", "appears 2 times"),
    "image without file_name": ({"id": 2, "width": W, "height": H}, "image entry 2", "no whole-number id"),
}


def test_photos_not_in_the_set_are_counted_apart_not_left_out(tmp_path):
    src = coco(tmp_path / "a.json", [image(1, "good.jpg"), image(2, "nowhere/missing.jpg"), image(3, "gone.jpg")],
               [box(1, 1, [2, 1, 3, 4]), box(2, 2, [0, 0, 2, 2]), box(3, 3, [0, 0, 3, 3])])
    ann = load_annotations(src, ["good.jpg"])
    assert ann.left_out == ()
    assert sorted(ann.not_in_set) == ["gone.jpg", "nowhere/missing.jpg"]
    assert list(ann.photos) == ["good.jpg"]


@pytest.mark.parametrize("case", sorted(BAD_IMAGES))
def test_a_bad_image_entry_is_one_sentence_and_the_others_are_read(tmp_path, case):
    bad, entry, reason = BAD_IMAGES[case]
    src = coco(tmp_path / "a.json", [image(1, "good.jpg"), bad, image(3, "other.jpg")],
               [box(1, 1, [2, 1, 3, 4]), box(2, 2, [0, 0, 2, 2]), box(3, 3, [0, 0, 3, 3])])
    ann = load_annotations(src, ["good.jpg", "bad.jpg", "other.jpg"])
    assert any(str(src) in s and entry in s and reason in s for s in ann.left_out), ann.left_out
    assert "bad.jpg" not in ann.photos
    np.testing.assert_array_equal(ann.photos["other.jpg"].regions["head"].mask, box_mask(0, 0, 3, 3))


def test_a_duplicate_category_id_leaves_its_annotations_out(tmp_path):
    src = coco(tmp_path / "a.json", [image(1, "a.jpg")], [box(1, 1, [0, 0, 2, 2]), seg(2, 1, [L_POLYGON])],
               categories=[{"id": 1, "name": "head"}, {"id": 1, "name": "face"}, {"id": 2, "name": "pet"}])
    ann = load_annotations(src, ["a.jpg"])
    assert list(ann.photos["a.jpg"].regions) == ["pet"]
    assert any("category id 1" in s and "appears 2 times" in s for s in ann.left_out)


@pytest.mark.parametrize("content, says", [
    (b"{not json", "is not JSON"),
    (b"\xff\xfe\x00", "is not JSON"),
    (b"[1, 2]", "not COCO instances"),
    (b'{"images": []}', "not COCO instances"),
])
def test_a_file_that_is_not_coco_is_a_user_error_naming_it(tmp_path, content, says):
    path = tmp_path / "bad.json"
    path.write_bytes(content)
    with pytest.raises(UserError, match=says) as err:
        load_annotations(path, ["a.jpg"])
    assert str(path) in str(err.value)


def test_a_missing_or_empty_source_is_a_user_error_naming_it(tmp_path):
    with pytest.raises(UserError, match="does not exist") as err:
        load_annotations(tmp_path / "nothing.json", ["a.jpg"])
    assert str(tmp_path / "nothing.json") in str(err.value)
    (tmp_path / "empty").mkdir()
    with pytest.raises(UserError, match="holds no .xml files"):
        load_annotations(tmp_path / "empty", ["a.jpg"])


def test_an_unreadable_file_is_a_user_error_naming_it(tmp_path, monkeypatch):
    path = tmp_path / "locked.json"
    path.write_text("{}")

    def refuse(self):
        raise PermissionError(errno.EACCES, "Permission denied", str(self))

    monkeypatch.setattr(Path, "read_bytes", refuse)  # root reads any file: refuse the read itself
    with pytest.raises(UserError, match=r"cannot read the annotation file .* \(Permission denied\)") as err:
        load_annotations(path, ["a.jpg"])
    assert str(path) in str(err.value)


# ---- Pascal VOC -------------------------------------------------------------------------------------------------


def voc_xml(filename: str | None, objects: list[tuple[str, tuple]], size: tuple[int, int] | None = (W, H)) -> str:
    parts = ["<annotation>", "<folder>x</folder>"]
    if filename is not None:
        parts.append(f"<filename>{filename}</filename>")
    if size is not None:
        parts.append(f"<size><width>{size[0]}</width><height>{size[1]}</height><depth>3</depth></size>")
    for name, (xmin, ymin, xmax, ymax) in objects:
        parts.append(f"<object><name>{name}</name><difficult>0</difficult><bndbox><xmin>{xmin}</xmin>"
                     f"<ymin>{ymin}</ymin><xmax>{xmax}</xmax><ymax>{ymax}</ymax></bndbox></object>")
    return "".join(parts + ["</annotation>"])


def test_voc_boxes_are_one_based_and_inclusive(tmp_path):
    folder = tmp_path / "voc"
    folder.mkdir()
    # xmin=3..xmax=6 (1-based, inclusive) is pixels 2..5; ymin=2..ymax=4 is rows 1..3.
    (folder / "a.xml").write_text(voc_xml("a.jpg", [("dog", (3, 2, 6, 4)), ("person", (1, 1, 10, 8)),
                                                    ("dog", (8, 6, 9, 8))]))
    (folder / "b.xml").write_text(voc_xml("b.jpg", [("person", (2, 2, 2, 2))]))
    ann = load_annotations(folder, ["cat/a.jpg", "b.jpg"])
    assert ann.format == "voc" and ann.kinds == ("dog", "person") and ann.left_out == ()
    a = ann.photos["cat/a.jpg"].regions
    np.testing.assert_array_equal(a["dog"].mask, box_mask(2, 1, 6, 4) | box_mask(7, 5, 9, 8))
    assert a["dog"].boxes == ((2, 1, 6, 4), (7, 5, 9, 8))
    np.testing.assert_array_equal(a["person"].mask, np.ones((H, W), dtype=bool))
    np.testing.assert_array_equal(ann.photos["b.jpg"].regions["person"].mask, box_mask(1, 1, 2, 2))  # one pixel
    only_dogs = load_annotations(folder / "a.xml", ["cat/a.jpg"], kinds=["dog"])  # one file works too
    assert only_dogs.kinds == ("dog",) and list(only_dogs.photos["cat/a.jpg"].regions) == ["dog"]


def test_bad_voc_files_are_left_out_one_sentence_each(tmp_path):
    folder = tmp_path / "voc"
    folder.mkdir()
    (folder / "good.xml").write_text(voc_xml("good.jpg", [("cat", (3, 2, 6, 4))]))
    (folder / "broken.xml").write_text("<annotation><filename>broken.jpg</filename>")
    (folder / "other.xml").write_text("<svg></svg>")
    (folder / "bomb.xml").write_text('<?xml version="1.0"?><!DOCTYPE a [<!ENTITY e "x"><!ENTITY f "&e;&e;">]>'
                                     "<annotation><filename>&f;</filename></annotation>")
    (folder / "parts.xml").write_text(voc_xml("parts.jpg", [("cat", (0, 2, 6, 4)), ("cat", (6, 2, 3, 4)),
                                                            ("cat", ("a", 2, 3, 4))]))
    (folder / "nobox.xml").write_text("<annotation><filename>nobox.jpg</filename><object><name>cat</name>"
                                      "</object></annotation>")
    (folder / "nosize.xml").write_text(voc_xml("nosize.jpg", [("cat", (3, 2, 6, 4))], size=None))
    (folder / "stranger.xml").write_text(voc_xml("stranger.jpg", [("cat", (3, 2, 6, 4))]))
    files = ["good.jpg", "broken.jpg", "parts.jpg", "nobox.jpg", "nosize.jpg", "bomb.jpg"]
    ann = load_annotations(folder, files)
    assert list(ann.photos) == ["good.jpg"]
    said = "\n".join(ann.left_out)
    for needle in (f"{folder / 'broken.xml'} is not well-formed XML",
                   f"{folder / 'other.xml'} is XML but not a Pascal VOC annotation",
                   f"{folder / 'bomb.xml'} uses XML features refused for safety",
                   f"{folder / 'parts.xml'}, object 1 of 'parts.jpg': its <bndbox> (xmin 0, ymin 2, xmax 6, ymax 4)",
                   "outside the 10x8 photo",
                   f"{folder / 'parts.xml'}, object 2 of 'parts.jpg': its <bndbox> (xmin 6,", "negative or zero width",
                   f"{folder / 'parts.xml'}, object 3 of 'parts.jpg': its <bndbox> does not hold four numbers",
                   f"{folder / 'nobox.xml'}, object 1 of 'nobox.jpg': it has no <name> or no <bndbox>",
                   f"{folder / 'nosize.xml'} gives no photo size"):
        assert needle in said, needle
    assert "stranger.jpg" not in said and ann.not_in_set == ("stranger.jpg",)  # not in the set: counted apart
    assert len(ann.left_out) == 8, ann.left_out  # one each; parts.xml three
    with_size = load_annotations(folder, files, sizes={"nosize.jpg": (W, H)})
    np.testing.assert_array_equal(with_size.photos["nosize.jpg"].regions["cat"].mask, box_mask(2, 1, 6, 4))


# ---- the Oxford-IIIT Pet layout ---------------------------------------------------------------------------------


def trimap(path: Path, pet: np.ndarray, border: np.ndarray) -> None:
    t = np.full(pet.shape, 2, dtype=np.uint8)
    t[border] = 3
    t[pet] = 1
    Image.fromarray(t, "L").save(path)


def oxford(root: Path) -> Path:
    folder = root / "annotations"
    (folder / "xmls").mkdir(parents=True)
    (folder / "trimaps").mkdir()
    (folder / "xmls" / "Abyssinian_1.xml").write_text(voc_xml("Abyssinian_1.jpg", [("cat", (3, 2, 6, 4))]))
    trimap(folder / "trimaps" / "Abyssinian_1.png", L_MASK, box_mask(0, 0, 8, 7) & ~L_MASK)
    trimap(folder / "trimaps" / "beagle_2.png", box_mask(1, 1, 4, 4), box_mask(0, 0, 5, 5) & ~box_mask(1, 1, 4, 4))
    (folder / "trimaps" / "._beagle_2.png").write_bytes(b"\x00\x05\x16\x07 resource fork")
    return folder


def test_oxford_layout_gives_head_boxes_and_the_trimaps_pet_pixels(tmp_path):
    folder = oxford(tmp_path)
    ann = load_annotations(folder, ["cat/Abyssinian_1.jpg", "dog/beagle_2.jpg", "dog/beagle_3.jpg"])
    assert ann.format == "oxford-pet" and ann.kinds == ("head", "pet")
    cat = ann.photos["cat/Abyssinian_1.jpg"].regions
    np.testing.assert_array_equal(cat["head"].mask, box_mask(2, 1, 6, 4))
    np.testing.assert_array_equal(cat["pet"].mask, L_MASK)  # 1 = pet; the border (3) is not pet
    dog = ann.photos["dog/beagle_2.jpg"].regions
    assert list(dog) == ["pet"]
    np.testing.assert_array_equal(dog["pet"].mask, box_mask(1, 1, 4, 4))
    (sentence,) = ann.left_out  # the resource fork, counted
    assert str(folder / "trimaps") in sentence and "1 hidden file(s)" in sentence


def test_bad_oxford_files_are_left_out(tmp_path):
    folder = oxford(tmp_path)
    bad = np.full((H, W), 2, dtype=np.uint8)
    bad[0, 0] = 7
    Image.fromarray(bad, "L").save(folder / "trimaps" / "pug_1.png")
    (folder / "trimaps" / "pug_2.png").write_bytes(b"not a png")
    (folder / "xmls" / "pug_3.xml").write_text(voc_xml("pug_3.jpg", [("dog", (1, 1, 2, 2))], size=(12, 9)))
    trimap(folder / "trimaps" / "pug_3.png", box_mask(1, 1, 4, 4), box_mask(0, 0, 0, 0))
    ann = load_annotations(folder, ["Abyssinian_1.jpg", "pug_1.jpg", "pug_2.jpg", "pug_3.jpg"])
    said = "\n".join(ann.left_out)
    assert f"{folder / 'trimaps' / 'pug_1.png'} holds values other than 1 (pet), 2 (background) and 3" in said
    assert f"{folder / 'trimaps' / 'pug_2.png'} cannot be read as an image" in said
    assert f"{folder / 'trimaps' / 'pug_3.png'} is 10x8 pixels but" in said and "12x9" in said
    assert sorted(ann.photos) == ["Abyssinian_1.jpg", "pug_3.jpg"]  # pug_3 keeps its head box (12x9)
    assert list(ann.photos["pug_3.jpg"].regions) == ["head"]


# ---- any COCO content: ground truth or sentences, never a crash --------------------------------------------------

values = st.one_of(st.none(), st.booleans(), st.integers(-3, 12), st.floats(-2, 12), st.just(float("nan")),
                   st.text(max_size=4), st.lists(st.integers(-1, 12), max_size=8),
                   st.lists(st.lists(st.floats(-1, 11), max_size=8), max_size=2),
                   st.fixed_dictionaries({"size": st.sampled_from([[H, W], [2, 2], "x"]),
                                          "counts": st.one_of(st.lists(st.integers(0, 80), max_size=4),
                                                              st.text(max_size=6))}))
entries = st.dictionaries(st.sampled_from(["id", "image_id", "category_id", "bbox", "segmentation", "file_name",
                                           "width", "height", "name"]), values, max_size=6)


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(images=st.lists(st.one_of(entries, st.builds(image, st.integers(1, 3), st.sampled_from(["a.jpg", "b.jpg"]))),
                       max_size=3),
       annotations=st.lists(st.one_of(entries, st.builds(box, st.integers(1, 4), st.integers(1, 3),
                                                         st.lists(st.integers(-2, 12), min_size=4, max_size=4))),
                            max_size=4))
def test_any_coco_content_gives_ground_truth_or_sentences(tmp_path, images, annotations):
    src = coco(tmp_path / "fuzz.json", images, annotations)
    ann = load_annotations(src, ["a.jpg", "b.jpg"])
    for sentence in ann.left_out:
        assert str(src) in sentence and sentence.endswith(".") and "\n" not in sentence
    for photo in ann.photos.values():
        for region in photo.regions.values():
            assert region.mask.shape == (photo.height, photo.width) and region.mask.any()
            for x0, y0, x1, y1 in region.boxes:
                assert 0 <= x0 < x1 <= photo.width and 0 <= y0 < y1 <= photo.height
