"""`python -m bench.classes_cost`: the explain stage for K = 37 classes against K = 2, side by side in one run, on the
same photos, each repeat from an empty cache, in turns (two-class, 37-class, two-class, ...); medians per photo,
of the wall time and of this process's CPU time (the network runs here; decoding, in worker processes, does not
depend on K).

The photos are the 37 breeds of ../shared/datasets/personal (oxfordpet_<Breed>_<n>.jpg), split as `make breeds`
splits them (generator/data/breeds.py). The 37-class model is fitted on the training photos' breeds; the two-class
one on the same photos labelled cat or dog (a capitalised breed is a cat breed). Both explain the same test photos,
so only the number of classes differs. Appends one row to bench/results.csv.

Budget (issue 23): for K = 37 the explain stage at most 1.2x the two-class one per photo."""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from .results import append_csv, fmt, verdict
from .timing import median

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 1.2


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "datasets" / "personal")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results.csv")
    args = p.parse_args(argv)

    import torch

    from generator.config import make_settings
    from generator.data.breeds import link_breeds
    from generator.data.scan import as_table, scan_rows
    from generator.data.workers import make_pool
    from generator.explain import run as explain
    from generator.model import backbones, train
    from generator.model.runtime import choose_runtime

    work = Path(tempfile.mkdtemp(prefix="bench-classes-"))
    try:
        data = work / "breeds"
        link_breeds(args.source, data)
        breeds = tuple(sorted(p.name for p in (data / "train").iterdir()))
        settings = make_settings({"data_dir": data, "site_dir": work / "site", "cache_dir": work / "cache",
                                  "weights_dir": work / "weights", "eval_sets": "test", "roles": "test=test"})
        rows = as_table(scan_rows(data, ["train", "test"], breeds))
        two = rows.assign(label=rows["label"].map(lambda b: "cat" if b[:1].isupper() else "dog"))
        runtime = choose_runtime(settings)
        torch.set_num_threads(max(1, os.cpu_count() or 1))
        times: dict[int, list[float]] = {2: [], len(breeds): []}
        cpu: dict[int, list[float]] = {2: [], len(breeds): []}  # this process's CPU time: the network's share
        with make_pool(settings.n_workers) as pool:
            backbone = backbones.build(settings.backbone, settings.weights_dir)
            models = {}
            for k, table, classes in ((2, two, ("cat", "dog")), (len(breeds), rows, breeds)):
                models[k] = (train.train_or_load(backbone, table[table["set"] == "train"], settings, pool, runtime,
                                                 classes, log=lambda _m: None, progress=False).model,
                             table[table["set"] == "test"])
            n = len(models[2][1])
            for r in range(args.repeats):
                for k, (model, photos) in models.items():
                    cache = work / f"cache-{k}-{r}"
                    t, c = time.perf_counter(), time.process_time()
                    explain.explain_sets(model, photos, replace(settings, cache_dir=cache), pool, runtime,
                                         progress=False)
                    times[k].append(time.perf_counter() - t)
                    cpu[k].append(time.process_time() - c)
                    shutil.rmtree(cache)
                    print(f"repeat {r + 1}: K = {k}: {times[k][-1]:.1f} s ({cpu[k][-1]:.1f} s of CPU here)", flush=True)
        k = len(breeds)
        two_s, many_s = median(times[2]) / n, median(times[k]) / n
        ratio = many_s / two_s
        cpu_ratio = median(cpu[k]) / median(cpu[2])
        print(f"explain stage on the same {n} photos, median of {args.repeats}: K = 2 {two_s * 1e3:.0f} ms a photo, "
              f"K = {k} {many_s * 1e3:.0f} ms a photo; ratio {ratio:.2f} (budget <= {BUDGET}: "
              f"{verdict(ratio <= BUDGET)}); CPU time of the network's process {cpu_ratio:.2f}x (decoding, in "
              "worker processes, does not depend on K; on a busy machine this is the steadier of the two)")
        append_csv(args.out, {"date": datetime.now(UTC).isoformat(timespec="seconds"), "host": os.uname().nodename,
                              "cpus": os.cpu_count(), "torch": torch.__version__, "backbone": backbone.name,
                              "photos": n, "batch_size": settings.batch_size, "repeats": args.repeats,
                              "classes_k": k, "classes_two_ms_per_photo": fmt(two_s * 1e3, 1),
                              "classes_k_ms_per_photo": fmt(many_s * 1e3, 1), "classes_k/two": fmt(ratio, 3),
                              "classes_k/two_cpu": fmt(cpu_ratio, 3)})
        return 0 if ratio <= BUDGET else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
