"""Page models: turn the results table into what each template shows, then write every page."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from . import analysis
from .datasets import CLASSES
from .render import SiteWriter, safe_name, set_slug


def _f(v: Any) -> float | None:
    try:
        v = float(v)
    except (TypeError, ValueError):
        return None
    return None if math.isnan(v) else v


def photo_model(r: dict, run: dict) -> dict[str, Any]:
    """What a thumbnail or an image page needs of one results row."""
    pred = r.get("prediction") or ""
    conf = max((_f(r.get(f"p_{c}")) or 0.0) for c in CLASSES) if pred else None
    sha = r.get("sha256") or ""
    return {
        "name": safe_name(r["file"]),
        "set": safe_name(r["set"]),
        "set_slug": r["set_slug"],
        "slug": r["slug"],
        "page": r["page"],
        "label": r["label"],
        "prediction": pred,
        "confidence": conf,
        "probs": {c: _f(r.get(f"p_{c}")) for c in CLASSES},
        "tag": r["tag"],
        "assets": f"assets/{sha[:2]}/{sha}/" if sha else "",
        "box": {k: _f(r.get(f"box_{k}")) for k in ("x0", "y0", "x1", "y1", "area", "mass")},
        "width": r.get("width"),
        "height": r.get("height"),
        "probe_predictions": [r.get(f"probe{t}_prediction", "") for t in range(len(run["taps"]))],
        "ood": {"energy": _f(r.get("imagenet_energy")), "msp": _f(r.get("imagenet_msp"))},
    }


def photos_script(photos: list[dict]) -> str:
    """The gallery's data for app.js, as a script file (works from file://, unlike fetching JSON).

    json.dumps escapes nothing HTML-special, so <, > and & are written as \\u escapes: no name can close a
    script element or start markup even if the text is ever inlined."""
    data = [{"name": p["name"], "slug": p["slug"], "page": p["page"],
             "thumb": (p["assets"] + "thumb.webp") if p["assets"] else "",
             "label": p["label"] or "", "pred": p["prediction"], "conf": p["confidence"], "tag": p["tag"]}
            for p in photos]
    text = json.dumps(data, ensure_ascii=True, separators=(",", ":"))
    text = text.replace("<", "\\u003c").replace(">", "\\u003e").replace("&", "\\u0026")
    return f"window.CAM_PHOTOS = {text};\n"


def write_all(writer: SiteWriter, results: pd.DataFrame, run: dict, settings, figure_list) -> None:
    writer.static()
    eval_sets = [s for s in run["sets"] if s != settings.train_set]
    n_taps = len(run["taps"])
    summaries, set_models = [], []
    for s in run["sets"]:
        df = results[results["set"] == s]
        summary = analysis.set_summary(df)
        summary.update(name=safe_name(s), slug=set_slug(s),
                       is_train=s == settings.train_set, confusion=None, probe_accuracy=None)
        if summary["labeled"]:
            summary["confusion"] = analysis.confusion(df).to_dict(orient="index")
            summary["probe_accuracy"] = analysis.probe_accuracy(df, n_taps) if s != settings.train_set else None
            summary["ece"] = analysis.set_reliability(df).ece
        summaries.append(summary)
        if s in eval_sets:
            set_models.append((s, df, summary))

    # Assets: one folder per distinct photo content, linked from the cache.
    for sha, adir in results.loc[results["assets"].astype(bool), ["sha256", "assets"]].drop_duplicates().values:
        if Path(adir).is_dir():
            writer.link_tree(Path(adir), f"assets/{sha[:2]}/{sha}")

    nav = [{"title": "Overview", "href": "index.html"}] + [
        {"title": m[2]["name"], "href": f"sets/{m[2]['slug']}/index.html"} for m in set_models
    ] + [{"title": "Errors", "href": "errors.html"}, {"title": "Layers", "href": "layers.html"},
         {"title": "Figures", "href": "figures.html"}, {"title": "Skipped", "href": "skipped.html"}]
    common = {"nav": nav, "run": run, "classes": CLASSES}

    writer.page("index.html", "index.html", summaries=summaries, figures=figure_list,
                total_files=int(len(results)), **common)

    for _s, df, summary in set_models:
        ok = df[df["status"] == "ok"]
        photos = [photo_model(r, run) for r in ok.to_dict("records")]
        pages = max(1, math.ceil(len(photos) / settings.page_size))
        tag_counts = {t: sum(p["tag"] == t for p in photos) for t in ("correct", "wrong", "unlabeled")}
        labels_present = sorted({p["label"] for p in photos if p["label"]})
        writer.text(f"sets/{summary['slug']}/photos.js", photos_script(photos))
        page_of = {}
        for p in range(pages):
            chunk = photos[p * settings.page_size:(p + 1) * settings.page_size]
            rel = f"sets/{summary['slug']}/" + ("index.html" if p == 0 else f"page-{p + 1}.html")
            for ph in chunk:
                page_of[ph["slug"]] = rel.rsplit("/", 1)[1]
            writer.page(rel, "gallery.html", set=summary, photos=chunk, tag_counts=tag_counts,
                        labels_present=labels_present, page_no=p + 1, pages=pages,
                        page_names=["index.html"] + [f"page-{i + 1}.html" for i in range(1, pages)], **common)
        for i, ph in enumerate(photos):
            prev_ph = photos[i - 1] if i > 0 else None
            next_ph = photos[i + 1] if i + 1 < len(photos) else None
            writer.page(ph["page"], "photo.html", set=summary, photo=ph, prev=prev_ph, next=next_ph,
                        gallery_page=page_of[ph["slug"]], index=i + 1, count=len(photos),
                        gradcam=settings.gradcam, **common)

    error_groups = []
    for _s, df, summary in set_models:
        error_groups.append(_error_model(writer, df, summary, run, settings, common))
    reference = results[(results["set"] == "test") & (results["status"] == "ok")]
    writer.page("errors.html", "errors.html", groups=error_groups,
                reference={"energy": _f(reference["imagenet_energy"].median()) if len(reference) else None,
                           "msp": _f(analysis.confidence(reference).median()) if len(reference) else None},
                steps=settings.faithfulness_steps, ece_bins=analysis.ECE_BINS,
                sample=settings.faithfulness_sample, **common)
    writer.page("figures.html", "figures.html", figures=figure_list, **common)

    layer_rows = _layer_sample(results, eval_sets, run, settings)
    writer.page("layers.html", "layers.html", summaries=summaries, groups=layer_rows, gradcam=settings.gradcam,
                **common)
    skipped = results[results["status"] != "ok"]
    writer.page("skipped.html", "skipped.html",
                skipped=[{"set": safe_name(r["set"]), "file": safe_name(r["file"]), "status": r["status"]}
                         for r in skipped.to_dict("records")], **common)


def _error_model(writer: SiteWriter, df: pd.DataFrame, summary: dict, run: dict, settings, common) -> dict:
    """errors.html's section of one set; writes one page per confusion-matrix cell."""
    group: dict[str, Any] = {"set": summary, "labeled": bool(summary["labeled"])}
    faith = analysis.faithfulness_summary(df)
    group["faithfulness"] = faith.to_dict("records")
    if summary["labeled"]:
        rel = analysis.set_reliability(df)
        group["ece"] = rel.ece
        group["mistakes"] = [dict(photo_model(r, run), true=r["label"]) for r in
                             analysis.mistakes(df).to_dict("records")]
        group["near"] = [photo_model(r, run) for r in analysis.near_misses(df).to_dict("records")]
        cells = {}
        for (t, p), cell in analysis.confusion_cells(df).items():
            rel_path = f"sets/{summary['slug']}/cell-{t}-as-{p}.html"
            cells[(t, p)] = {"count": len(cell), "href": rel_path}
            writer.page(rel_path, "cell.html", set=summary, label=t, pred=p,
                        photos=[photo_model(r, run) for r in cell.to_dict("records")], **common)
        group["cells"] = {t: {p: cells[(t, p)] for p in CLASSES} for t in CLASSES}
        group["attention"] = analysis.attention_by_outcome(df).to_dict("records")
    else:
        ood = analysis.ood_table(df)
        group["ood"] = [dict(photo_model(r, run), msp=_f(r["msp"])) for r in ood.to_dict("records")]
    return group


def _layer_sample(results: pd.DataFrame, eval_sets: list[str], run: dict, settings) -> list[dict]:
    """Per set: a seeded sample of photos plus every mistake, for layers.html."""
    groups = []
    rng = np.random.default_rng(settings.seed)
    for s in eval_sets:
        df = results[(results["set"] == s) & (results["status"] == "ok")]
        if df.empty:
            groups.append({"set": safe_name(s), "photos": [], "mistakes": []})
            continue
        take = rng.choice(len(df), size=min(settings.layer_sample, len(df)), replace=False)
        sample = df.iloc[np.sort(take)]
        wrong = df[df["tag"] == "wrong"]
        groups.append({
            "set": safe_name(s),
            "photos": [photo_model(r, run) for r in sample.to_dict("records")],
            "mistakes": [photo_model(r, run) for r in wrong.to_dict("records")],
        })
    return groups
