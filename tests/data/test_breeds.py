"""generator/data/breeds.py: the breed example's split (seeded per breed, links only) and the folder it owns."""

from __future__ import annotations

from pathlib import Path

import pytest

from generator.data import breeds
from generator.errors import UserError


def oxford(root: Path, per: dict[str, int]) -> Path:
    for breed, n in per.items():
        for i in range(1, n + 1):
            (root / ("cat" if breed[0].isupper() else "dog")).mkdir(parents=True, exist_ok=True)
            (root / ("cat" if breed[0].isupper() else "dog") / f"oxfordpet_{breed}_{i}.jpg").write_bytes(b"jpeg")
    (root / "cat" / "skimage_chelsea.png").write_bytes(b"png")  # not a breed photo
    return root


def listing(dest: Path) -> dict[str, list[str]]:
    return {p.relative_to(dest).as_posix(): sorted(q.name for q in p.iterdir())
            for p in sorted(dest.glob("*/*")) if p.is_dir()}


def test_breeds_are_split_per_breed_into_links(tmp_path):
    src = oxford(tmp_path / "personal", {"British_Shorthair": 10, "Bengal": 10, "american_bulldog": 4})
    dest = tmp_path / "data" / "breeds"
    counts = breeds.link_breeds(src, dest, test_share=0.3, seed=0)
    assert counts == {"Bengal": (7, 3), "British_Shorthair": (7, 3), "american_bulldog": (3, 1)}
    files = [p for p in dest.rglob("*.jpg")]
    assert len(files) == 24 and all(p.is_symlink() and p.resolve().parent.parent == src.resolve() for p in files)
    for breed in counts:  # no photo on both sides
        names = [{p.name for p in (dest / part / breed).iterdir()} for part in ("train", "test")]
        assert not names[0] & names[1]
    before = listing(dest)
    more = oxford(tmp_path / "personal", {"Abyssinian": 10})  # another breed moves no other breed's photos
    breeds.link_breeds(more, dest, test_share=0.3, seed=0)
    after = listing(dest)
    assert {k: v for k, v in after.items() if "Abyssinian" not in k} == before
    breeds.link_breeds(src, dest, test_share=0.3, seed=1)  # another seed: another split, replaced whole
    assert listing(dest) != after and len(list(dest.rglob("*.jpg"))) == 34


def test_the_breeds_folder_is_replaced_only_when_the_tool_made_it(tmp_path):
    src = oxford(tmp_path / "personal", {"Bengal": 4, "pug": 4})
    theirs = tmp_path / "theirs"
    (theirs / "train").mkdir(parents=True)
    (theirs / "train" / "notes.txt").write_text("mine")
    with pytest.raises(UserError, match="was not made by") as exc:
        breeds.link_breeds(src, theirs)
    assert "\n" not in str(exc.value) and (theirs / "train" / "notes.txt").read_text() == "mine"
    dest = tmp_path / "breeds"
    breeds.link_breeds(src, dest)
    (dest / "test" / "Bengal" / "added.jpg").write_bytes(b"someone's")
    with pytest.raises(UserError, match="added.jpg, which"):
        breeds.link_breeds(src, dest)
    assert (dest / "test" / "Bengal" / "added.jpg").read_bytes() == b"someone's"
    with pytest.raises(UserError, match="at least two"):
        breeds.link_breeds(src, tmp_path / "one", only=("pug",))
