"""Bring your own classifier: loading (torchvision, timm, TorchScript), head and tap finding, CAM of the found
head, each bad input as one sentence, and end-to-end builds on a few real photos. Every model is tiny, built and
saved by the test itself (never downloaded)."""

from __future__ import annotations

import warnings
from pathlib import Path

import pytest
import torch
from fixtures_models import build_numerics
from torch import nn

from generator.config import make_settings
from generator.errors import SettingsError, UserError
from generator.model import external
from generator.model.backbones import WeightsError

warnings.filterwarnings("ignore", category=FutureWarning)  # torch.jit's deprecation notes
CLASSES3 = ("a", "b", "c")


def settings_for(tmp_path, model: str, weights, **extra):
    return make_settings(dict(model=model, model_weights=str(weights), data_dir=tmp_path / "data",
                              site_dir=tmp_path / "site", weights_dir=tmp_path / "w", cache_dir=tmp_path / "c",
                              input_size=64, **extra))


def torchvision_resnet(tmp_path, k: int = 3):
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=k).eval()
    path = tmp_path / "resnet18-own.pth"
    torch.save(net.state_dict(), path)
    return net, path


def timm_resnet(tmp_path, k: int = 3):
    import timm

    torch.manual_seed(0)
    net = timm.create_model("resnet10t", pretrained=False, num_classes=k).eval()
    path = tmp_path / "resnet10t-own.pth"
    torch.save(net.state_dict(), path)
    return net, path


def cam_by_hand(net: nn.Module, layer: str, fc: nn.Linear, x: torch.Tensor) -> torch.Tensor:
    """features @ fc weights at `layer`, read with our own hook: (B, K, H, W)."""
    store = {}
    h = dict(net.named_modules())[layer].register_forward_hook(lambda _m, _i, o: store.__setitem__("f", o))
    with torch.no_grad():
        net(x)
    h.remove()
    return torch.einsum("kc,bchw->bkhw", fc.weight, store["f"])


def test_torchvision_architecture_with_its_state_dict(tmp_path):
    net, path = torchvision_resnet(tmp_path)
    logs = []
    b = external.build_backbone(settings_for(tmp_path, "torchvision:resnet18", path), CLASSES3, logs.append)
    assert b.taps == ("layer1", "layer2", "layer3", "layer4")  # the end of each stage
    assert b.strides == (4, 8, 16, 32)
    assert b.head is not None and torch.equal(b.head.weight, net.fc.weight) and torch.equal(b.head.bias, net.fc.bias)
    assert b.mean == (0.485, 0.456, 0.406) and not b.imagenet and b.name == "own_torchvision_resnet18"
    assert any("torchvision's" in m for m in logs)  # where the normalisation came from
    from generator.files import file_sha256

    assert b.weights_sha256 == file_sha256(path)
    # the loaded network is the saved one: the same logits
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        assert torch.equal(b.model(x), net(x))


def test_timm_architecture_with_its_state_dict(tmp_path):
    net, path = timm_resnet(tmp_path)
    logs = []
    b = external.build_backbone(settings_for(tmp_path, "timm:resnet10t", path), CLASSES3, logs.append)
    assert b.taps[-1] == "layer4" and len(b.taps) == 4
    assert b.head is not None and torch.equal(b.head.weight, net.fc.weight)
    assert any("timm's config" in m for m in logs)
    assert any("--input-size 176" in m for m in logs)  # timm configures 176 px; this build said 64


@pytest.mark.parametrize("make", [torchvision_resnet, timm_resnet])
def test_cam_of_the_found_head_equals_features_times_fc_weights(tmp_path, make):
    from generator.explain.explainer import Explainer
    from generator.explain.methods import get
    from generator.model.heads import LinearHead

    net, path = make(tmp_path)
    model = "torchvision:resnet18" if make is torchvision_resnet else "timm:resnet10t"
    b = external.build_backbone(settings_for(tmp_path, model, path), CLASSES3, lambda _m: None)
    x = torch.randn(1, 3, 96, 96, generator=torch.Generator().manual_seed(1))
    probes = [LinearHead(torch.zeros(3, c), torch.zeros(3)) for c in b.channels[:-1]]
    with Explainer(b.model, b.taps, [*probes, b.head], [get("cam")]) as ex:
        got = ex(x)
    want = cam_by_hand(net, b.taps[-1], net.fc, x)
    # float32: the einsum is the same product in both; the identity mean(CAM) + b = logit holds to float32 rounding
    # of a sum over ~500 channels (relative 1e-5)
    torch.testing.assert_close(got.maps["cam"][-1], want, rtol=1e-5, atol=1e-5)
    with torch.no_grad():
        logits = net(x)
    torch.testing.assert_close(got.logits, logits, rtol=1e-4, atol=1e-4)
    torch.testing.assert_close(want.mean(dim=(2, 3)) + net.fc.bias, logits, rtol=1e-4, atol=1e-4)


def test_torchscript_model(tmp_path):
    import torchvision

    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=3).eval()
    path = tmp_path / "model.pt"
    torch.jit.save(torch.jit.script(net), str(path))
    b = external.build_backbone(settings_for(tmp_path, "torchscript", path), CLASSES3, lambda _m: None)
    assert b.taps == ("layer1", "layer2", "layer3", "layer4")
    assert b.head is not None and torch.equal(b.head.weight, net.fc.weight)
    assert b.mean == external.IMAGENET_MEAN  # TorchScript carries no config: ImageNet's, said in the log
    x = torch.randn(2, 3, 64, 64)
    with torch.no_grad():
        torch.testing.assert_close(b.model(x), net(x), rtol=1e-5, atol=1e-5)
    # the taps are readable with hooks (TorchScript itself refuses them)
    from generator.model.taps import recording

    with recording(b.model, b.taps) as store, torch.no_grad():
        b.model(x)
    assert tuple(store["layer4"].shape) == (2, 512, 2, 2)


class PoolNormHead(nn.Module):
    """A CNN whose head is pooling, then a LayerNorm, then a Linear (as ConvNeXt's): not pooling + linear."""

    def __init__(self, k: int = 2) -> None:
        super().__init__()
        self.stem = nn.Sequential(nn.Conv2d(3, 8, 3, stride=2, padding=1), nn.ReLU())
        self.stage = nn.Sequential(nn.Conv2d(8, 16, 3, stride=2, padding=1), nn.ReLU())
        self.norm = nn.LayerNorm(16)
        self.fc = nn.Linear(16, k)

    def forward(self, x):
        return self.fc(self.norm(self.stage(self.stem(x)).mean(dim=(2, 3))))


def test_a_head_that_is_not_pool_plus_linear_gives_no_cam(tmp_path):
    found = external.find_structure(PoolNormHead().eval())
    assert found.head is None and "global average pool" in found.no_cam_reason
    assert found.taps == ("stem", "stage")


def test_named_taps(tmp_path):
    net, path = torchvision_resnet(tmp_path)
    b = external.build_backbone(settings_for(tmp_path, "torchvision:resnet18", path, taps="layer3,layer4"),
                                CLASSES3, lambda _m: None)
    assert b.taps == ("layer3", "layer4") and b.strides == (16, 32)


def test_a_tap_name_that_is_not_a_module_is_one_sentence(tmp_path):
    net, path = torchvision_resnet(tmp_path)
    with pytest.raises(UserError, match=r"setting taps names 'layer9', which is not a module"):
        external.build_backbone(settings_for(tmp_path, "torchvision:resnet18", path, taps="layer2,layer9"),
                                CLASSES3, lambda _m: None)
    with pytest.raises(UserError, match=r"the last tap must be 'layer4'"):
        external.build_backbone(settings_for(tmp_path, "torchvision:resnet18", path, taps="layer2,layer3"),
                                CLASSES3, lambda _m: None)


def test_a_state_dict_of_another_shape_names_the_tensor(tmp_path):
    import torchvision

    state = torchvision.models.resnet18(num_classes=3).state_dict()
    state["layer2.0.conv1.weight"] = torch.zeros(128, 64, 5, 5)
    path = tmp_path / "bad.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"tensor layer2\.0\.conv1\.weight has shape \(128, 64, 5, 5\), the "
                                           r"architecture needs \(128, 64, 3, 3\)") as err:
        external.build_backbone(settings_for(tmp_path, "torchvision:resnet18", path), CLASSES3, lambda _m: None)
    assert str(err.value).count(". ") == 0  # one sentence


def test_missing_and_unexpected_tensors_are_named(tmp_path):
    import torchvision

    state = torchvision.models.resnet18(num_classes=3).state_dict()
    del state["bn1.running_mean"]
    path = tmp_path / "missing.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"tensor bn1\.running_mean is missing"):
        external.build_backbone(settings_for(tmp_path, "torchvision:resnet18", path), CLASSES3, lambda _m: None)
    state = torchvision.models.resnet18(num_classes=3).state_dict()
    state["extra.weight"] = torch.zeros(1)
    path = tmp_path / "extra.pth"
    torch.save(state, path)
    with pytest.raises(WeightsError, match=r"tensor extra\.weight is not in the architecture"):
        external.build_backbone(settings_for(tmp_path, "torchvision:resnet18", path), CLASSES3, lambda _m: None)


def test_a_checkpoint_of_another_number_of_classes_is_one_sentence(tmp_path):
    _net, path = torchvision_resnet(tmp_path, k=5)
    with pytest.raises(WeightsError, match=r"made for 5 classes \(tensor fc\.weight has shape \(5, 512\)\), but the "
                                           r"training set has 3"):
        external.build_backbone(settings_for(tmp_path, "torchvision:resnet18", path), CLASSES3, lambda _m: None)
    net = torch.jit.script(PoolNormHead(k=5).eval())
    ts = tmp_path / "k5.pt"
    torch.jit.save(net, str(ts))
    with pytest.raises(UserError, match=r"the model has 5 outputs, but the training set has 3 classes"):
        external.build_backbone(settings_for(tmp_path, "torchscript", ts), CLASSES3, lambda _m: None)


class NotAClassifier(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 4, 3)

    def forward(self, x):
        return self.conv(x)


def test_a_torchscript_file_that_is_not_a_classifier_is_one_sentence(tmp_path):
    path = tmp_path / "seg.pt"
    torch.jit.save(torch.jit.script(NotAClassifier().eval()), str(path))
    with pytest.raises(UserError, match=r"returns a tensor of shape \(2, 4, 62, 62\), not \(photos, classes\) "
                                        r"logits"):
        external.build_backbone(settings_for(tmp_path, "torchscript", path), CLASSES3, lambda _m: None)
    junk = tmp_path / "junk.pt"
    junk.write_bytes(b"not a model")
    with pytest.raises(WeightsError, match=r"cannot be read as a TorchScript file"):
        external.build_backbone(settings_for(tmp_path, "torchscript", junk), CLASSES3, lambda _m: None)


def test_settings_of_the_own_model_are_checked(tmp_path):
    _net, path = torchvision_resnet(tmp_path)
    with pytest.raises(SettingsError, match=r"setting model = 'resnet18' is not allowed"):
        settings_for(tmp_path, "resnet18", path)
    with pytest.raises(SettingsError, match=r"needs setting model_weights"):
        make_settings(dict(model="torchscript"))
    with pytest.raises(SettingsError, match=r"setting model_mean = '0.5,0.5' is not allowed"):
        settings_for(tmp_path, "torchscript", path, model_mean="0.5,0.5")
    with pytest.raises(SettingsError, match=r"brings its own trained head"):
        settings_for(tmp_path, "torchscript", path, recipe="finetune")
    with pytest.raises(SettingsError, match=r"runs on the local engine only"):
        settings_for(tmp_path, "torchscript", path, engine="ray")
    with pytest.raises(SettingsError, match=r"give setting model too"):
        make_settings(dict(taps="layer4"))
    with pytest.raises(UserError, match=r"timm has no architecture of that name"):
        external.build_backbone(settings_for(tmp_path, "timm:no_such_net", path), CLASSES3, lambda _m: None)
    s = settings_for(tmp_path, "torchvision:resnet18", path, model_mean="0.5,0.5,0.5", model_std="0.25,0.25,0.25")
    b = external.build_backbone(s, CLASSES3, lambda _m: None)
    assert b.mean == (0.5, 0.5, 0.5) and b.std == (0.25, 0.25, 0.25)


def test_end_to_end_with_a_users_torchvision_model(tmp_path):
    """A build on a few real photos with a user's own (random-weight) torchvision ResNet18 file: results.csv holds
    the model's own predictions and every photo page carries the CAM of its head."""
    import json
    import re

    import torchvision
    from conftest import make_small_data, small_settings

    from generator.build import build_site
    from generator.explain.overlay import decode_maps
    from generator.frames import pd

    data = make_small_data(tmp_path, n_train=6, n_test=3)
    torch.manual_seed(0)
    net = torchvision.models.resnet18(num_classes=2).eval()
    weights = tmp_path / "mine.pth"
    torch.save(net.state_dict(), weights)
    settings = small_settings(tmp_path, data, model="torchvision:resnet18", model_weights=str(weights), input_size=64,
                              faithfulness_sample=2)
    logs = []
    run = build_site(settings, log=logs.append, progress=False)
    assert run["backbone"] == "own_torchvision_resnet18"
    assert list(run["tap_modules"]) == ["layer1", "layer2", "layer3", "layer4"]
    assert any(m.startswith("CAM head: fc over the pooled layer4") for m in logs)
    assert not any("fitting the head" in m for m in logs)  # the model's own head: nothing trained but the probes
    df = pd.read_csv(Path(settings.site_dir) / "results.csv", keep_default_na=False)
    shown = df[(df["set"] != "train") & (df["status"] == "ok")]
    assert len(shown) == 6 + 6 + 4
    # the model's own logits decide: recompute one test photo's probabilities from the saved network
    from generator.data.imaging import decode_bytes, read_image_file

    row = shown[shown["set"] == "test"].iloc[0]
    path = data / row["set"] / row["file"]
    arr = decode_bytes(read_image_file(path, settings.max_pixels), 64, settings.display_size,
                       settings.max_pixels).model_input  # as the explain stage decodes it
    x = torch.from_numpy(arr).permute(2, 0, 1).float()[None] / 255
    mean, std = torch.tensor((0.485, 0.456, 0.406)), torch.tensor((0.229, 0.224, 0.225))  # torchvision's
    x = (x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)
    numerics, tol = build_numerics(settings)  # float32, or bf16 autocast where the build runs it
    with torch.no_grad(), numerics:
        p = net(x).float().softmax(1)[0]
    assert abs(float(row["p_cat"]) - float(p[0])) < tol
    assert row["prediction"] == ("cat" if p[0] > p[1] else "dog")
    for page in shown["page"]:
        text = (Path(settings.site_dir) / page).read_text(encoding="utf-8")
        payload = json.loads(re.search(r'<script type="application/json" id="photo-data">(.*?)</script>', text,
                                       re.S).group(1))["payload"]
        keys = {k for k, _ in decode_maps(payload)}
        assert {"cam/3/0", "cam/3/1", "gradcam/3"} <= keys
        assert "ImageNet head sees" not in text  # the user's model has no ImageNet head to ask
    errors = (Path(settings.site_dir) / "errors.html").read_text(encoding="utf-8")
    assert "None of the classes" in errors and "Neither cat nor dog" not in errors  # 'neither' from its own MSP
    overview = (Path(settings.site_dir) / "overview.html").read_text(encoding="utf-8")
    assert "Your own classifier (torchvision:resnet18, file mine.pth) with its own head" in overview
    # the model file's content keys every cache: other weights in the same file give other records and numbers
    torch.manual_seed(1)
    torch.save(torchvision.models.resnet18(num_classes=2).state_dict(), weights)
    logs.clear()
    run2 = build_site(settings, log=logs.append, progress=False)
    assert run2["model_fingerprint"] != run["model_fingerprint"]
    assert any("made for other backbone_weights_sha256" in m for m in logs)  # the probes' checkpoint is refitted
    df2 = pd.read_csv(Path(settings.site_dir) / "results.csv", keep_default_na=False)
    assert (df2.loc[df2["page"] != "", "p_cat"].to_numpy() != shown["p_cat"].to_numpy()).all()


def convnext_no_cam(tmp_path, k: int):
    """A timm ConvNeXt (random weights) saved as a state dict: it pools, normalises, then applies its Linear."""
    import timm

    torch.manual_seed(0)
    net = timm.create_model("convnext_atto", pretrained=False, num_classes=k).eval()
    path = tmp_path / "convnext.pth"
    torch.save(net.state_dict(), path)
    return net, path


def test_a_timm_model_whose_head_is_not_pool_plus_linear(tmp_path):
    """ConvNeXt pools, then normalises, then applies its Linear: its taps are found, its head gives no CAM, and
    the modules of its head (after the last tap) are named, for the sanity check to re-initialise."""
    net, path = convnext_no_cam(tmp_path, 3)
    s = settings_for(tmp_path, "timm:convnext_atto", path)
    logs = []
    b = external.build_backbone(s, CLASSES3, logs.append)
    assert b.head is None and b.no_cam_reason == "its linear layer is not fed by the global average pool of a " \
                                                 "feature map"
    # the last stage ends with the container of all stages (the same tensor as stages.3 gives)
    assert b.taps == ("stages.0", "stages.1", "stages.2", "stages") and b.strides == (4, 8, 16, 32)
    assert {"head.norm", "head.fc"} <= set(b.head_modules) and not any(m.startswith("stages") for m in b.head_modules)
    assert any(m.startswith("no CAM head:") for m in logs)


NO_CAM_SENTENCE = {"en": "This model has no CAM at the last stage", "ko": "이 모델은 마지막 스테이지에 CAM이 없습니다"}


@pytest.fixture(scope="module")
def no_cam_site(tmp_path_factory):
    """One build on a few real photos (the personal set with its ground truth, where the datasets have it) with a
    user's ConvNeXt, whose head is not pool + linear: (settings, run, data folder, network, weights file, logs)."""
    from conftest import PERSONAL_TRUTH, make_small_data, small_settings

    from generator.build import build_site

    root = tmp_path_factory.mktemp("nocam")
    data = make_small_data(root, n_train=6, n_test=3)
    net, weights = convnext_no_cam(root, 2)
    extra = {"annotations": (f"personal={PERSONAL_TRUTH}",)} if PERSONAL_TRUTH.is_file() else {}
    settings = small_settings(root, data, model="timm:convnext_atto", model_weights=str(weights), input_size=64,
                              faithfulness_sample=2, **extra)
    logs = []
    run = build_site(settings, log=logs.append, progress=False)
    return settings, run, data, net, weights, logs


def test_end_to_end_with_a_model_whose_head_is_not_pool_plus_linear(no_cam_site):
    """A build with a user's ConvNeXt (no pool + linear head) exits cleanly: predictions are the model's own, the
    last stage has gradient maps and no CAM, the earlier stages keep their probes' CAM, and every page that would
    show the last stage's CAM says in one sentence why it is absent, in both languages."""
    import json
    import re

    from generator.__main__ import main
    from generator.explain.overlay import decode_maps
    from generator.frames import pd

    settings, run, data, net, weights, logs = no_cam_site
    assert run["backbone"] == "own_timm_convnext_atto"
    assert any(m.startswith("no CAM head: its linear layer is not fed") for m in logs)
    site = Path(settings.site_dir)
    df = pd.read_csv(site / "results.csv", keep_default_na=False)
    shown = df[(df["set"] != "train") & (df["status"] == "ok")]
    assert len(shown) == 6 + 6 + 4
    # the model's own logits decide: one test photo's probabilities recomputed from the saved network
    from generator.data.imaging import decode_bytes, read_image_file

    row = shown[shown["set"] == "test"].iloc[0]
    arr = decode_bytes(read_image_file(data / row["set"] / row["file"], settings.max_pixels), 64,
                       settings.display_size, settings.max_pixels).model_input
    x = torch.from_numpy(arr.copy()).permute(2, 0, 1).float()[None] / 255
    mean, std = torch.tensor(external.IMAGENET_MEAN), torch.tensor(external.IMAGENET_STD)  # timm's ConvNeXt's
    numerics, tol = build_numerics(settings)  # float32, or bf16 autocast where the build runs it
    with torch.no_grad(), numerics:
        p = net((x - mean.view(1, 3, 1, 1)) / std.view(1, 3, 1, 1)).float().softmax(1)[0]
    assert abs(float(row["p_cat"]) - float(p[0])) < tol
    for col in ("box_area", "box_mass", "box3_area", "box0_area"):  # boxes of the gradient map, not NaN
        assert pd.to_numeric(shown[col]).notna().all(), col
    for page in shown["page"]:
        text = (site / page).read_text(encoding="utf-8")
        payload = json.loads(re.search(r'<script type="application/json" id="photo-data">(.*?)</script>', text,
                                       re.S).group(1))["payload"]
        keys = {k for k, _ in decode_maps(payload)}
        assert "gradcam/3" in keys and "cam/2/0" in keys  # the gradient map at the last stage, CAM before it
        assert not any(k.startswith("cam/3/") for k in keys)  # no CAM data for the last stage
        assert NO_CAM_SENTENCE["en"] in text and "its linear layer is not fed by the global average pool" in text
        assert text.count(NO_CAM_SENTENCE["en"]) == 1
        controls = re.search(r'<fieldset class="seg"><legend>Method</legend>(.*?)</fieldset>', text, re.S).group(1)
        assert 'value="cam"' not in controls and 'value="gradcam" checked' in controls  # drawn first: Grad-CAM
        assert "NaN" not in text and ">nan<" not in text
    for page in ("methods.html", "report.html", "sets/test/index.html", "errors.html", "overview.html",
                 "layers.html"):
        text = (site / page).read_text(encoding="utf-8")
        assert NO_CAM_SENTENCE["en"] in text, page
        assert "NaN" not in text and ">nan<" not in text and ">inf<" not in text, page
    methods = (site / "methods.html").read_text(encoding="utf-8")
    board = re.search(r'<table class="data board">(.*?)</table>', methods, re.S).group(1)
    assert "<th scope=\"row\">CAM</th>" not in board and "Grad-CAM" in board  # CAM's row absent, not zero
    # the same build in Korean, from the command line: it exits 0 (the maps come from the cache) and says it too
    argv = ["site", "--lang", "ko", "--data-dir", str(data), "--site-dir", str(site),
            "--weights-dir", str(settings.weights_dir), "--cache-dir", str(settings.cache_dir),
            "--model", "timm:convnext_atto", "--model-weights", str(weights), "--input-size", "64",
            "--faithfulness-sample", "2", "--workers", "2", "--batch-size", "8", "--layer-sample", "2",
            "--figure-sample", "8", "--faithfulness-steps", "8", *(f"--annotations={a}" for a in settings.annotations)]
    try:
        assert main(argv) == 0
        ko = (site / shown["page"].iloc[0]).read_text(encoding="utf-8")
        assert NO_CAM_SENTENCE["ko"] in ko and NO_CAM_SENTENCE["en"] not in ko
        assert "선형 레이어의 입력이 특징 맵의 전역 평균 풀링이 아닙니다" in ko  # the reason, translated too
    finally:  # the English site again, for the browser test of this module
        assert main([a for a in argv if a not in ("--lang", "ko")]) == 0


def test_the_photo_page_of_a_model_without_cam_in_a_browser(no_cam_site):
    """The photo page draws Grad-CAM at the last stage by default, its layer strip has no CAM cell there, and axe
    finds no WCAG 2 A/AA violation on it (light and dark)."""
    import chromium

    chromium.require()
    from generator.frames import pd

    axe = Path(__file__).resolve().parents[1] / "node_modules" / "axe-core" / "axe.min.js"
    if not axe.is_file():
        pytest.skip(f"axe-core is not installed at {axe} (make test installs it with npm)")
    settings = no_cam_site[0]
    site = Path(settings.site_dir).resolve()
    df = pd.read_csv(site / "results.csv", keep_default_na=False)
    page_rel = df[(df["set"] == "test") & (df["status"] == "ok")]["page"].iloc[0]
    for browser in chromium.launch():
        for scheme in ("light", "dark"):
            ctx = browser.new_context(viewport={"width": 1280, "height": 900}, color_scheme=scheme)
            page = ctx.new_page()
            page.goto((site / page_rel).as_uri())
            page.wait_for_function("() => document.getElementById('main-view').getAttribute('data-view')")
            assert page.get_attribute("#main-view", "data-view").startswith("gradcam:")
            assert not page.locator("#heat").is_hidden()
            cam_row = page.locator("table.strip tr", has=page.locator("th", has_text="CAM")).first
            cells = cam_row.locator("td").all()
            assert cam_row.locator("th").inner_text() == "CAM" and cells[-1].inner_text() == "–"
            assert all(c.locator("canvas").count() == 1 for c in cells[:-1])  # CAM at the earlier stages
            page.add_script_tag(path=str(axe))
            result = page.evaluate("() => axe.run(document, {runOnly: {type: 'tag', values: ['wcag2a', 'wcag2aa']}})")
            assert [(v["id"], [n["target"] for n in v["nodes"]][:3]) for v in result["violations"]] == []
            page.goto((site / "layers.html").as_uri())  # the layer strips there: no CAM cell at the last stage
            row = page.locator("table.strip tr", has=page.locator("th", has_text="CAM")).first
            row.wait_for()
            assert row.locator("td").all()[-1].inner_text() == "–"
            ctx.close()
