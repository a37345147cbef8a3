"""`python -m bench`: parse the flags, run the parts in order, print the summary, append the CSV row."""

from __future__ import annotations

import argparse
import gc
import os
import platform
import resource
import shutil
import tempfile
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from .builds import (
    PSS_EVERY,
    ROOT,
    Folders,
    Footprint,
    SiteRun,
    append_comment,
    copy_project,
    export_ref,
    footprint,
    make_small_data,
    make_synthetic_data,
    run_site,
)
from .results import append_csv, fmt, verdict

COMPARE_REF = "cbf97d3"  # the last commit before the rework (maps as data, method registry, manifest)
EARLY_TAP = 0  # the early tap of the per-method rows: the one farthest from the head, the libraries' dearest
# per part: the full run, and --quick (small everything, for trying the benchmark out)
SIZES = {
    "photos": (128, 16),  # photos timed in the map stage
    "repeats": (5, 2),
    "check_photos": (8, 2),  # photos of the float32 agreement check
    "score_photos": (2, 1),  # photos of Score-CAM's timing (and 1 of its check)
    "leaderboard_photos": (3, 1),
}
QUICK_DATA = (20, 6)  # --quick builds on links to the first photos of each folder: training, other sets
BUDGETS = {
    "site_mb": 45.0,  # disk usage of site/, 10^6 bytes
    "files_per_photo": 3.0,
    "cold/floor": 1.3,  # cold build / the floor measured in the same run (bench/floor.py)
    "noop_s": 0.5,
    "template_s": 3.0,
    "cold_peak_mb": 2100.0,  # MiB, the process tree's summed PSS (issue 25: no higher than 1.6-2.1 GB)
    "B/A": 0.9,
    "grad/family": 1.15,  # rate(B+grad) / rate(B+family)
    "synthetic": 1.2,  # site bytes per photo and peak memory of the synthetic run against the normal one
}
MB = 10**6  # site sizes; memory is shown in MiB (2^20 bytes), as psutil's RSS


def parser() -> argparse.ArgumentParser:
    def default(part: str) -> str:
        full, quick = SIZES[part]
        return f"default: {full}; {quick} with --quick"

    p = argparse.ArgumentParser(
        prog="python -m bench",
        description="Benchmark of the map stage (bare forward pass, this project's explainer, torchcam and "
                    "pytorch-grad-cam on the same photos and model, after checking that their maps agree), of the "
                    "leaderboard, and of whole `python -m generator site` builds (cold, nothing changed, template, "
                    "CSS and code changed), beside the code of --compare-ref. Appends one row to --out.",
    )
    p.add_argument("--photos", type=int, default=None, help=f"test photos in the fixed sample ({default('photos')})")
    p.add_argument("--repeats", type=int, default=None, help=f"timed passes; medians reported ({default('repeats')})")
    p.add_argument("--batch-size", type=int, default=None, help="images per batch (default: the site's)")
    p.add_argument("--skip-site", action="store_true", help="skip the whole builds (they take minutes)")
    p.add_argument("--cold-only", action="store_true",
                   help="of the whole builds, only the cold one and the floor beside it (skip the map stage too)")
    p.add_argument("--floor-sample", type=int, default=256,
                   help="photos the floor's network rates are measured on (default: 256)")
    p.add_argument("--synthetic", type=int, default=0, metavar="N",
                   help="also build on a test set of N links to the real test photos (e.g. 20000)")
    p.add_argument("--compare-ref", default=COMPARE_REF, metavar="REF",
                   help=f"also build with the code of this commit (default: {COMPARE_REF}, before the rework); "
                        "'' skips it")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results.csv",
                   help="CSV the results row is appended to (default: bench/results.csv)")
    p.add_argument("--data-dir", type=Path, default=ROOT / "data", help="image sets (default: data)")
    p.add_argument("--weights-dir", type=Path, default=ROOT / "weights",
                   help="folder of the trained checkpoint catdog-*.pt (default: weights)")
    p.add_argument("--set", dest="photo_set", default="test", help="set the sample is drawn from (default: test)")
    p.add_argument("--seed", type=int, default=0, help="seed of the photo sample (default: 0)")
    p.add_argument("--quick", action="store_true",
                   help=f"small everything: fewer photos and repeats, builds on {QUICK_DATA[0]} training and "
                        f"{QUICK_DATA[1]} other photos per folder (results are not comparable)")
    return p


@dataclass(frozen=True)
class Plan:
    photos: int
    repeats: int
    check_photos: int
    score_photos: int
    leaderboard_photos: int
    quick: bool


def plan_of(args: argparse.Namespace) -> Plan:
    """Sizes of each part: a flag given wins, else the full run's or --quick's default."""
    pick = 1 if args.quick else 0
    sizes = {part: values[pick] for part, values in SIZES.items()}
    for part in ("photos", "repeats"):
        if getattr(args, part) is not None:
            sizes[part] = getattr(args, part)
    if sizes["photos"] < 1 or sizes["repeats"] < 1:
        raise SystemExit("--photos and --repeats must be at least 1")
    if args.synthetic < 0:
        raise SystemExit("--synthetic must be 0 (none) or a number of photos")
    return Plan(quick=args.quick, **sizes)


def log(msg: str = "") -> None:
    print(msg, flush=True)


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    plan = plan_of(args)
    import torch

    torch.set_num_threads(max(1, os.cpu_count() or 1))
    row: dict[str, object] = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "quick": int(plan.quick),
    }
    summary: list[str] = []
    agreement_ok = True
    if args.cold_only:
        from generator.config import make_settings
        from generator.model.backbones import resolve_name
        from generator.model.runtime import choose_runtime

        s = make_settings({"weights_dir": args.weights_dir})
        row.update(backbone=resolve_name(s.backbone, args.weights_dir), bf16=int(choose_runtime(s).autocast))
    else:
        agreement_ok = maps_part(args, plan, row, summary)
    gc.collect()  # the models and library nets of the map stage, before the builds' processes start
    builds_ok = True
    if not args.skip_site:
        builds_ok = builds_part(args, plan, row, summary)
    else:
        summary += ["", "Whole builds: skipped (--skip-site)"]
    row["bench_peak_mb"] = fmt(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 0)
    log("")
    log("=" * 100)
    for line in summary:
        log(line)
    append_csv(args.out, row)
    log(f"\nresults appended to {args.out}")
    return 0 if agreement_ok and builds_ok else 1


# ---- 1 and 2: the map stage and the leaderboard ----------------------------------------------------------------


def maps_part(args, plan: Plan, row: dict, summary: list[str]) -> bool:
    """Agreement check, timing of every contender, Score-CAM and the leaderboard. Returns whether the maps agree."""
    import torch

    from .agreement import TOLERANCE, check_agreement
    from .contenders import (
        FAMILY,
        PEERS,
        SCORE_PEER,
        bare_forward,
        cheap_methods,
        library,
        library_net,
        ours,
        torchcam_maps,
    )
    from .inputs import decode_photos, decode_readable, load_setup, sample_photos
    from .leaderboard_cost import leaderboard_cost
    from .timing import median, paired_ratio, seconds_of, time_turns

    start = time.perf_counter()
    paths = sample_photos(args.data_dir / args.photo_set, plan.photos, args.seed)
    base = load_setup(args.weights_dir, args.batch_size)
    photos, paths = decode_readable(paths, base.input_size)
    log(f"decoded {len(photos)} photos of {args.data_dir / args.photo_set} and loaded {base.checkpoint.name} in "
        f"{time.perf_counter() - start:.1f} s")
    n_taps = len(base.taps)
    last = n_taps - 1
    tap_name = {t: f"{t} {base.taps[t]}" for t in range(n_taps)}
    row.update(backbone=base.backbone.name, bf16=int(base.runtime.autocast),
               channels_last=int(base.runtime.channels_last), photos=len(photos), batch_size=base.batch_size,
               repeats=plan.repeats)

    # -- agreement, float32
    n_check = min(plan.check_photos, len(photos))
    # Score-CAM runs 1,280 forward passes per photo: checked on one photo, at a quarter of the pixels with --quick
    score_size = base.input_size // 2 if plan.quick else base.input_size
    log(f"checking that the maps agree (float32, {n_check} photos, every tap; Score-CAM on 1 photo at "
        f"{score_size} px) ...")
    check = base.float32().with_photos(photos[:n_check], n_check)
    score_x = check.backbone.to_input(decode_photos(paths[:1], score_size), check.runtime.channels_last)
    agreement = check_agreement(check, check.batches[0], score_x=score_x)
    del check
    summary += ["", f"Maps agree with the libraries (float32, {n_check} photos, after each library's own scaling; "
                    f"tolerance {TOLERANCE:g})"]
    for key, line in agreement_lines(agreement, TOLERANCE):
        summary.append(line)
        log(line)
        row[f"diff {key}"] = f"{agreement.worst()[key]:.2e}"
    if not agreement.same_prediction:
        summary.append("  the library net predicts other classes than our head: DIFFERENT")
    row["max_map_diff"] = f"{max(agreement.worst().values()):.2e}"
    row["maps_agree"] = int(agreement.ok)

    # -- timing, site runtime
    setup = base.with_photos(photos, args.batch_size)
    model = library_net(setup)
    # Two groups, each taking turns within itself: the map stage's variants, then each method against the
    # libraries (kept apart so that the libraries' after-effects, see time_turns, never touch A and B).
    stage: dict[str, Callable] = {
        "A": bare_forward(setup),
        "B": ours(setup, ("cam",)),
        "B+grad": ours(setup, ("cam", "gradcam")),
        "B+family": ours(setup, FAMILY),
        "B+cheap": ours(setup, cheap_methods()),
    }
    methods = list(cheap_methods())
    against: dict[str, Callable] = {f"ours:{m}": ours(setup, (m,)) for m in methods}
    for peer in PEERS:
        for t in (last, EARLY_TAP):
            against[f"{peer.label}@{t}"] = library(setup, model, peer, t)
    settings_line = (f"{setup.n_images} photos, batch {setup.batch_size}, {plan.repeats} repeats, bf16 autocast "
                     f"{'on' if setup.runtime.autocast else 'off'}, channels_last "
                     f"{'on' if setup.runtime.channels_last else 'off'}, {torch.get_num_threads()} threads")
    log(f"timing the map stage ({len(stage)} contenders) on {settings_line} ...")
    rates = time_turns(stage, setup.batches, plan.repeats, log, seed=args.seed)
    log(f"timing each method against the libraries ({len(against)} contenders) ...")
    rates.update(time_turns(against, setup.batches, plan.repeats, log, seed=args.seed + 1))
    med = {k: median(v) for k, v in rates.items()}
    ratio_ba = paired_ratio(rates, "B", "A")
    ratio_family = paired_ratio(rates, "B+grad", "B+family")
    summary += ["", f"Map stage: {settings_line} ({args.photo_set}); images/s, median [min, max] over the repeats; "
                    "ratios within a repeat, then median; turns shuffled per batch"]
    described = {
        "A": "bare forward pass (inference_mode)",
        "B": "Explainer [cam]",
        "B+grad": "Explainer [cam, gradcam]: the default pages",
        "B+family": f"Explainer [{', '.join(FAMILY)}]",
        "B+cheap": f"Explainer [{', '.join(cheap_methods())}]: the maps of the leaderboard's sample photos",
    }
    for k, what in described.items():
        spread = f"[{min(rates[k]):.1f}, {max(rates[k]):.1f}]"
        summary.append(f"  {k:9s} {med[k]:7.1f}  {spread:15s} {what}")
        row[f"{k}_img_s"] = fmt(med[k])
    summary.append(f"  B/A = {ratio_ba:.3f}   goal >= {BUDGETS['B/A']}: {verdict(ratio_ba >= BUDGETS['B/A'])}")
    summary.append(f"  rate(B+grad)/rate(B+family) = {ratio_family:.3f} (the whole gradient family costs that many "
                   f"times Grad-CAM alone)   goal <= {BUDGETS['grad/family']}: "
                   f"{verdict(ratio_family <= BUDGETS['grad/family'])}")
    row.update({"B/A": fmt(ratio_ba, 3), "(B+grad)/(B+family)": fmt(ratio_family, 3),
                "B+grad/A": fmt(paired_ratio(rates, "B+grad", "A"), 3),
                "B+cheap/A": fmt(paired_ratio(rates, "B+cheap", "A"), 3)})

    summary += ["", f"Each method against the libraries, images/s (ours: Explainer([method]), its maps at all "
                    f"{n_taps} taps from one forward and at most one backward; a library call: one tap, one forward "
                    f"+ one backward, as its docs show; last tap = {tap_name[last]}, early tap = "
                    f"{tap_name[EARLY_TAP]}; ratio = ours / library; timed in their own turns)",
                f"  {'method':10s} {'ours':>7s}   {'library':34s} {'tap':12s} {'img/s':>7s} {'ratio':>7s}"]
    for m in methods:
        mine = f"ours:{m}"
        row[f"{m}_ours_img_s"] = fmt(med[mine])
        first = True
        for peer in (p for p in PEERS if p.method == m):
            for t in (last, EARLY_TAP):
                key = f"{peer.label}@{t}"
                r = paired_ratio(rates, mine, key)
                where = "last" if t == last else "early"
                short = f"{'pgc' if peer.library != 'torchcam' else 'torchcam'}_{peer.name}_{where}"
                row[f"{m}_{short}_img_s"] = fmt(med[key])
                row[f"{m}_ours/{short}"] = fmt(r, 2)
                summary.append(f"  {m if first else '':10s} {fmt(med[mine]) if first else '':>7s}   "
                               f"{peer.label:34s} {tap_name[t]:12s} {med[key]:7.1f} {r:7.2f}")
                first = False

    # -- Score-CAM, opt-in: few photos, once
    n_score = min(plan.score_photos, len(photos))
    x = setup.backbone.to_input(decode_photos(paths[:n_score], score_size), setup.runtime.channels_last)
    log(f"Score-CAM on {n_score} photos at {score_size} px: ours, then torchcam ...")
    ours_s = seconds_of(lambda: ours(setup, ("scorecam",))(x)) / n_score
    theirs_s = seconds_of(lambda: torchcam_maps(model, SCORE_PEER.name, last, x, setup.dtype)) / n_score
    channels = int(setup.heads[-1].weight.shape[1])
    summary += ["", f"Score-CAM (opt-in; {channels:,} channels at tap {tap_name[last]}), {n_score} photos at "
                    f"{score_size} px, seconds "
                    f"per photo: ours {ours_s:.2f}, torchcam ScoreCAM {theirs_s:.2f} (torchcam / ours = "
                    f"{theirs_s / ours_s:.2f})"]
    row.update(scorecam_photos=n_score, scorecam_px=score_size, scorecam_ours_s_per_photo=fmt(ours_s, 2),
               scorecam_torchcam_s_per_photo=fmt(theirs_s, 2))

    # -- leaderboard
    n_lb = min(plan.leaderboard_photos, len(photos))
    log(f"leaderboard: scoring {n_lb} photos ...")
    cost = leaderboard_cost(base.with_photos(photos[:n_lb], 1), paths[:n_lb], log)
    summary += ["", f"Leaderboard, {n_lb} photos, old code ({cost.side('before').steps} steps, every tap, one photo "
                    "at a time) beside this code (same maps; then batched; then the default: last tap, default "
                    "steps, batched):"]
    for s in cost.sides:
        summary.append(f"  {s.name}: {s.seconds_per_photo:.2f} s per photo, {s.passes_per_photo:.0f} images through "
                       f"the network per photo, {s.maps_per_photo:.0f} maps; photos at default {s.default_photos}, "
                       f"95% interval width of Grad-CAM's insertion minus deletion {s.width:.3f}")
    before, after = cost.side("before"), cost.side("default")
    row.update(leaderboard_photos=n_lb, leaderboard_steps=after.steps,
               leaderboard_s_per_photo_before=fmt(before.seconds_per_photo, 2),
               leaderboard_s_per_photo=fmt(after.seconds_per_photo, 2),
               leaderboard_passes_per_photo_before=fmt(before.passes_per_photo, 0),
               leaderboard_passes_per_photo=fmt(after.passes_per_photo, 0),
               leaderboard_default_photos_before=before.default_photos,
               leaderboard_default_photos=after.default_photos,
               leaderboard_width_before=fmt(before.width, 3), leaderboard_width=fmt(after.width, 3))
    return agreement.ok


def agreement_lines(agreement, tolerance: float) -> list[tuple[str, str]]:
    """(peer key, printed line) per peer: its largest counted difference, then each tap's, with the notes."""
    by_peer: dict[str, list] = {}
    for d in agreement.differences:
        by_peer.setdefault(f"{d.peer.method} vs {d.peer.label}", []).append(d)
    out = []
    for key, diffs in by_peer.items():
        worst = agreement.worst().get(key, float("nan"))
        shared = diffs[0].note if all(d.note == diffs[0].note for d in diffs) else ""
        taps = "; ".join(f"tap {d.tap} {d.value:.1e}" + (f" ({d.note})" if d.note and not shared else "")
                         for d in diffs)
        line = f"  {key:46s} max {worst:.1e}  {'ok' if worst <= tolerance else 'DIFFERENT':9s} [{taps}]"
        out.append((key, line + (f" ({shared})" if shared else "")))
    return out


# ---- 3, 4 and 5: whole builds -------------------------------------------------------------------------------------


QUICK_REPEATS = 3  # runs of each quick rebuild (no-op, template, CSS); the median one is reported


def builds_part(args, plan: Plan, row: dict, summary: list[str]) -> bool:
    """Cold, nothing changed, template, CSS and code changed; the old code cold and warm; the synthetic set.
    Returns whether every build succeeded."""
    from .inputs import find_checkpoint

    backbone = str(row["backbone"])
    work = Path(tempfile.mkdtemp(prefix="cam-bench-"))
    log_path = work / "builds.log"
    runs: dict[str, SiteRun] = {}
    sizes: dict[str, Footprint] = {}
    floor = None
    data = args.data_dir.resolve()
    if plan.quick:
        data = make_small_data(data, work / "small-data", *QUICK_DATA)
    log(f"whole builds on {data} in {work} (log: {log_path}) ...")

    def build(name: str, folders: Folders, check_imports: bool = False) -> SiteRun:
        run = run_site(folders, backbone, log_path, check_imports=check_imports)
        runs[name] = run
        stages = ", ".join(f"{k} {v:.1f}" for k, v in run.stages.items() if k != "total") or "-"
        log(f"  {name}: {run.seconds:.1f} s, peak {run.peak_tree_mb:.0f} MiB tree / {run.peak_single_mb:.0f} MiB one "
            f"process, exit {run.returncode}, stages {stages}")
        return run

    def median_build(name: str, folders: Folders, change: str | None = None) -> SiteRun:
        tries = []
        for i in range(QUICK_REPEATS):
            if change:
                append_comment(folders.project, change)  # each try is a fresh change of that kind
            tries.append(build(f"{name} ({i + 1}/{QUICK_REPEATS})", folders))
            del runs[f"{name} ({i + 1}/{QUICK_REPEATS})"]
        failed = [r for r in tries if not r.ok]  # a failed try is often the quickest: never hide it behind a median
        run = failed[0] if failed else sorted(tries, key=lambda r: r.seconds)[len(tries) // 2]
        runs[name] = run
        return run

    try:
        new = Folders(copy_project(work / "new"), data, work / "new-out")
        if build("cold", new).ok:
            sizes["new"] = footprint(new.work / "site")
            floor = floor_part(args, new, data)
        if args.cold_only:
            raise _ColdOnly
        # The quick reruns take a few seconds, so the machine's noise is a large share: each runs three times and
        # the row keeps the median one.
        median_build("no-op", new)
        build("no-op, -X importtime", new, check_imports=True)
        for change in ("template", "css"):
            median_build(change, new, change)
        append_comment(new.project, "code")
        build("code", new)
        if args.synthetic > 0:
            synthetic = Folders(copy_project(work / "synthetic"),
                                make_synthetic_data(data, work / "synthetic-data", args.synthetic),
                                work / "synthetic-out")
            (synthetic.work / "weights").mkdir(parents=True)
            trained = new.work / "weights" if runs["cold"].ok else args.weights_dir
            checkpoint = find_checkpoint(trained)
            shutil.copy2(checkpoint, synthetic.work / "weights" / checkpoint.name)  # same training set: reused
            log(f"synthetic: {args.synthetic} linked test photos ...")
            if build("synthetic", synthetic).ok:
                sizes["synthetic"] = footprint(synthetic.work / "site")
        commit = ""
        if args.compare_ref:
            commit = export_ref(args.compare_ref, work / "old")
            log(f"old code: {args.compare_ref} = {commit[:12]} ...")
            old = Folders(work / "old", data, work / "old-out")
            if build("old cold", old).ok:
                sizes["old"] = footprint(old.work / "site")
            build("old warm", old)
    except _ColdOnly:
        commit = ""
    finally:
        failed = [name for name, r in runs.items() if not r.ok]
        if failed:
            log(f"build(s) failed: {', '.join(failed)}; their log and folders are kept in {work}")
        else:
            shutil.rmtree(work, ignore_errors=True)
    report_builds(args, plan, runs, sizes, commit, row, summary, floor)
    return not failed


class _ColdOnly(Exception):
    """--cold-only: the cold build and its floor are done."""


def floor_part(args, folders: Folders, data: Path):
    """The floor (bench/floor.py), measured right after the cold build with the model it trained."""
    from generator.config import make_settings

    from .floor import measure_floor
    from .inputs import load_setup

    setup = load_setup(folders.work / "weights")
    workers = make_settings({}).n_workers
    return measure_floor(setup, data, workers, sample=args.floor_sample, log=log)


def report_builds(args, plan: Plan, runs: dict[str, SiteRun], sizes: dict[str, Footprint], commit: str, row: dict,
                  summary: list[str], floor=None) -> None:
    data = "small data (--quick)" if plan.quick else str(args.data_dir)
    summary += ["", f"Whole builds: `python -m generator site --quiet` on {data}, cache/site/weights in a temporary "
                    "folder, from a copy of generator/ and templates/; wall clock, peak memory polled: the process "
                    f"tree's summed PSS every {PSS_EVERY:g} s (a page shared by forked workers counted once in "
                    "all) and its largest process's RSS every 0.1 s (MiB); stages from site/run.json; no-op, template "
                    "and css: the median of "
                    f"{QUICK_REPEATS} runs",
                f"  {'build':24s} {'seconds':>8s} {'tree MiB':>9s} {'largest':>8s}  stages (s)"]
    for name, run in runs.items():
        stages = ", ".join(f"{k} {v:.1f}" for k, v in run.stages.items() if k != "total")
        failed = "" if run.ok else f"  FAILED (exit {run.returncode})"
        summary.append(f"  {name:24s} {run.seconds:8.1f} {run.peak_tree_mb:9.0f} {run.peak_single_mb:8.0f}  "
                       f"{stages}{failed}")
    names = {"cold": "E_cold", "no-op": "E_noop", "template": "E_template", "css": "E_css", "code": "E_code",
             "synthetic": "synthetic", "old cold": "old_cold", "old warm": "old_warm"}
    for name, prefix in names.items():
        if name in runs:
            r = runs[name]
            row.update({f"{prefix}_s": fmt(r.seconds, 2), f"{prefix}_peak_mb": fmt(r.peak_tree_mb, 0),
                        f"{prefix}_max_process_mb": fmt(r.peak_single_mb, 0), f"{prefix}_exit": r.returncode})
    if "cold" in runs:
        for stage, seconds in runs["cold"].stages.items():
            row[f"E_cold_{stage}_s"] = fmt(seconds)
    if "old cold" in runs:
        for stage, seconds in runs["old cold"].stages.items():
            row[f"old_cold_{stage}_s"] = fmt(seconds)
    noop_torch = runs["no-op, -X importtime"].torch_imported if "no-op, -X importtime" in runs else None
    row["E_noop_imports_torch"] = fmt(noop_torch)
    if args.synthetic:
        row["synthetic_n"] = args.synthetic
    if commit:
        row["old_ref"] = commit[:12]

    summary += ["", f"  {'site':24s} {'disk MB':>9s} {'apparent MB':>12s} {'files':>8s} {'photos':>8s} "
                    f"{'files/photo':>12s} {'disk kB/photo':>14s}  (files/photo: its pictures and page, shared apart)"]
    for name, f in sizes.items():
        label = {"new": "new (cold)", "old": f"old {args.compare_ref} (cold)", "synthetic": "synthetic"}[name]
        summary.append(f"  {label:24s} {f.disk_bytes / MB:9.1f} {f.apparent_bytes / MB:12.1f} {f.files:8d} "
                       f"{f.explained:8d} {f.files_per_photo:12.2f} {f.disk_bytes_per_photo / 1e3:14.1f}")
        prefix = {"new": "site", "old": "old_site", "synthetic": "synthetic_site"}[name]
        row.update({f"{prefix}_disk_bytes": f.disk_bytes, f"{prefix}_apparent_bytes": f.apparent_bytes,
                    f"{prefix}_files": f.files, f"{prefix}_explained": f.explained,
                    f"{prefix}_files_per_photo": fmt(f.files_per_photo, 2)})

    if "old cold" in runs and "cold" in runs:
        ratios = {"cold s": runs["cold"].seconds / runs["old cold"].seconds,
                  "warm s (code changed / old warm)": (runs["code"].seconds / runs["old warm"].seconds
                                                       if "code" in runs and "old warm" in runs else float("nan")),
                  "no-op s / old warm": (runs["no-op"].seconds / runs["old warm"].seconds
                                         if "old warm" in runs else float("nan")),
                  "peak MiB (cold)": runs["cold"].peak_tree_mb / runs["old cold"].peak_tree_mb}
        if "new" in sizes and "old" in sizes:
            new, old = sizes["new"], sizes["old"]
            ratios.update({"site disk": new.disk_bytes / old.disk_bytes,
                           "site apparent": new.apparent_bytes / old.apparent_bytes,
                           "files": new.files / old.files,
                           "files per photo": new.files_per_photo / old.files_per_photo})
        summary += ["", "  new / old: " + ", ".join(f"{k} {v:.2f}" for k, v in ratios.items())]
        for k, v in ratios.items():
            row[f"new/old {k}"] = fmt(v, 3)

    cold = runs.get("cold")
    if floor is not None and cold is not None:
        from .floor import stage_ratios

        ratio = cold.seconds / floor.seconds
        summary += ["", f"Floor (bench/floor.py, measured right after the cold build): decoding {floor.photos} photos "
                        f"once {floor.decode_s:.1f} s + one forward of each {floor.forward_s:.1f} s "
                        f"({floor.forward_img_s:.1f} images/s) + one backward of the {floor.explained} explained "
                        f"{floor.backward_s:.1f} s (forward + backward {floor.backward_img_s:.1f} images/s; rates "
                        f"on {floor.sample} photos) = {floor.seconds:.1f} s",
                    f"  cold build / floor = {cold.seconds:.1f} / {floor.seconds:.1f} = {ratio:.2f}",
                    f"  {'stage':14s} {'seconds':>8s} {'floor':>7s} {'ratio':>6s}"]
        for name, (seconds, share, r) in stage_ratios(floor, cold.stages).items():
            summary.append(f"  {name:14s} {seconds:8.1f} {share:7.1f} {r:6.2f}" if share > 0 else
                           f"  {name:14s} {seconds:8.1f} {share:7.1f}      -  ({seconds / floor.seconds:.0%} of the "
                           "floor, all of it above it)")
            row[f"floor_{name}_s"] = fmt(share, 2)
        row.update({"floor_s": fmt(floor.seconds, 2), "floor_decode_s": fmt(floor.decode_s, 2),
                    "floor_forward_s": fmt(floor.forward_s, 2), "floor_backward_s": fmt(floor.backward_s, 2),
                    "floor_forward_img_s": fmt(floor.forward_img_s, 1),
                    "floor_backward_img_s": fmt(floor.backward_img_s, 1), "cold/floor": fmt(ratio, 3)})

    summary += ["", "Budgets"]

    def budget(text: str, ok: bool | None) -> None:
        summary.append(f"  {text:70s} {verdict(ok)}")

    new = sizes.get("new")
    budget(f"site <= {BUDGETS['site_mb']:.0f} MB on disk: "
           f"{new.disk_bytes / MB:.1f} MB" if new else "site size: no cold build",
           new.disk_bytes <= BUDGETS["site_mb"] * MB if new else None)
    budget(f"<= {BUDGETS['files_per_photo']:.0f} files per explained photo: {new.files_per_photo:.2f}"
           if new else "files per photo: no cold build",
           new.files_per_photo <= BUDGETS["files_per_photo"] if new else None)
    budget(f"cold <= {BUDGETS['cold/floor']} x the floor: {cold.seconds / floor.seconds:.2f}"
           if cold and floor else "cold / floor: not measured",
           cold.ok and cold.seconds <= BUDGETS["cold/floor"] * floor.seconds if cold and floor else None)
    budget(f"cold peak memory <= {BUDGETS['cold_peak_mb']:.0f} MiB: {cold.peak_tree_mb:.0f} MiB" if cold
           else "cold peak memory: not run", cold.peak_tree_mb <= BUDGETS["cold_peak_mb"] if cold else None)
    noop = runs.get("no-op")
    budget(f"no-op <= {BUDGETS['noop_s']:.0f} s and no torch: {noop.seconds:.2f} s, torch "
           f"{'imported' if noop_torch else 'not imported'}" if noop else "no-op: not run",
           noop.ok and noop.seconds <= BUDGETS["noop_s"] and noop_torch is False if noop else None)
    template = runs.get("template")
    budget(f"template-only <= {BUDGETS['template_s']:.0f} s: {template.seconds:.1f} s" if template
           else "template-only: not run",
           template.ok and template.seconds <= BUDGETS["template_s"] if template else None)
    ba, family = row.get("B/A"), row.get("(B+grad)/(B+family)")
    budget(f"B/A >= {BUDGETS['B/A']}: {ba}", float(ba) >= BUDGETS["B/A"] if ba else None)
    budget(f"gradient family <= {BUDGETS['grad/family']} x Grad-CAM alone: {family}",
           float(family) <= BUDGETS["grad/family"] if family else None)
    synth = sizes.get("synthetic")
    if synth and new and cold and "synthetic" in runs:
        per_photo = synth.disk_bytes_per_photo / new.disk_bytes_per_photo
        memory = runs["synthetic"].peak_tree_mb / cold.peak_tree_mb
        row.update({"synthetic/normal bytes per photo": fmt(per_photo, 3),
                    "synthetic/normal peak": fmt(memory, 3)})
        budget(f"synthetic {args.synthetic}: site bytes per photo <= {BUDGETS['synthetic']} x normal: "
               f"{per_photo:.2f}", per_photo <= BUDGETS["synthetic"])
        budget(f"synthetic {args.synthetic}: peak memory <= {BUDGETS['synthetic']} x normal: {memory:.2f}",
               memory <= BUDGETS["synthetic"])
    else:
        budget("synthetic: not run (--synthetic N)", None)
    if plan.quick:
        summary.append("  (--quick: small data, the build budgets are not meaningful)")
