"""`make bench`: how fast this project's CAM stage is against bare inference and two CAM libraries.

One run, one machine, one model (the trained checkpoint in weights/), one fixed sample of test photos decoded
once up front into a uint8 tensor (decode time is excluded from A-D), the same batches and the same runtime
settings the site uses (channels_last, bf16 autocast where the CPU has native bf16, same batch size).
Every rate is a median over --repeats timed passes over all batches (methods taking turns batch by batch),
after one untimed warm-up batch; ratios are taken within each repeat, then the median:

  A       bare inference: the forward pass only (inference_mode), images/s.
  B       this project's CAM stage, cam.Explainer(gradcam=False): the CAM of every class at every tap from one
          forward pass (a superset of what is compared: both classes at the last tap, the predicted class at
          all four taps), images/s.
  B+grad  the same with gradcam=True (plus Grad-CAM of the predicted class at every tap, one backward).
  C       torchcam the way its docs show: `CAM` on the last tap (one call per class; fc = the trained head) and
          `GradCAM` on the three earlier taps (one extractor with a list of layers, predicted class per
          sample), sharing one forward pass on a wrapper net = backbone + global average pool + Linear(head).
  C-cam4  torchcam `CAM` at all four taps with the per-tap probes as fc layers: exactly B's maps.
  D       pytorch-grad-cam `GradCAM`, one extractor per tap as its docs show (each call = forward + backward
          + upsampling to the input size): the predicted class at the three earlier taps and both classes at
          the last tap (five calls per batch).
  E       the whole `python -m generator site` on the full data as a subprocess, from a cold cache (fresh
          cache, site and weights folders in a temporary folder, so it also fits the head) and again warm;
          wall time, peak RSS summed over the process tree (psutil polling, an upper bound: shared pages
          count once per process) and the largest single process (same polling). Skipped by --skip-site.
  synthetic  with --synthetic N: the same on a data folder whose test set is N symlinks to the real test
          photos under distinct names (memory must stay flat as N grows).

Before timing, the maps are checked to agree in float32: B's CAMs after torchcam's min-max normalization
against torchcam's CAM (every class at the last tap; the probes at the earlier taps), B+grad's Grad-CAM against
torchcam's GradCAM, and against pytorch-grad-cam after its own scaling and upsampling. The largest absolute
difference of each is printed; the comparison is like for like.

The numbers go to tests/bench_results.csv (one row per run, appended) with the goals beside them:
B >= 0.8 A, B >= 5 x max(C, D), E cold < 120 s, E warm < 10% of E cold, peak memory < 3 GB.
"""

from __future__ import annotations

import argparse
import copy
import csv
import os
import platform
import random
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import torch
from torch import nn

ROOT = Path(__file__).resolve().parent.parent
CHECK_TOLERANCE = 1e-3  # on maps scaled to [0, 1], float32
GOALS = {"B/A": 0.8, "B/max(C,D)": 5.0, "E cold s": 120.0, "E warm/cold": 0.10, "peak GB": 3.0}
IMAGE_SUFFIXES = {".jpg", ".jpeg", ".png", ".webp", ".bmp", ".gif", ".tif", ".tiff"}


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(
        prog="python -m generator.bench",
        description="Benchmark: bare inference (A), this project's CAM stage (B), torchcam (C), pytorch-grad-cam "
                    "(D) on the same photos and model, and optionally the whole `make site` cold and warm (E).",
    )
    p.add_argument("--photos", type=int, default=128, help="test photos in the fixed sample (default: 128)")
    p.add_argument("--repeats", type=int, default=5, help="timed passes per method; medians reported (default: 5)")
    p.add_argument("--batch-size", type=int, default=None, help="images per batch (default: the site's)")
    p.add_argument("--skip-site", action="store_true", help="skip E (the whole `make site`, takes minutes)")
    p.add_argument("--synthetic", type=int, default=0, metavar="N",
                   help="also build the site on a test set of N symlinked photos and report its peak memory")
    p.add_argument("--out", type=Path, default=ROOT / "tests" / "bench_results.csv",
                   help="CSV the results row is appended to (default: tests/bench_results.csv)")
    p.add_argument("--data-dir", type=Path, default=ROOT / "data", help="image sets (default: data)")
    p.add_argument("--weights-dir", type=Path, default=ROOT / "weights",
                   help="folder of the trained checkpoint (default: weights)")
    p.add_argument("--set", dest="photo_set", default="test", help="set the sample is drawn from (default: test)")
    p.add_argument("--seed", type=int, default=0, help="seed of the photo sample (default: 0)")
    return p


# ----------------------------------------------------------------------------------------------- inputs


def sample_photos(set_dir: Path, n: int, seed: int = 0) -> list[Path]:
    """A fixed sample: n files drawn with `seed` from the sorted list of image files under set_dir."""
    files = sorted(p for p in Path(set_dir).rglob("*") if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())
    if not files:
        raise SystemExit(f"no photos under {set_dir}: run `make data` first")
    if n >= len(files):
        return files
    return sorted(random.Random(seed).sample(files, n))


def decode_photos(paths: list[Path], input_size: int) -> np.ndarray:
    """(N, S, S, 3) uint8, decoded the way the site decodes (EXIF-upright, whole photo resized)."""
    from .imaging import SkipImage, decode_bytes

    out = []
    for p in paths:
        try:
            out.append(decode_bytes(p.read_bytes(), input_size, input_size, 60_000_000).model_input)
        except (SkipImage, OSError):
            continue
    return np.stack(out)


@dataclass
class Setup:
    backbone: object  # backbones.Backbone
    heads: list  # cam.LinearHead per tap
    classes: list[str]
    input_size: int
    autocast: bool
    channels_last: bool
    batches: list[torch.Tensor] = field(default_factory=list)

    @property
    def dtype(self) -> torch.dtype | None:
        return torch.bfloat16 if self.autocast else None

    @property
    def n_images(self) -> int:
        return sum(len(b) for b in self.batches)


def load_setup(weights_dir: Path, photos: np.ndarray | None = None, batch_size: int | None = None,
               float32: bool = False) -> Setup:
    """Model, heads and runtime exactly as `make site` builds them; photos cut into normalized input batches."""
    from . import backbones
    from .config import make_settings
    from .explain import choose_runtime
    from .train import check_heads, read_checkpoint, to_input

    weights_dir = Path(weights_dir)
    found = sorted(weights_dir.glob("catdog-*.pt"))
    if not found:
        raise SystemExit(f"no trained checkpoint (catdog-*.pt) in {weights_dir}: run `make site` first")
    heads, meta = read_checkpoint(found[0])
    backbone = backbones.build(meta["backbone"], weights_dir)
    check_heads(found[0], heads, backbone, tuple(meta["classes"]))
    settings = make_settings({"weights_dir": weights_dir, "backbone": meta["backbone"]})
    runtime = choose_runtime(settings)
    if runtime.device != "cpu":
        raise SystemExit("this benchmark is written for the CPU runtime")
    autocast = runtime.autocast and not float32
    backbone.model.eval()
    if runtime.channels_last:
        backbone.model.to(memory_format=torch.channels_last)
    setup = Setup(backbone, heads, list(meta["classes"]), int(meta["input_size"]), autocast, runtime.channels_last)
    if photos is not None:
        bs = batch_size or settings.batch_size
        setup.batches = [to_input(photos[i:i + bs], backbone, runtime.channels_last)
                         for i in range(0, len(photos), bs)]
    return setup


# ----------------------------------------------------------------------------------------------- the nets


class CatDogNet(nn.Module):
    """The classifier as a plain nn.Module for the CAM libraries: backbone, global average pool of the last tap,
    Linear(head) as `fc`; the earlier taps' probes sit beside it as `probes.<t>` (used only as CAM weights).

    The backbone runs whole (its ImageNet classifier too), exactly as in A and B.
    """

    def __init__(self, net: nn.Module, taps: tuple[str, ...], heads: list) -> None:
        super().__init__()
        self.net = net
        self.taps = taps
        self.fc = _linear(heads[-1])
        self.probes = nn.ModuleList(_linear(h) for h in heads[:-1])
        self._last: torch.Tensor | None = None
        dict(net.named_modules())[taps[-1]].register_forward_hook(self._keep)

    def _keep(self, _m, _i, out: torch.Tensor) -> None:
        self._last = out

    def layer_name(self, t: int) -> str:
        return f"net.{self.taps[t]}"

    def layer(self, t: int) -> nn.Module:
        return dict(self.named_modules())[self.layer_name(t)]

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        self.net(x)
        feats, self._last = self._last, None
        return self.fc(feats.mean(dim=(2, 3)))


def _linear(head) -> nn.Linear:
    k, c = head.weight.shape
    lin = nn.Linear(c, k)
    with torch.no_grad():
        lin.weight.copy_(head.weight)
        lin.bias.copy_(head.bias)
    return lin


def library_net(setup: Setup) -> CatDogNet:
    """A copy of the backbone with trainable parameters, as a user of the CAM libraries would hold it
    (the Explainer switches requires_grad off on the model it is given)."""
    net = copy.deepcopy(setup.backbone.model)
    for p in net.parameters():
        p.requires_grad_(True)
    model = CatDogNet(net, setup.backbone.taps, setup.heads).eval()
    if setup.channels_last:
        model.to(memory_format=torch.channels_last)
    return model


def _autocast(setup: Setup):
    return torch.autocast("cpu", dtype=torch.bfloat16, enabled=setup.autocast)


# ----------------------------------------------------------------------------------------------- methods
# Each method takes one batch and returns the maps it made (so nothing is optimized away and the check can
# reuse it): a dict name -> tensor or array.


def method_a(setup: Setup) -> Callable:
    net = setup.backbone.model

    def run(x: torch.Tensor) -> dict:
        with torch.inference_mode(), _autocast(setup):
            return {"logits": net(x)}

    return run


def method_b(setup: Setup, gradcam: bool) -> Callable:
    from .cam import Explainer

    net, taps, heads = setup.backbone.model, setup.backbone.taps, setup.heads

    def run(x: torch.Tensor) -> dict:
        with Explainer(net, taps, heads, gradcam=gradcam, autocast_dtype=setup.dtype) as ex:
            e = ex(x)
        return {"logits": e.logits, "cams": e.cams, "gradcams": e.gradcams}

    return run


def method_c(setup: Setup, model: CatDogNet) -> Callable:
    """torchcam: CAM (last tap, every class) + GradCAM (earlier taps, predicted class), one shared forward."""
    from torchcam.methods import CAM, GradCAM

    n_taps = len(setup.backbone.taps)

    def run(x: torch.Tensor) -> dict:
        with CAM(model, model.layer_name(n_taps - 1), fc_layer="fc") as cam_ex, \
                GradCAM(model, [model.layer_name(t) for t in range(n_taps - 1)]) as grad_ex:
            with _autocast(setup):
                scores = model(x)
            pred = scores.argmax(1).tolist()
            last = [cam_ex(class_idx=k)[0] for k in range(scores.shape[1])]
            early = grad_ex(class_idx=pred, scores=scores)
        return {"logits": scores, "last": last, "early": early}

    return run


def method_c_cam4(setup: Setup, model: CatDogNet) -> Callable:
    """torchcam CAM at every tap with the probes as fc layers: the very maps B makes (every class, every tap)."""
    from torchcam.methods import CAM

    n_taps = len(setup.backbone.taps)
    fcs = [f"probes.{t}" for t in range(n_taps - 1)] + ["fc"]

    def run(x: torch.Tensor) -> dict:
        extractors = [CAM(model, model.layer_name(t), fc_layer=fcs[t]) for t in range(n_taps)]
        try:
            with torch.inference_mode(), _autocast(setup):
                scores = model(x)
            maps = [[ex(class_idx=k)[0] for k in range(scores.shape[1])] for ex in extractors]
        finally:
            for ex in extractors:
                ex.remove_hooks()
        return {"logits": scores, "maps": maps}

    return run


def method_d(setup: Setup, model: CatDogNet) -> Callable:
    """pytorch-grad-cam GradCAM, one extractor per tap; both classes at the last tap, predicted elsewhere."""
    from pytorch_grad_cam import GradCAM
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    n_taps = len(setup.backbone.taps)

    def as_float(t: torch.Tensor) -> torch.Tensor:  # the library turns maps into numpy, which has no bfloat16
        return t.float()

    def run(x: torch.Tensor) -> dict:
        last = []
        with _autocast(setup):
            with GradCAM(model=model, target_layers=[model.layer(n_taps - 1)], reshape_transform=as_float) as cam:
                for k in range(len(setup.classes)):
                    last.append(cam(input_tensor=x, targets=[ClassifierOutputTarget(k)] * len(x)))
                pred = cam.outputs.argmax(1).tolist()
            early = []
            for t in range(n_taps - 1):
                with GradCAM(model=model, target_layers=[model.layer(t)], reshape_transform=as_float) as cam:
                    early.append(cam(input_tensor=x, targets=[ClassifierOutputTarget(p) for p in pred]))
        return {"last": last, "early": early, "pred": pred}

    return run


# ----------------------------------------------------------------------------------------------- the check


def minmax(maps: torch.Tensor) -> torch.Tensor:
    """torchcam's normalization: per map, subtract the min, divide by (max + 1e-8)."""
    maps = maps.float()
    flat = maps.flatten(-2)
    maps = maps - flat.amin(-1)[..., None, None]
    return maps / (maps.flatten(-2).amax(-1)[..., None, None] + 1e-8)


def grad_cam_scaled(maps: torch.Tensor, size: int) -> np.ndarray:
    """pytorch-grad-cam's post-processing of one layer's maps: scale, upsample (cv2), and scale again."""
    from pytorch_grad_cam.utils.image import scale_cam_image

    return scale_cam_image(scale_cam_image(maps.float().numpy(), (size, size)))


def check_agreement(setup: Setup, x: torch.Tensor) -> dict[str, float]:
    """Max abs difference of each library's maps from B's (float32 run), on maps scaled to [0, 1].

    `setup` must be a float32 setup (load_setup(..., float32=True)); x one batch.
    """
    if setup.autocast:
        raise ValueError("check_agreement needs a float32 setup")
    model = library_net(setup)
    b = method_b(setup, gradcam=True)(x)
    c = method_c(setup, model)(x)
    c4 = method_c_cam4(setup, model)(x)
    d = method_d(setup, model)(x)
    pred = b["logits"].argmax(1)
    n_taps = len(setup.backbone.taps)
    diffs: dict[str, float] = {}

    def worst(name: str, ours, theirs) -> None:
        ours = torch.as_tensor(np.asarray(ours), dtype=torch.float32)
        theirs = torch.as_tensor(np.asarray(theirs), dtype=torch.float32)
        diffs[name] = max(diffs.get(name, 0.0), float((ours - theirs).abs().max()))

    last = b["cams"][-1]
    for k in range(last.shape[1]):
        worst("torchcam CAM last tap", minmax(last[:, k]), c["last"][k].detach())
    for t in range(n_taps):
        for k in range(b["cams"][t].shape[1]):
            worst("torchcam CAM probes all taps", minmax(b["cams"][t][:, k]), c4["maps"][t][k])
    for t in range(n_taps - 1):
        worst("torchcam GradCAM earlier taps", minmax(b["gradcams"][t]), c["early"][t].detach())
    size = setup.input_size
    for t in range(n_taps - 1):
        worst("pytorch-grad-cam earlier taps", grad_cam_scaled(b["gradcams"][t], size), d["early"][t])
    for k in range(last.shape[1]):  # Grad-CAM at the last tap of a GAP net = ReLU(CAM) / (H*W)
        worst("pytorch-grad-cam last tap", grad_cam_scaled(last[:, k].clamp(min=0), size), d["last"][k])
    if pred.tolist() != d["pred"] or not torch.equal(pred, c["logits"].argmax(1)):
        diffs["predictions differ"] = 1.0
    return diffs


# ----------------------------------------------------------------------------------------------- timing


def time_methods(methods: dict[str, Callable], batches: list[torch.Tensor], repeats: int,
                 log=print) -> dict[str, list[float]]:
    """images/s of each method for each repeat (one pass over all batches).

    The methods take turns batch by batch, so a burst of load from other jobs on a shared machine hits them
    all alike and the per-repeat ratios stay meaningful even when the absolute rates swing.
    """
    n = sum(len(b) for b in batches)
    for name, fn in methods.items():  # warm-up: first-call costs (oneDNN kernels, lazy imports)
        fn(batches[0])
        log(f"  warmed up {name}")
    rates: dict[str, list[float]] = {name: [] for name in methods}
    for r in range(repeats):
        spent = dict.fromkeys(methods, 0.0)
        for x in batches:
            for name, fn in methods.items():
                start = time.perf_counter()
                fn(x)
                spent[name] += time.perf_counter() - start
        for name in methods:
            rates[name].append(n / spent[name])
        log(f"  repeat {r + 1}/{repeats}: " + ", ".join(f"{k} {v[-1]:.1f}" for k, v in rates.items()))
    return rates


def paired_ratio(rates: dict[str, list[float]], a: str, b: str | tuple[str, ...]) -> float:
    """Median over repeats of rate(a) / rate(b) (b: the fastest of several) within the same repeat."""
    bs = (b,) if isinstance(b, str) else b
    return median([ra / max(rates[k][i] for k in bs) for i, ra in enumerate(rates[a])])


# ----------------------------------------------------------------------------------------------- E


@dataclass
class SiteRun:
    seconds: float
    peak_tree_mb: float  # max over time of the summed RSS of the process tree
    peak_single_mb: float  # RSS of the largest single process (psutil polling)
    returncode: int
    stages: dict[str, float] = field(default_factory=dict)


def run_site(data_dir: Path, work: Path, backbone: str, log_path: Path, interval: float = 0.1) -> SiteRun:
    """`python -m generator site --quiet` with cache, site and weights under `work`; time and peak memory."""
    import json

    import psutil

    cmd = [sys.executable, "-m", "generator", "site", "--quiet", "--data-dir", str(data_dir),
           "--cache-dir", str(work / "cache"), "--site-dir", str(work / "site"),
           "--weights-dir", str(work / "weights"), "--backbone", backbone]
    peak = [0, 0]  # process tree sum, largest single process (bytes)
    done = threading.Event()
    with open(log_path, "ab") as logf:
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=logf, stderr=subprocess.STDOUT)
        root = psutil.Process(proc.pid)

        def poll() -> None:
            while not done.is_set():
                total = 0
                try:
                    procs = [root, *root.children(recursive=True)]
                except psutil.Error:
                    procs = []
                for p in procs:
                    try:
                        rss = p.memory_info().rss
                    except psutil.Error:
                        continue
                    total += rss
                    peak[1] = max(peak[1], rss)
                peak[0] = max(peak[0], total)
                done.wait(interval)

        poller = threading.Thread(target=poll, daemon=True)
        poller.start()
        # (wait4's ru_maxrss would count the forked child before exec, i.e. this whole benchmark process)
        _, status, _usage = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        done.set()
        poller.join()
        proc.returncode = os.waitstatus_to_exitcode(status)
    stages = {}
    run_json = work / "site" / "run.json"
    if proc.returncode == 0 and run_json.exists():
        stages = json.loads(run_json.read_text()).get("timings", {})
    return SiteRun(seconds, peak[0] / 2**20, peak[1] / 2**20, proc.returncode, stages)


def make_synthetic_data(real: Path, dest: Path, n: int) -> Path:
    """dest/{train,personal,unrelated} link to the real sets; dest/test/{cats,dogs} holds n symlinks to the
    real test photos, cycled under distinct names."""
    dest.mkdir(parents=True, exist_ok=True)
    for s in ("train", "personal", "unrelated"):
        if (real / s).exists():
            (dest / s).symlink_to((real / s).resolve(), target_is_directory=True)
    for label in ("cats", "dogs"):
        (dest / "test" / label).mkdir(parents=True)
    photos = {label: sorted(p for p in (real / "test" / label).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
              for label in ("cats", "dogs")}
    for i in range(n):
        label = ("cats", "dogs")[i % 2]
        src = photos[label][(i // 2) % len(photos[label])]
        (dest / "test" / label / f"s{i:06d}-{src.name}").symlink_to(src.resolve())
    return dest


# ----------------------------------------------------------------------------------------------- report


def median(xs: list[float]) -> float:
    return statistics.median(xs) if xs else float("nan")


def verdict(ok: bool | None) -> str:
    return "n/a" if ok is None else ("MET" if ok else "NOT MET")


def append_csv(path: Path, row: dict) -> None:
    """Append one row; a file with other columns is rewritten once with the union of the columns."""
    path.parent.mkdir(parents=True, exist_ok=True)
    old: list[dict] = []
    columns = list(row)
    if path.exists() and path.stat().st_size > 0:
        with open(path, newline="") as fh:
            reader = csv.DictReader(fh)
            header = list(reader.fieldnames or [])
            if header == columns:
                with open(path, "a", newline="") as out:
                    csv.DictWriter(out, fieldnames=columns).writerow(row)
                return
            old = list(reader)
        columns = header + [c for c in columns if c not in header]
    with open(path, "w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=columns, restval="")
        writer.writeheader()
        writer.writerows(old)
        writer.writerow(row)


def fmt(v: float, digits: int = 1) -> str:
    return "" if v is None or (isinstance(v, float) and np.isnan(v)) else f"{v:.{digits}f}"


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    if args.photos < 1 or args.repeats < 1:
        raise SystemExit("--photos and --repeats must be at least 1")
    torch.set_num_threads(max(1, os.cpu_count() or 1))
    log = print
    t0 = time.perf_counter()
    paths = sample_photos(args.data_dir / args.photo_set, args.photos, args.seed)
    photos_u8 = decode_photos(paths, 224)
    log(f"decoded {len(photos_u8)} photos of {args.data_dir / args.photo_set} in {time.perf_counter() - t0:.1f} s")

    check = load_setup(args.weights_dir, photos_u8[: min(8, len(photos_u8))], batch_size=8, float32=True)
    log("checking that the maps agree (float32, up to 8 photos) ...")
    diffs = check_agreement(check, check.batches[0])
    for name, d in diffs.items():
        log(f"  {name:34s} max abs diff {d:.2e}  {'ok' if d <= CHECK_TOLERANCE else 'DIFFERENT'}")
    agree = all(d <= CHECK_TOLERANCE for d in diffs.values())
    del check

    setup = load_setup(args.weights_dir, photos_u8, batch_size=args.batch_size)
    lib_model = library_net(setup)
    bs = len(setup.batches[0])
    log(f"timing on {setup.n_images} photos, batch {bs}, {args.repeats} repeats, "
        f"bf16 autocast {'on' if setup.autocast else 'off'}, channels_last {setup.channels_last}, "
        f"{torch.get_num_threads()} threads")
    methods = {
        "A": method_a(setup),
        "B": method_b(setup, gradcam=False),
        "B+grad": method_b(setup, gradcam=True),
        "C": method_c(setup, lib_model),
        "C-cam4": method_c_cam4(setup, lib_model),
        "D": method_d(setup, lib_model),
    }
    rates = time_methods(methods, setup.batches, args.repeats, log)
    med = {k: median(v) for k, v in rates.items()}
    bench_peak_mb = _self_maxrss_mb()

    cold = warm = synth = None
    backbone = setup.backbone.name
    work_root = Path(tempfile.mkdtemp(prefix="cam-bench-"))
    try:
        if not args.skip_site:
            log(f"E: `python -m generator site` on {args.data_dir}, cold then warm (log: {work_root}/site.log) ...")
            cold = run_site(args.data_dir, work_root / "full", backbone, work_root / "site.log")
            log(f"  cold {cold.seconds:.1f} s, peak {cold.peak_tree_mb:.0f} MB tree / {cold.peak_single_mb:.0f} MB "
                f"one process, exit {cold.returncode}, stages {_stages(cold)}")
            warm = run_site(args.data_dir, work_root / "full", backbone, work_root / "site.log")
            log(f"  warm {warm.seconds:.1f} s, peak {warm.peak_tree_mb:.0f} MB tree / {warm.peak_single_mb:.0f} MB "
                f"one process, exit {warm.returncode}, stages {_stages(warm)}")
        if args.synthetic > 0:
            data = make_synthetic_data(args.data_dir, work_root / "synthetic-data", args.synthetic)
            swork = work_root / "synthetic"
            (swork / "weights").mkdir(parents=True)
            trained = work_root / "full" / "weights"
            source = trained if cold is not None and cold.returncode == 0 else args.weights_dir
            for ckpt in Path(source).glob("catdog-*.pt"):
                shutil.copy2(ckpt, swork / "weights" / ckpt.name)  # same train set: the head is reused
            log(f"synthetic: `python -m generator site` on {args.synthetic} symlinked test photos ...")
            synth = run_site(data, swork, backbone, work_root / "site.log")
            log(f"  {synth.seconds:.1f} s, peak {synth.peak_tree_mb:.0f} MB tree / {synth.peak_single_mb:.0f} MB "
                f"one process, exit {synth.returncode}, stages {_stages(synth)}")
        failed = [r for r in (cold, warm, synth) if r is not None and r.returncode != 0]
        if failed:
            log(f"a site build failed; its log is kept at {work_root}/site.log")
    finally:
        if not any(r is not None and r.returncode != 0 for r in (cold, warm, synth)):
            shutil.rmtree(work_root, ignore_errors=True)

    ratios = {  # paired: each repeat's ratio, then the median (robust to load that swings between repeats)
        "B/A": paired_ratio(rates, "B", "A"),
        "B/C": paired_ratio(rates, "B", "C"),
        "B/D": paired_ratio(rates, "B", "D"),
        "B/max(C,D)": paired_ratio(rates, "B", ("C", "D")),
        "B/C-cam4": paired_ratio(rates, "B", "C-cam4"),
        "B+grad/A": paired_ratio(rates, "B+grad", "A"),
    }
    peak_gb = max([r.peak_tree_mb for r in (cold, warm) if r is not None], default=float("nan")) / 1024
    warm_ratio = warm.seconds / cold.seconds if cold and warm else float("nan")

    log("")
    log(f"{'method':8s} {'images/s (median)':>18s} {'min':>8s} {'max':>8s}   (ratios: per repeat, then median)")
    for k, v in rates.items():
        log(f"{k:8s} {med[k]:18.1f} {min(v):8.1f} {max(v):8.1f}")
    log("")
    log(f"B/A  = {ratios['B/A']:.2f}   goal >= {GOALS['B/A']}: {verdict(ratios['B/A'] >= GOALS['B/A'])}")
    log(f"B/C  = {ratios['B/C']:.2f}   B/D = {ratios['B/D']:.2f}   B/max(C,D) = {ratios['B/max(C,D)']:.2f}   "
        f"goal >= {GOALS['B/max(C,D)']}: {verdict(ratios['B/max(C,D)'] >= GOALS['B/max(C,D)'])}")
    log(f"B/C-cam4 = {ratios['B/C-cam4']:.2f} (torchcam CAM making exactly B's maps)   "
        f"B+grad/A = {ratios['B+grad/A']:.2f}")
    if cold is not None:
        log(f"E cold = {cold.seconds:.1f} s   goal < {GOALS['E cold s']:.0f} s: "
            f"{verdict(cold.returncode == 0 and cold.seconds < GOALS['E cold s'])}")
        log(f"E warm = {warm.seconds:.1f} s   E warm/E cold = {warm_ratio:.3f}   goal < {GOALS['E warm/cold']}: "
            f"{verdict(warm.returncode == 0 and warm_ratio < GOALS['E warm/cold'])}")
        log(f"peak memory (process tree, RSS sum) = {peak_gb:.2f} GB   goal < {GOALS['peak GB']} GB: "
            f"{verdict(peak_gb < GOALS['peak GB'])}")
    else:
        log("E skipped (--skip-site)")
    if synth is not None:
        base = f" vs {cold.peak_tree_mb:.0f} MB on the normal data" if cold else ""
        log(f"synthetic {args.synthetic} photos: peak {synth.peak_tree_mb:.0f} MB tree{base}; {synth.seconds:.1f} s")
    log(f"maps agree: {'yes' if agree else 'NO'} (max abs diff {max(diffs.values()):.2e}, "
        f"tolerance {CHECK_TOLERANCE})")

    row = {
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "host": platform.node(),
        "cpus": os.cpu_count(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "backbone": backbone,
        "bf16": int(setup.autocast),
        "photos": setup.n_images,
        "batch_size": bs,
        "repeats": args.repeats,
        **{f"{k}_img_s": fmt(v) for k, v in med.items()},
        **{k: fmt(v, 3) for k, v in ratios.items() if k in ("B/A", "B/C", "B/D", "B/max(C,D)")},
        "max_map_diff": f"{max(diffs.values()):.2e}",
        "bench_peak_mb": fmt(bench_peak_mb, 0),
        "E_cold_s": fmt(cold.seconds) if cold else "",
        "E_warm_s": fmt(warm.seconds) if warm else "",
        "E_warm/E_cold": fmt(warm_ratio, 3) if cold else "",
        "E_cold_peak_mb": fmt(cold.peak_tree_mb, 0) if cold else "",
        "E_warm_peak_mb": fmt(warm.peak_tree_mb, 0) if warm else "",
        "E_cold_max_process_mb": fmt(cold.peak_single_mb, 0) if cold else "",
        "synthetic_n": args.synthetic or "",
        "synthetic_s": fmt(synth.seconds) if synth else "",
        "synthetic_peak_mb": fmt(synth.peak_tree_mb, 0) if synth else "",
    }
    append_csv(args.out, row)
    log(f"results appended to {args.out}")
    return 0 if agree and all(r is None or r.returncode == 0 for r in (cold, warm, synth)) else 1


def _stages(run: SiteRun) -> str:
    return ", ".join(f"{k} {v:.1f}" for k, v in run.stages.items()) or "-"


def _self_maxrss_mb() -> float:
    import resource

    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


if __name__ == "__main__":
    sys.exit(main())
