"""Do the annotation parsers work on the real file? `python -m bench.localisation_personal`

Loads the COCO ground truth of the personal photos (../shared/datasets/annotations/personal.json), matches it to
the photos of ../shared/datasets/personal as the set scan lists them (sizes read from the files), and prints: how
many photos matched, what was left out, how long reading and scoring took, and the baselines every map method
must beat there, for the head box and the pet outline, each a mean with its 95% bootstrap interval over photos:
the centre point in the pointing game (exact and with 15 pixels of slack), a centred Gaussian map (pointing game,
energy inside, CAM-box IoU, localisation accuracy at IoU >= 0.5) and the region's area share (a flat map's
energy score). No model is involved: these are the numbers a map has to beat.
"""

from __future__ import annotations

import argparse
import random
import statistics
import sys
import time
from pathlib import Path

import numpy as np
from PIL import Image

from generator.data.annotations import load_annotations
from generator.data.scan import scan_set
from generator.evaluate import localisation as L
from generator.explain.overlay import cam_box

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT.parent / "shared" / "datasets"


def photo_sizes(rows) -> tuple[dict[str, tuple[int, int]], int]:
    """(set file -> (width, height) as stored, photos whose EXIF turns them on display)."""
    sizes, turned = {}, 0
    for r in rows:
        with Image.open(r.path) as img:
            sizes[r.file] = img.size
            turned += img.getexif().get(0x0112, 1) in range(2, 9)  # 2..8 turn or mirror; 0 and 1 do not
    return sizes, turned


def pct(iv: L.Interval) -> str:
    return f"{100 * iv.mean:5.1f}% [{100 * iv.lo:5.1f}, {100 * iv.hi:5.1f}]"


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--annotations", type=Path, default=DATASETS / "annotations" / "personal.json")
    ap.add_argument("--photos", type=Path, default=DATASETS / "personal")
    ap.add_argument("--seed", type=int, default=0)
    args = ap.parse_args(argv)

    rows = [r for r in scan_set("personal", args.photos) if r.status == "ok"]
    sizes, turned = photo_sizes(rows)
    t0 = time.perf_counter()
    ann = load_annotations(args.annotations, [r.file for r in rows], kinds=("head", "pet"), sizes=sizes)
    load_s = time.perf_counter() - t0
    print(f"photos in the set: {len(rows)} ({turned} with an EXIF rotation); annotated and matched: "
          f"{len(ann.photos)}; head: {ann.count('head')}, pet: {ann.count('pet')}; left out: {len(ann.left_out)}; "
          f"read in {load_s:.2f} s")
    for sentence in ann.left_out[:10]:
        print("  left out:", sentence)
    missing = sorted(set(sizes) - set(ann.photos))
    print(f"photos without ground truth: {len(missing)} ({', '.join(missing[:5])})")

    print(f"\nbaselines over the matched photos, mean [95% interval], seed {args.seed}")
    print(f"{'region':6} {'n':>4} {'centre point':>24} {'centre, 15 px':>24} {'Gaussian point':>24} "
          f"{'Gaussian energy':>24} {'flat map (area)':>24} {'Gaussian box IoU':>24} {'Gaussian IoU>=0.5':>24}")
    for kind in ann.kinds:
        regions = [p.regions[kind] for p in ann.photos.values() if kind in p.regions]
        b = L.summarise_baselines([L.baselines(r) for r in regions], args.seed)
        g = b.gaussian
        print(f"{kind:6} {b.n:4d} {pct(b.centre):>24} {pct(b.centre_tolerant):>24} {pct(g.pointing):>24} "
              f"{pct(g.energy):>24} {pct(b.area_share):>24} {pct(g.iou):>24} {pct(g.accuracy):>24}")
    timing(ann, args.seed)
    return 0


def timing(ann, seed: int, n_maps: int = 8) -> None:
    """Cost of scoring one map, side by side in one run: with the CAM box computed here, and with the CAM box
    passed in (the explain stage has it already). n_maps random maps per photo (7x7 and 14x14, half of them >= 0,
    as CAM and Grad-CAM maps are), the two ways taking turns photo by photo; medians over photos."""
    rng = np.random.default_rng(seed)
    order = random.Random(seed)
    spent: dict[str, list[float]] = {"box computed": [], "box passed in": []}
    for photo in ann.photos.values():
        for region in photo.regions.values():
            maps = [rng.normal(size=(7, 7)) for _ in range(n_maps // 2)]
            maps += [np.maximum(rng.normal(size=(14, 14)), 0) for _ in range(n_maps - n_maps // 2)]
            boxes = [cam_box(m) for m in maps]
            ways = list(spent)
            order.shuffle(ways)
            for way in ways:
                t = time.perf_counter()
                L.score_maps(maps, region, cam_boxes=boxes if way == "box passed in" else None)
                spent[way].append((time.perf_counter() - t) / n_maps)
    med = {k: statistics.median(v) * 1000 for k, v in spent.items()}
    print(f"\nscoring one map against one region, median over {len(spent['box computed'])} photo regions: "
          + ", ".join(f"{k} {v:.2f} ms" for k, v in med.items())
          + f"; ratio {med['box computed'] / med['box passed in']:.2f}")


if __name__ == "__main__":
    sys.exit(main())
