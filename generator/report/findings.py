"""The story of the report: each finding is a sentence computed from the results, never typed in.

The story follows the blog post this tool reproduces (why; the data and the model; CAM on the photos; the
model's view, stage by stage; the data's view: own photos and unrelated ones; what CAM showed). Where this run's
numbers say the opposite of the original post, the sentence says so. Each finding links to the pages that
show it. Each function takes only the tables it needs, so tests can hand it small tables where a finding flips.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field

import numpy as np

from generator.data.scan import DEFAULT_CLASSES
from generator.evaluate.stats import MARGIN
from generator.frames import pd
from generator.i18n import Lang
from generator.report import analysis
from generator.report.names import safe_name, set_slug
from generator.report.summary import tap_labels

PROBE_SEPARATES = 0.9  # a stage "separates the classes" when its linear probe gets this share of photos right


@dataclass
class Finding:
    text: str
    links: list[tuple[str, str]] = field(default_factory=list)  # (href relative to the site root, label)
    agrees: bool | None = None  # with the original blog post; None where it made no such claim


@dataclass
class Section:
    id: str
    title: str
    paragraphs: list[str]
    findings: list[Finding]
    figures: list[str] = field(default_factory=list)  # file names under figures/
    formula: bool = False


def _median(s: pd.Series) -> float:
    return float(s.median()) if len(s) else float("nan")


def _class(lang: Lang, c: str) -> str:
    return {"cat": lang._("cat"), "dog": lang._("dog")}.get(c, c)


# ---- 2. the data and the model --------------------------------------------------------------------------------


def data_and_model(results: pd.DataFrame, train_set: str, test_set: str, run: dict, lang: Lang) -> Finding:
    classes = run.classes
    train = analysis.labeled_ok(results[results["set"] == train_set], classes)
    test = results[results["set"] == test_set]
    counts = train["label"].value_counts()
    last = run.n_taps - 1
    if run.tuned:
        return _tuned_data_and_model(train, test, counts, run, lang, classes)
    if run.own:
        text = lang._(
            "This is your own classifier, explained as it is: its own head makes every prediction, and nothing of it "
            "was trained here (only a linear probe at each earlier stage, on %(n)s training photos). It is tested on "
            "%(n_test)s photos, of which it gets %(acc)s right (%(wrong)s wrong).", n=lang.num(int(len(train))),
            n_test=lang.num(int(len(analysis.labeled_ok(test, classes)))),
            acc=lang.pct(analysis.accuracy(test, classes=classes), 1),
            wrong=lang.num(int(len(analysis.mistakes(test, classes)))))
        return Finding(text, [("overview.html", lang._("all sets and numbers"))], agrees=False)
    cv = run.train_scores.get(f"tap{last}_cv5_accuracy")
    tested = dict(n_test=lang.num(int(len(analysis.labeled_ok(test, classes)))),
                  acc=lang.pct(analysis.accuracy(test, classes=classes), 1),
                  wrong=lang.num(int(len(analysis.mistakes(test, classes)))), cv=lang.pct(cv, 1))
    if tuple(classes) == DEFAULT_CLASSES:
        text = lang._(
            "The head was fitted on %(cats)s cat and %(dogs)s dog photos and tested on %(n_test)s others, of which "
            "it gets %(acc)s right (%(wrong)s wrong); 5-fold cross-validation on the training photos gives %(cv)s.",
            cats=lang.num(int(counts.get("cat", 0))), dogs=lang.num(int(counts.get("dog", 0))), **tested)
    else:
        per = [int(counts.get(c, 0)) for c in classes]
        text = lang._(
            "The head was fitted on %(n)s photos of %(k)s classes (%(lo)s to %(hi)s per class) and tested on "
            "%(n_test)s others, of which it gets %(acc)s right (%(wrong)s wrong); 5-fold cross-validation on the "
            "training photos gives %(cv)s.", n=lang.num(sum(per)), k=lang.num(len(classes)),
            lo=lang.num(min(per)), hi=lang.num(max(per)), **tested)
    text += " " + lang._(
        "Unlike the original post, which fine-tuned a whole ResNet18, the ImageNet network here stays frozen and "
        "only a logistic regression on its pooled features is fitted: the maps show what a pretrained network "
        "already knows.")
    return Finding(text, [("overview.html", lang._("all sets and numbers"))], agrees=False)


def _tuned_data_and_model(train: pd.DataFrame, test: pd.DataFrame, counts, run, lang: Lang,
                          classes: tuple[str, ...] = DEFAULT_CLASSES) -> Finding:
    """The same paragraph for a network fine-tuned end to end (setting recipe finetune or lp-ft), as the post did."""
    t = run.training
    best = run.training_curve[t["best_epoch"] - 1] if run.training_curve and t.get("best_epoch") else {}
    text = lang._(
        "The whole network was fine-tuned on %(cats)s cat and %(dogs)s dog photos, %(held)s of them held out to "
        "decide when to stop, and tested on %(n_test)s others, of which it gets %(acc)s right (%(wrong)s wrong); "
        "on the held-out training photos it gets %(held_acc)s.",
        cats=lang.num(int(counts.get("cat", 0))), dogs=lang.num(int(counts.get("dog", 0))),
        held=lang.num(int(t.get("n_heldout", 0))), n_test=lang.num(int(len(analysis.labeled_ok(test, classes)))),
        acc=lang.pct(analysis.accuracy(test, classes=classes), 1),
        wrong=lang.num(int(len(analysis.mistakes(test, classes)))),
        held_acc=lang.pct(best.get("heldout_accuracy", float("nan")), 1))
    text += " " + lang._(
        "As the original post did with a ResNet18, the pretrained ImageNet network itself was trained here "
        "(%(epochs)s epochs, the weights of epoch %(best)s kept): the maps show what the tuned network learned, "
        "and the earlier stages' probes were fitted again on its features.",
        epochs=lang.num(int(t.get("epochs_run", len(run.training_curve)))), best=lang.num(int(t.get("best_epoch", 0))))
    return Finding(text, [("overview.html", lang._("all sets and numbers"))], agrees=True)


# ---- 3. CAM on the photos -------------------------------------------------------------------------------------


def no_cam_sentence(run, lang: Lang) -> str:
    """The one sentence a page shows where the last stage's CAM would be, for a user's model whose head is not
    global average pooling + one linear layer ('' for every other model)."""
    if not run.no_cam_reason:
        return ""
    return lang._("This model has no CAM at the last stage: %(reason)s, so no layer's weights turn that stage's "
                  "feature map into class scores. Its maps there are the gradient methods' (%(method)s first), "
                  "computed through the model's own head; the earlier stages keep their probes' CAM.",
                  reason=lang._(run.no_cam_reason), method=run.last_title)


def attention(results: pd.DataFrame, sets: list[str], lang: Lang, classes=DEFAULT_CLASSES,
              method: str = "") -> Finding:
    """Is the map more spread out when the model errs (the original: 'where the head is unclear, it errs')?
    method: the title of the map the boxes are drawn on where it is not CAM (a model without CAM)."""
    d = analysis.labeled_ok(results[results["set"].isin(sets)], classes)
    right, wrong = d[d["prediction"] == d["label"]], d[d["prediction"] != d["label"]]
    links = [("errors.html", lang._("every mistake with its maps"))]
    links += [(f"sets/{set_slug(s)}/index.html?tag=wrong", lang._("the wrong ones in %(set)s", set=safe_name(s)))
              for s in sets if (wrong["set"] == s).any()]
    if wrong.empty:
        return Finding(lang._("The model made no mistake on the labeled photos, so there is no mistake to "
                              "compare its maps with."), links, None)
    values = dict(n_wrong=lang.num(len(wrong)), n_right=lang.num(len(right)),
                  area_wrong=lang.pct(_median(wrong["box_area"]), 0),
                  area_right=lang.pct(_median(right["box_area"]), 0),
                  mass_wrong=lang.pct(_median(wrong["box_mass"]), 0),
                  mass_right=lang.pct(_median(right["box_mass"]), 0))
    spread = _median(wrong["box_area"]) > _median(right["box_area"])
    if method and spread:
        text = lang._("The %(method)s map spreads out when the model errs: for the %(n_wrong)s wrong predictions its "
                      "box covers a median %(area_wrong)s of the photo, against %(area_right)s for the %(n_right)s "
                      "right ones (it holds %(mass_wrong)s and %(mass_right)s of the map).", method=method, **values)
    elif method:
        text = lang._("The %(method)s map does not spread out when the model errs: for the %(n_wrong)s wrong "
                      "predictions its box covers a median %(area_wrong)s of the photo, against %(area_right)s for "
                      "the %(n_right)s right ones (it holds %(mass_wrong)s and %(mass_right)s of the map).",
                      method=method, **values)
    elif spread:
        text = lang._("As in the original post, the map spreads out when the model errs: for the %(n_wrong)s wrong "
                      "predictions the CAM box covers a median %(area_wrong)s of the photo, against %(area_right)s "
                      "for the %(n_right)s right ones (it holds %(mass_wrong)s and %(mass_right)s of the map).",
                      **values)
    else:
        text = lang._("Unlike the original post, the map does not spread out when the model errs: for the "
                      "%(n_wrong)s wrong predictions the CAM box covers a median %(area_wrong)s of the photo, "
                      "against %(area_right)s for the %(n_right)s right ones (it holds %(mass_wrong)s and "
                      "%(mass_right)s of the map).", **values)
    return Finding(text, links, spread)


# ---- 4. the model's view, stage by stage ----------------------------------------------------------------------


def stages(results: pd.DataFrame, test_set: str, labels: list[str], lang: Lang, classes=DEFAULT_CLASSES) -> Finding:
    """Where the classes become separable, and whether the last stage's map is wider than the one before
    (the original: 'attention forms at stage 3 and widens at stage 4')."""
    d = results[(results["set"] == test_set) & (results["status"] == "ok")]
    n = len(labels)
    acc = analysis.probe_accuracy(d, n, classes)
    first = next((t for t, a in enumerate(acc) if a >= PROBE_SEPARATES), None)
    areas = [_median(d[f"box{t}_area"]) if f"box{t}_area" in d else float("nan") for t in range(n)]
    links = [("layers.html", lang._("the maps of every stage"))]
    if first is None:
        text = lang._("No stage's linear probe reaches %(goal)s on the test photos; the best gets %(best)s.",
                      goal=lang.pct(PROBE_SEPARATES, 0), best=lang.pct(np.nanmax(acc), 1))
    else:
        before = lang.pct(acc[first - 1], 1) if first > 0 else lang.pct(1 / len(classes), 0)
        text = lang._("The classes become separable at %(stage)s: a linear probe there gets %(acc)s of the test "
                      "photos right, against %(before)s one stage earlier.",
                      stage=labels[first], acc=lang.pct(acc[first], 1), before=before)
    widens = bool(areas[-1] > areas[-2]) if n >= 2 and np.isfinite(areas[-1]) and np.isfinite(areas[-2]) else None
    if widens is not None:
        values = dict(last=labels[-1], prev=labels[-2], a_last=lang.pct(areas[-1], 0),
                      a_prev=lang.pct(areas[-2], 0))
        if widens:
            text += " " + lang._("As in the original post, the map widens at the last stage: its box covers a median "
                                 "%(a_last)s of the photo at %(last)s, against %(a_prev)s at %(prev)s.", **values)
        else:
            text += " " + lang._("Unlike the original post, the map does not widen at the last stage: its box covers "
                                 "a median %(a_last)s of the photo at %(last)s, against %(a_prev)s at %(prev)s.",
                                 **values)
    return Finding(text, links, widens)


def stage_story(report, results: pd.DataFrame, test_set: str, lang: Lang) -> Finding:
    """The stage finding of the fine-tuned network when there is one: the site's own model, or else a fine-tuned
    model B that setting compare added (same backbone), since the original post's claim is about a tuned network."""
    run, c = report.run, report.compare
    if (c is None or run.tuned or c.b.get("recipe_name", "probe") == "probe" or c.results_b is None
            or c.b.get("backbone") != run.backbone):
        return stages(results, test_set, tap_labels(run, lang), lang, report.classes)
    f = stages(c.results_b, test_set, tap_labels(run, lang), lang, report.classes)
    lead = lang._("These stages are read from the fine-tuned network (model B on the comparison page), as the "
                  "original post's were.")
    return Finding(f"{lead} {f.text}", [*f.links, ("compare.html", lang._("the two models side by side"))], f.agrees)


# ---- does it look at the head? (ground truth, evaluate/truth.py) -------------------------------------------------


def _iv(lang: Lang, mean: float, lo: float, hi: float) -> str:
    return lang._("%(m)s (95%% interval %(lo)s to %(hi)s)", m=lang.pct(mean, 0), lo=lang.pct(lo, 0),
                  hi=lang.pct(hi, 0))


def _beats(row) -> bool | None:
    """True when the map's interval lies above the centre point's, False when below, None when they overlap."""
    if row["hit_lo"] > row["centre_hi"]:
        return True
    if row["hit_hi"] < row["centre_lo"]:
        return False
    return None


def looks_at_head(table: pd.DataFrame | None, labels: list[str], lang: Lang) -> Finding | None:
    """The post's claim, measured: the CAM's peak (labelled class) falls on the head, stage by stage, beside the
    photo's centre point on the same photos."""
    if table is None or table.empty:
        return None
    cam = table[(table["method"] == "cam")].sort_values("tap")
    head, pet = cam[cam["region"] == "head"], cam[cam["region"] == "pet"]
    if head.empty:
        return None
    last = head.iloc[-1]
    values = dict(n=lang.num(int(last["n"])), stage=labels[int(last["tap"])],
                  hit=_iv(lang, last["hit"], last["hit_lo"], last["hit_hi"]),
                  centre=_iv(lang, last["centre"], last["centre_lo"], last["centre_hi"]))
    beats = _beats(last)
    if beats is True:
        text = lang._("As the original post says, the model looks at the head: on %(n)s photos with a head box, the "
                      "peak of the labelled class's CAM at %(stage)s falls on the head for %(hit)s of them; the "
                      "photo's centre point does so for %(centre)s.", **values)
    elif beats is False:
        text = lang._("Unlike the original post, the model does not look at the head more than a fixed point does: "
                      "on %(n)s photos with a head box, the peak of the labelled class's CAM at %(stage)s falls on "
                      "the head for %(hit)s of them; the photo's centre point does so for %(centre)s.", **values)
    else:
        text = lang._("These photos cannot tell whether the model looks at the head more than a fixed point does: "
                      "on %(n)s photos with a head box, the peak of the labelled class's CAM at %(stage)s falls on "
                      "the head for %(hit)s of them; the photo's centre point does so for %(centre)s.", **values)
    per_stage = "; ".join(lang._("%(stage)s: %(head)s on the head, %(pet)s on the pet", stage=labels[int(h["tap"])],
                                 head=lang.pct(h["hit"], 0), pet=lang.pct(p["hit"], 0))
                          for h, p in zip(head.to_dict("records"), pet.to_dict("records")))
    if per_stage:
        text += " " + lang._("Stage by stage, the peak lands: %(list)s.", list=per_stage)
    return Finding(text, [("methods.html#localisation", lang._("every method and stage against the ground "
                                                               "truth"))], beats)


def errs_when_head_unclear(test, lang: Lang) -> Finding | None:
    """'When the head is unclear, it errs': the head's area share of mistakes against right answers."""
    if test is None:
        return None
    links = [("errors.html", lang._("every mistake with its maps"))]
    if not test.enough:
        return Finding(lang._("Only %(n)s of the annotated photos are mistakes (%(r)s are right): too few to tell "
                              "whether the model errs when the head is small or cut by the frame.",
                              n=lang.num(test.n_wrong), r=lang.num(test.n_right)), links, None)
    d, lo, hi = test.difference
    values = dict(n=lang.num(test.n_wrong), r=lang.num(test.n_right),
                  wrong=_iv(lang, test.share_wrong.mean, test.share_wrong.lo, test.share_wrong.hi),
                  right=_iv(lang, test.share_right.mean, test.share_right.lo, test.share_right.hi),
                  p=lang.num(test.p_value, 3), cut_w=lang.pct(test.cut_wrong, 0), cut_r=lang.pct(test.cut_right, 0))
    smaller = hi < 0
    if smaller:
        text = lang._("As the original post says, the model errs more where the head is small: the heads of the "
                      "%(n)s mistakes cover %(wrong)s of the photo, those of the %(r)s right answers %(right)s "
                      "(rank test p = %(p)s). Heads touch the frame in %(cut_w)s of mistakes and %(cut_r)s of right "
                      "answers.", **values)
    else:
        text = lang._("The data do not show that the model errs where the head is small: the heads of the %(n)s "
                      "mistakes cover %(wrong)s of the photo, those of the %(r)s right answers %(right)s (rank test "
                      "p = %(p)s). Heads touch the frame in %(cut_w)s of mistakes and %(cut_r)s of right answers.",
                      **values)
    return Finding(text, links, True if smaller else None)


# ---- 5. the data's view ---------------------------------------------------------------------------------------


def name_stem(file: str) -> str:
    """'oxfordpet_Sphynx_12.jpg' -> 'oxfordpet_Sphynx': the name without its number and extension."""
    stem = file.rsplit("/", 1)[-1].rsplit(".", 1)[0]
    return re.sub(r"[\s_\-.]*\d+$", "", stem) or stem


def own_photo_mistakes(results: pd.DataFrame, set_name: str, lang: Lang, classes=DEFAULT_CLASSES,
                       method: str = "") -> Finding | None:
    """What the mistakes on the user's own photos have in common (the original: a cat read as a dog where its
    head was unclear)."""
    d = analysis.labeled_ok(results[results["set"] == set_name], classes)
    if d.empty:
        return None
    wrong = analysis.mistakes(d, classes)
    right = d[d["prediction"] == d["label"]]
    links = [(f"sets/{set_slug(set_name)}/index.html?tag=wrong", lang._("the wrong ones")),
             ("errors.html", lang._("their maps"))]
    head = lang._("On your own photos the model gets %(acc)s right: %(wrong)s of %(n)s are wrong.",
                  acc=lang.pct(analysis.accuracy(d, classes=classes), 1), wrong=lang.num(len(wrong)),
                  n=lang.num(len(d)))
    if wrong.empty:
        return Finding(head, links, None)
    parts = [head]
    direction = wrong["label"].value_counts()
    label = str(direction.index[0])  # the class with the most mistakes, and what it is most often called
    called = wrong.loc[wrong["label"] == label, "prediction"].value_counts()
    other, k = str(called.index[0]), int(called.iloc[0])
    parts.append(lang._("%(k)s of them are %(label)s photos called %(other)s.", k=lang.num(k),
                        label=_class(lang, label), other=_class(lang, other)))
    spread = _median(wrong["box_area"]) > _median(right["box_area"])
    box = dict(w=lang.pct(_median(wrong["box_area"]), 0), r=lang.pct(_median(right["box_area"]), 0),
               cw=lang.pct(_median(analysis.confidence(wrong, classes)), 0),
               cr=lang.pct(_median(analysis.confidence(right, classes)), 0))
    parts.append(lang._("Their %(method)s box covers a median %(w)s of the photo (%(r)s when right) and their median "
                        "confidence is %(cw)s (%(cr)s when right).", method=method, **box) if method else
                 lang._("Their CAM box covers a median %(w)s of the photo (%(r)s when right) and their median "
                        "confidence is %(cw)s (%(cr)s when right).", **box))
    stems = d["file"].map(name_stem)
    shared = stems[wrong.index].value_counts()
    if len(shared) and shared.iloc[0] >= 2 and (stems == shared.index[0]).mean() <= 0.2:
        parts.append(lang._("%(k)s of the mistakes are named %(stem)s…, a group of %(n)s photos in the set.",
                            k=lang.num(int(shared.iloc[0])), stem=safe_name(str(shared.index[0])),
                            n=lang.num(int((stems == shared.index[0]).sum()))))
    return Finding(" ".join(parts), links, spread)


def unrelated_photos(results: pd.DataFrame, set_name: str, threshold: float, keep: float, test_set: str,
                     lang: Lang, classes=DEFAULT_CLASSES) -> Finding | None:
    """What the two-class head calls photos that are neither, and what the backbone's ImageNet head sees."""
    d = results[(results["set"] == set_name) & (results["status"] == "ok")]
    if d.empty:
        return None
    conf = analysis.confidence(d, classes)
    called = d["prediction"].value_counts()
    top = d.assign(conf=conf).sort_values("conf", ascending=False).iloc[0]
    flagged = int((d["tag"] == "neither").sum())
    test = results[(results["set"] == test_set) & (results["status"] == "ok")]
    parts = []
    cats_dogs = tuple(classes) == DEFAULT_CLASSES
    imagenet = bool(d["pet_p"].notna().any())  # a user's own classifier has no ImageNet head
    if len(called) == 1:
        parts.append(lang._("The two-class head calls all %(n)s unrelated photos %(cls)s, with a confidence from "
                             "%(lo)s to %(hi)s: it has no way to say neither.", n=lang.num(len(d)),
                             cls=_class(lang, str(called.index[0])), lo=lang.pct(conf.min(), 0),
                             hi=lang.pct(conf.max(), 0)) if cats_dogs else
                      lang._("The head calls all %(n)s unrelated photos %(cls)s, with a confidence from %(lo)s to "
                             "%(hi)s: it has no way to say none of its classes.", n=lang.num(len(d)),
                             cls=_class(lang, str(called.index[0])), lo=lang.pct(conf.min(), 0),
                             hi=lang.pct(conf.max(), 0)))
    elif cats_dogs:
        parts.append(lang._("The two-class head calls %(cats)s of the %(n)s unrelated photos cat and %(dogs)s dog, "
                            "with a confidence from %(lo)s to %(hi)s: it has no way to say neither.",
                            cats=lang.num(int(called.get("cat", 0))), dogs=lang.num(int(called.get("dog", 0))),
                            n=lang.num(len(d)), lo=lang.pct(conf.min(), 0), hi=lang.pct(conf.max(), 0)))
    else:
        calls = ", ".join(lang._("%(k)s %(cls)s", k=lang.num(int(k)), cls=_class(lang, str(c)))
                          for c, k in called.head(3).items())
        parts.append(lang._("The head calls the %(n)s unrelated photos by %(m)s of its classes (most often: "
                            "%(calls)s), with a confidence from %(lo)s to %(hi)s: it has no way to say none of them.",
                            n=lang.num(len(d)), m=lang.num(len(called)), calls=calls, lo=lang.pct(conf.min(), 0),
                            hi=lang.pct(conf.max(), 0)))
    tested = dict(thr=lang.pct(threshold, 1), keep=lang.pct(keep, 1), k=lang.num(flagged), n=lang.num(len(d)),
                  kt=lang.pct(float((test["tag"] == "neither").mean()) if len(test) else float("nan"), 1))
    if not imagenet:
        parts.append(lang._("The most confident call is %(name)s: %(cls)s at %(conf)s. Tagging as neither every "
                            "photo whose highest probability is below %(thr)s (the threshold that keeps %(keep)s of "
                            "the training photos) flags %(k)s of the %(n)s unrelated photos and %(kt)s of the test "
                            "photos.", name=safe_name(top["file"]), cls=_class(lang, top["prediction"]),
                            conf=lang.pct(top["conf"], 0), **tested))
    else:
        parts.append(lang._("The most confident call is %(name)s: %(cls)s at %(conf)s, where the network's own "
                            "ImageNet head sees %(sees)s (%(p)s).", name=safe_name(top["file"]),
                            cls=_class(lang, top["prediction"]), conf=lang.pct(top["conf"], 0),
                            sees=str(top.get("imagenet1", "?")), p=lang.pct(top.get("imagenet1_p"), 0)))
        parts.append(lang._("That head puts a median %(u)s of its probability on its cat and dog classes for these "
                            "photos, against %(t)s for the test photos. Tagging as neither every photo below %(thr)s "
                            "(the threshold that keeps %(keep)s of the training photos) flags %(k)s of the %(n)s "
                            "unrelated photos and %(kt)s of the test photos.",
                            u=lang.pct(_median(d["pet_p"]), 1), t=lang.pct(_median(test["pet_p"]), 1), **tested))
    links = [(f"sets/{set_slug(set_name)}/index.html", lang._("the unrelated photos")),
             ("errors.html#neither", lang._("how well each score separates them"))]
    return Finding(" ".join(parts), links, None)


# ---- 6. what CAM showed ---------------------------------------------------------------------------------------


def faithfulness(board: pd.DataFrame, verdict: analysis.Verdict | None, last_tap: int, titles: dict[str, str],
                 lang: Lang, lead: str = "cam") -> Finding | None:
    """Do the maps explain the model better than chance, and which method explains it best? lead: the method the
    pages draw at the last stage (CAM, or a gradient method for a model without CAM there)."""
    if board.empty or verdict is None:
        return None
    last = board[(board["set"] == "all") & (board["tap"] == last_tap)].set_index("method")
    if not {lead, "random", "gaussian"} <= set(last.index):
        return None
    cam, rnd, gau = last.loc[lead], last.loc["random"], last.loc["gaussian"]
    values = dict(method=titles.get(lead, lead), c=lang.num(cam["deletion_auc"], 3), r=lang.num(rnd["deletion_auc"], 3),
                  g=lang.num(gau["deletion_auc"], 3), n=lang.num(int(cam["n"])))
    if lead != "cam":
        parts = [lang._("Removing pixels in the order of the %(method)s map lowers the model's confidence faster "
                        "than a random order: deletion AUC %(c)s against %(r)s (lower is better) on %(n)s photos; "
                        "against a centred blob it scores %(g)s.", **values)
                 if cam["deletion_auc"] < rnd["deletion_auc"] else
                 lang._("Removing pixels in the order of the %(method)s map does not lower the model's confidence "
                        "faster than a random order: deletion AUC %(c)s against %(r)s (lower is better) on %(n)s "
                        "photos.", **values)]
    else:
        parts = [lang._("Removing pixels in the order of the CAM lowers the model's confidence faster than a random "
                    "order: deletion AUC %(c)s against %(r)s (lower is better) on %(n)s photos; against a centred "
                    "blob, which knows that pets sit in the middle, it scores %(g)s.",
                    c=lang.num(cam["deletion_auc"], 3), r=lang.num(rnd["deletion_auc"], 3),
                    g=lang.num(gau["deletion_auc"], 3), n=lang.num(int(cam["n"])))
             if cam["deletion_auc"] < rnd["deletion_auc"] else
             lang._("Removing pixels in the order of the CAM does not lower the model's confidence faster than a "
                    "random order: deletion AUC %(c)s against %(r)s (lower is better) on %(n)s photos.",
                    c=lang.num(cam["deletion_auc"], 3), r=lang.num(rnd["deletion_auc"], 3), n=lang.num(int(cam["n"])))]
    name = titles.get(verdict.best, verdict.best)
    if verdict.tied:
        parts.append(lang._("By insertion minus deletion, %(best)s explains this model best, but it has no clear "
                            "lead over %(tied)s on these %(n)s photos (the leaderboard's verdicts say which are "
                            "equivalent and which need more photos).", best=name,
                            tied=", ".join(titles.get(t, t) for t in verdict.tied), n=lang.num(verdict.n)))
    else:
        parts.append(lang._("By insertion minus deletion, %(best)s explains this model best, clearly ahead of every "
                            "other method on these %(n)s photos.", best=name, n=lang.num(verdict.n)))
    parts.append(baselines_sentence(verdict, lang))
    return Finding(" ".join(parts), [("methods.html", lang._("the leaderboard"))], None)


def baselines_sentence(verdict, lang: Lang) -> str:
    """What the best method's verdicts against the two baselines say, in one or two sentences (methods.html and
    the report's finding)."""
    said = dict(verdict.against)
    rnd, gau = said.get("random"), said.get("gaussian")
    if verdict.beats_baselines:
        return lang._("It beats both baselines clearly.")
    if rnd != "better":
        return lang._("It is not clearly better than a random map on this many photos.")
    if gau == "equivalent":
        return lang._("It is clearly better than a random map, and no better than a centred Gaussian (a blob in the "
                      "middle of the photo): the two are equivalent within ±%(margin)s.", margin=lang.num(MARGIN, 2))
    if gau == "worse":
        return lang._("It is clearly better than a random map, but a centred Gaussian (a blob in the middle of the "
                      "photo) does better.")
    return lang._("It is clearly better than a random map. Against a centred Gaussian (a blob in the middle of the "
                  "photo), this many photos cannot tell.")


def sanity(table: pd.DataFrame, titles: dict[str, str], lang: Lang) -> Finding | None:
    """Adebayo et al.'s check: does each method's map change when the model is randomised?"""
    if table.empty:
        return None
    head = table[table["randomised"] == "head"].set_index("method")
    if head.empty:
        return None
    unchanged = [titles.get(m, m) for m, r in head.iterrows() if abs(r["median"]) >= 0.5]
    changed = [titles.get(m, m) for m, r in head.iterrows() if abs(r["median"]) < 0.5]
    parts = []
    if changed:
        parts.append(lang._("Randomising the classifier head changes the maps of %(methods)s (median rank correlation "
                            "with the original map below 0.5), as an explanation of a decision must.",
                            methods=", ".join(changed)))
    if unchanged:
        parts.append(lang._("The maps of %(methods)s barely change: they show what the features respond to, not why "
                            "the model decided.", methods=", ".join(unchanged)))
    return Finding(" ".join(parts), [("methods.html#sanity", lang._("the sanity check"))], None)


def closing(results: pd.DataFrame, labeled: list[str], unrelated: str | None, lang: Lang,
            classes=DEFAULT_CLASSES, method: str = "") -> Finding:
    d = analysis.labeled_ok(results[results["set"].isin(labeled)], classes)
    values = dict(n=lang.num(len(d)), acc=lang.pct(analysis.accuracy(d, classes=classes), 1),
                  area=lang.pct(_median(d["box_area"]), 0))
    parts = [lang._("Strength: on %(n)s labeled photos the model is right %(acc)s of the time, and its maps point "
                    "at the animal rather than at the whole frame (median %(method)s box %(area)s of the photo).",
                    method=method, **values) if method else
             lang._("Strength: on %(n)s labeled photos the model is right %(acc)s of the time, and its maps point "
                    "at the animal rather than at the whole frame (median CAM box %(area)s of the photo).", **values)]
    if unrelated is not None:
        u = results[(results["set"] == unrelated) & (results["status"] == "ok")]
        sure = int((analysis.confidence(u, classes) >= 0.9).sum()) if len(u) else 0
        if tuple(classes) == DEFAULT_CLASSES and u["pet_p"].notna().any():
            parts.append(lang._("Weakness: a two-class head answers cat or dog for anything; it was at least 90%% sure "
                                "for %(k)s of %(n)s photos that show neither. The backbone's ImageNet head is the "
                                "better judge of whether a photo shows a pet at all.", k=lang.num(sure),
                                n=lang.num(len(u))))
        else:
            parts.append(lang._("Weakness: the head must answer one of its %(c)s classes for anything; it was at least "
                                "90%% sure for %(k)s of %(n)s photos that show none of them.",
                                c=lang.num(len(classes)), k=lang.num(sure), n=lang.num(len(u))))
    return Finding(" ".join(parts), [("errors.html", lang._("error analysis"))], None)


# ---- the whole story ------------------------------------------------------------------------------------------


def story(report, lang: Lang) -> list[Section]:
    """The sections of report.html and of the post, in the original post's order."""
    results, run, s = report.results, report.run, report.settings
    classes = report.classes
    eval_keys = [x.key for x in report.eval_sets]
    labeled = [x.key for x in report.labeled_sets]
    test = s.set_for("test") if s.set_for("test") in eval_keys else (labeled[0] if labeled else "")
    own = s.set_for("personal") if s.set_for("personal") in labeled else None
    unrelated = report.unrelated.key if report.unrelated is not None else None
    titles = {n: i.title for n, i in run.methods_info.items()}
    method = run.last_title if run.no_cam_reason else ""  # the map drawn where a model without CAM has none
    keep = [f for f in (
        own_photo_mistakes(results, own, lang, classes, method) if own else None,
        unrelated_photos(results, unrelated, report.neither_threshold, s.neither_keep, test, lang, classes)
        if unrelated else None) if f is not None]
    showed = [f for f in (faithfulness(report.board, report.verdict, report.n_taps - 1, titles, lang,
                                       run.last_method),
                          sanity(report.sanity_table, titles, lang),
                          closing(results, labeled, unrelated, lang, classes, method)) if f is not None]
    truth = [f for f in (looks_at_head(report.localisation, tap_labels(run, lang), lang),
                         errs_when_head_unclear(report.head_test, lang)) if f is not None]
    default = tuple(classes) == DEFAULT_CLASSES
    why = lang._("Class Activation Maps (Zhou et al., CVPR 2016) show where a convolutional network looks when it "
                 "classifies a photo. This report repeats a blog experiment: train a cat-versus-dog classifier on "
                 "an ImageNet network, then look at its maps on test photos, on one's own pet photos, on photos "
                 "that show neither, and at each of the network's four stages.") if default else lang._(
        "Class Activation Maps (Zhou et al., CVPR 2016) show where a convolutional network looks when it classifies "
        "a photo. This report fits a classifier of %(k)s classes on an ImageNet network and looks at its maps on "
        "the test photos, at its mistakes and at each of the network's stages, as a blog experiment did for cats "
        "and dogs.", k=lang.num(len(classes)))
    data = lang._("The photos come from Kaggle's Dogs vs. Cats, in the cats_and_dogs_filtered subset. The network "
                  "is %(backbone)s with its ImageNet weights.", backbone=run.backbone) if default else lang._(
        "The photos are the folders of the training set, one per class: %(names)s. The network is %(backbone)s "
        "with its ImageNet weights.", names=", ".join(classes[:8]) + (" …" if len(classes) > 8 else ""),
        backbone=run.backbone)
    return [
        Section("why", lang._("Why"), [why], [], formula=True),
        Section("model", lang._("The data and the model"), [data],
                [data_and_model(results, s.train_set, test, run, lang)] if test else [], ["samples.png"]),
        Section("cam", lang._("CAM on the photos"), [
            lang._("Each photo below carries the map of the class the model chose; wrong predictions are framed in "
                   "red. The CAM box is the largest region where the map is at least %(thr)s of its range.",
                   thr=lang.pct(s.box_threshold, 0)) if not method else
            lang._("Each photo below carries the %(method)s map of the class the model chose; wrong predictions are "
                   "framed in red. The %(method)s box is the largest region where the map is at least %(thr)s of its "
                   "range.", method=method, thr=lang.pct(s.box_threshold, 0)),
            *([no_cam_sentence(run, lang)] if method else []),
        ], [attention(results, labeled, lang, classes, method)] if labeled else [], ["cam_test.png"]),
        Section("stages", lang._("The model's view: stage by stage"), [
            lang._("Earlier stages have no class weights of their own, so a linear probe (the head's recipe) is "
                   "fitted on each stage's pooled features; its weights give that stage's CAM.") if not method else
            lang._("Earlier stages have no class weights of their own, so a linear probe is fitted on each stage's "
                   "pooled features; its weights give that stage's CAM. The last stage shows %(method)s, as this "
                   "model has no CAM there.", method=method),
        ], [stage_story(report, results, test, lang)] if test else [], ["layers.png"]),
        *([Section("head", lang._("Does it look at the head?"), [
            lang._("Some photos come with ground truth: a box around the pet's head and an outline of the pet. The "
                   "pointing game asks whether the map's highest point falls inside them."),
        ], truth, [])] if truth else []),
        Section("data", lang._("The data's view: own photos and unrelated ones"), [
            lang._("A model trained on one collection of photos meets others: photos of one's own pets, and photos "
                   "that show no pet at all."),
        ], keep, [f for f in ("cam_personal.png", "cam_unrelated.png") if f in {x["file"] for x in report.figures}]),
        Section("showed", lang._("What CAM showed"), [], showed, []),
    ]
