"""Settings: one dataclass with defaults; a TOML file and command-line flags override it.

Every value is checked where settings are made (defaults, TOML and flags alike): its type, its range and its
meaning. A bad one raises SettingsError with one sentence naming the setting, the value and what is allowed.
This module imports neither torch nor pandas: the "nothing changed" check runs before either is loaded.
"""

from __future__ import annotations

import argparse
import dataclasses
import math
import re
import tomllib
import urllib.parse
from collections.abc import Callable
from dataclasses import dataclass, field, fields
from pathlib import Path
from typing import Any

from generator.errors import SettingsError

DEVICES = ("auto", "cpu", "cuda")
ENGINES = ("local", "ray")
LANGUAGES = ("en", "ko")
COLORMAPS = ("jet", "viridis")
RECIPES = ("probe", "finetune", "lp-ft")
PUBLIC_ZIP_URL = "https://storage.googleapis.com/mledu-datasets/cats_and_dogs_filtered.zip"
BF16_ENV = "CAM_BF16"  # 0 forces bf16 autocast off whatever the settings say (make test's float32 pass uses it)
_SET_NAME = re.compile(r"[^/\\\x00]+")
_METHOD_NAME = re.compile(r"[a-z][a-z0-9_]*")


def _setting(default: Any, help: str, check: Callable[[str, Any], None] | None = None, repeat: bool = False) -> Any:
    """repeat: the flag may be given several times, each adding one value (a tuple setting)."""
    return field(default=default, metadata={"help": help, "check": check, "repeat": repeat})


# ---- checks: each raises SettingsError(one sentence) or returns None ------------------------------------------


def _bad(name: str, value: Any, allowed: str) -> SettingsError:
    return SettingsError(f"setting {name} = {value!r} is not allowed: {allowed}.")


def _num(x: float) -> str:
    return f"{int(x):,}" if float(x).is_integer() else f"{x:g}"


def between(lo: float, hi: float, *, open_lo: bool = False, open_hi: bool = False) -> Callable[[str, Any], None]:
    def check(name: str, value: Any) -> None:
        too_low = value <= lo if open_lo else value < lo
        too_high = value >= hi if open_hi else value > hi
        if too_low or too_high or (isinstance(value, float) and not math.isfinite(value)):
            if not (open_lo or open_hi):
                raise _bad(name, value, f"use a number from {_num(lo)} to {_num(hi)}")
            low = f"greater than {_num(lo)}" if open_lo else f"at least {_num(lo)}"
            high = f"less than {_num(hi)}" if open_hi else f"at most {_num(hi)}"
            raise _bad(name, value, f"use a number {low} and {high}")

    return check


def one_of(*choices: str) -> Callable[[str, Any], None]:
    def check(name: str, value: Any) -> None:
        if value not in choices:
            raise _bad(name, value, "use one of " + ", ".join(choices))

    return check


def _backbone(name: str, value: Any) -> None:
    # Only the form is checked here, as for methods: the name is checked against the backbone registry
    # (generator.model.backbones) before any work starts, since that imports torch.
    if not isinstance(value, str) or not re.fullmatch(r"[a-z][a-z0-9_]*", value):
        raise _bad(name, value, "use auto or a backbone name such as efficientnet_lite0 or resnet18")


def _set_name(name: str, value: Any) -> None:
    if not value or not _SET_NAME.fullmatch(value) or value.startswith(".") or value != value.strip():
        raise _bad(name, value, "use the name of a visible folder in data_dir (no '/', not starting with '.')")


def _classes_file(name: str, value: str) -> None:
    if value and not Path(value).is_file():
        raise _bad(name, value, "name a text file with one class name per line (in the order of the model's "
                   "outputs), or leave it empty to take the classes from the training set's folder names")


def _set_names(name: str, value: tuple[str, ...]) -> None:
    for v in value:
        _set_name(name, v)
    if len(set(value)) != len(value):
        raise _bad(name, ",".join(value), "name each set once")


ROLES = ("test", "personal", "unrelated")  # what the story does with a set: its test photos, your own, the others


def _roles(name: str, value: tuple[str, ...]) -> None:
    seen = set()
    for item in value:
        role, eq, set_name = item.partition("=")
        if not eq or role.strip() not in ROLES:
            raise _bad(name, ",".join(value), "give role=set pairs such as test=test,personal=mine,unrelated=other "
                                              "(roles: " + ", ".join(ROLES) + ")")
        if role.strip() in seen:
            raise _bad(name, ",".join(value), f"give the role {role.strip()} once")
        seen.add(role.strip())
        _set_name(name, set_name.strip())


def _methods(name: str, value: tuple[str, ...]) -> None:
    # Only the form is checked here: the names are checked against the registry (generator.explain.methods) before any
    # work starts, since importing the registry imports torch, which a "nothing changed" rerun never does.
    if not value or not all(_METHOD_NAME.fullmatch(v) for v in value):
        raise _bad(name, ",".join(value), "use 'all', 'default' or method names separated by commas, e.g. cam,gradcam")


ANNOTATIONS_BESIDE = "{set}.annotations.json"  # in data_dir, beside the set's folder: its ground truth, if any


def _annotations(name: str, value: tuple[str, ...]) -> None:
    seen = set()
    for v in value:
        set_name, sep, path = (part.strip() for part in v.partition("="))
        if not sep or not path:
            raise _bad(name, v, "use set=path, e.g. personal=labels/personal.json (a COCO instances JSON, a folder "
                       "of Pascal VOC xml files or the Oxford-IIIT Pet annotations folder)")
        _set_name(name, set_name)
        if set_name in seen:
            raise _bad(name, v, f"give set '{set_name}' one annotations file or folder")
        seen.add(set_name)
        if not Path(path).exists():
            raise SettingsError(f"setting {name}: the annotations of set '{set_name}' ({path}) do not exist; check "
                                "the path, or leave the set out.")


def annotation_sources(settings: Settings, sets: list[str]) -> dict[str, Path]:
    """Set -> its ground truth: as named by setting annotations, else data_dir/<set>.annotations.json when that
    file exists. A named set that is not one of `sets` (the sets found in data_dir) is a SettingsError."""
    out: dict[str, Path] = {}
    for v in settings.annotations:
        set_name, _, path = (part.strip() for part in v.partition("="))
        if set_name not in sets:
            raise SettingsError(f"setting annotations names set '{set_name}', which is not a set in "
                                f"{settings.data_dir} (sets: {', '.join(sets) or 'none'}); check the name.")
        out[set_name] = Path(path)
    for s in sets:
        beside = Path(settings.data_dir) / ANNOTATIONS_BESIDE.format(set=s)
        if s not in out and beside.is_file():
            out[s] = beside
    return out


def _url(name: str, value: str) -> None:
    ok = bool(re.match(r"^(https?|file)://\S+$", value))
    if ok and not value.startswith("file:"):
        try:  # a host, and a port that is a number: "http://host:80file.zip" would otherwise read as "offline"
            parts = urllib.parse.urlsplit(value)
            ok = bool(parts.hostname) and (parts.port is None or parts.port > 0)
        except ValueError:
            ok = False
    if not ok:
        raise _bad(name, value, f"use an http://, https:// or file:// URL (the default is {PUBLIC_ZIP_URL})")


def check_url(value: str) -> None:
    """The check of setting data_url, for `python -m generator data --url`."""
    _url("data_url", value)


def _site_url(name: str, value: str) -> None:
    if value and not re.match(r"^https?://[^\s\"'<>]+/$", value):
        raise _bad(name, value, "use an http:// or https:// address that ends with /, or leave it empty")


def _url_path(name: str, value: str) -> None:
    if not value or any(c in value for c in "\"'<> \t\n") or not (value.startswith("/") or "://" in value):
        raise _bad(name, value, "use a path that starts with / (e.g. /assets/images/post_images/) or a full URL")


_RAY_ADDRESS = re.compile(r"(ray://)?[A-Za-z0-9.\-\[\]:]+:\d{1,5}")


def _ray_address(name: str, value: str) -> None:
    # Only the form: whether a cluster answers there is found when the build joins it (config imports no ray).
    if value not in ("", "auto") and not _RAY_ADDRESS.fullmatch(value):
        raise _bad(name, value, "use auto (the cluster this machine belongs to), host:port or ray://host:port of a "
                   "Ray cluster, or leave it empty to start a Ray on this machine for the build")


def _compare(name: str, value: str) -> None:
    if value and value not in RECIPES and not Path(value).is_file():
        raise _bad(name, value, "use a recipe (" + ", ".join(RECIPES) + ") or the path of a checkpoint file "
                   "(weights/catdog-*.pt) that exists, or leave it empty")


def _model(name: str, value: str) -> None:
    # Only the form: whether the library has the architecture is found when the model is built (it imports torch).
    if value and value != "torchscript" and not re.fullmatch(r"(torchvision|timm):[A-Za-z0-9_.\-]+", value):
        raise _bad(name, value, "use torchscript, torchvision:<architecture> (e.g. torchvision:resnet18) or "
                   "timm:<architecture> (e.g. timm:resnet10t), or leave it empty")


def _model_weights(name: str, value: str) -> None:
    if value and not Path(value).is_file():
        raise _bad(name, value, "name the model's weights file (a state dict, or the TorchScript file) that exists")


def _taps(name: str, value: tuple[str, ...]) -> None:
    for v in value:
        if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*(\.[A-Za-z0-9_]+)*", v):
            raise _bad(name, ",".join(value), "use module names separated by commas, e.g. layer2,layer3,layer4")
    if len(set(value)) != len(value):
        raise _bad(name, ",".join(value), "name each module once")


def _triple(name: str, value: tuple[str, ...]) -> None:
    if not value:
        return
    try:
        numbers = [float(v) for v in value]
    except ValueError:
        numbers = []
    if len(numbers) != 3 or not all(math.isfinite(v) and 0 <= v <= 1 for v in numbers) \
            or (name == "model_std" and not all(v > 0 for v in numbers)):
        raise _bad(name, ",".join(value), "give three numbers from 0 to 1 (R,G,B), e.g. 0.485,0.456,0.406, "
                   "or leave it empty")


def _folder(name: str, value: Path) -> None:
    if not str(value) or str(value) in (".", "/") or "\x00" in str(value):
        default = Settings.__dataclass_fields__[name].default
        raise _bad(name, str(value), f"use a folder of its own, e.g. {default}")


@dataclass(frozen=True)
class Settings:
    """Every knob of `make site`. Paths are relative to the project root unless absolute."""

    data_dir: Path = _setting(Path("data"), "folder holding one subfolder per image set", _folder)
    site_dir: Path = _setting(Path("site"), "where the website is written (replaced only when complete)", _folder)
    weights_dir: Path = _setting(Path("weights"), "checkpoints and pretrained weight files", _folder)
    cache_dir: Path = _setting(Path(".cache"), "content-keyed caches (features, maps, pictures); outside data/, "
                               "so that a read-only photo folder works", _folder)
    data_url: str = _setting(PUBLIC_ZIP_URL, "where `make site` downloads cats_and_dogs_filtered.zip when data/ "
                             "lacks train and test", _url)
    train_set: str = _setting("train", "name of the set the head and probes are fitted on", _set_name)
    classes_file: str = _setting("", "text file with one class name per line, in the order of the model's outputs; "
                                 "empty = the training set's class folders, sorted by name", _classes_file)
    eval_sets: tuple[str, ...] = _setting(
        ("test", "personal", "unrelated"), "sets that are explained on the site, in this order", _set_names
    )
    roles: tuple[str, ...] = _setting(
        tuple(f"{r}={r}" for r in ROLES), "which set plays which part of the story, as role=set pairs: test (the "
        "test photos), personal (your own photos), unrelated (photos of neither class); a role left out has no set",
        _roles)
    backbone: str = _setting("auto", "CNN: auto (resnet18 if its weights are on disk, else efficientnet_lite0) or "
                             "a registered backbone: efficientnet_lite0, resnet18", _backbone)
    model: str = _setting("", "your own trained classifier instead of a fitted head: torchscript, "
                          "torchvision:<architecture> or timm:<architecture> (with setting model_weights); empty = "
                          "the tool fits a head on setting backbone", _model)
    model_weights: str = _setting("", "with setting model: the model's file, a state dict (read with "
                                  "weights_only=True) or the TorchScript file", _model_weights)
    taps: tuple[str, ...] = _setting((), "with setting model: module names to draw maps at, shallow to deep, e.g. "
                                     "layer2,layer3,layer4; empty = the end of each stage, found from the network",
                                     _taps)
    model_mean: tuple[str, ...] = _setting((), "with setting model: the three input means (R,G,B, of pixels in 0..1); "
                                           "empty = the library's config, else ImageNet's", _triple)
    model_std: tuple[str, ...] = _setting((), "with setting model: the three input standard deviations; empty = the "
                                          "library's config, else ImageNet's", _triple)
    input_size: int = _setting(224, "side of the square network input in pixels (the whole photo is resized)",
                               between(32, 1024))
    seed: int = _setting(0, "seed of every random choice (training, samples)", between(0, 2**32 - 1))
    weight_decay: float = _setting(1e-2, "L2 penalty of the logistic-regression head and probes", between(0, 1e6))
    hflip: bool = _setting(False, "also fit on mirrored training photos (one more forward pass per photo)")
    recipe: str = _setting("probe", "how the classifier is trained: probe (the ImageNet network stays frozen; a "
                           "logistic regression on its pooled features), finetune (the whole network trained end to "
                           "end, as the original post did) or lp-ft (the probe first, then fine-tuning from it)",
                           one_of(*RECIPES))
    finetune_epochs: int = _setting(3, "with recipe finetune or lp-ft: most passes over the training photos (early "
                                    "stopping may end sooner)", between(1, 1000))
    finetune_lr: float = _setting(1e-3, "with recipe finetune or lp-ft: peak learning rate of the new head (AdamW)",
                                  between(0, 10, open_lo=True))
    finetune_backbone_lr: float = _setting(1e-4, "with recipe finetune or lp-ft: peak learning rate of the "
                                           "pretrained network (lower than the head's)", between(0, 10, open_lo=True))
    finetune_batch: int = _setting(32, "with recipe finetune or lp-ft: photos per training step", between(1, 4096))
    finetune_holdout: float = _setting(0.1, "with recipe finetune or lp-ft: share of the training photos held out "
                                       "(seeded) for early stopping; the test photos are never used",
                                       between(0, 0.5, open_lo=True))
    finetune_patience: int = _setting(1, "with recipe finetune or lp-ft: epochs without a better held-out loss "
                                      "before training stops", between(1, 1000))
    compare: str = _setting("", "a second model for compare.html: a recipe (probe, finetune, lp-ft; trained or "
                            "reused like the site's own) or a checkpoint file; empty = no comparison", _compare)
    batch_size: int = _setting(8, "images per forward pass (8 measured fastest on a 2-core CPU, and smallest)",
                               between(1, 1024))
    channels_last: bool = _setting(True, "channels_last memory format for the CNN (faster on CPU)")
    bf16: bool = _setting(True, "bf16 autocast for the forward pass where the CPU (AVX512-BF16 or AMX) or GPU "
                          f"supports it; {BF16_ENV}=0 in the environment forces it off")
    device: str = _setting("auto", "auto (cuda when present), cpu or cuda", one_of(*DEVICES))
    methods: tuple[str, ...] = _setting(("default",), "map methods drawn on every page: 'default' (cam,gradcam), "
                                        "'all', or names such as cam,gradcam,layercam", _methods)
    engine: str = _setting("local", "where the explain stage runs: local (this process and its decoding workers) or "
                           "ray (Ray Data actors on this machine or a cluster; the same records)", one_of(*ENGINES))
    ray_address: str = _setting("", "with engine ray: auto or host:port joins a running Ray cluster; empty starts a "
                                "Ray on this machine that stops with the build", _ray_address)
    workers: int = _setting(0, "processes that decode and encode images; 0 = number of CPU cores", between(0, 256))
    display_size: int = _setting(512, "longest side of the photo on image pages, pixels", between(64, 4096))
    thumb_size: int = _setting(192, "longest side of gallery thumbnails, pixels", between(32, 1024))
    photo_quality: int = _setting(60, "WebP quality of the display copies and thumbnails that are encoded (0-100)",
                                  between(1, 100))
    page_size: int = _setting(200, "photos per gallery page", between(1, 100_000))
    max_pixels: int = _setting(60_000_000, "larger images are skipped (decompression-bomb guard)",
                               between(1024, 2**40))
    box_threshold: float = _setting(0.2, "CAM box: largest region at or above this fraction of the map's range",
                                    between(0, 1, open_lo=True, open_hi=True))
    colormap: str = _setting("jet", "colour map of the maps: jet (as in the CAM paper's figures) or viridis",
                             one_of(*COLORMAPS))
    neither_keep: float = _setting(0.995, "'neither' rule: the cat+dog probability threshold keeps this share of the "
                                   "training photos", between(0.5, 1, open_lo=True))
    layer_sample: int = _setting(8, "photos per set shown on layers.html (plus every mistake)", between(0, 100_000))
    figure_sample: int = _setting(16, "photos per blog figure", between(1, 1000))
    faithfulness_sample: int = _setting(0, "photos per set scored for the leaderboard, seeded; 0 = adaptive: add "
                                        "photos until its comparisons are decided or its budget "
                                        "(faithfulness_budget_images, faithfulness_budget_s) runs out",
                                        between(0, 1_000_000))
    faithfulness_budget_images: int = _setting(0, "images the adaptive leaderboard sample may put through the "
                                               "network (the same photos on any machine); 0 = 1100 on a CPU (about "
                                               "22 photos), no limit on a GPU (every photo)", between(0, 10**9))
    faithfulness_budget_s: float = _setting(0.0, "seconds the adaptive leaderboard sample may take, beside its "
                                            "images; 0 = no limit in seconds", between(0, 1e6))
    # 4: measured (python -m bench.leaderboard_cost --steps-error --photos 20, on the shared test set and on the
    # personal set, the 6 or 7 distinct last-stage maps, against 12 steps) the error that few steps add to the mean
    # over photos of a paired difference of insertion minus deletion (what a verdict reads) is at most 0.013 at 6
    # steps, 0.026 at 4 and 0.080 at 3 (images per map 11, 7, 5): 4 is the fewest steps whose error stays below
    # evaluate.stats.MARGIN. (Photo by photo the error is larger, median 0.032 to 0.037 at 4 steps; it averages out.)
    faithfulness_steps: int = _setting(4, "perturbation steps of the deletion/insertion curves", between(2, 200))
    lang: str = _setting("en", "language of the site and the post: en or ko", one_of(*LANGUAGES))
    site_url: str = _setting("", "where the site will be published (e.g. https://you.github.io/cam-report/): the "
                             "post links to its pages and the social card names its picture; empty = no links",
                             _site_url)
    annotations: tuple[str, ...] = _setting(
        (), "ground truth of a set as set=path (give the flag once per set): a COCO instances JSON, a folder of "
        "Pascal VOC xml files or the Oxford-IIIT Pet annotations folder; a set not named uses "
        "data_dir/<set>.annotations.json when that file exists", _annotations, repeat=True)
    post_assets_url: str = _setting("/assets/images/post_images/", "where the Jekyll post's figures are published "
                                    "(the post's image links start with this)", _url_path)

    def __post_init__(self) -> None:
        for f in fields(self):
            check = f.metadata.get("check")
            if check is not None:
                check(f.name, getattr(self, f.name))
        if self.thumb_size > self.display_size:
            raise SettingsError(f"setting thumb_size = {self.thumb_size} is larger than display_size = "
                                f"{self.display_size}; a thumbnail must not be larger than the photo on its page.")
        if self.train_set in self.eval_sets:
            raise SettingsError(f"setting eval_sets names the training set (setting train_set = {self.train_set!r}); "
                                "the photos a model was fitted on cannot test it: remove it from eval_sets.")
        if self.max_pixels < self.input_size ** 2:
            raise SettingsError(f"setting max_pixels = {self.max_pixels} is smaller than one network input "
                                f"({self.input_size}x{self.input_size}); raise it.")
        if self.model and not self.model_weights:
            raise SettingsError(f"setting model = {self.model!r} needs setting model_weights, the model's file.")
        if (self.taps or self.model_mean or self.model_std or self.model_weights) and not self.model:
            raise SettingsError("settings model_weights, taps, model_mean and model_std are for your own model: give "
                                "setting model too (torchscript, torchvision:<name> or timm:<name>).")
        if self.model and (self.recipe != "probe" or self.compare):
            raise SettingsError(f"setting model = {self.model!r} brings its own trained head: leave settings recipe "
                                "and compare at their defaults.")
        if self.model and self.engine == "ray":
            raise SettingsError(f"setting model = {self.model!r} runs on the local engine only (Ray's actors load "
                                "the registered backbones): use engine local.")
        if self.compare == self.recipe:
            raise SettingsError(f"setting compare = {self.compare!r} names the recipe the site itself uses; name "
                                "another recipe or a checkpoint file.")
        _check_site_dir(self)

    def set_for(self, role: str) -> str | None:
        """The set that plays `role` (one of ROLES) in the story, or None when no set does."""
        if role not in ROLES:
            raise ValueError(f"unknown role {role!r}")
        pairs = dict((r.strip(), s.strip()) for r, _, s in (item.partition("=") for item in self.roles))
        return pairs.get(role)

    @property
    def n_workers(self) -> int:
        import os

        return self.workers if self.workers > 0 else max(1, os.cpu_count() or 1)


def bf16_wanted(settings: Settings) -> bool:
    """Whether bf16 autocast may be used: setting bf16, unless the environment variable CAM_BF16 is 0 (or off,
    false, no). Whether this machine supports it is decided by generator/runtime.py."""
    import os

    value = os.environ.get(BF16_ENV, "").strip().lower()
    if value and value not in _TRUE + _FALSE:
        raise SettingsError(f"environment variable {BF16_ENV} = {value!r} is not allowed: use 0 to force bf16 "
                            "autocast off, or 1 (or leave it unset) to let setting bf16 decide.")
    return settings.bf16 and value not in _FALSE


def _check_site_dir(s: Settings) -> None:
    """The site folder is replaced whole by every build: it must not hold or be any other folder we use."""
    site = Path(s.site_dir).absolute()
    for name in ("data_dir", "weights_dir", "cache_dir"):
        other = Path(getattr(s, name)).absolute()
        if site == other or other.is_relative_to(site) or site.is_relative_to(other):
            raise SettingsError(f"setting site_dir = {str(s.site_dir)!r} overlaps {name} = "
                                f"{str(getattr(s, name))!r}; the site folder is replaced by every build, so give "
                                "it a folder of its own.")
    if Path.cwd().is_relative_to(site):
        raise SettingsError(f"setting site_dir = {str(s.site_dir)!r} contains the current folder; the site folder "
                            "is replaced by every build, so give it a folder of its own.")


# ---- parsing: strings (flags) and TOML values to the field's type ---------------------------------------------

_TRUE, _FALSE = ("1", "true", "yes", "on"), ("0", "false", "no", "off")


def _kind(f: dataclasses.Field) -> str:
    return f.type if isinstance(f.type, str) else getattr(f.type, "__name__", str(f.type))


def _coerce(f: dataclasses.Field, value: Any) -> Any:
    """A flag's string or a TOML value -> the field's type; SettingsError naming the setting otherwise."""
    kind = _kind(f)
    wrong = SettingsError(f"setting {f.name} = {value!r} has the wrong type: expected "
                          f"{_EXPECTED.get(kind.split('[')[0], kind)}.")
    if "Path" in kind:
        if not isinstance(value, str | Path):
            raise wrong
        return Path(value)
    if kind.startswith("tuple"):
        if isinstance(value, str):
            value = [v.strip() for v in value.split(",")]
        if not isinstance(value, list | tuple) or not all(isinstance(v, str) for v in value):
            raise wrong
        return tuple(v for v in value if v)
    if kind == "bool":
        if isinstance(value, bool):
            return value
        if isinstance(value, str) and value.strip().lower() in _TRUE + _FALSE:
            return value.strip().lower() in _TRUE
        raise wrong
    if kind == "int":
        if isinstance(value, bool) or not isinstance(value, int | str):
            raise wrong
        try:
            return int(value.strip().replace("_", "")) if isinstance(value, str) else value
        except ValueError:
            raise wrong from None
    if kind == "float":
        if isinstance(value, bool) or not isinstance(value, int | float | str):
            raise wrong
        try:
            number = float(value)
        except ValueError:
            raise wrong from None
        if not math.isfinite(number):
            raise wrong
        return number
    if not isinstance(value, str):
        raise wrong
    return value


_EXPECTED = {"Path": "a folder path", "tuple": "names separated by commas", "bool": "true or false",
             "int": "a whole number", "float": "a number", "str": "text"}


def load_toml(path: Path) -> dict[str, Any]:
    """Read a settings file; unknown keys are an error so that typos do not pass silently."""
    try:
        raw = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as exc:
        reason = getattr(exc, "strerror", None) or str(exc).splitlines()[0]
        raise SettingsError(f"{path}: cannot read this settings file ({reason}); fix or remove it.") from None
    known = {f.name for f in fields(Settings)}
    unknown = sorted(set(raw) - known)
    if unknown:
        raise SettingsError(f"{path}: unknown setting(s) {', '.join(unknown)}; `python -m generator --help` lists "
                            "them all.")
    return raw


def make_settings(overrides: dict[str, Any] | None = None) -> Settings:
    """Defaults, overridden by `overrides` (values may be strings, as from a command line)."""
    overrides = overrides or {}
    by_name = {f.name: f for f in fields(Settings)}
    kwargs = {}
    for name, value in overrides.items():
        if name not in by_name:
            raise SettingsError(f"unknown setting {name!r}; `python -m generator --help` lists them all.")
        kwargs[name] = _coerce(by_name[name], value)
    return Settings(**kwargs)


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """One --flag per setting, documented with its default."""
    for f in fields(Settings):
        parser.add_argument(
            "--" + f.name.replace("_", "-"),
            dest=f.name,
            default=None,
            metavar="SET=PATH" if f.name == "annotations" else f.name.upper(),
            action="append" if f.metadata.get("repeat") else "store",
            help=f"{f.metadata['help']} (default: {shown_default(f)})",
        )


def shown_default(f: dataclasses.Field) -> str:
    return ",".join(f.default) if isinstance(f.default, tuple) else str(f.default)


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


def jsonable(settings: Settings) -> dict[str, Any]:
    """The settings as plain JSON values (paths as strings, tuples as lists)."""
    out: dict[str, Any] = {}
    for f in fields(settings):
        v = getattr(settings, f.name)
        out[f.name] = str(v) if isinstance(v, Path) else list(v) if isinstance(v, tuple) else v
    return out
