"""Run the classifier and CAM over the evaluation sets: one decode and one forward pass per photo.

Per photo, results are cached under cache_dir by the file's content hash and the model's fingerprint, and its
pictures by the content hash and the picture settings, so a rerun only redoes what changed.
"""

from __future__ import annotations

import os
import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from tqdm import tqdm

from . import faithfulness
from .cam import Explainer, cam_box, recording, upsample
from .datasets import CLASSES, file_sha256
from .train import TrainedModel, to_input
from .workers import HeapTrimmer, bounded_imap, decode_for_report, render_assets

RENDER_VERSION = 2  # bump when the look of the pictures changes
EVAL_VERSION = 2  # bump when what is computed per photo changes


@dataclass(frozen=True)
class Runtime:
    device: str
    autocast: bool  # bf16 autocast
    channels_last: bool


def choose_runtime(settings) -> Runtime:
    device = settings.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    if device == "cuda":
        bf16 = settings.bf16 and torch.cuda.is_bf16_supported()
    else:
        bf16 = settings.bf16 and cpu_has_bf16()
    return Runtime(device=device, autocast=bf16, channels_last=settings.channels_last)


def cpu_has_bf16() -> bool:
    """Native bf16 (AVX512-BF16 or AMX); elsewhere autocast would emulate it and be slower than float32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags


def asset_key(settings, model_fp: str) -> str:
    return (f"r{RENDER_VERSION}-{model_fp}-{settings.display_size}-{settings.thumb_size}-{settings.strip_size}"
            f"-{int(settings.gradcam)}")


def energy(logits: torch.Tensor) -> torch.Tensor:
    """Energy score (Liu et al. 2020): -logsumexp over the ImageNet logits; lower = more in-distribution."""
    return -torch.logsumexp(logits, dim=1)


def _summaries(ex, settings, i: int) -> dict[str, Any]:
    """Scalars and small maps of photo i of a batch explanation, as stored in the cache."""
    probs = ex.logits[i].softmax(0)
    pred = int(probs.argmax())
    last_up = upsample(ex.cams[-1][i, pred : pred + 1], settings.input_size)[0].numpy()
    box = cam_box(last_up, settings.box_threshold)
    out: dict[str, Any] = {
        "logits": ex.logits[i].numpy(),
        "probe_logits": np.stack([p[i].numpy() for p in ex.probe_logits]),
        "box": np.array([box.x0, box.y0, box.x1, box.y1, box.area, box.mass], dtype=np.float32),
    }
    for t, c in enumerate(ex.cams):
        out[f"cam{t}"] = c[i].numpy().astype(np.float16)
    if ex.gradcams is not None:
        for t, g in enumerate(ex.gradcams):
            out[f"gradcam{t}"] = g[i].numpy().astype(np.float16)
    if ex.imagenet_logits is not None:
        il = ex.imagenet_logits[i]
        out["imagenet"] = np.array(
            [float(energy(il[None])[0]), float(il.softmax(0).max()), int(il.argmax())], dtype=np.float64
        )
    return out


def _row_from_cache(c: dict[str, np.ndarray], n_taps: int) -> dict[str, Any]:
    logits = torch.from_numpy(np.asarray(c["logits"], dtype=np.float32))
    probs = logits.softmax(0).numpy()
    pred = int(probs.argmax())
    row: dict[str, Any] = {"prediction": CLASSES[pred]}
    for k, name in enumerate(CLASSES):
        row[f"p_{name}"] = float(probs[k])
    row["logit_margin"] = float(logits[pred] - logits[1 - pred]) if len(CLASSES) == 2 else float("nan")
    pl = torch.from_numpy(np.asarray(c["probe_logits"], dtype=np.float32))
    pp = pl.softmax(1).numpy()
    for t in range(n_taps):
        row[f"probe{t}_prediction"] = CLASSES[int(pp[t].argmax())]
        row[f"probe{t}_p_{CLASSES[0]}"] = float(pp[t, 0])
    x0, y0, x1, y1, area, mass = (float(v) for v in c["box"])
    row.update(box_x0=x0, box_y0=y0, box_x1=x1, box_y1=y1, box_area=area, box_mass=mass)
    if "imagenet" in c:
        e, msp_in, cls = c["imagenet"]
        row.update(imagenet_energy=float(e), imagenet_msp=float(msp_in), imagenet_class=int(cls))
    row["width"], row["height"] = int(c["size"][0]), int(c["size"][1])
    return row


def faithfulness_sample(table: pd.DataFrame, settings) -> set[int]:
    """Positions (in `table`) of the photos scored for faithfulness: a seeded sample of each set's files."""
    chosen: set[int] = set()
    positions = np.arange(len(table))
    for s in table["set"].unique():
        idx = positions[(table["set"] == s).to_numpy() & (table["status"] == "ok").to_numpy()]
        n = len(idx) if settings.faithfulness_sample <= 0 else min(settings.faithfulness_sample, len(idx))
        rng = np.random.default_rng([settings.seed, zlib.crc32(s.encode("utf-8", "surrogateescape"))])
        chosen.update(int(i) for i in rng.choice(idx, size=n, replace=False))
    return chosen


def _faith_values(c: dict[str, np.ndarray]) -> dict[str, float]:
    names = [f"{s}_{m}" for m in faithfulness.METHODS for s in faithfulness.SCORES]
    return {name: float(v) for name, v in zip(names, c["scores"], strict=True)}


def _save_npz(path: Path, arrays: dict[str, np.ndarray]) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(f".{path.stem}.{os.getpid()}.tmp.npz")
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def _load_npz(path: Path) -> dict[str, np.ndarray] | None:
    try:
        with np.load(path, allow_pickle=False) as z:
            return {k: z[k] for k in z.files}
    except Exception:  # missing, truncated (zipfile.BadZipFile), bad CRC, not an npz: recomputed, never trusted
        return None


def _complete(c: dict[str, np.ndarray] | None, n_taps: int, gradcam: bool) -> dict[str, np.ndarray] | None:
    """The cache entry if it holds every array a row and its pictures need, else None (recompute)."""
    need = ["logits", "probe_logits", "box", "size", *(f"cam{t}" for t in range(n_taps))]
    need += [f"gradcam{t}" for t in range(n_taps)] if gradcam else []
    return c if c is not None and all(k in c for k in need) else None


def cams_of(c: dict[str, np.ndarray], n_taps: int, gradcam: bool) -> tuple[list, list | None]:
    cams = [np.asarray(c[f"cam{t}"], dtype=np.float32) for t in range(n_taps)]
    grads = [np.asarray(c[f"gradcam{t}"], dtype=np.float32) for t in range(n_taps)] if gradcam else None
    return cams, grads


def explain_sets(
    model: TrainedModel, table: pd.DataFrame, settings, pool, runtime: Runtime, progress: bool = True
) -> pd.DataFrame:
    """Rows of `table` (scan rows of evaluation sets) with predictions, probabilities, box and OOD scores.

    Side effects: the per-photo cache (maps) and the per-photo picture folders under cache_dir.
    Adds columns sha256 and assets (folder of the pictures); status may turn into a skip.
    """
    n_taps = len(model.backbone.taps)
    cache_root = Path(settings.cache_dir) / "eval" / f"v{EVAL_VERSION}-{model.fingerprint}"
    asset_root = Path(settings.cache_dir) / "assets" / asset_key(settings, model.fingerprint)
    faith_root = (Path(settings.cache_dir) / "faith"
                  / f"v{EVAL_VERSION}-{model.fingerprint}-s{settings.faithfulness_steps}-seed{settings.seed}")
    rows: list[dict[str, Any]] = table.to_dict("records")
    sample = faithfulness_sample(table, settings)
    todo: list[int] = []
    first_of: dict[str, int] = {}  # content hash -> the todo row that computes it (duplicates wait for it)
    duplicates: list[tuple[int, int]] = []
    for idx, row in enumerate(rows):
        row.setdefault("assets", "")
        row["faith_file"] = ""
        if row["status"] != "ok":
            continue
        try:
            row["sha256"] = file_sha256(row["path"])
        except OSError as exc:
            row["status"] = f"skipped: cannot be read ({exc.strerror or exc})"
            continue
        cached = _complete(_load_npz(cache_root / row["sha256"][:2] / f"{row['sha256']}.npz"), n_taps,
                           settings.gradcam)
        adir = asset_root / row["sha256"][:2] / row["sha256"]
        row["assets"] = str(adir)
        faith = None
        if idx in sample:
            row["faith_file"] = str(faith_root / row["sha256"][:2] / f"{row['sha256']}.npz")
            faith = _load_npz(Path(row["faith_file"]))
        if cached is not None and (adir / "complete").exists() and (idx not in sample or faith is not None):
            row.update(_row_from_cache(cached, n_taps))
            if faith is not None:
                row.update(_faith_values(faith))
        elif row["sha256"] in first_of:
            duplicates.append((idx, first_of[row["sha256"]]))
        else:
            row["_cached"] = cached
            first_of[row["sha256"]] = idx
            todo.append(idx)

    if todo:
        _compute(model, rows, todo, settings, pool, runtime, cache_root, progress)
    own = {"set", "file", "path", "label", "faith_file"}
    for idx, first in duplicates:  # same bytes under another name: computed once, reported for both
        rows[idx].update({k: v for k, v in rows[first].items() if k not in own})
    for row in rows:
        row.pop("_cached", None)
        row.pop("faith_file", None)
    return pd.DataFrame(rows)


def _decode_jobs(rows: list[dict], todo: list[int], settings) -> Iterator[dict]:
    for idx in todo:
        yield {
            "path": rows[idx]["path"],
            "asset_dir": rows[idx]["assets"],
            "input_size": settings.input_size,
            "display_size": settings.display_size,
            "thumb_size": settings.thumb_size,
            "strip_size": settings.strip_size,
            "max_pixels": settings.max_pixels,
        }


def _compute(model, rows, todo, settings, pool, runtime, cache_root, progress) -> None:
    backbone = model.backbone
    net = backbone.model.to(runtime.device)
    if runtime.channels_last:
        net = net.to(memory_format=torch.channels_last)
    heads = [type(h)(weight=h.weight.to(runtime.device), bias=h.bias.to(runtime.device)) for h in model.heads]
    n_taps = len(backbone.taps)
    last_tap = backbone.taps[-1]

    def probs_of(batch: torch.Tensor) -> torch.Tensor:
        """The classifier's probabilities (head on the last tap), for the perturbation scores."""
        out = []
        with recording(net, (last_tap,)) as store, torch.inference_mode():
            for chunk in batch.split(settings.batch_size):
                if runtime.channels_last:
                    chunk = chunk.contiguous(memory_format=torch.channels_last)
                with torch.autocast(chunk.device.type, dtype=torch.bfloat16, enabled=runtime.autocast):
                    net(chunk)
                out.append(store[last_tap].float().mean(dim=(2, 3)))
        pooled = torch.cat(out)
        return (pooled @ heads[-1].weight.T + heads[-1].bias).softmax(1)

    pending = []  # async render results, checked at the end so worker errors surface
    batch: list[tuple[int, dict]] = []
    dtype = torch.bfloat16 if runtime.autocast else None
    bar = tqdm(total=len(todo), desc="explain", unit="photo", disable=not progress, mininterval=2)

    trim = HeapTrimmer()
    explainer = Explainer(net, backbone.taps, heads, gradcam=settings.gradcam, autocast_dtype=dtype)

    def flush() -> None:
        trim()
        need = [(i, d) for i, d in batch if rows[i].get("_cached") is None]
        if need:
            x = to_input(np.stack([d["input"] for _, d in need]), backbone, runtime.channels_last, runtime.device)
            exp = explainer(x)
            exp.logits, exp.imagenet_logits = exp.logits.cpu(), exp.imagenet_logits.cpu()
            exp.probe_logits = [p.cpu() for p in exp.probe_logits]
            exp.cams = [c.cpu() for c in exp.cams]
            if exp.gradcams is not None:
                exp.gradcams = [g.cpu() for g in exp.gradcams]
            for j, (i, d) in enumerate(need):
                summary = _summaries(exp, settings, j)
                summary["size"] = np.array([d["width"], d["height"]])
                sha = rows[i]["sha256"]
                _save_npz(cache_root / sha[:2] / f"{sha}.npz", summary)
                rows[i]["_cached"] = summary
        for i, d in batch:
            c = rows[i]["_cached"]
            rows[i].update(_row_from_cache(c, n_taps))
            cams, grads = cams_of(c, n_taps, settings.gradcam)
            known = _load_npz(Path(rows[i]["faith_file"])) if rows[i]["faith_file"] else None
            if known is not None:
                rows[i].update(_faith_values(known))
            elif rows[i]["faith_file"]:
                x1 = to_input(d["input"][None], backbone, False, runtime.device)[0]
                pred = CLASSES.index(rows[i]["prediction"])
                scores = faithfulness.photo_scores(probs_of, x1, torch.from_numpy(cams[-1][pred]), pred,
                                                   settings.faithfulness_steps, settings.seed)
                _save_npz(Path(rows[i]["faith_file"]), {"scores": np.array(list(scores.values()))})
                rows[i].update(scores)
            job = {
                "asset_dir": rows[i]["assets"],
                "pred": CLASSES.index(rows[i]["prediction"]),
                "classes": CLASSES,
                "cams": cams,
                "gradcams": grads,
                "thumb": d["thumb"],
                "strip": d["strip"],
                "display_size": d["display_size"],
            }
            rows[i].pop("_cached", None)  # maps go to disk and to the encoder, not into memory for the run
            pending.append(pool.apply_async(render_assets, (job,)))
        # Bound the encode queue so memory stays flat however many photos there are.
        while len(pending) > 4 * settings.batch_size:
            pending.pop(0).get()
        bar.update(len(batch))
        batch.clear()

    decoded_stream = bounded_imap(pool, decode_for_report, _decode_jobs(rows, todo, settings), 4 * settings.batch_size)
    with explainer:  # hooks on every tap for the whole pass, removed on the way out
        for idx, decoded in zip(todo, decoded_stream):
            if decoded["status"] != "ok":
                rows[idx]["status"] = decoded["status"]
                rows[idx]["assets"] = ""
                bar.update(1)
                continue
            batch.append((idx, decoded))
            if len(batch) >= settings.batch_size:
                flush()
        if batch:
            flush()
    for p in pending:
        p.get()
    bar.close()
