"""`python -m bench.finetune`: fine-tuning's cost and outcome (issue 22), appended as one row to bench/results.csv.

1. Rate, side by side in one run: on the same decoded training photos and batch size, in turns (forward, train,
   forward, train, ...), the bare forward pass (inference mode, as the bench's A row) against one fine-tuning
   step (augmentation, forward, backward, AdamW step, as generator/model/finetune.py does); images per second,
   medians of the repeats, and their ratio.
2. With --full: the real fine-tune (recipe finetune, the tool's own train_or_load, a fresh cache) on every training
   photo, timed, then the test accuracy of the tuned network and of the probe (the default recipe) on every test
   photo. Budgets: at most 600 s on a 2-core CPU (60 s on a GPU), test accuracy at least the probe's.
"""

from __future__ import annotations

import argparse
import os
import shutil
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import numpy as np

from .ray_engine import link_data
from .results import append_csv, fmt, verdict
from .timing import median

ROOT = Path(__file__).resolve().parent.parent
BUDGET_CPU_S, BUDGET_GPU_S = 600.0, 60.0


def rates(backbone, images: np.ndarray, labels: np.ndarray, batch: int, repeats: int, runtime) -> dict[str, float]:
    """Images per second of the bare forward pass and of one fine-tuning step, timed in turns (medians)."""
    import torch

    from generator.model import finetune

    model = finetune.PooledHead(backbone.model, backbone.taps[-1], backbone.channels[-1], 2).to(runtime.device)
    runtime.prepare(model)
    model.eval()
    opt = torch.optim.AdamW([{"params": list(backbone.model.parameters()), "lr": 1e-5},
                             {"params": list(model.head.parameters()), "lr": 1e-4}])
    aug = finetune.augmenter(images.shape[1], (0.35, 1.0))
    x_all = torch.from_numpy(images).permute(0, 3, 1, 2)
    y_all = torch.as_tensor(labels, dtype=torch.long)
    n = len(labels) - len(labels) % batch

    def forward() -> None:
        with torch.inference_mode(), torch.autocast(runtime.device, dtype=torch.bfloat16, enabled=runtime.autocast):
            for i in range(0, n, batch):
                backbone.model(finetune.normalise(x_all[i:i + batch], backbone.mean, backbone.std, runtime))

    def train() -> None:
        with torch.autocast(runtime.device, dtype=torch.bfloat16, enabled=runtime.autocast):
            for i in range(0, n, batch):
                x = torch.stack([aug(x_all[j]) for j in range(i, i + batch)])
                logits = model(finetune.normalise(x, backbone.mean, backbone.std, runtime)).float()
                loss = torch.nn.functional.cross_entropy(logits, y_all[i:i + batch].to(logits.device))
                opt.zero_grad(set_to_none=True)
                loss.backward()
                opt.step()

    def sync() -> None:
        if runtime.device == "cuda":
            torch.cuda.synchronize()

    forward()  # warm-up of both, untimed
    train()
    times: dict[str, list[float]] = {"forward": [], "train": []}
    for _ in range(repeats):
        for name, fn in (("forward", forward), ("train", train)):
            sync()
            t = time.perf_counter()
            fn()
            sync()
            times[name].append(time.perf_counter() - t)
    return {k: n / median(v) for k, v in times.items()}


def test_accuracy(model, rows, settings, pool, runtime) -> float:
    """Share of the labelled test photos the model's head gets right (its pooled last tap, no augmentation)."""
    import torch

    from generator.data.scan import DEFAULT_CLASSES as CLASSES
    from generator.model.features import extract

    tf = extract(model.backbone, list(rows["path"]), settings, pool, runtime, progress=False)
    labels = np.array([CLASSES.index(v) for v in rows["label"]])[tf.ok]
    head = model.heads[-1]
    pred = (torch.as_tensor(tf.feats[-1]) @ head.weight.T + head.bias).argmax(1).numpy()
    return float((pred == labels).mean())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--photos", type=int, default=64, help="training photos timed in the rate part (default: 64)")
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--full", action="store_true", help="also run the real fine-tune on every training photo")
    p.add_argument("--source", type=Path, default=ROOT.parent / "shared" / "datasets" / "cats_and_dogs_filtered")
    p.add_argument("--out", type=Path, default=ROOT / "bench" / "results.csv")
    p.add_argument("--work", type=Path, default=None,
                   help="folder for the data links, cache and checkpoints, kept afterwards: a run stopped during "
                        "the fine-tune resumes from its last finished epoch (default: a temporary folder)")
    args = p.parse_args(argv)

    import torch

    from generator.config import make_settings
    from generator.data.scan import DEFAULT_CLASSES as CLASSES
    from generator.data.scan import as_table, discover_sets, scan_rows
    from generator.data.workers import make_pool
    from generator.model import backbones, finetune, train
    from generator.model.runtime import choose_runtime

    work = args.work or Path(tempfile.mkdtemp(prefix="bench-finetune-"))
    try:
        n_train = 1000 if args.full else max(1, args.photos // 2)
        data = work / "data" if (work / "data").is_dir() else link_data(work, args.source, n_train,
                                                                          500 if args.full else 1)
        base = {"data_dir": data, "site_dir": work / "site", "cache_dir": work / "cache",
                "weights_dir": work / "weights", "eval_sets": "test", "roles": "test=test"}
        settings = make_settings(dict(base, recipe="finetune"))
        sets = discover_sets(settings.data_dir, settings.train_set, settings.eval_sets)
        table = as_table(scan_rows(settings.data_dir, sets))
        trows = table[(table["set"] == "train") & table["label"].isin(CLASSES)]
        runtime = choose_runtime(settings)
        torch.set_num_threads(max(1, os.cpu_count() or 1))
        row: dict = {"date": datetime.now(UTC).isoformat(timespec="seconds"), "host": os.uname().nodename,
                     "cpus": os.cpu_count(), "torch": torch.__version__, "backbone": "", "bf16": int(runtime.autocast)}
        with make_pool(settings.n_workers) as pool:
            backbone = backbones.build(settings.backbone, settings.weights_dir)
            row["backbone"] = backbone.name
            sample = trows.iloc[np.r_[0:args.photos // 2, n_train:n_train + args.photos // 2]] \
                if args.full else trows
            images, statuses = finetune.decode_all(list(sample["path"]), settings.input_size, settings.max_pixels,
                                                   pool)
            labels = np.array([CLASSES.index(v) for v in sample["label"]])[[s == "ok" for s in statuses]]
            r = rates(backbone, images, labels, settings.finetune_batch, args.repeats, runtime)
            ratio = r["train"] / r["forward"]
            print(f"{len(labels)} photos, batch {settings.finetune_batch}, median of {args.repeats} in turns: forward "
                  f"{r['forward']:.1f} images/s, fine-tuning step {r['train']:.1f} images/s "
                  f"(train/forward {ratio:.3f})", flush=True)
            row.update({"photos": len(labels), "batch_size": settings.finetune_batch, "repeats": args.repeats,
                        "finetune_forward_img_s": fmt(r["forward"]), "finetune_train_img_s": fmt(r["train"]),
                        "finetune_train/forward": fmt(ratio, 3)})
            code = 0
            if args.full:
                fresh = backbones.build(settings.backbone, settings.weights_dir)
                t = time.perf_counter()
                tuned = train.train_or_load(fresh, trows, settings, pool, runtime, CLASSES, log=print,
                                            progress=False).model
                spent = time.perf_counter() - t
                test_rows = table[(table["set"] == "test") & table["label"].isin(CLASSES)]
                acc = test_accuracy(tuned, test_rows, settings, pool, runtime)
                probe_settings = make_settings(base)
                probe = train.train_or_load(backbones.build(settings.backbone, settings.weights_dir), trows,
                                            probe_settings, pool, runtime, CLASSES, log=lambda _m: None,
                                            progress=False).model
                probe_acc = test_accuracy(probe, test_rows, probe_settings, pool, runtime)
                budget = BUDGET_GPU_S if runtime.device == "cuda" else BUDGET_CPU_S
                t_info = tuned.meta["training"]
                print(f"fine-tune of {len(trows)} training photos: {spent:.0f} s end to end (training "
                      f"{t_info['seconds_this_run']:.0f} s, {t_info['images_per_s']:.1f} images/s, "
                      f"{t_info['epochs_run']} epochs, best {t_info['best_epoch']}; budget <= {budget:.0f} s: "
                      f"{verdict(spent <= budget)}); test accuracy on {len(test_rows)} photos: tuned {acc:.4f}, "
                      f"probe {probe_acc:.4f} ({verdict(acc >= probe_acc)})", flush=True)
                row.update({"finetune_full_s": fmt(spent), "finetune_training_s": fmt(t_info["seconds_this_run"]),
                            "finetune_epochs": t_info["epochs_run"], "finetune_best_epoch": t_info["best_epoch"],
                            "finetune_full_img_s": fmt(t_info["images_per_s"]),
                            "finetune_test_accuracy": fmt(acc, 4), "probe_test_accuracy": fmt(probe_acc, 4),
                            "finetune_test_photos": len(test_rows)})
                code = 0 if spent <= budget and acc >= probe_acc else 1
        append_csv(args.out, row)
        return code
    finally:
        if args.work is None:
            shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    raise SystemExit(main())
