"""Backbones: taps and channels, the packaged EfficientNet-Lite0 weights, and the ResNet18 code path with local
files (its real ImageNet weights cannot be downloaded here)."""

from __future__ import annotations

import shutil

import numpy as np
import pytest
import torch
from torch import nn

from generator.files import file_sha256
from generator.model import backbones
from generator.model.backbones import WeightsError


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
    assert b.weights_sha256 == file_sha256(path)


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
    dest = tmp_path / "weights"
    with pytest.raises(WeightsError, match="does not match its hash"):
        backbones.download_resnet18(dest, url=fake.as_uri())
    assert not (dest / backbones.RESNET18_FILE).exists()


def test_download_offline_is_one_sentence(tmp_path):
    """No network: the error names the URL and both ways out (a network, or copying the file)."""
    import socket

    with socket.socket() as s:  # a port on this machine that nothing listens on
        s.bind(("127.0.0.1", 0))
        url = f"http://127.0.0.1:{s.getsockname()[1]}/resnet18-f37072fd.pth"
    with pytest.raises(WeightsError) as exc:
        backbones.download_resnet18(tmp_path / "weights", url=url)
    text = str(exc.value)
    assert url in text and "make weights" in text and "copy resnet18-f37072fd.pth" in text and "\n" not in text


@pytest.fixture(scope="module")
def lite0_file():
    try:
        return backbones.efficientnet_lite0_weights_path()
    except WeightsError as exc:
        pytest.skip(str(exc))


def test_efficientnet_loader_refuses_bad_files(tmp_path, lite0_file):
    raw = lite0_file.read_bytes()
    files = {
        "random.pth": bytes(range(256)) * 64,
        "empty.pth": b"",
        "truncated.pth": raw[: len(raw) // 3],
    }
    for name, data in files.items():
        (tmp_path / name).write_bytes(data)
    torch.save(nn.Linear(3, 2).state_dict(), tmp_path / "other-structure.pth")
    torch.save({"a": torch.zeros(1)}, tmp_path / "tiny-dict.pth")
    torch.save({}, tmp_path / "empty-dict.pth")
    torch.save([torch.zeros(1)], tmp_path / "list.pth")
    state = torch.load(lite0_file, map_location="cpu", weights_only=True)
    # same structure, one shape changed
    k0 = next(iter(state))
    torch.save(dict(state, **{k0: torch.zeros(1, 1)}), tmp_path / "wrong-shape.pth")
    # right shapes, poisoned values
    k_float = next(k for k, v in state.items() if v.is_floating_point())
    poisoned = dict(state)
    poisoned[k_float] = state[k_float].clone().fill_(float("nan"))
    torch.save(poisoned, tmp_path / "nan.pth")
    # a copy under the packaged name (carries the hash prefix) whose numbers were changed
    changed = dict(state)
    changed[k_float] = state[k_float] * 1.01
    torch.save(changed, tmp_path / lite0_file.name)
    (tmp_path / "sub").mkdir()
    shutil.copy(tmp_path / "truncated.pth", tmp_path / "sub" / lite0_file.name)
    bad = sorted(p for p in tmp_path.rglob("*.pth"))
    assert len(bad) == 11
    for p in bad:
        with pytest.raises(WeightsError) as info:
            backbones.build_efficientnet_lite0(weights=p)
        msg = str(info.value)
        assert str(p) in msg and "\n" not in msg, (p.name, msg)
        assert any(w in msg for w in ("delete it", "make setup", "get it again")), msg
    with pytest.raises(WeightsError, match="not found"):
        backbones.build_efficientnet_lite0(weights=tmp_path / "missing.pth")


def test_resnet_loader_refuses_foreign_file(tmp_path):
    p = tmp_path / "resnet18-f37072fd.pth"
    torch.save(nn.Linear(3, 2).state_dict(), p)
    with pytest.raises(WeightsError, match="resnet18-f37072fd.pth"):
        backbones.build_resnet18(p)
    q = tmp_path / "renamed.pth"
    shutil.copy(p, q)
    with pytest.raises(WeightsError, match="does not fit torchvision's resnet18"):
        backbones.build_resnet18(q)


def test_a_backbone_is_one_registered_function(tmp_path, monkeypatch):
    """The whole of adding a backbone: one function under @register_backbone. build, auto and the name check
    find it; the sentence for an unknown name lists it."""
    from generator.errors import SettingsError

    monkeypatch.setattr(backbones, "REGISTRY", dict(backbones.REGISTRY))  # registered for this test only
    net = nn.Sequential(nn.Conv2d(3, 4, 3, stride=2), nn.ReLU(), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 1000))

    @backbones.register_backbone("tiny", on_disk=lambda d: (d / "tiny.pt").is_file(), auto_rank=9)
    def tiny(weights_dir):
        return backbones.Backbone(name="tiny", model=net, taps=("0", "1"), tap_names=("stage 1", "stage 2"),
                                  strides=(2, 2), mean=(0.5,) * 3, std=(0.5,) * 3, weights_file="tiny.pt",
                                  weights_sha256="0" * 64)

    assert backbones.build("tiny", tmp_path).channels == (4, 4)
    assert backbones.resolve_name("auto", tmp_path) != "tiny"  # its weights are not on disk yet
    (tmp_path / "tiny.pt").write_bytes(b"x")
    assert backbones.resolve_name("auto", tmp_path) == "tiny" and backbones.build("auto", tmp_path).name == "tiny"
    with pytest.raises(SettingsError, match=r"^setting backbone = 'vgg' is not allowed: use one of auto, "
                                            r"efficientnet_lite0, resnet18, tiny\.$"):
        backbones.check_name("vgg")
    with pytest.raises(ValueError, match="registered twice"):
        backbones.register_backbone("tiny")(tiny)
