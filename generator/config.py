"""Settings: one dataclass with defaults; a TOML file and command-line flags override it."""

from __future__ import annotations

import argparse
import dataclasses
import tomllib
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

BACKBONES = ("auto", "efficientnet_lite0", "resnet18")


def _setting(default: Any, help: str, **kw: Any) -> Any:
    return field(default=default, metadata={"help": help, **kw})


@dataclass(frozen=True)
class Settings:
    """Every knob of `make site`. Paths are relative to the project root unless absolute."""

    data_dir: Path = _setting(Path("data"), "folder holding one subfolder per image set")
    site_dir: Path = _setting(Path("site"), "where the website is written (replaced only when complete)")
    weights_dir: Path = _setting(Path("weights"), "checkpoints and pretrained weight files")
    cache_dir: Path = _setting(Path("data/.cache"), "content-keyed caches (features, CAMs, encoded images)")
    train_set: str = _setting("train", "name of the set the head and probes are fitted on")
    eval_sets: tuple[str, ...] = _setting(
        ("test", "personal", "unrelated"), "sets that are explained on the site, in this order"
    )
    backbone: str = _setting("auto", "CNN: auto (resnet18 if its weights are on disk), efficientnet_lite0, resnet18",
                             choices=BACKBONES)
    input_size: int = _setting(224, "side of the square network input in pixels (the whole photo is resized)")
    seed: int = _setting(0, "seed of every random choice (training, samples)")
    weight_decay: float = _setting(1e-2, "L2 penalty of the logistic-regression head and probes")
    hflip: bool = _setting(False, "also fit on mirrored training photos (one more forward pass per photo)")
    batch_size: int = _setting(8, "images per forward pass (8 measured fastest on a 2-core CPU, and smallest)")
    channels_last: bool = _setting(True, "channels_last memory format for the CNN (faster on CPU)")
    bf16: bool = _setting(True, "bf16 autocast for the forward pass where the CPU supports it")
    device: str = _setting("auto", "auto (cuda when present), cpu or cuda")
    gradcam: bool = _setting(True, "also compute Grad-CAM at every tap (one backward pass per batch)")
    workers: int = _setting(0, "processes that decode and encode images; 0 = number of CPU cores")
    display_size: int = _setting(512, "longest side of the photo on image pages, pixels")
    thumb_size: int = _setting(224, "longest side of gallery thumbnails, pixels")
    strip_size: int = _setting(160, "longest side of each layer-strip tile, pixels")
    page_size: int = _setting(200, "photos per gallery page")
    max_pixels: int = _setting(60_000_000, "larger images are skipped (decompression-bomb guard)")
    box_threshold: float = _setting(0.2, "CAM box: largest region at or above this fraction of the map's maximum")
    layer_sample: int = _setting(8, "photos per set shown on layers.html (plus every mistake)")
    figure_sample: int = _setting(16, "photos per blog figure")
    faithfulness_sample: int = _setting(12, "photos per set scored for deletion/insertion, seeded (0 = all)")
    faithfulness_steps: int = _setting(10, "perturbation steps of the deletion/insertion curves")

    @property
    def n_workers(self) -> int:
        import os

        return self.workers if self.workers > 0 else max(1, os.cpu_count() or 1)


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    kind = f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))
    if "Path" in kind:
        return Path(value)
    if kind.startswith("tuple"):
        if isinstance(value, str):
            value = [v for v in value.split(",") if v]
        return tuple(str(v) for v in value)
    if kind == "bool":
        if isinstance(value, str):
            low = value.lower()
            if low not in ("1", "0", "true", "false", "yes", "no", "on", "off"):
                raise ValueError(f"expected true or false for {f.name}, got {value!r}")
            return low in ("1", "true", "yes", "on")
        return bool(value)
    if kind == "int":
        return int(value)
    if kind == "float":
        return float(value)
    return str(value)


def load_toml(path: Path) -> dict[str, Any]:
    """Read a settings file; unknown keys are an error so that typos do not pass silently."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, tomllib.TOMLDecodeError) as exc:
        raise ValueError(f"{path}: cannot read this settings file ({exc}); fix or remove it.") from exc
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise ValueError(f"{path}: unknown setting(s) {', '.join(unknown)}; see `python -m generator --help`.")
    return raw


def make_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Defaults, overridden by `overrides` (values may be strings, as from a command line)."""
    overrides = overrides or {}
    by_name = {f.name: f for f in fields(Settings)}
    kwargs = {}
    for name, value in overrides.items():
        if name not in by_name:
            raise ValueError(f"unknown setting {name!r}")
        kwargs[name] = _coerce(by_name[name], value)
    settings = Settings(**kwargs)
    if settings.backbone not in BACKBONES:
        raise ValueError(f"backbone must be one of {', '.join(BACKBONES)}, got {settings.backbone!r}")
    if not 0 < settings.box_threshold < 1:
        raise ValueError("box_threshold must lie between 0 and 1")
    return settings


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One --flag per setting, documented with its default."""
    for f in fields(Settings):
        default = f.default
        shown = ",".join(default) if isinstance(default, tuple) else default
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            default=None,
            metavar=f.name.upper(),
            help=f"{f.metadata['help']} (default: {shown})",
        )


def settings_from_args(args: argparse.Namespace) -> Settings:
    """TOML file first (if --config), then flags."""
    overrides: dict[str, Any] = {}
    if getattr(args, "config", None):
        overrides.update(load_toml(Path(args.config)))
    for f in fields(Settings):
        value = getattr(args, f.name, None)
        if value is not None:
            overrides[f.name] = value
    return make_settings(overrides)
