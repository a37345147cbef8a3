"""methods.html: the leaderboard (which map to trust), its comparisons, sanity checks, localisation."""

from __future__ import annotations

from collections.abc import Iterator

from generator.evaluate import stats
from generator.i18n import N_, Lang
from generator.publish.pages.kinds import PageKind, method_info
from generator.report.findings import baselines_sentence
from generator.report.names import safe_name
from generator.report.summary import BOARD_LOCALISATION, Report, board_localisation, map_titles


def method_pages(report: Report, ctx: dict) -> Iterator[tuple[str, dict]]:
    lang: Lang = ctx["lang_obj"]
    board = report.board
    titles = map_titles(report, lang)
    v = report.verdict
    verdict = None if v is None else {"n": v.n, "best": titles.get(v.best, v.best),
                                      "tied": ", ".join(titles.get(m, m) for m in v.tied),
                                      "beaten": ", ".join(titles.get(m, m) for m in v.beaten),
                                      "baselines": baselines_sentence(v, lang)}
    last = report.n_taps - 1
    rows = board.to_dict("records") if not board.empty else []

    joined = board_localisation(board, report.localisation, last)
    joined_rows = joined.to_dict("records") if not joined.empty else []
    annotated = {st.set for st in report.truth.sets}

    def at_last(set_key: str) -> list[dict]:
        keep = set_key == "all" or set_key in annotated  # localisation is scored on the annotated sets only
        return sorted((_present(r, keep) for r in joined_rows if r["set"] == set_key),
                      key=lambda r: -r["combined"])

    per_tap: dict[str, list[dict | None]] = {}
    for r in rows:
        if r["set"] == "all" and getattr(report.run.methods_info.get(r["method"]), "needs", None) == "gradients":
            per_tap.setdefault(r["method"], [None] * report.n_taps)[r["tap"]] = r
    yield "methods.html", {
        "titles": titles, "verdict": verdict, "pooled": at_last("all"),
        "per_set": [(s.name, at_last(s.key)) for s in report.eval_sets if at_last(s.key)],
        "per_tap": sorted(per_tap.items(), key=lambda kv: -(kv[1][last] or {"combined": -9})["combined"]),
        "sanity": report.sanity_table.to_dict("records"),
        "methods": method_info(report, list(report.run.methods_scored)),
        "sample": report.settings.faithfulness_sample, "steps": report.settings.faithfulness_steps,
        "bootstrap": stats.BOOTSTRAP,
        "outcome": report.run.leaderboard, "margin": stats.MARGIN,
        "comparisons": report.comparisons.to_dict("records") if not report.comparisons.empty else [],
        "margin_share": margin_share(report.comparisons, stats.MARGIN),
        "live": stats.live_comparisons([stats.Comparison(**r) for r in report.comparisons.to_dict("records")]),
        # Columns other evaluations add to the board (localisation where a set has ground truth): dicts of title
        # (shown) and key (a column of the board's rows, with key_lo and key_hi for its interval), in percent.
        "extra_columns": localisation_columns(joined, lang),
        "loc_n": int(joined["loc_n"].max()) if "loc_n" in joined and joined["loc_n"].notna().any() else 0,
        "localisation": localisation_table(report),
        "truth_sets": truth_sets(report),
    }


def margin_share(comparisons, margin: float) -> float | None:
    """The margin of "equivalent" as a share of what the best map gains over the random map (the largest mean
    difference against it), for the page's reader; None when no map gains anything."""
    if comparisons.empty:
        return None
    gains = comparisons.loc[comparisons["b"] == "random", "mean"]
    best = float(gains.max()) if len(gains) else float("nan")
    return margin / best if best > 0 else None


def _present(row: dict, keep_localisation: bool) -> dict:
    """A board row without the localisation columns it has no value in (the template shows a dash for those)."""
    return {k: v for k, v in row.items() if not (k.startswith("loc_") and (v != v or not keep_localisation))}


def localisation_columns(joined, lang: Lang) -> list[dict]:
    """The board's localisation columns (percentages), where the annotated photos gave them."""
    titles = {("head", "hit"): lang._("head: peak inside"), ("head", "energy"): lang._("head: energy inside"),
              ("pet", "hit"): lang._("pet: peak inside")}
    out = []
    for region, score in BOARD_LOCALISATION:
        key = f"loc_{region}_{score}"
        if key in joined and joined[key].notna().any():
            out.append({"title": titles[region, score], "key": key, "percent": True})
    return out


def localisation_table(report: Report) -> list[dict]:
    """methods.html's localisation table: one row per (region, method, tap), maps of the labelled class."""
    t = report.localisation
    if t is None or t.empty:
        return []
    order = {m: i for i, m in enumerate(report.run.methods_chosen)}
    rows = t.to_dict("records")
    return sorted(rows, key=lambda r: (r["region"] != "head", order.get(r["method"], 99), r["method"], r["tap"]))


def truth_sets(report: Report) -> list[dict]:
    """What each set's ground truth gave: photos scored, entries left out (their sentences), photos not in it."""
    return [{"set": safe_name(st.set), "source": safe_name(st.source), "photos": st.photos,
             "left_out": [safe_name(x) for x in st.left_out], "not_in_set": st.not_in_set}
            for st in report.truth.sets]


KIND = PageKind("methods", "methods.html", N_("Methods"), "methods.html", method_pages)
