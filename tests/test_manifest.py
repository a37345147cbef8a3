"""The manifest decides, before torch is imported, whether anything changed and what must be redone."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

from generator import manifest
from generator.config import make_settings
from generator.data.scan import scan_rows

ROOT = Path(__file__).resolve().parent.parent


def _data(tmp_path: Path) -> Path:
    for s in ("train/cats", "train/dogs", "test/cats"):
        (tmp_path / "data" / s).mkdir(parents=True)
        (tmp_path / "data" / s / "a.jpg").write_bytes(b"x" * 10)
    return tmp_path / "data"


def _make(tmp_path, **extra):
    data = _data(tmp_path) if not (tmp_path / "data").exists() else tmp_path / "data"
    s = make_settings(dict(data_dir=data, site_dir=tmp_path / "site", weights_dir=tmp_path / "w",
                           cache_dir=tmp_path / "cache", **extra))
    return manifest.make(scan_rows(s.data_dir, ["train", "test"]), s)


def test_same_inputs_same_keys(tmp_path):
    assert _make(tmp_path) == _make(tmp_path)


def test_a_changed_photo_changes_the_compute_key(tmp_path):
    before = _make(tmp_path)
    photo = tmp_path / "data" / "test" / "cats" / "a.jpg"
    photo.write_bytes(b"y" * 11)
    after = _make(tmp_path)
    assert after.compute != before.compute
    os.utime(photo, ns=(1, 1))  # same size, another modification time
    assert _make(tmp_path).compute != after.compute


def test_settings_land_in_the_right_key(tmp_path):
    base = _make(tmp_path)
    page_only = _make(tmp_path, page_size=50)
    assert page_only.compute == base.compute and page_only.figures == base.figures
    assert page_only.publish != base.publish
    language = _make(tmp_path, lang="ko")
    assert language.compute == base.compute and language.figures != base.figures
    numbers = _make(tmp_path, box_threshold=0.3)
    assert numbers.compute != base.compute


def test_cam_bf16_0_changes_the_compute_key_as_the_setting_does(tmp_path, monkeypatch):
    """Forcing bf16 off changes the numbers: a rerun with CAM_BF16=0 must not say "nothing changed"."""
    monkeypatch.delenv("CAM_BF16", raising=False)
    on, off = _make(tmp_path), _make(tmp_path, bf16=False)
    monkeypatch.setenv("CAM_BF16", "0")
    forced = _make(tmp_path)
    assert forced.compute == off.compute != on.compute


def test_the_check_imports_neither_torch_nor_pandas(tmp_path):
    _data(tmp_path)
    code = ("import sys; from generator import manifest; from generator.config import make_settings; "
            "from generator.data.scan import scan_rows; "
            f"s = make_settings({{'data_dir': {str(tmp_path / 'data')!r}, 'site_dir': {str(tmp_path / 'site')!r}}}); "
            "manifest.make(scan_rows(s.data_dir, ['train', 'test']), s); "
            "print('torch' in sys.modules, 'pandas' in sys.modules)")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, check=True).stdout
    assert out.split() == ["False", "False"]
