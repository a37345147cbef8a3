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
import statistics
import sys
import time
from pathlib import Path

from PIL import Image

from generator.data.annotations import load_annotations
from generator.datasets import scan_set
from generator.evaluate import localisation as L

ROOT = Path(__file__).resolve().parent.parent
DATASETS = ROOT.parent / "shared" / "datasets"


def photo_sizes(rows) -> tuple[dict[str, tuple[int, int]], int]:
    """(set file -> (width, height) as stored, photos whose EXIF turns them on display)."""
    sizes, turned = {}, 0
    for r in rows:
        with Image.open(r.path) as img:
            sizes[r.file] = img.size
            turned += img.getexif().get(0x0112, 1) != 1
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
        times, per_photo = [], []
        for r in regions:
            t = time.perf_counter()
            per_photo.append(L.baselines(r))
            times.append(time.perf_counter() - t)
        b = L.summarise_baselines(per_photo, args.seed)
        g = b.gaussian
        print(f"{kind:6} {b.n:4d} {pct(b.centre):>24} {pct(b.centre_tolerant):>24} {pct(g.pointing):>24} "
              f"{pct(g.energy):>24} {pct(b.area_share):>24} {pct(g.iou):>24} {pct(g.accuracy):>24}")
        print(f"       scoring one map against one {kind} region: median {1000 * statistics.median(times):.1f} ms "
              f"(upsampling to the photo's size, CAM box, mask decode), largest photo "
              f"{max(r.width * r.height for r in regions) / 1e6:.2f} Mpx")
    return 0


if __name__ == "__main__":
    sys.exit(main())
