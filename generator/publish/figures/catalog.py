"""Every figure (file, drawing, caption, alt text), drawn in parallel by forked workers."""

from __future__ import annotations

import functools
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator.config import ROLES, Settings
from generator.data.scan import DEFAULT_CLASSES
from generator.i18n import Lang
from generator.publish.figures.accuracy import confidence_figure, confusion_figure, ood_figure, reliability_figure
from generator.publish.figures.evidence import attention_figure, leaderboard_figure
from generator.publish.figures.photos import cam_grid_figure, layers_figure, samples_figure
from generator.report.names import safe_name


def catalog(report, lang: Lang) -> list[tuple[str, Callable, str, str]]:
    """Every figure: (file, draw(report, lang, path) -> drawn?, caption, alt text)."""
    cats_dogs = tuple(report.classes) == DEFAULT_CLASSES
    out = [("samples.png", samples_figure, lang._("Training photos of both classes (seeded sample).") if cats_dogs
            else lang._("Training photos of each class (seeded sample)."),
            lang._("Grid of training photos, cats and dogs, labeled.") if cats_dogs
            else lang._("Grid of training photos of each class, labeled."))]
    no_cam, method = report.run.no_cam_reason, report.run.last_title  # a model without CAM at its last stage
    for role in ROLES:  # one grid per role of the story, drawn from whichever set plays it
        key, file = report.settings.set_for(role), f"cam_{role}.png"
        if any(x.key == key for x in report.eval_sets) and no_cam:
            out.append((file, functools.partial(_cam_grid, key),
                        lang._("%(method)s of the predicted class on %(set)s photos (the model has no CAM at its last "
                               "stage); wrong predictions framed in red, photos tagged neither in purple.",
                               method=method, set=safe_name(key)),
                        lang._("Grid of %(set)s photos with their %(method)s maps.", set=safe_name(key),
                               method=method)))
        elif any(x.key == key for x in report.eval_sets):
            out.append((file, functools.partial(_cam_grid, key),
                        lang._("CAM of the predicted class on %(set)s photos; wrong predictions framed in red, photos "
                               "tagged neither in purple.", set=safe_name(key)),
                        lang._("Grid of %(set)s photos with their class activation maps.", set=safe_name(key))))
    out += [
        ("layers.png", layers_figure, lang._("CAM at each of the four stages (columns) for sample photos (rows).")
         if not no_cam else lang._("The map of the predicted class at each stage (columns) for sample photos (rows): "
                                   "each earlier stage's CAM from its probe, and %(method)s at the last stage, which "
                                   "has no CAM.", method=method),
         lang._("Grid: rows are photos, columns are network stages, each showing the stage's CAM.") if not no_cam
         else lang._("Grid: rows are photos, columns are network stages, each showing the stage's map.")),
        ("confusion.png", confusion_figure, lang._("Confusion matrix per labeled set."),
         lang._("Confusion matrices of the labeled sets.")),
        ("reliability.png", reliability_figure,
         lang._("Reliability diagram: accuracy per confidence bin (bar labels: photos per bin) and the expected "
                "calibration error (ECE) per labeled set."), lang._("Reliability diagrams of the labeled sets.")),
        ("confidence.png", confidence_figure, lang._("Confidence of correct and wrong predictions (log-scale counts)."),
         lang._("Histograms of prediction confidence, correct versus wrong.")),
        ("attention.png", attention_figure,
         lang._("Where the model looks: CAM box area against the share of the map inside it, correct against wrong "
                "predictions.") if not no_cam else
         lang._("Where the model looks: the box of its %(method)s map (it has no CAM at its last stage), its area "
                "against the share of the map inside it, correct against wrong predictions.", method=method),
         lang._("Scatter plot of CAM box area against in-box CAM mass, and box plots of box area by outcome.")
         if not no_cam else lang._("Scatter plot of the %(method)s box area against the map's mass inside it, and "
                                   "box plots of box area by outcome.", method=method)),
        ("neither.png", ood_figure,
         lang._("How much of the ImageNet head's probability goes to its cat and dog classes, per set, and the "
                "'neither' threshold.") if report.neither_score == "pet_p" else
         lang._("The head's own highest probability (MSP) per set, and the 'neither' threshold."),
         lang._("Dot plot per set of the summed cat and dog probability, with a dashed threshold line.")
         if report.neither_score == "pet_p" else
         lang._("Dot plot per set of the head's highest probability, with a dashed threshold line.")),
        ("leaderboard.png", leaderboard_figure,
         lang._("Faithfulness of each map method at the last stage against two baselines, with 95% bootstrap "
                "intervals over the scored photos."),
         lang._("Horizontal bar chart of insertion minus deletion AUC per method, with error bars.")),
    ]
    return out


def _cam_grid(key: str, report, lang: Lang, path: Path) -> bool:
    return cam_grid_figure(report, key, lang, path)


@dataclass(frozen=True)
class FigureJob:
    """What forked figure workers inherit: the report, the language, the catalog, the folder."""

    report: Any
    lang: Lang
    catalog: list[tuple[str, Callable, str, str]]
    outdir: Path


def _draw(job: FigureJob, i: int) -> bool:
    file, draw, _caption, _alt = job.catalog[i]
    return draw(job.report, job.lang, job.outdir / file)


def make_all(report, settings: Settings, outdir: Path) -> list[dict]:
    """Every figure, drawn in parallel by forked workers (each figure is independent and matplotlib is
    single-threaded); returns [{file, caption, alt}] of the figures drawn, for the pages."""
    from generator.data.workers import forked_map

    lang = Lang(settings.lang)
    outdir = Path(outdir)
    outdir.mkdir(parents=True, exist_ok=True)
    figures = catalog(report, lang)
    job = FigureJob(report=report, lang=lang, catalog=figures, outdir=outdir)
    drawn = forked_map(_draw, job, list(range(len(figures))), settings.n_workers)
    return [{"file": f, "caption": c, "alt": a} for (f, _, c, a), ok in zip(figures, drawn) if ok]
