"""The floor of a cold build: the work no build of these photos can avoid, measured on this machine in this run.

- decoding every photo once, as the build decodes it (read, upright, resized to the network's input), by the
  build's decode processes (`make_pool(settings.n_workers)`, `decoded_in_chunks`);
- one forward pass of every readable photo (training and explained), at the build's batch size, threads,
  runtime (bf16 autocast and channels-last where the build turns them on) and memory setting (glibc keeps the
  freed memory for the next batch, `generator.data.workers.keep_freed_memory`, as the build does on a CPU);
- one backward pass of every explained photo (the photos of the sets other than the training set): a forward
  with the gradient of the predicted class's logit into the tapped features, as the gradient maps need.

The network's rates are measured on a seeded sample of the decoded photos (`sample` of them, default 256), in
turns (forward, forward + backward) so that drift of the machine touches both alike; seconds for all photos are
the count divided by the rate. Decoding is timed on every photo.

The stages' shares: the model stage's floor is decoding and one forward of the training photos; the explain
stage's, decoding, one forward and one backward of the explained photos; every other stage's floor is 0 (it
reads what those made), so its seconds count wholly as distance from the floor.
"""

from __future__ import annotations

import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from .contenders import bare_forward
from .inputs import Setup
from .timing import median

NETWORK_STAGES = ("model", "explain")


@dataclass(frozen=True)
class Floor:
    photos: int  # readable photos of every set
    train: int  # readable photos of the training set
    explained: int  # readable photos of the other sets
    decode_s: float  # wall clock of decoding every photo once
    decode_train_s: float
    forward_img_s: float  # median images per second, forward
    backward_img_s: float  # median images per second, forward + backward
    sample: int

    @property
    def forward_s(self) -> float:
        return self.photos / self.forward_img_s

    @property
    def backward_s(self) -> float:
        """The backward passes alone: forward + backward of the explained photos, less their forward."""
        return max(0.0, self.explained / self.backward_img_s - self.explained / self.forward_img_s)

    @property
    def seconds(self) -> float:
        return self.decode_s + self.forward_s + self.backward_s

    def stage_floor(self, stage: str) -> float:
        """Each stage's share of the floor (0 for the stages that need no network and no decoding)."""
        if stage == "model":
            return self.decode_train_s + self.train / self.forward_img_s
        if stage == "explain":
            return (self.decode_s - self.decode_train_s) + self.explained / self.forward_img_s + self.backward_s
        return 0.0


def stage_ratios(floor: Floor, stages: dict[str, float]) -> dict[str, tuple[float, float, float]]:
    """Per stage of a build's run.json timings: (seconds, its floor share, seconds / share (nan where 0))."""
    out = {}
    for name, seconds in stages.items():
        if name == "total":
            continue
        share = floor.stage_floor(name)
        out[name] = (seconds, share, seconds / share if share > 0 else float("nan"))
    return out


def build_photos(data_dir: Path, train_set: str = "train") -> tuple[list[str], list[str]]:
    """(training photo paths, other photo paths) as the build scans them (generator.data.scan)."""
    from generator.config import Settings
    from generator.data.scan import discover_sets, scan_rows

    sets = discover_sets(Path(data_dir), train_set, Settings().eval_sets)
    rows = scan_rows(Path(data_dir), sets)
    train = [str(r.path) for r in rows if r.set == train_set and r.status == "ok"]
    other = [str(r.path) for r in rows if r.set != train_set and r.status == "ok"]
    return train, other


def decode_all(paths: list[str], input_size: int, workers: int) -> tuple[float, np.ndarray, list[str]]:
    """(wall seconds, the readable photos' inputs, every path's status), decoded by the build's own routine
    (generator.model.finetune.decode_all: the build's decode processes and chunks)."""
    from generator.config import Settings
    from generator.data.workers import make_pool
    from generator.model import finetune

    with make_pool(workers) as pool:
        pool.map(int, range(workers))  # the processes started (and their imports done) before the clock runs
        start = time.perf_counter()
        arrays, statuses = finetune.decode_all(paths, input_size, Settings().max_pixels, pool)
        return time.perf_counter() - start, arrays, statuses


def network_rates(setup: Setup, photos: np.ndarray, repeats: int) -> tuple[float, float]:
    """(forward images/s, forward + backward images/s), medians over `repeats` turns, at the setup's batches."""
    net, taps = setup.backbone.model, setup.taps
    last = setup.heads[-1]
    batches = [setup.backbone.to_input(photos[i:i + setup.batch_size], setup.runtime.channels_last)
               for i in range(0, len(photos), setup.batch_size)]
    n = len(photos)
    from generator.data.workers import keep_freed_memory_on
    from generator.model.taps import recording

    keep_freed_memory_on(setup.runtime.device)  # the build's own memory setting, or the floor would be slower

    def autocast():
        return torch.autocast("cpu", dtype=torch.bfloat16, enabled=setup.runtime.autocast)

    bare = bare_forward(setup)  # row A of the bench: the network alone, in inference mode, autocast as the build

    def forward() -> None:
        for x in batches:
            bare(x)

    def backward() -> None:
        flags = [p.requires_grad for p in net.parameters()]
        for p in net.parameters():
            p.requires_grad_(False)
        try:
            with recording(net, taps) as store:
                for x in batches:
                    with autocast():
                        net(x.detach().requires_grad_(True))
                    feats = [store[t] for t in taps]
                    pooled = feats[-1].float().mean(dim=(2, 3))
                    logits = pooled @ last.weight.T + last.bias
                    torch.autograd.grad(logits.gather(1, logits.argmax(1, keepdim=True)).sum(), feats)
                    store.clear()
        finally:
            for p, f in zip(net.parameters(), flags):
                p.requires_grad_(f)

    forward()  # warm-up: the first pass pays for allocations and kernel choices
    fwd, bwd = [], []
    for _ in range(repeats):
        t = time.perf_counter()
        forward()
        fwd.append(n / (time.perf_counter() - t))
        t = time.perf_counter()
        backward()
        bwd.append(n / (time.perf_counter() - t))
    return median(fwd), median(bwd)


def measure_floor(setup: Setup, data_dir: Path, workers: int, sample: int = 256, repeats: int = 3,
                  seed: int = 0, log=print) -> Floor:
    train, other = build_photos(data_dir)
    log(f"floor: decoding {len(train) + len(other)} photos ({len(train)} training) with {workers} processes ...")
    decode_s, arrays, statuses = decode_all(train + other, setup.input_size, workers)
    n_train = sum(s == "ok" for s in statuses[:len(train)])
    n_other = sum(s == "ok" for s in statuses[len(train):])
    decode_train_s = decode_s * len(train) / max(1, len(train) + len(other))  # decoding is per photo alike
    pick = np.sort(np.random.default_rng(seed).choice(len(arrays), size=min(sample, len(arrays)), replace=False))
    photos = arrays[pick]
    del arrays
    log(f"floor: forward and forward + backward rates on {len(photos)} of them, {repeats} turns ...")
    fwd, bwd = network_rates(setup, photos, repeats)
    return Floor(photos=n_train + n_other, train=n_train, explained=n_other, decode_s=decode_s,
                 decode_train_s=decode_train_s, forward_img_s=fwd, backward_img_s=bwd, sample=len(photos))
