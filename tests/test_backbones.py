"""Backbones: taps and channels, the packaged EfficientNet-Lite0 weights, and the ResNet18 code path with local
files (its real ImageNet weights cannot be downloaded here)."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from generator import backbones


def test_efficientnet_lite0_loads_packaged_imagenet_weights():
    b = backbones.build_efficientnet_lite0()
    assert b.channels == (24, 40, 112, 1280)
    assert len(b.weights_sha256) == 64 and b.weights_file.endswith(".pth")
    # real ImageNet weights: scikit-image's Chelsea is a tabby/tiger/Egyptian cat (classes 281-285)
    from PIL import Image
    from skimage import data

    img = Image.fromarray(data.chelsea()).convert("RGB").resize((224, 224), Image.BICUBIC)
    x = torch.from_numpy(np.array(img)).permute(2, 0, 1).float().div(255)
    x = (x - 0.5) / 0.5
    with torch.no_grad():
        top = int(b.model(x[None]).argmax())
    assert 281 <= top <= 285


def test_resnet18_path_with_a_local_weights_file(tmp_path):
    import torchvision

    state = torchvision.models.resnet18(weights=None).state_dict()
    path = tmp_path / "my-resnet18.pth"
    torch.save(state, path)
    b = backbones.build_resnet18(path)
    assert b.taps == ("layer1", "layer2", "layer3", "layer4")
    assert b.channels == (64, 128, 256, 512)
    assert b.weights_sha256 == backbones.sha256_of(path)


def test_auto_prefers_resnet18_only_when_its_weights_are_on_disk(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    assert backbones.resolve_name("auto", tmp_path) == "efficientnet_lite0"
    (tmp_path / backbones.RESNET18_FILE).write_bytes(b"placeholder")
    assert backbones.resolve_name("auto", tmp_path) == "resnet18"
    assert backbones.resolve_name("efficientnet_lite0", tmp_path) == "efficientnet_lite0"


def test_resnet18_missing_weights_says_what_to_do(tmp_path, monkeypatch):
    monkeypatch.setattr(torch.hub, "get_dir", lambda: str(tmp_path / "hub"))
    with pytest.raises(backbones.WeightsError, match="make weights"):
        backbones.build("resnet18", tmp_path)


def test_download_verifies_the_hash(tmp_path, monkeypatch):
    """`make weights` fetches a URL and checks the file's hash: here from a local file:// URL whose content is
    not the real file, so the check must refuse it and leave nothing behind."""
    fake = tmp_path / "served.pth"
    torch.save({"w": torch.zeros(1)}, fake)
    monkeypatch.setattr(backbones, "RESNET18_URL", fake.as_uri())
    dest = tmp_path / "weights"
    with pytest.raises(RuntimeError, match="hash"):
        backbones.download_resnet18(dest)
    assert not (dest / backbones.RESNET18_FILE).exists()
