"""`make site`: scan -> (model -> explain -> leaderboard) -> analyse -> figures -> pages, timed stage by stage.

The stages in brackets need torch and run only when the manifest says the numbers may have changed; their
results are saved as a bundle in the cache, so a change of templates or of page settings re-renders from it.
The new site is built in a hidden sibling folder and swapped in only when complete, so the old site stays
browsable until then and a killed run never leaves half a site.
"""

from __future__ import annotations

import json
import os
import pickle
import re
import resource
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from generator import manifest as manifest_mod
from generator import ownership
from generator.config import Settings, jsonable
from generator.data.scan import DEFAULT_CLASSES, discover_sets, scan
from generator.errors import UserError, from_os_error
from generator.files import keep_newest, touch, write_bytes, write_text
from generator.lock import site_lock
from generator.pause import pause_at
from generator.report.facts import MethodFacts, RunFacts

BUNDLE_FORMAT = 5  # 2: the run's facts as a typed RunFacts; 3: with the leaderboard's outcome; 4: ground truth;
# 5: the classes in the run's facts


class Timer:
    def __init__(self, log) -> None:
        self.stages: dict[str, float] = {}
        self.log = log

    @contextmanager
    def stage(self, name: str) -> Iterator[None]:
        start = time.perf_counter()
        self.log(f"[{name}] ...")
        try:
            yield
        finally:
            workers = sys.modules.get("generator.data.workers")  # not imported: nothing is kept, nothing to trim
            if workers is not None:  # (and the nothing-changed rerun imports no numpy)
                workers.trim_between_stages()
            self.stages[name] = self.stages.get(name, 0.0) + time.perf_counter() - start  # a stage run twice adds
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            self.log(f"[{name}] {self.stages[name]:.1f} s (peak memory of this process so far: {peak:.0f} MB)")


def build_site(settings: Settings, log=print, progress: bool = True, paths_checked: bool = False) -> dict[str, Any]:
    """The whole job. Returns the run facts, also written to site/run.json.

    paths_checked: ownership.check_paths(settings) has just been called (by the command line, before importing
    photos); it walks the whole site, which is worth doing once, not twice."""
    site_dir = Path(settings.site_dir)
    if not paths_checked:  # each folder setting, and a site folder this tool did not write: one sentence now
        ownership.check_paths(settings)
    with site_lock(site_dir):
        pause_at("locked")  # a test-only hook (CAM_PAUSE_AT), a no-op otherwise
        ownership.recover_site(site_dir)  # only a .site.old the tool wrote
        ownership.check_siblings(site_dir)
        timer = Timer(log)
        with timer.stage("scan"):
            sets = discover_sets(settings.data_dir, settings.train_set, settings.eval_sets)
            named = [] if settings.train_set == Settings.train_set else [("train_set", settings.train_set)]
            if settings.eval_sets != Settings.eval_sets:
                named += [("eval_sets", s) for s in settings.eval_sets]
            for setting, name in named:  # a set the user named that is not there: most likely a typo
                if name not in sets:
                    present = ", ".join(sorted(sets)) or "none"
                    raise UserError(f"setting {setting} = {name!r} names no folder of photos in "
                                    f"{settings.data_dir} (sets there: {present}); name one of them.")
            if settings.train_set not in sets:
                raise UserError(f"{settings.data_dir}/{settings.train_set} is missing or empty: run `make site` where "
                                "a network exists to download the photos, or give SOURCE=<folder or .zip laid out "
                                "like cats_and_dogs_filtered>.")
            scanned = scan(settings.data_dir, sets, settings.train_set, settings.classes_file or None)
            rows = scanned.rows
            now = manifest_mod.make(rows, settings)
            before = manifest_mod.load(settings)
        ownership.tag_cache(settings.cache_dir)  # CACHEDIR.TAG: `make clean` knows the folder is ours
        if before == now and manifest_mod.site_matches(settings, now):
            log(f"nothing changed since the last build: {site_dir}/index.html is up to date.")
            return json.loads((site_dir / "run.json").read_text())
        reuse_figures = before is not None and before.figures == now.figures and (site_dir / "run.json").is_file()
        report = None
        if reuse_figures:  # only pages to make: the analysed report is enough, the results bundle stays unread
            with timer.stage("analyse"):
                report = reusable_report(settings, now)
        bundle = None if report is not None else load_bundle(settings, now.compute)  # valid whatever built it
        if report is None and bundle is None:
            bundle = compute(settings, rows, scanned.classes, sets, timer, log, progress)
            save_bundle(settings, now.compute, bundle)
            reuse_figures = False
        else:
            log("the results are unchanged: making the figures and pages again from the cache")
        run = publish(settings, bundle, now, timer, log, reuse_figures, report)
        write_text(manifest_mod.stored_path(settings), now.to_json())
        return run


# ---- compute: the stages that need the model ------------------------------------------------------------------


def compute(settings: Settings, rows, classes: tuple[str, ...], sets: list[str], timer: Timer, log,
            progress: bool) -> dict[str, Any]:
    """Model, explanations and leaderboard: the bundle of results the pages are made from. `classes`: the scan's,
    in the order of the head's outputs."""
    import torch

    from generator.data.scan import as_table
    from generator.data.workers import make_pool
    from generator.errors import SettingsError
    from generator.evaluate import leaderboard
    from generator.explain import methods as registry
    from generator.explain import run as explain
    from generator.frames import pd
    from generator.model import backbones, train
    from generator.model.checkpoint import antisymmetry
    from generator.model.runtime import choose_runtime

    try:
        chosen = registry.resolve(settings.methods)
    except ValueError as exc:
        raise SettingsError(f"setting methods: {exc}.") from None
    backbones.check_name(settings.backbone)
    table = as_table(rows)
    log(f"{len(table)} files in {len(sets)} sets: " + ", ".join(f"{s} {int((table['set'] == s).sum())}" for s in sets))
    runtime = choose_runtime(settings)
    from generator.data.workers import keep_freed_memory_on

    keep_freed_memory_on(runtime.device)
    torch.manual_seed(settings.seed)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    started = datetime.now(UTC)
    with make_pool(settings.n_workers) as pool, _engine(settings, table, log) as engine:
        with timer.stage("model"):
            backbone = train.backbone_for(settings, classes, log)
            trows = table[(table["set"] == settings.train_set) & (table["status"] == "ok")
                          & table["label"].isin(classes)]
            trained = train.train_or_load(backbone, trows, settings, pool, runtime, classes, log=log,
                                          progress=progress)
            model = trained.model
        eval_sets = [s for s in sets if s != settings.train_set]
        # A fixed leaderboard sample (faithfulness_sample > 0), drawn from the files that scanned well, gets every
        # scored map here; the adaptive sample's photos get theirs in the leaderboard stage.
        sampled = leaderboard.sample_rows(table, eval_sets, settings.faithfulness_sample, settings.seed) \
            if settings.faithfulness_sample > 0 else table.iloc[0:0]
        with timer.stage("explain"):
            explained = explain.explain_sets(model, table[table["set"] != settings.train_set], settings, pool,
                                             runtime, progress=progress,
                                             scored=set(zip(sampled["set"], sampled["file"])), engine=engine)
            if engine is not None and engine.pool is not None:
                log(f"explained on Ray: {engine.pool.size} actor(s) of {engine.pool.threads} core(s)"
                    f"{' and one GPU' if engine.pool.gpu else ''} each, peak memory per actor "
                    f"{engine.peak_mb:.0f} MB")
        other = None
        if settings.compare:  # the second model: trained or loaded, then explained by the same code into its own key
            with timer.stage("compare"):
                model_b = train.other_model(lambda name: backbones.build(name, settings.weights_dir), trows,
                                            settings, pool, runtime, classes, log=log, progress=progress)
                if model_b.fingerprint == model.fingerprint:
                    raise UserError(f"setting compare = {settings.compare!r} is the site's own model "
                                    f"({model.path}); name another recipe or checkpoint.")
                log(f"explaining the photos again with the model to compare ({model_b.path})")
                explained_b = explain.explain_sets(model_b, table[table["set"] != settings.train_set], settings,
                                                   pool, runtime, progress=progress, engine=engine)
                other = (model_b, explained_b)
    train_df = _train_rows(table[table["set"] == settings.train_set], trained, classes)
    results = pd.concat([train_df, explained], ignore_index=True) if len(explained) else train_df
    results = finish_table(results, settings, classes)
    with timer.stage("leaderboard"):
        scores, sanity, outcome = leaderboard.leaderboard_stage(model, results, eval_sets, settings, runtime, log)
    truth = score_ground_truth(settings, sets, results, model.fingerprint, len(model.backbone.tap_names), classes,
                               timer, log)
    b = model.backbone
    size = settings.input_size
    run = RunFacts(
        started=started.isoformat(timespec="seconds"),
        backbone=b.name,
        classes=tuple(classes),
        weights_file=b.weights_file,
        weights_sha256=b.weights_sha256,
        checkpoint=str(model.path),
        model_fingerprint=model.fingerprint,
        recipe=model.meta["recipe"],
        train_scores={k: v for k, v in model.meta.get("scores", {}).items() if k != "cv_msp"},
        seed=settings.seed,
        runtime=asdict(runtime),
        versions=manifest_mod.versions(),
        sets=tuple(sets),
        tap_names=tuple(b.tap_names),
        tap_modules=tuple(b.taps),
        tap_sizes=tuple(max(1, -(-size // s)) for s in b.strides),
        methods_chosen=registry.resolve(settings.methods, cam_head=model.heads[-1] is not None),
        methods_scored=tuple(explain.scored_methods(chosen)),
        methods_info={n: MethodFacts(title=m.title, citation=m.citation, needs=m.needs.name.lower(), cost=m.cost,
                                     per_class=m.per_class, last_tap_only=m.last_tap_only, opt_in=m.opt_in)
                      for n, m in registry.REGISTRY.items()},
        antisymmetry=tuple(antisymmetry(model.heads)),
        head_bias=() if model.heads[-1] is None else tuple(float(v) for v in model.heads[-1].bias),
        compute_timings=dict(timer.stages),
        leaderboard=outcome.as_dict(),
        training_curve=tuple(model.meta.get("training_curve", ())),
        training=dict(model.meta.get("training", {})),
    )
    bundle = {"format": BUNDLE_FORMAT, "results": results, "scores": scores, "sanity": sanity, "run": run,
              "truth": truth}
    if other is not None:
        model_b, explained_b = other
        results_b = finish_table(explained_b, settings, classes)
        bundle["compare"] = {
            "model": model_facts(model_b),
            "results": results_b,
            "truth": score_ground_truth(settings, sets, results_b, model_b.fingerprint,
                                        len(model_b.backbone.tap_names), classes, timer, log),
        }
    return bundle


def model_facts(model) -> dict[str, Any]:
    """What compare.html says of a model: its backbone, recipe, checkpoint, fingerprint and training record."""
    return {"backbone": model.backbone.name, "recipe": model.meta["recipe"],
            "recipe_name": model.meta["recipe"].get("name", "probe"), "checkpoint": str(model.path),
            "fingerprint": model.fingerprint, "tap_names": list(model.backbone.tap_names),
            "scores": model.meta.get("scores", {}), "training_curve": list(model.meta.get("training_curve", [])),
            "training": dict(model.meta.get("training", {}))}


def score_ground_truth(settings: Settings, sets: list[str], results, model_fp: str, n_taps: int,
                       classes: tuple[str, ...], timer: Timer, log):
    """The localisation stage: every annotated photo's maps, read back from the records the explain stage wrote
    (no network pass), against its head and pet regions (evaluate/truth.py)."""
    from generator.config import annotation_sources
    from generator.evaluate import truth as truth_mod
    from generator.explain.run import RecordCache

    eval_sets = [s for s in sets if s != settings.train_set]
    sources = annotation_sources(settings, eval_sets)
    if not sources:
        return truth_mod.Truth()
    with timer.stage("localisation"):
        cache = RecordCache(settings.cache_dir, model_fp, n_taps)
        truth = truth_mod.score_truth(results, truth_mod.read_truth(sources, results), cache.load,
                                      settings.box_threshold, settings.input_size, classes=classes,
                                      processes=settings.n_workers)
    for st in truth.sets:
        log(f"ground truth of {st.set}: {st.photos} photos scored, {len(st.left_out)} entries left out, "
            f"{st.not_in_set} annotated photos not in this set")
    return truth


@contextmanager
def _engine(settings: Settings, table, log) -> Iterator[Any]:
    """None for the local engine; with engine ray, a RayEngine inside a Ray session (started or joined here,
    stopped on the way out), after every node has shown it reads the photos and writes the cache."""
    if settings.engine != "ray":
        yield None
        return
    try:
        import ray  # noqa: F401

        from generator.explain import ray_engine
    except ImportError:
        raise UserError("setting engine = 'ray' but Ray is not installed here; run `make` (it installs "
                        "requirements.txt) or use engine local.") from None
    started = time.perf_counter()
    with ray_engine.ray_session(settings):
        ok = table[(table["status"] == "ok") & (table["set"] != settings.train_set)]
        photos = list(ok.groupby("set")["path"].first())
        ray_engine.check_storage(photos, [(str(Path(settings.cache_dir).absolute()), "--cache-dir")])
        log(f"Ray ready in {time.perf_counter() - started:.1f} s")
        yield ray_engine.RayEngine()


def _train_rows(rows, trained, classes: tuple[str, ...]) -> Any:
    """The training files as result rows: the head's prediction on each (from the cached features)."""
    import numpy as np

    from generator.frames import pd

    out = []
    for r in rows.to_dict("records"):
        if r["status"] == "ok" and r["label"] in classes:
            r["status"] = trained.statuses.get(r["path"], r["status"])
        elif r["status"] == "ok":
            r["status"] = "skipped: training photo outside the class folders (not used)"
        p = trained.probs.get(r["path"])
        if p is not None and r["status"] == "ok":
            r.update({f"p_{c}": float(p[k]) for k, c in enumerate(classes)})
            r["prediction"] = classes[int(np.argmax(p))]
            r["pet_p"] = trained.pet_p.get(r["path"])
            r["energy"] = trained.energy.get(r["path"])
            if tuple(classes) != DEFAULT_CLASSES and r["path"] in trained.cv_msp:  # what 'neither' is chosen on
                r["msp_cv"] = trained.cv_msp[r["path"]]
        out.append(r)
    return pd.DataFrame(out)


def finish_table(df, settings: Settings, classes: tuple[str, ...]):
    """Every column the pages use, for every row: prediction, probabilities (p_<class> in class order), slugs and
    page paths."""
    import numpy as np

    from generator.report.names import set_slug, unique_slugs

    for col in ("prediction", "sha256", "pictures", "photo"):
        df[col] = df[col].fillna("") if col in df else ""
    for col in [f"p_{c}" for c in classes] + ["pet_p", "energy"]:
        if col not in df:
            df[col] = np.nan
    df["slug"] = unique_slugs(list(df["file"]), list(df["set"]))
    df["set_slug"] = [set_slug(s) for s in df["set"]]
    has_page = (df["status"] == "ok") & (df["set"] != settings.train_set)
    df["page"] = np.where(has_page, "sets/" + df["set_slug"] + "/" + df["slug"] + ".html", "")
    return df


def bundle_path(settings: Settings, key: str) -> Path:
    return Path(settings.cache_dir) / "runs" / f"{key[:24]}.pkl"


KEEP_RUNS = 4  # result bundles kept (the most recently used), with their analysed reports
_BUNDLE_NAME = re.compile(r"[0-9a-f]{24}\.pkl")
_REPORT_NAME = re.compile(r"[0-9a-f]{24}\.report\.pkl")


def save_bundle(settings: Settings, key: str, bundle: dict[str, Any]) -> None:
    """Write the bundle, then delete all but the KEEP_RUNS most recently used bundles (and reports) of the
    cache: each is several MB, and every change of code or compute settings makes a new one."""
    write_bytes(bundle_path(settings, key), pickle.dumps(bundle, protocol=pickle.HIGHEST_PROTOCOL))
    prune_runs(settings, key)


def prune_runs(settings: Settings, key: str) -> None:
    runs = Path(settings.cache_dir) / "runs"
    keep_newest(runs, _BUNDLE_NAME, KEEP_RUNS, in_use=[bundle_path(settings, key)])
    keep_newest(runs, _REPORT_NAME, KEEP_RUNS, in_use=[report_path(settings, key)])


def load_bundle(settings: Settings, key: str) -> dict[str, Any] | None:
    """The saved results of the build whose compute key is `key`, or None if missing, damaged, or if a photo's
    record (its maps, which the pages need) has gone from the cache since or no longer opens."""
    try:
        bundle = pickle.loads(bundle_path(settings, key).read_bytes())  # our own cache file, written above
    except Exception:
        return None
    touch(bundle_path(settings, key))  # used now: kept by prune_runs
    if not (isinstance(bundle, dict) and bundle.get("format") == BUNDLE_FORMAT):
        return None
    fingerprints = [bundle["run"].model_fingerprint]
    if "compare" in bundle:  # the compared model's records too
        fingerprints.append(bundle["compare"]["model"]["fingerprint"])
    return bundle if _pages_inputs_intact(settings, bundle["results"], fingerprints) else None


def _pages_inputs_intact(settings: Settings, results, fingerprints: list[str]) -> bool:
    """Whether every shown photo's record (of each model) still opens and its display copy is still there."""
    from generator.explain.record import record_path

    shown = results[(results["status"] == "ok") & (results["set"] != settings.train_set)]
    shas = shown["sha256"].unique()
    if not all(_opens(record_path(settings.cache_dir, fp, sha)) for fp in fingerprints for sha in shas):
        return False
    return all((Path(folder) / photo).is_file() for folder, photo in zip(shown["pictures"], shown["photo"]))


def reusable_report(settings: Settings, now) -> Any:
    """The analysed report of these figure settings, when a build with the same figure key (and so the same
    compute key) saved one, its results bundle is still in the cache, and the pages' inputs are intact; else
    None. A rerun for templates or page settings then reads this one file, not the results bundle as well
    (measured: unpickling the bundle and checking it took 0.6 s of a 3.2 s template-only rerun)."""
    if not bundle_path(settings, now.compute).is_file():
        return None  # the bundle is the source of the report: without it, compute (and save both) again
    report = load_report(settings, now.figures)
    if report is None:
        return None
    fingerprints = [report.run.model_fingerprint]
    if report.compare is not None:  # the compared model's records too, as load_bundle checks them
        fingerprints.append(report.compare.b["fingerprint"])
    if not _pages_inputs_intact(settings, report.results, fingerprints):
        return None
    touch(bundle_path(settings, now.compute))  # used now: kept by prune_runs
    return report


def _opens(path: Path) -> bool:
    """Whether the .npz is there and its zip directory reads: this catches a truncated or overwritten record in
    40 ms for 1,400 photos (reading every array would take 350 ms)."""
    import zipfile

    try:
        with zipfile.ZipFile(path):
            return True
    except (OSError, zipfile.BadZipFile):
        return False


# ---- publish: figures and pages, no model ---------------------------------------------------------------------


def publish(settings: Settings, bundle: dict[str, Any] | None, now, timer: Timer, log, reuse_figures: bool,
            report=None) -> dict:
    """Figures and pages from the results bundle, or from `report` (reusable_report) when it is given."""
    from generator.publish import pages
    from generator.publish.pages.pagedata import cache_path
    from generator.report.summary import build_report

    site_dir = Path(settings.site_dir)
    if report is None:
        with timer.stage("analyse"):
            report = load_report(settings, now.figures) if reuse_figures else None
            if report is None:
                report = build_report(bundle, settings)
                save_report(settings, now.figures, report)
    build_dir = ownership.siblings(site_dir)["new"]
    made = False
    try:
        ownership.remove_site_folder(build_dir, site_dir)  # a killed build's leftovers, never anyone else's
        build_dir.mkdir(parents=True)
        made = True
        ownership.write_stub(build_dir)  # from its first moment the folder says it is the tool's
        with timer.stage("figures"):
            if reuse_figures:
                report = replace(report, figures=tuple(reuse_figures_of(site_dir, build_dir / "figures")))
            else:
                from generator.publish import figures  # matplotlib: imported only when figures are drawn

                report = replace(report, figures=tuple(figures.make_all(report, settings, build_dir / "figures")))
        pause_at("writing-site")
        with timer.stage("pages"):
            written = pages.write_site(build_dir, report, settings,
                                       page_data=cache_path(settings.cache_dir, now.figures))
        run = dict(report.run.as_json(), timings=dict(timer.stages, total=sum(timer.stages.values())),
                   settings=jsonable(settings), manifest=now.publish, figures=list(report.figures),
                   pages=written, **ownership.site_marker(ownership.entries(build_dir)))
        write_text(build_dir / "run.json", json.dumps(run, indent=2, default=str))
        swap_in(build_dir, site_dir)
    except OSError as exc:
        user = from_os_error(exc, getattr(exc, "filename", None) or build_dir, "writing")
        raise (user or exc) from None
    finally:
        if made:  # only what this failed build left; the swap moved a good one
            shutil.rmtree(build_dir, ignore_errors=True)
    log(f"site written to {site_dir}/index.html in {run['timings']['total']:.1f} s")
    return run


def report_path(settings: Settings, key: str) -> Path:
    return Path(settings.cache_dir) / "runs" / f"{key[:24]}.report.pkl"


def save_report(settings: Settings, key: str, report) -> None:
    """The analysed report, so that a rerun for templates or page settings renders without analysing again
    (and without importing scipy.stats, which costs half a second)."""
    write_bytes(report_path(settings, key), pickle.dumps(report, protocol=pickle.HIGHEST_PROTOCOL))


def load_report(settings: Settings, key: str):
    try:
        report = pickle.loads(report_path(settings, key).read_bytes())  # our own cache file
    except Exception:
        return None
    touch(report_path(settings, key))
    # same figure and compute settings (same key); page settings may differ
    return replace(report, settings=settings, figures=())


def reuse_figures_of(site_dir: Path, new: Path) -> list[dict]:
    """Link the previous build's figures into the new site (nothing that draws them has changed); their list
    comes from the previous site's run.json."""
    listed = json.loads((site_dir / "run.json").read_text()).get("figures", [])
    new.mkdir(parents=True, exist_ok=True)
    for f in listed:
        try:
            os.link(site_dir / "figures" / f["file"], new / f["file"])
        except OSError:
            shutil.copy2(site_dir / "figures" / f["file"], new / f["file"])
    return listed


def swap_in(build_dir: Path, site_dir: Path) -> None:
    """Replace site_dir by build_dir: the old site stays whole until the two renames at the very end. Each folder
    moved aside or deleted is checked again to be the tool's (minutes have passed since the first check)."""
    old = ownership.siblings(site_dir)["old"]
    ownership.recover_site(site_dir)
    ownership.remove_site_folder(old, site_dir)
    ownership.check_site_folder(site_dir)
    if site_dir.exists():
        os.replace(site_dir, old)
    os.replace(build_dir, site_dir)
    shutil.rmtree(old, ignore_errors=True)  # the previous site, checked to be the tool's just above
