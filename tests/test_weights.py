"""Broken weights: every bad checkpoint or backbone weight file gives a WeightsError that names the file
(never a silently wrong model), and nothing is ever unpickled beyond tensors (weights_only=True)."""

from __future__ import annotations

import json
import pathlib
import shutil

import numpy as np
import pytest
import torch
from torch import nn

from generator import backbones, train
from generator.backbones import Backbone, WeightsError
from generator.cam import LinearHead
from generator.datasets import CLASSES


def tiny_backbone(name: str = "tiny") -> Backbone:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 6, 3, padding=1))
    return Backbone(name=name, model=model, taps=("0", "1"), tap_labels=("a", "b"), strides=(1, 1),
                    mean=(0.5,) * 3, std=(0.5,) * 3, weights_file="none", weights_sha256="0" * 64,
                    imagenet_classifier="1")


def meta_for(backbone: str = "tiny", classes=CLASSES) -> dict:
    return {"backbone": backbone, "backbone_weights_sha256": "0" * 64, "classes": list(classes),
            "input_size": 32, "mean": [0.5] * 3, "std": [0.5] * 3, "data_key": "k", "recipe": {}}


def heads_for(channels, n_classes: int = 2) -> list[LinearHead]:
    return [LinearHead(weight=torch.randn(n_classes, c), bias=torch.zeros(n_classes)) for c in channels]


class Evil:
    """Unpickling this would create a file: weights_only=True must refuse it."""

    def __init__(self, marker):
        self.marker = marker

    def __reduce__(self):
        return (pathlib.Path.touch, (pathlib.Path(self.marker),))


def test_good_checkpoint_round_trip(tmp_path):
    p = tmp_path / "ck.pt"
    heads = heads_for((4, 6))
    train.save_checkpoint(p, heads, meta_for())
    assert [f.name for f in tmp_path.iterdir()] == ["ck.pt"]  # no temporary file left behind
    got, meta = train.read_checkpoint(p)
    train.check_heads(p, got, tiny_backbone(), CLASSES, meta)
    assert meta == meta_for()
    assert all(torch.equal(a.weight, b.weight) for a, b in zip(got, heads))


def bad_checkpoints(tmp_path) -> dict[str, pathlib.Path]:
    good = tmp_path / "good.pt"
    train.save_checkpoint(good, heads_for((4, 6)), meta_for())
    raw = good.read_bytes()
    files = {}

    def put(name, data=None, obj=None):
        p = tmp_path / name
        if obj is not None:
            torch.save(obj, p)
        else:
            p.write_bytes(data)
        files[name] = p

    put("random.pt", bytes(np.random.default_rng(0).integers(0, 256, 4096, dtype=np.uint8)))
    put("empty.pt", b"")
    put("text.pt", b"this is not a checkpoint\n")
    put("truncated-half.pt", raw[: len(raw) // 2])
    put("truncated-tail.pt", raw[:-30])
    put("state-dict.pt", obj=nn.Linear(3, 2).state_dict())
    put("list.pt", obj=[torch.zeros(2)])
    put("tensor.pt", obj=torch.zeros(3))
    put("wrong-format.pt", obj={"format": 99, "meta_json": "{}", "heads": []})
    put("bad-json.pt", obj={"format": train.CHECKPOINT_FORMAT, "meta_json": "{not json", "heads": []})
    put("meta-list.pt", obj={"format": train.CHECKPOINT_FORMAT, "meta_json": "[1, 2]",
                             "heads": [{"weight": torch.zeros(2, 4), "bias": torch.zeros(2)}]})
    put("meta-incomplete.pt", obj={"format": train.CHECKPOINT_FORMAT, "meta_json": json.dumps({"backbone": "tiny"}),
                                   "heads": [{"weight": torch.zeros(2, 4), "bias": torch.zeros(2)}]})
    put("no-heads.pt", obj={"format": train.CHECKPOINT_FORMAT, "meta_json": json.dumps(meta_for()), "heads": []})
    put("heads-not-tensors.pt", obj={"format": train.CHECKPOINT_FORMAT, "meta_json": json.dumps(meta_for()),
                                     "heads": [{"weight": [1.0], "bias": 0.0}]})
    put("heads-missing-bias.pt", obj={"format": train.CHECKPOINT_FORMAT, "meta_json": json.dumps(meta_for()),
                                      "heads": [{"weight": torch.zeros(2, 4)}]})
    return files


def test_unreadable_or_foreign_checkpoints(tmp_path):
    for name, p in bad_checkpoints(tmp_path).items():
        with pytest.raises(WeightsError) as info:
            train.read_checkpoint(p)
        msg = str(info.value)
        assert str(p) in msg and "\n" not in msg, (name, msg)


def test_pickled_code_is_never_run(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pt"
    torch.save({"format": train.CHECKPOINT_FORMAT, "meta_json": "{}", "heads": Evil(marker)}, p)
    assert not marker.exists()
    with pytest.raises(WeightsError, match="evil.pt"):
        train.read_checkpoint(p)
    with pytest.raises(WeightsError, match="evil.pt"):
        backbones.load_state_dict(p)
    assert not marker.exists()


@pytest.mark.parametrize("case", ["other-classes", "other-backbone", "fewer-heads", "nan", "inf-bias",
                                  "meta-says-other-backbone", "meta-says-other-classes"])
def test_checkpoint_for_another_model(tmp_path, case):
    bb = tiny_backbone()
    heads, meta = heads_for((4, 6)), meta_for()
    if case == "other-classes":
        heads, meta = heads_for((4, 6), 3), meta_for(classes=("cat", "dog", "fox"))
    elif case == "other-backbone":
        heads = heads_for((64, 512))
    elif case == "fewer-heads":
        heads = heads_for((6,))
    elif case == "nan":
        heads[0].weight[0, 0] = float("nan")
    elif case == "inf-bias":
        heads[1].bias[1] = float("inf")
    elif case == "meta-says-other-backbone":
        meta = meta_for(backbone="resnet18")
    elif case == "meta-says-other-classes":
        meta = meta_for(classes=("dog", "cat"))
    p = tmp_path / f"{case}.pt"
    train.save_checkpoint(p, heads, meta)
    got, got_meta = train.read_checkpoint(p)
    with pytest.raises(WeightsError, match=str(p).replace(".", r"\.")):
        train.check_heads(p, got, bb, CLASSES, got_meta)


def test_mismatching_metadata_is_named():
    wanted = meta_for()
    assert train.mismatch(meta_for(), wanted) == []
    assert train.mismatch(dict(wanted, data_key="other"), wanted) == ["data_key"]
    assert train.mismatch(dict(wanted, classes=["dog", "cat"]), wanted) == ["classes"]


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
