"""Shared fixtures: a few real photos from ../shared/datasets, and a small site built from them once."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
DATASETS = Path(os.environ.get("CAM_DATASETS", ROOT.parent / "shared" / "datasets"))
CATS_DOGS = DATASETS / "cats_and_dogs_filtered"
PERSONAL_TRUTH = DATASETS / "annotations" / "personal.json"  # ground truth of 370 personal photos (COCO)


def need_datasets() -> Path:
    if not CATS_DOGS.is_dir():
        pytest.skip(f"real photos not found at {CATS_DOGS} (set CAM_DATASETS to the shared datasets folder)")
    return DATASETS


def link_photos(dest: Path, source: Path, n: int) -> list[Path]:
    """Symlink the first n photos (sorted by name) of `source` into `dest`."""
    dest.mkdir(parents=True, exist_ok=True)
    files = sorted(p for p in source.iterdir() if p.is_file())[:n]
    for f in files:
        (dest / f.name).symlink_to(f)
    return files


def make_small_data(root: Path, n_train: int = 24, n_test: int = 8) -> Path:
    """data/ with train/{cats,dogs}, test/{cats,dogs}, personal/{cat,dog}, unrelated/, from real photos."""
    ds = need_datasets()
    data = root / "data"
    for split, sub, n in (("train", "train", n_train), ("test", "validation", n_test)):
        for c in ("cats", "dogs"):
            link_photos(data / split / c, ds / "cats_and_dogs_filtered" / sub / c, n)
    for c in ("cat", "dog"):
        link_photos(data / "personal" / c, ds / "personal" / c, 3)
    link_photos(data / "unrelated", ds / "unrelated", 4)
    return data


def small_settings(root: Path, data: Path, **extra):
    from generator.config import make_settings

    values = dict(data_dir=data, site_dir=root / "site", weights_dir=root / "weights",
                  cache_dir=root / "cache", workers=2, batch_size=8, layer_sample=2, figure_sample=8,
                  faithfulness_sample=4, faithfulness_steps=8)
    values.update(extra)
    return make_settings(values)


@pytest.fixture(scope="session")
def small_site(tmp_path_factory):
    """(settings, run summary) of one end-to-end build on 48+16+6+4 real photos."""
    from generator.build import build_site

    root = tmp_path_factory.mktemp("small")
    data = make_small_data(root)
    extra = {"annotations": (f"personal={PERSONAL_TRUTH}",)} if PERSONAL_TRUTH.is_file() else {}
    settings = small_settings(root, data, **extra)
    run = build_site(settings, log=lambda _m: None, progress=False)
    return settings, run


@pytest.fixture(scope="session")
def tiny_project(tmp_path_factory):
    """A project folder with very few real photos (4+4 training, 2+2 test, 1+1 own, 2 unrelated), built once so
    that its caches are warm: for tests that run the command line many times."""
    import sys

    root = tmp_path_factory.mktemp("tiny")
    make_small_data(root, n_train=4, n_test=2)
    data = root / "data"
    extras = (sorted((data / "personal" / "cat").iterdir())[1:] + sorted((data / "personal" / "dog").iterdir())[1:]
              + sorted((data / "unrelated").iterdir())[2:])
    for extra in extras:
        extra.unlink()
    cmd = [sys.executable, "-m", "generator", "site", "--quiet", "--no-download", "--data-dir", str(root / "data"),
           "--site-dir", str(root / "site"), "--cache-dir", str(root / "cache"), "--weights-dir", str(root / "w"),
           "--workers", "1", "--faithfulness-sample", "1", "--faithfulness-steps", "2"]
    subprocess.run(cmd, cwd=ROOT, check=True, capture_output=True, timeout=600)
    return root


@contextlib.contextmanager
def read_only(path: Path):
    """Make a folder read-only for the duration: chmod for an ordinary user; for root, who ignores permission
    bits, the immutable attribute (chattr +i). Skips the test with a reason where neither is possible."""
    path = Path(path)
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        path.chmod(mode & ~0o222)
        try:
            yield path
        finally:
            path.chmod(mode)
        return
    if subprocess.run(["chattr", "+i", str(path)], capture_output=True).returncode != 0:
        pytest.skip("cannot make a folder read-only for root here (chattr +i failed)")
    try:
        yield path
    finally:
        subprocess.run(["chattr", "-i", str(path)], check=True)


@pytest.fixture(scope="session")
def small_report(small_site):
    """(bundle, Report) of the small site's build, from its caches (the build's own pickles of them)."""
    import pickle

    settings, _run = small_site
    runs = Path(settings.cache_dir) / "runs"
    report = pickle.loads(max(runs.glob("*.report.pkl"), key=lambda p: p.stat().st_mtime).read_bytes())
    bundles = [p for p in runs.glob("*.pkl") if not p.name.endswith(".report.pkl")]
    bundle = pickle.loads(max(bundles, key=lambda p: p.stat().st_mtime).read_bytes())
    return bundle, report
