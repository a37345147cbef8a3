"""`python -m bench.ray_engine`: the explain stage on the local engine and on Ray (`--engine ray`), side by side in
one run, on the same photos, each repeat from an empty cache, in turns (local, ray, local, ray, ...); medians.
Start-up is timed apart: Ray's own (ray.init of a local Ray, once) and, inside each Ray run, the seconds until the
first actor had started and loaded the model (`RayEngine.actor_start_s`), a cost that does not grow with the
photos. Appends one row to bench/results.csv. `--data-dir` explains a data folder's own evaluation sets (the full
shared photos) instead of --photos test photos.

Budget (issue 24): the Ray engine's explain stage, its start-up apart, at most 1.25x the local engine's.
`--synthetic 20000`: the Ray actor's peak memory on 20,000 photos of their own content within 20% of its peak on
--photos."""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import tempfile
import time
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path

from .results import append_csv, fmt, verdict
from .timing import median

ROOT = Path(__file__).resolve().parent.parent
BUDGET = 1.25
MEMORY_BUDGET = 1.2  # the actor's peak on the synthetic set against the normal one


def link_data(root: Path, source: Path, n_train: int, n_test: int) -> Path:
    """data/train/{cats,dogs} and data/test/{cats,dogs}: links to the first photos of cats_and_dogs_filtered."""
    data = root / "data"
    for split, sub, n in (("train", "train", n_train), ("test", "validation", n_test)):
        for c in ("cats", "dogs"):
            (data / split / c).mkdir(parents=True)
            for f in sorted((source / sub / c).iterdir())[:n]:
                (data / split / c / f.name).symlink_to(f)
    return data


def unique_copies(source: Path, dest: Path, n: int) -> Path:
    """dest/test/{cats,dogs}: n copies of the validation photos, cycled, each with 8 bytes of its own after the
    JPEG's end (decoders stop at the end marker), so every copy has its own content hash and is computed: the
    content-addressed cache would compute a cycled link only once. dest/train links the first 20 training photos."""
    dest = link_data(dest, source, 20, 0)
    photos = {c: sorted((source / "validation" / c).iterdir()) for c in ("cats", "dogs")}
    for i in range(n):
        c = ("cats", "dogs")[i % 2]
        src = photos[c][(i // 2) % len(photos[c])]
        (dest / "test" / c / f"u{i:06d}-{src.name}").write_bytes(src.read_bytes() + i.to_bytes(8, "little"))
    return dest


def bench_settings(data: Path, work: Path, cache: Path, weights: Path | None = None, own_sets: bool = False):
    """The build's settings for the bench: the test set alone (links made here), or with own_sets a data folder's
    own sets as `make site` finds them (the full shared photos: test, personal, unrelated)."""
    from generator.config import make_settings

    sets = {} if own_sets else {"eval_sets": "test", "roles": "test=test"}
    return make_settings({"data_dir": data, "site_dir": work / "site", "cache_dir": cache,
                          "weights_dir": weights or work / "weights", **sets})


def fitted(settings, pool):
    """(the test photos' table, runtime, model) for a bench with these settings: the model fitted (or loaded) as
    `make site` fits it."""
    from generator.data.scan import as_table, discover_sets, scan_rows
    from generator.model import backbones, train
    from generator.model.runtime import choose_runtime

    data = settings.data_dir
    table = as_table(scan_rows(data, discover_sets(data, settings.train_set, settings.eval_sets)))
    runtime = choose_runtime(settings)
    backbone = backbones.build(settings.backbone, settings.weights_dir)
    model = train.train_or_load(backbone, table[table["set"] == "train"], settings, pool, runtime, ("cat", "dog"),
                                log=lambda _m: None, progress=False).model
    return table[table["set"] != settings.train_set], runtime, model


def synthetic(args, work: Path) -> int:
    """The Ray actor's peak memory on args.photos and on args.synthetic photos of their own content, one Ray run
    each in one session: the budget is the large run within 20% of the normal one (memory flat in photos)."""
    import ray
    import torch

    from generator.data.workers import make_pool
    from generator.explain import ray_engine
    from generator.explain import run as explain

    peaks, seconds = {}, {}
    ray.init(num_cpus=os.cpu_count(), log_to_driver=False, logging_level="ERROR", include_dashboard=False)
    try:
        for n in (args.photos, args.synthetic):
            data = unique_copies(args.source, work / f"data-{n}", n)
            settings = bench_settings(data, work, work / f"cache-{n}")
            with make_pool(settings.n_workers) as pool:
                photos, runtime, model = fitted(settings, pool)
                engine = ray_engine.RayEngine()
                t = time.perf_counter()
                explain.explain_sets(model, photos, settings, pool, runtime, progress=False, engine=engine)
                seconds[n], peaks[n] = time.perf_counter() - t, engine.peak_mb
            print(f"{n} photos: {seconds[n]:.0f} s on Ray, actor peak {peaks[n]:.0f} MB", flush=True)
            shutil.rmtree(work / f"cache-{n}")
            shutil.rmtree(data)
    finally:
        ray.shutdown()
    ratio = peaks[args.synthetic] / peaks[args.photos]
    print(f"Ray actor peak memory: {peaks[args.photos]:.0f} MB on {args.photos} photos, {peaks[args.synthetic]:.0f} MB "
          f"on {args.synthetic}; ratio {ratio:.2f} (budget <= {MEMORY_BUDGET}: {verdict(ratio <= MEMORY_BUDGET)})")
    append_csv(args.out, {"date": datetime.now(UTC).isoformat(timespec="seconds"), "host": os.uname().nodename,
                          "cpus": os.cpu_count(), "torch": torch.__version__, "photos": args.photos,
                          "synthetic_n": args.synthetic, "ray_actor_peak_mb": fmt(peaks[args.photos], 0),
                          "ray_synthetic_actor_peak_mb": fmt(peaks[args.synthetic], 0),
                          "ray_synthetic_explain_s": fmt(seconds[args.synthetic], 1),
                          "ray_synthetic/normal_peak": fmt(ratio, 3)})
    return 0 if ratio <= MEMORY_BUDGET else 1


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__)
    p.add_argument("--photos", type=int, default=200, help="test photos explained (half cats, half dogs)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "datasets" / "cats_and_dogs_filtered")
    p.add_argument("--data-dir", type=Path, default=None,
                   help="explain every evaluation set of this data folder instead (e.g. the full shared photos: "
                        "train, test, personal, unrelated); --photos is then ignored")
    p.add_argument("--weights-dir", type=Path, default=None, help="a checkpoint to load instead of fitting one")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results.csv")
    p.add_argument("--synthetic", type=int, default=0, metavar="N",
                   help="instead: the Ray actor's peak memory on --photos and on N photos of their own content")
    args = p.parse_args(argv)
    if args.synthetic:
        work = Path(tempfile.mkdtemp(prefix="bench-ray-synthetic-"))
        try:
            return synthetic(args, work)
        finally:
            shutil.rmtree(work, ignore_errors=True)

    import ray
    import torch

    from generator.data.workers import make_pool
    from generator.explain import ray_engine
    from generator.explain import run as explain

    work = Path(tempfile.mkdtemp(prefix="bench-ray-"))
    try:
        data = args.data_dir or link_data(work, args.source, 20, args.photos // 2)
        torch.set_num_threads(max(1, os.cpu_count() or 1))
        settings = bench_settings(data, work, work / "cache", args.weights_dir, own_sets=args.data_dir is not None)
        with make_pool(settings.n_workers) as pool:
            photos, runtime, model = fitted(settings, pool)
            started = time.perf_counter()
            ray.init(num_cpus=os.cpu_count(), log_to_driver=False, logging_level="ERROR", include_dashboard=False)
            startup = time.perf_counter() - started
            try:
                times: dict[str, list[float]] = {"local": [], "ray": []}
                peaks: list[float] = []
                starts: list[float] = []  # the actor pool's start (process, imports, model) inside each Ray run
                for r in range(args.repeats):
                    for name in ("local", "ray"):
                        cache = work / f"cache-{name}-{r}"
                        engine = ray_engine.RayEngine() if name == "ray" else None
                        t = time.perf_counter()
                        explain.explain_sets(model, photos, replace(settings, cache_dir=cache), pool, runtime,
                                             progress=False, engine=engine)
                        times[name].append(time.perf_counter() - t)
                        if engine is not None:
                            peaks.append(engine.peak_mb)
                            starts.append(engine.actor_start_s)
                        shutil.rmtree(cache)
                        print(f"repeat {r + 1}: {name} {times[name][-1]:.1f} s", flush=True)
            finally:
                ray.shutdown()
        local_s, ray_s = median(times["local"]), median(times["ray"])
        ratio = ray_s / local_s
        actor_s = median(starts)
        steady = (ray_s - actor_s) / local_s  # the part that grows with the photos
        driver_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        print(f"explain stage on {len(photos)} photos, median of {args.repeats}: local {local_s:.1f} s "
              f"({len(photos) / local_s:.1f} photos/s), ray {ray_s:.1f} s ({len(photos) / ray_s:.1f} photos/s), "
              f"ray/local {ratio:.2f} with the start-up. Start-up, apart: Ray's own {startup:.1f} s (ray.init), then "
              f"{actor_s:.1f} s inside the stage until the first actor had started (its process, imports and model). "
              f"The rest of Ray's stage is {steady:.2f}x the local engine's (budget <= {BUDGET}: "
              f"{verdict(steady <= BUDGET)}); peak memory per Ray actor {max(peaks):.0f} MB, of the driver (local "
              f"engine inside) {driver_mb:.0f} MB")
        append_csv(args.out, {"date": datetime.now(UTC).isoformat(timespec="seconds"), "host": os.uname().nodename,
                              "cpus": os.cpu_count(), "torch": torch.__version__, "backbone": model.backbone.name,
                              "photos": len(photos), "batch_size": settings.batch_size, "repeats": args.repeats,
                              "ray_local_explain_s": fmt(local_s, 2), "ray_explain_s": fmt(ray_s, 2),
                              "ray/local": fmt(ratio, 3), "ray_startup_s": fmt(startup, 2),
                              "ray_actor_start_s": fmt(actor_s, 2), "ray_steady/local": fmt(steady, 3),
                              "ray_actor_peak_mb": fmt(max(peaks), 0), "ray_driver_peak_mb": fmt(driver_mb, 0)})
        return 0 if steady <= BUDGET else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
