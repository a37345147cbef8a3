"""The 37-breed example: the Oxford-IIIT Pet photos of the shared personal set (the breed is in each file name,
oxfordpet_<Breed>_<n>.jpg) split, seeded per breed, into data/breeds/{train,test}/<Breed>/ as links.

The folder is the tool's: it holds a marker (MARKER) listing every link it made, so a rerun replaces exactly
those and nothing else; a folder without the marker, or with anything the marker does not list, is refused.
"""

from __future__ import annotations

import json
import os
import random
import re
from collections import defaultdict
from pathlib import Path

from generator.errors import UserError

MARKER = ".cam-report-breeds.json"
TOOL = "cam-report breeds"
_NAME = re.compile(r"oxfordpet_(.+)_(\d+)\.jpe?g", re.IGNORECASE)


def breeds_of(source: Path) -> dict[str, list[Path]]:
    """Breed -> its photos under `source` (any depth), sorted by name; files of other names are not photos of a
    breed and are left out."""
    out: dict[str, list[Path]] = defaultdict(list)
    for path in sorted(Path(source).rglob("*")):
        m = _NAME.fullmatch(path.name)
        if m and path.is_file():
            out[m.group(1)].append(path)
    return dict(sorted(out.items()))


def split(photos: list[Path], breed: str, test_share: float, seed: int) -> tuple[list[Path], list[Path]]:
    """(train, test) of one breed: a shuffle seeded by (seed, breed), so adding a breed never moves another's
    photos; at least one photo on each side when the breed has two or more."""
    order = sorted(photos, key=lambda p: p.name)
    random.Random(f"{seed}\0{breed}").shuffle(order)
    n_test = min(max(1, round(test_share * len(order))), len(order) - 1) if len(order) > 1 else 0
    return sorted(order[n_test:]), sorted(order[:n_test])


def _owned(dest: Path) -> list[str] | None:
    """The links a previous run wrote (relative paths), None if the folder is absent; UserError if it is not ours."""
    if not dest.exists():
        return None
    try:
        marker = json.loads((dest / MARKER).read_text(encoding="utf-8"))
        links = marker["links"] if marker.get("tool") == TOOL else None
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        links = None
    if links is None:
        if dest.is_dir() and not any(dest.iterdir()):
            return []
        raise UserError(f"{dest} exists and was not made by `python -m generator breeds` (no {MARKER} in it); "
                        "move it away or name another folder with --data-dir.")
    listed = set(links) | {MARKER}
    for path in sorted(dest.rglob("*")):
        rel = path.relative_to(dest).as_posix()
        if path.is_symlink() or path.is_file():
            if rel not in listed:
                raise UserError(f"{dest} holds {rel}, which `python -m generator breeds` did not write; move it "
                                "away (nothing was changed).")
    return list(links)


def link_breeds(source: Path, dest: Path, *, test_share: float = 0.3, seed: int = 0,
                only: tuple[str, ...] = ()) -> dict[str, tuple[int, int]]:
    """Link every breed's photos of `source` into dest/train/<Breed>/ and dest/test/<Breed>/ (never copies);
    `only`: these breeds alone. Returns breed -> (training photos, test photos)."""
    source, dest = Path(source), Path(dest)
    if not source.is_dir():
        raise UserError(f"{source}: no such folder of Oxford-IIIT Pet photos (oxfordpet_<Breed>_<n>.jpg); give "
                        "--source, e.g. ../shared/datasets/personal.")
    found = breeds_of(source)
    if only:
        missing = [b for b in only if b not in found]
        if missing:
            raise UserError(f"{source} has no photos of breed {missing[0]!r}; breeds there: "
                            f"{', '.join(found) or 'none'}.")
        found = {b: found[b] for b in only}
    if len(found) < 2:
        raise UserError(f"{source} holds photos of {len(found)} breed(s) named oxfordpet_<Breed>_<n>.jpg; the "
                        "example needs at least two.")
    old = _owned(dest)
    for rel in old or []:  # only what the previous run linked
        (dest / rel).unlink(missing_ok=True)
    for folder in sorted((p for p in dest.rglob("*") if p.is_dir()), reverse=True) if dest.exists() else []:
        if not any(folder.iterdir()):
            folder.rmdir()
    dest.mkdir(parents=True, exist_ok=True)
    links: list[str] = []
    counts: dict[str, tuple[int, int]] = {}
    try:
        for breed, photos in found.items():
            train, test = split(photos, breed, test_share, seed)
            counts[breed] = (len(train), len(test))
            for part, chosen in (("train", train), ("test", test)):
                for photo in chosen:
                    rel = f"{part}/{breed}/{photo.name}"
                    (dest / part / breed).mkdir(parents=True, exist_ok=True)
                    os.symlink(photo.absolute(), dest / rel)
                    links.append(rel)
    finally:  # the marker lists every link made, also when a run stops half-way
        (dest / MARKER).write_text(json.dumps({"tool": TOOL, "source": str(source), "seed": seed,
                                               "test_share": test_share, "links": links}, indent=1),
                                   encoding="utf-8")
    return counts
