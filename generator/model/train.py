"""Fit the class head and the per-tap probes on pooled features of the frozen backbone (recipe probe), or
fine-tune the network first (recipes finetune and lp-ft: the training itself is in generator/model/finetune.py).

Recipe probe: the ImageNet backbone stays frozen; each tap's feature map is globally average-pooled and a
multinomial logistic regression (L2-penalised, full-batch L-BFGS, float64, deterministic) is fitted on it.
The last tap's regression is the classifier head; the others are the probes that give earlier stages a CAM.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from generator.config import Settings
from generator.errors import UserError
from generator.files import file_sha256
from generator.model.backbones import Backbone
from generator.model.checkpoint import (
    TUNED,
    TrainedModel,
    checkpoint_path,
    expected_meta,
    load_matching,
    load_tuned,
    save_checkpoint,
    state_sha256,
)
from generator.model.features import FeatureCache, TrainingFeatures, extract
from generator.model.heads import LinearHead
from generator.model.runtime import Runtime


def fit_logistic(x: np.ndarray, y: np.ndarray, n_classes: int, weight_decay: float) -> LinearHead:
    """Multinomial logistic regression, full batch L-BFGS in float64: deterministic for given data.

    Minimises mean cross-entropy + weight_decay/2 * ||W||^2 (the bias is not penalised).
    """
    X = torch.as_tensor(x, dtype=torch.float64)
    Y = torch.as_tensor(y, dtype=torch.long)
    W = torch.zeros(n_classes, X.shape[1], dtype=torch.float64, requires_grad=True)
    b = torch.zeros(n_classes, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=500, tolerance_grad=1e-9, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = torch.nn.functional.cross_entropy(X @ W.T + b, Y) + 0.5 * weight_decay * (W * W).sum()
        loss.backward()
        return loss

    opt.step(closure)
    return LinearHead(weight=W.detach().float(), bias=b.detach().float())


def predict(head: LinearHead, x: np.ndarray) -> np.ndarray:
    return (torch.as_tensor(x, dtype=torch.float32) @ head.weight.T + head.bias).argmax(1).numpy()


def cross_validated(x: np.ndarray, y: np.ndarray, n_classes: int, weight_decay: float, folds: int, seed: int,
                    groups: np.ndarray | None = None) -> tuple[float, np.ndarray]:
    """k-fold accuracy, and each row's class probabilities from the head fitted without its fold (N, K); `groups`
    keeps the mirrored copy of a photo in the same fold as the photo."""
    groups = np.arange(len(y)) if groups is None else groups
    order = np.random.default_rng(seed).permutation(np.unique(groups))
    fold_of = {g: i % folds for i, g in enumerate(order)}
    fold = np.array([fold_of[g] for g in groups])
    correct = total = 0
    probs = np.full((len(y), n_classes), np.nan)
    for k in range(folds):
        tr, te = fold != k, fold == k
        if not te.any():
            continue
        head = fit_logistic(x[tr], y[tr], n_classes, weight_decay)
        correct += int((predict(head, x[te]) == y[te]).sum())
        total += int(te.sum())
        logits = torch.as_tensor(x[te], dtype=torch.float32) @ head.weight.T + head.bias
        probs[te] = torch.softmax(logits.double(), 1).numpy()
    return correct / max(total, 1), probs


def cross_validated_accuracy(x: np.ndarray, y: np.ndarray, n_classes: int, weight_decay: float,
                             folds: int, seed: int, groups: np.ndarray | None = None) -> float:
    """k-fold accuracy; `groups` keeps the mirrored copy of a photo in the same fold as the photo."""
    return cross_validated(x, y, n_classes, weight_decay, folds, seed, groups)[0]


def data_key(names: list[str], paths: list[str]) -> str:
    """Identity of the training data: every file's name and content, in order."""
    h = hashlib.sha256()
    for name, path in zip(names, paths, strict=True):
        h.update(f"{name}\0{file_sha256(path)}\n".encode("utf-8", "surrogateescape"))
    return h.hexdigest()


def _check_every_class(y: np.ndarray, settings: Settings, classes: tuple[str, ...]) -> None:
    missing = [c for k, c in enumerate(classes) if k not in set(y.tolist())]
    if missing:
        raise UserError(f"the training set needs readable photos of every class, and class {missing[0]!r} has none "
                        f"({len(y)} readable training photos in all): add photos to "
                        f"{settings.data_dir}/{settings.train_set}/<class>/ for each of {', '.join(classes)}.")


def fit_heads(tf: TrainingFeatures, labels: np.ndarray, settings: Settings, classes: tuple[str, ...],
              log=print, taps: int | None = None) -> tuple[list[LinearHead], dict]:
    """One regression per tap on the readable photos (and their mirror images), plus the scores: each tap's
    training accuracy and the head's 5-fold accuracy (the probes are scored on every labeled set instead), and
    "cv_msp": each readable photo's highest class probability from the head fitted without its fold, the honest
    training score a "neither" threshold on the head's own confidence is chosen on.
    taps: fit only the first `taps` taps, the probes, and no cross-validation (a fine-tuned network brings its
    own head)."""
    y = labels[tf.ok]
    _check_every_class(y, settings, classes)
    K = len(classes)
    mirror = tf.mirror
    x_all = [np.concatenate([f, m]) for f, m in zip(tf.feats, mirror)] if mirror else tf.feats
    y_all = np.concatenate([y, y]) if mirror else y
    groups = np.concatenate([np.arange(len(y))] * (2 if mirror else 1))
    if taps is not None:
        log(f"fitting {taps} probes on {len(y)} photos")
    else:
        log(f"fitting the head and {len(x_all) - 1} probes on {len(y)} photos")
    heads, scores = [], {}
    for t, x in enumerate(x_all[:taps]):
        heads.append(fit_logistic(x, y_all, K, settings.weight_decay))
        scores[f"tap{t}_train_accuracy"] = float((predict(heads[-1], tf.feats[t]) == y).mean())
    if taps is not None:
        return heads, scores
    last = len(x_all) - 1
    scores[f"tap{last}_cv5_accuracy"], oof = cross_validated(
        x_all[last], y_all, K, settings.weight_decay, 5, settings.seed, groups)
    scores["cv_msp"] = [float(v) for v in np.nanmax(oof[:len(y)], axis=1)]  # the photos, not their mirrors
    return heads, scores


@dataclass
class TrainingResult:
    model: TrainedModel
    statuses: dict[str, str]  # training path -> "ok" or "skipped: <reason>" (found while decoding)
    probs: dict[str, np.ndarray]  # readable training path -> class probabilities of the head
    pet_p: dict[str, float]  # readable training path -> summed ImageNet cat+dog probability
    energy: dict[str, float]  # readable training path -> ImageNet energy score
    cv_msp: dict[str, float]  # readable training path -> highest class probability, cross-validated (may be empty)


def train_or_load(backbone: Backbone, train_rows, settings: Settings, pool, runtime: Runtime,
                  classes: tuple[str, ...], log=print, progress: bool = True) -> TrainingResult:
    """Reuse weights/catdog-<backbone>.pt (for other classes than cat and dog, k<K>-<hash>-<backbone>.pt) when it
    matches this data, these classes and this recipe; otherwise fit and save it.

    `train_rows`: the scan rows of labeled, readable training files (columns file, path, label), labeled with
    `classes` (the scan's, in the order of the head's outputs). With setting recipe finetune or lp-ft the network
    itself is trained: generator/model/finetune.py.
    """
    if backbone.head is not None or not backbone.imagenet:  # a user's own classifier (setting model)
        return own_or_load(backbone, train_rows, settings, pool, runtime, classes, log, progress)
    if settings.recipe != "probe":
        return tune_or_load(backbone, train_rows, settings, pool, runtime, classes, log, progress)
    names, paths = list(train_rows["file"]), list(train_rows["path"])
    labels = np.array([classes.index(v) for v in train_rows["label"]], dtype=np.int64)
    wanted = expected_meta(backbone, settings, data_key(names, paths), classes)
    path = checkpoint_path(settings.weights_dir, backbone.name, classes)
    found = load_matching(path, backbone, wanted, log)
    tf = _features(backbone, paths, settings, wanted["data_key"], pool, runtime, log, progress)
    if found is None:
        heads, scores = fit_heads(tf, labels, settings, classes, log)
        meta = dict(wanted, scores=scores, n_train=int(tf.ok.sum()))
        save_checkpoint(path, heads, meta)
        log(f"saved {path} (5-fold accuracy of the head: {scores[f'tap{len(heads) - 1}_cv5_accuracy']:.4f})")
    else:
        heads, meta = found
    return _result(backbone, heads, meta, path, paths, tf)


def _result(backbone: Backbone, heads: list[LinearHead], meta: dict, path, paths: list[str],
            tf: TrainingFeatures) -> TrainingResult:
    if heads[-1] is None:  # a user's model without a linear head: its own output
        probs = torch.softmax(torch.as_tensor(tf.logits).double(), 1).float().numpy()
    else:
        probs = torch.softmax(torch.as_tensor(tf.feats[-1]) @ heads[-1].weight.T + heads[-1].bias, 1).numpy()
    ok_paths = [p for p, good in zip(paths, tf.ok) if good]
    cv_msp = meta.get("scores", {}).get("cv_msp") or []
    return TrainingResult(TrainedModel(backbone, heads, meta, path), dict(zip(paths, tf.statuses)),
                          dict(zip(ok_paths, probs)), dict(zip(ok_paths, tf.pet_p.tolist())),
                          dict(zip(ok_paths, tf.energy.tolist())),
                          dict(zip(ok_paths, cv_msp)) if len(cv_msp) == len(ok_paths) else {})


def backbone_for(settings: Settings, classes: tuple[str, ...], log=print) -> Backbone:
    """The network of this build: the user's own classifier (setting model, generator/model/external.py) or the
    registered backbone setting backbone names, with its ImageNet weights."""
    if settings.model:
        from generator.model import external

        return external.build_backbone(settings, classes, log)
    from generator.model import backbones

    return backbones.build(settings.backbone, settings.weights_dir)


def _features(backbone: Backbone, paths: list[str], settings: Settings, dkey: str, pool, runtime: Runtime, log,
              progress: bool, tuned_sha256: str | None = None) -> TrainingFeatures:
    """The training features from the cache, or extracted and cached (a tuned network's are keyed by its weights)."""
    cache = FeatureCache(settings.cache_dir, backbone, settings, dkey, tuned_sha256)
    tf = cache.load(len(paths))
    if tf is None:
        mirrors = ", and their mirror images" if settings.hflip else ""
        which = "the tuned network's " if tuned_sha256 else ""
        log(f"extracting {which}training features ({len(paths)} photos{mirrors})")
        tf = extract(backbone, paths, settings, pool, runtime, progress)
        cache.save(tf)
    return tf


def tune_or_load(backbone: Backbone, train_rows, settings: Settings, pool, runtime: Runtime,
                 classes: tuple[str, ...], log=print, progress: bool = True) -> TrainingResult:
    """Recipe finetune or lp-ft: reuse weights/catdog-<backbone>-<recipe>.pt when it matches this data and recipe
    (a finished fine-tune is never redone); otherwise fine-tune the network (generator/model/finetune.py), refit
    the earlier taps' probes on the tuned network's features, and save the tuned weights with the heads."""
    from generator.model import finetune

    names, paths = list(train_rows["file"]), list(train_rows["path"])
    labels = np.array([classes.index(v) for v in train_rows["label"]], dtype=np.int64)
    dkey = data_key(names, paths)
    wanted = expected_meta(backbone, settings, dkey, classes)
    path = checkpoint_path(settings.weights_dir, backbone.name, classes, recipe=settings.recipe)
    found = load_matching(path, backbone, wanted, log)
    if found is not None:
        heads, meta = found
        load_tuned(path, backbone, meta)
        backbone.model.eval()
    else:
        channels = backbone.channels
        head_init = None
        if settings.recipe == "lp-ft":  # the linear probe first: today's head on the frozen features
            frozen = _features(backbone, paths, settings, dkey, pool, runtime, log, progress)
            y0 = labels[frozen.ok]
            _check_every_class(y0, settings, classes)
            x0 = np.concatenate([frozen.feats[-1], frozen.mirror[-1]]) if frozen.mirror else frozen.feats[-1]
            y0 = np.concatenate([y0, y0]) if frozen.mirror else y0
            head_init = fit_logistic(x0, y0, len(classes), settings.weight_decay)
        images, statuses = finetune.decode_all(paths, settings.input_size, settings.max_pixels, pool)
        y = labels[np.array([st == "ok" for st in statuses], dtype=bool)]
        _check_every_class(y, settings, classes)
        key = finetune.state_key(wanted)
        log(f"fine-tuning {backbone.name} ({settings.recipe}) on {len(y)} photos, at most "
            f"{settings.finetune_epochs} epochs")
        tuned = finetune.finetune(backbone.model, backbone.taps[-1], channels[-1], images, y,
                                  finetune.Plan.of(wanted["recipe"]), runtime, backbone.mean, backbone.std,
                                  finetune.state_path(settings.cache_dir, backbone.name, key), key, head_init,
                                  len(classes), log, progress)
        del images
        backbone.model.eval()
        sha = state_sha256(tuned.state)
        tf = _features(backbone, paths, settings, dkey, pool, runtime, log, progress, sha)
        probes, scores = fit_heads(tf, labels, settings, classes, log, taps=len(backbone.taps) - 1)
        heads = [*probes, tuned.head]
        last = len(heads) - 1
        scores[f"tap{last}_train_accuracy"] = float((predict(tuned.head, tf.feats[-1]) == labels[tf.ok]).mean())
        best = tuned.curve[tuned.best_epoch - 1]
        scores[f"tap{last}_heldout_accuracy"] = best["heldout_accuracy"]
        meta = dict(wanted, scores=scores, n_train=int(tf.ok.sum()), **{TUNED: sha}, training_curve=tuned.curve,
                    training={"best_epoch": tuned.best_epoch, "n_train": tuned.n_train, "n_heldout": tuned.n_heldout,
                              "epochs_run": len(tuned.curve), "stopped_early": tuned.stopped_early,
                              "seconds_this_run": tuned.seconds, "images_per_s": tuned.images_per_s,
                              "resumed_after_epoch": tuned.resumed_from})
        save_checkpoint(path, heads, meta, tuned=tuned.state)
        finetune.state_path(settings.cache_dir, backbone.name, key).unlink(missing_ok=True)
        log(f"saved {path} (best epoch {tuned.best_epoch}: held-out accuracy {best['heldout_accuracy']:.4f} on "
            f"{tuned.n_heldout} photos)")
    tf = _features(backbone, paths, settings, dkey, pool, runtime, log, progress, meta[TUNED])
    return _result(backbone, heads, meta, path, paths, tf)


def own_or_load(backbone: Backbone, train_rows, settings: Settings, pool, runtime, classes: tuple[str, ...],
                log=print, progress: bool = True):
    """The user's model as a TrainedModel: its own head at the last tap (never trained here) and the probes of
    the earlier taps fitted on the training photos (reused from weights/ when they match).

    A model whose head is not global average pooling + one linear layer (backbone.head None) has no CAM weights
    at its last tap, so its last head is None there: its predictions are its own output, and the pages show the
    gradient methods at the last stage, backpropagated through its own head. The earlier taps still get their
    probes, fitted on pooled features exactly as for any other model, so their CAM exists and means what it
    means everywhere else (the probe's answer, not the model's); only the last stage, the model's own decision,
    has no CAM. The checkpoint then holds the probes only."""
    from dataclasses import replace

    no_cam = backbone.head is None
    names, paths = list(train_rows["file"]), list(train_rows["path"])
    labels = np.array([classes.index(v) for v in train_rows["label"]], dtype=np.int64)
    dkey = data_key(names, paths)
    wanted = expected_meta(backbone, replace(settings, recipe="probe"), dkey, classes)
    wanted["recipe"] = {"name": "own", "method": "the user's own classifier and its own head; a linear probe (L2 "
                        "logistic regression on the pooled features) at each earlier tap",
                        "model": settings.model, "weights_file": backbone.weights_file,
                        "weight_decay": settings.weight_decay, "seed": settings.seed, "hflip": settings.hflip}
    if no_cam:
        wanted["recipe"]["no_cam"] = backbone.no_cam_reason
    path = checkpoint_path(settings.weights_dir, backbone.name, classes, recipe="own")
    found = load_matching(path, backbone, wanted, log)
    tf = _features(backbone, paths, settings, dkey, pool, runtime, log, progress)
    if found is None:
        probes, scores = fit_heads(tf, labels, settings, classes, log, taps=len(backbone.taps) - 1)
        last = len(probes)
        y = labels[tf.ok]
        if no_cam:
            logits = torch.as_tensor(tf.logits)
        else:
            logits = torch.as_tensor(tf.feats[-1]) @ backbone.head.weight.T + backbone.head.bias
        scores[f"tap{last}_train_accuracy"] = float((logits.argmax(1).numpy() == y).mean())
        meta = dict(wanted, scores=scores, n_train=int(tf.ok.sum()))
        save_checkpoint(path, probes if no_cam else [*probes, backbone.head], meta)
        log(f"saved {path} (the model's own head; training accuracy {scores[f'tap{last}_train_accuracy']:.4f})")
        heads = [*probes, backbone.head]
    else:
        heads, meta = found
        if no_cam:
            heads = [*heads, None]
    return _result(backbone, heads, meta, path, paths, tf)


def other_model(backbone_for, train_rows, settings: Settings, pool, runtime: Runtime, classes: tuple[str, ...],
                log=print, progress: bool = True) -> TrainedModel:
    """The model that setting compare names: a recipe (trained, or reused from its checkpoint, exactly as the site's
    own model would be) or a checkpoint file written by this generator. backbone_for(name) builds a backbone with
    its pretrained weights. A checkpoint made for another input size is refused (the maps would not line up)."""
    from dataclasses import replace

    from generator.config import RECIPES

    if settings.compare in RECIPES:
        other = replace(settings, recipe=settings.compare, compare="")
        return train_or_load(backbone_for(settings.backbone), train_rows, other, pool, runtime, classes, log,
                             progress).model
    from generator.model.checkpoint import check_heads, read_checkpoint

    path = Path(settings.compare)
    heads, meta = read_checkpoint(path)
    if meta.get("input_size") != settings.input_size:
        raise UserError(f"setting compare: {path} was made for input size {meta.get('input_size')}, this site uses "
                        f"{settings.input_size}; build with --input-size {meta.get('input_size')} or compare another "
                        "checkpoint.")
    backbone = backbone_for(str(meta["backbone"]))
    check_heads(path, heads, backbone, classes, meta)
    load_tuned(path, backbone, meta)
    backbone.model.eval()
    return TrainedModel(backbone, heads, meta, path)
