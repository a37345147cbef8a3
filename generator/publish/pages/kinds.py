"""What a page kind is, and what every page kind shares: words translated from data, method facts."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass

from generator.i18n import N_
from generator.report.summary import Report

# Words the templates translate from data (class names, tags, outcomes, needs, randomisations).
DATA_WORDS = (N_("cat"), N_("dog"), N_("correct"), N_("wrong"), N_("neither"), N_("unlabeled"), N_("right"),
              N_("features"), N_("gradients"), N_("forwards"), N_("head"), N_("head + last stage"),
              # the leaderboard's verdicts (evaluate.stats.decide)
              N_("better"), N_("worse"), N_("equivalent"), N_("undecided"), N_("same map"))


@dataclass(frozen=True)
class PageKind:
    name: str
    template: str
    nav: str | None  # navigation title (a message id), None when not in the navigation
    href: str | None  # the page the navigation links to
    pages: Callable[[Report, dict], Iterator[tuple[str, dict]]]
    shown: Callable[[Report], bool] = lambda _report: True  # whether this build has the page (and its nav link)


PHOTO_KIND = "photo"  # the image pages, rendered by the "sets" kind after every other page


def method_info(report: Report, names: list[str]) -> list[dict]:
    """What the pages say about each method (its registry entry, recorded in the run facts: the pages never
    import the registry, which imports torch). no_last: the method has no map at the last stage of this model
    (CAM, for a user's model whose head is not pooling + linear); the layer strips leave that cell empty."""
    no_cam = bool(report.run.no_cam_reason)
    return [dict(asdict(report.run.methods_info[n]), name=n, no_last=no_cam and n == "cam") for n in names]
