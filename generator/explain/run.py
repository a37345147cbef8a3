"""Explain the evaluation sets: one decode, one forward and at most one backward pass per photo.

Each photo's record (predictions, probes, ImageNet scores, every method's maps) is cached by the file's content
hash and the model's fingerprint, and its two pictures by the content hash and the picture settings, so a rerun
only redoes what changed; photos with the same bytes under other names are computed once.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
from tqdm import tqdm

from generator.config import Settings
from generator.data.workers import HeapTrimmer, decode_for_report, decoded_in_chunks, picture_files
from generator.explain import methods as registry
from generator.explain.explainer import BatchResult, Explainer
from generator.explain.overlay import cam_box
from generator.explain.record import PhotoRecord, as_stored, record_path
from generator.files import file_sha256, load_npz, save_npz
from generator.frames import pd
from generator.model.backbones import imagenet_categories
from generator.model.checkpoint import TrainedModel
from generator.model.heads import LinearHead
from generator.model.ood import energy, pet_probability, top_classes
from generator.model.runtime import Runtime
from generator.pause import pause_at

# Where each stage looks is compared across stages by the median box of each, measured on a 112 x 112 grid: a
# quarter of the pixels of the network input's (the box the pages draw), and a quarter of the time, for an area
# that differs from the full grid's by the width of a grid pixel at most.
STAGE_GRID = 112


def scored_methods(chosen: tuple[str, ...]) -> tuple[str, ...]:
    """What the leaderboard scores (and so what its sample photos need): every method that shares the passes,
    plus the chosen costly ones. Every other photo needs only the chosen methods, the ones its page shows
    (measured: the five extra cheap methods cost 20% more explaining time, 47 against 57 photos/s)."""
    return tuple(n for n in registry.names() if not registry.get(n).opt_in or n in chosen)


class RecordCache:
    """Per-photo records under cache_dir/records/<version>-<model>/ab/<sha256>.npz."""

    def __init__(self, cache_dir: Path, model_fp: str, n_taps: int) -> None:
        self.cache_dir, self.model_fp = cache_dir, model_fp
        self.n_taps = n_taps

    def path(self, sha: str) -> Path:
        return record_path(self.cache_dir, self.model_fp, sha)

    def load(self, sha: str, need: tuple[str, ...] = ()) -> PhotoRecord | None:
        """The record if it is there, sound, and holds the maps of every method in `need`."""
        z = load_npz(self.path(sha))
        record = PhotoRecord.from_npz(z, self.n_taps) if z is not None else None
        if record is None or not set(need) <= set(record.methods()):
            return None
        return record

    def save(self, sha: str, record: PhotoRecord) -> PhotoRecord:
        """Write the record and return what the file now holds. A record already there wins: its numbers and maps
        are kept and only the maps of methods it lacks are added from `record`. So a build with fewer methods never
        takes maps away from one with more, and a build that needs more maps of a photo (another leaderboard
        sample, say) never changes the numbers an earlier build reported: it computes the photo again in another
        batch, and float32 results depend on the batch's shape (they moved in the 7th digit)."""
        old = self.load(sha)
        if old is not None:
            for name, per_tap in record.maps.items():
                old.maps.setdefault(name, per_tap)
            record = old
        save_npz(self.path(sha), record.to_npz())
        return record


class PictureCache:
    """Each photo's display copy and thumbnail under cache_dir/pictures/<settings>/ab/<sha256>/."""

    def __init__(self, cache_dir: Path, settings: Settings) -> None:
        key = {"v": 1, "display": settings.display_size, "thumb": settings.thumb_size,
               "quality": settings.photo_quality}
        digest = hashlib.sha256(json.dumps(key, sort_keys=True).encode()).hexdigest()[:12]
        self.root = Path(cache_dir) / "pictures" / digest

    def dir(self, sha: str) -> Path:
        return self.root / sha[:2] / sha


@dataclass(frozen=True)
class Caches:
    records: RecordCache
    pictures: PictureCache


def photo_row(record: PhotoRecord, settings: Settings, categories: tuple[str, ...],
              classes: tuple[str, ...]) -> dict[str, Any]:
    """The scalar columns of the results table for one photo's record; `classes` names the head's outputs."""
    probs = record.probs
    pred = record.pred
    row: dict[str, Any] = {"prediction": classes[pred], "width": record.width, "height": record.height}
    for k, name in enumerate(classes):
        row[f"p_{name}"] = float(probs[k])
    logits = record.logits.astype(np.float64)
    row["logit_margin"] = float(logits[pred] - np.delete(logits, pred).max())
    pl = record.probe_logits.astype(np.float64)
    pp = np.exp(pl - pl.max(1, keepdims=True))
    pp /= pp.sum(1, keepdims=True)
    for t in range(len(pl)):
        row[f"probe{t}_prediction"] = classes[int(pp[t].argmax())]
        row[f"probe{t}_p_{classes[0]}"] = float(pp[t, 0])
    other = record.runner_up
    for t in range(len(pl)):
        if record.has_cam(t):  # for a scale shared by the set; none without CAM (no signed map there)
            cam = record.cam(t).astype(np.float64)
            row[f"signed{t}_absmax"] = float(np.abs(cam[pred] - cam[other]).max())
        else:
            row[f"signed{t}_absmax"] = float("nan")
        # where each stage looks: the box of its CAM, or of NO_CAM_METHOD's map where the model has no CAM
        stage = cam_box(record.lead_map(t).astype(np.float64), settings.box_threshold, STAGE_GRID)
        row[f"box{t}_area"], row[f"box{t}_mass"] = stage.area, stage.mass
    box = cam_box(record.lead_map(-1).astype(np.float64), settings.box_threshold,
                  settings.input_size)  # the box the pages draw
    row.update(box_x0=box.x0, box_y0=box.y0, box_x1=box.x1, box_y1=box.y1, box_area=box.area, box_mass=box.mass)
    for i, (c, p) in enumerate(zip(record.imagenet_top, record.imagenet_top_p), start=1):
        row[f"imagenet{i}"] = categories[int(c)]
        row[f"imagenet{i}_p"] = float(p)
    row.update(pet_p=record.pet_p, energy=record.energy,
               imagenet_msp=float(record.imagenet_top_p[0]) if len(record.imagenet_top_p) else float("nan"))
    return row


def explain_sets(model: TrainedModel, table: pd.DataFrame, settings: Settings, pool, runtime: Runtime,
                 progress: bool = True, scored: set[tuple[str, str]] = frozenset(), engine=None) -> pd.DataFrame:
    """Rows of `table` (scan rows of the evaluation sets) with the columns of `photo_row`, plus sha256,
    pictures (folder of the photo's two pictures), photo (display file name), display_w and display_h.
    A photo that turns out unreadable gets a skip status instead. Photos whose (set, file) is in `scored` (the
    leaderboard's sample) get the maps of every scored method, the others those of the chosen methods.
    engine: None computes here (pool: the decoding processes); a ray_engine.RayEngine computes on Ray."""
    n_taps = len(model.backbone.taps)
    chosen = registry.resolve(settings.methods, cam_head=model.heads[-1] is not None)
    full = scored_methods(chosen)
    caches = Caches(RecordCache(settings.cache_dir, model.fingerprint, n_taps),
                    PictureCache(settings.cache_dir, settings))
    categories = imagenet_categories()
    rows: list[dict[str, Any]] = table.to_dict("records")
    todo: dict[tuple[str, ...], list[int]] = {full: [], chosen: []}
    first_of: dict[str, int] = {}  # content hash -> the row that computes it (duplicates wait for it)
    duplicates: list[tuple[int, int]] = []
    for idx, row in enumerate(rows):
        row.update(sha256="", pictures="")
        if row["status"] != "ok":
            continue
        try:
            row["sha256"] = file_sha256(row["path"])
        except OSError as exc:
            row["status"] = f"skipped: cannot be read ({exc.strerror or exc})"
            continue
        sha = row["sha256"]
        row["pictures"] = str(caches.pictures.dir(sha))
        if sha in first_of:
            duplicates.append((idx, first_of[sha]))
        else:
            first_of[sha] = idx
    # A photo of the sample needs every scored map, also when the same bytes came first under another name.
    wants_full = {rows[idx]["sha256"] for idx, row in enumerate(rows) if (row["set"], row["file"]) in scored}
    for sha, idx in first_of.items():
        row = rows[idx]
        need = full if sha in wants_full else chosen
        record = caches.records.load(sha, need)
        shown = picture_files(caches.pictures.dir(sha))
        if record is not None and shown is not None:
            _finish_row(row, record, shown, settings, categories, model.classes)
        else:
            todo[need].append(idx)
    if engine is not None:
        engine.compute(model, rows, todo, settings, runtime, caches, progress)
    else:
        for need, indices in todo.items():
            if indices:
                _compute(model, rows, indices, need, settings, pool, runtime, caches, categories, progress)
    own = {"set", "file", "path", "label"}
    for idx, first in duplicates:  # same bytes under another name: computed once, reported for both
        rows[idx].update({k: v for k, v in rows[first].items() if k not in own})
    return pd.DataFrame(rows)


def _finish_row(row: dict, record: PhotoRecord, shown: tuple[str, int, int], settings: Settings, categories,
                classes: tuple[str, ...]) -> None:
    row.update(photo_row(record, settings, categories, classes))
    row["photo"], row["display_w"], row["display_h"] = shown


def _decode_jobs(rows: list[dict], todo: list[int], settings: Settings) -> Iterator[dict]:
    for idx in todo:
        yield {"path": rows[idx]["path"], "asset_dir": rows[idx]["pictures"], "input_size": settings.input_size,
               "display_size": settings.display_size, "thumb_size": settings.thumb_size,
               "quality": settings.photo_quality, "max_pixels": settings.max_pixels}


def records_of(result: BatchResult, sizes: list[tuple[int, int]]) -> list[PhotoRecord]:
    """One PhotoRecord per photo of a batch result; sizes are the originals' (width, height)."""
    if result.imagenet:
        top_i, top_p = top_classes(result.imagenet_logits)
        pet = pet_probability(result.imagenet_logits)
    else:  # a user's own classifier: no ImageNet head to ask
        n = result.imagenet_logits.shape[0]
        top_i, top_p = torch.zeros(n, 0, dtype=torch.long), torch.zeros(n, 0)
        pet = torch.full((n,), float("nan"))
    en = energy(result.imagenet_logits)  # ImageNet's energy, or a user's classifier's own
    out = []
    for j, (w, h) in enumerate(sizes):
        # as the cache stores them from the start: a row computed now equals one computed from the cache
        maps = {name: [None if m is None else as_stored(m[j].float().cpu().numpy()) for m in per_tap]
                for name, per_tap in result.maps.items()}
        out.append(PhotoRecord(
            width=w, height=h,
            logits=result.logits[j].cpu().numpy(),
            probe_logits=torch.stack([p[j] for p in result.probe_logits]).cpu().numpy(),
            imagenet_top=top_i[j].cpu().numpy(), imagenet_top_p=top_p[j].cpu().numpy(),
            pet_p=float(pet[j]), energy=float(en[j]), maps=maps,
        ))
    return out


def make_explainer(model: TrainedModel, method_names: tuple[str, ...], runtime: Runtime,
                   heads: list[LinearHead | None] | None = None) -> Explainer:
    """An Explainer for this model on this runtime (heads default to the trained ones; the last is None for a
    model without a linear head)."""
    net = runtime.prepare(model.backbone.model)
    heads = [None if h is None else LinearHead(weight=h.weight.to(runtime.device), bias=h.bias.to(runtime.device))
             for h in (heads or model.heads)]
    return Explainer(net, model.backbone.taps, heads, [registry.get(n) for n in method_names],
                     autocast_dtype=runtime.dtype, channels_last=runtime.channels_last,
                     imagenet=model.backbone.imagenet)


def _compute(model, rows, todo, need, settings: Settings, pool, runtime, caches: Caches, categories, progress) -> None:
    explainer = make_explainer(model, need, runtime)
    batch: list[tuple[int, dict]] = []
    bar = tqdm(total=len(todo), desc="explain", unit="photo", disable=not progress, mininterval=2)
    trim = HeapTrimmer()

    def flush() -> None:
        trim()
        x = model.backbone.to_input(np.stack([d["input"] for _, d in batch]), runtime.channels_last, runtime.device)
        records = records_of(explainer(x), [(d["width"], d["height"]) for _, d in batch])
        for (i, _), computed in zip(batch, records):
            record = caches.records.save(rows[i]["sha256"], computed)  # the stored numbers, if it had some
            _finish_row(rows[i], record, picture_files(Path(rows[i]["pictures"])), settings, categories,
                        model.classes)
        bar.update(len(batch))
        batch.clear()
        pause_at("explaining")  # a test-only hook (CAM_PAUSE_AT), a no-op otherwise

    stream = decoded_in_chunks(pool, decode_for_report, _decode_jobs(rows, todo, settings))
    with explainer:  # hooks on every tap for the whole pass, removed on the way out
        for idx, decoded in zip(todo, stream):
            if decoded["status"] != "ok":
                rows[idx].update(status=decoded["status"], pictures="")
                bar.update(1)
                continue
            batch.append((idx, decoded))
            if len(batch) >= settings.batch_size:
                flush()
        if batch:
            flush()
    bar.close()
