"""generator/model/checkpoint.py: every bad checkpoint gives a WeightsError that names the file (never a silently wrong
model), nothing is ever unpickled beyond tensors (weights_only=True), and a checkpoint is reused only when it was
made for exactly this backbone, data and recipe."""

from __future__ import annotations

import json
import pathlib

import numpy as np
import pytest
import torch
from torch import nn

from generator.data.scan import DEFAULT_CLASSES as CLASSES
from generator.model import backbones, checkpoint
from generator.model.backbones import Backbone, WeightsError
from generator.model.heads import LinearHead


def tiny_backbone(name: str = "tiny") -> Backbone:
    model = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.Conv2d(4, 6, 3, padding=1))
    return Backbone(name=name, model=model, taps=("0", "1"), tap_names=("a", "b"), strides=(1, 1),
                    mean=(0.5,) * 3, std=(0.5,) * 3, weights_file="none", weights_sha256="0" * 64)


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
    checkpoint.save_checkpoint(p, heads, meta_for())
    assert [f.name for f in tmp_path.iterdir()] == ["ck.pt"]  # no temporary file left behind
    got, meta = checkpoint.read_checkpoint(p)
    checkpoint.check_heads(p, got, tiny_backbone(), CLASSES, meta)
    assert meta == meta_for()
    assert all(torch.equal(a.weight, b.weight) for a, b in zip(got, heads))


def bad_checkpoints(tmp_path) -> dict[str, pathlib.Path]:
    good = tmp_path / "good.pt"
    checkpoint.save_checkpoint(good, heads_for((4, 6)), meta_for())
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
    put("bad-json.pt", obj={"format": checkpoint.CHECKPOINT_FORMAT, "meta_json": "{not json", "heads": []})
    put("meta-list.pt", obj={"format": checkpoint.CHECKPOINT_FORMAT, "meta_json": "[1, 2]",
                             "heads": [{"weight": torch.zeros(2, 4), "bias": torch.zeros(2)}]})
    put("meta-incomplete.pt", obj={"format": checkpoint.CHECKPOINT_FORMAT,
                                   "meta_json": json.dumps({"backbone": "tiny"}),
                                   "heads": [{"weight": torch.zeros(2, 4), "bias": torch.zeros(2)}]})
    put("no-heads.pt", obj={"format": checkpoint.CHECKPOINT_FORMAT, "meta_json": json.dumps(meta_for()), "heads": []})
    put("heads-not-tensors.pt", obj={"format": checkpoint.CHECKPOINT_FORMAT, "meta_json": json.dumps(meta_for()),
                                     "heads": [{"weight": [1.0], "bias": 0.0}]})
    put("heads-missing-bias.pt", obj={"format": checkpoint.CHECKPOINT_FORMAT, "meta_json": json.dumps(meta_for()),
                                      "heads": [{"weight": torch.zeros(2, 4)}]})
    return files


def test_unreadable_or_foreign_checkpoints(tmp_path):
    for name, p in bad_checkpoints(tmp_path).items():
        with pytest.raises(WeightsError) as info:
            checkpoint.read_checkpoint(p)
        msg = str(info.value)
        assert str(p) in msg and "\n" not in msg, (name, msg)


def test_pickled_code_is_never_run(tmp_path):
    marker = tmp_path / "pwned"
    p = tmp_path / "evil.pt"
    torch.save({"format": checkpoint.CHECKPOINT_FORMAT, "meta_json": "{}", "heads": Evil(marker)}, p)
    assert not marker.exists()
    with pytest.raises(WeightsError, match="evil.pt"):
        checkpoint.read_checkpoint(p)
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
    checkpoint.save_checkpoint(p, heads, meta)
    got, got_meta = checkpoint.read_checkpoint(p)
    with pytest.raises(WeightsError, match=str(p).replace(".", r"\.")):
        checkpoint.check_heads(p, got, bb, CLASSES, got_meta)


def test_mismatching_metadata_is_named():
    wanted = meta_for()
    assert checkpoint.mismatch(meta_for(), wanted) == []
    assert checkpoint.mismatch(dict(wanted, data_key="other"), wanted) == ["data_key"]
    assert checkpoint.mismatch(dict(wanted, classes=["dog", "cat"]), wanted) == ["classes"]




def test_two_class_heads_are_mirror_images():
    """An L2 logistic regression on two classes, fitted from zero, has w_cat = -w_dog and b_cat = -b_dog: the
    map of one class is the negated map of the other (what the site states and the payload exploits)."""
    from generator.model.train import fit_logistic

    rng = np.random.default_rng(0)
    x = rng.normal(size=(120, 5)).astype(np.float32)
    y = (x[:, 0] + 0.3 * rng.normal(size=120) > 0).astype(int)
    head = fit_logistic(x, y, 2, 1e-2)
    assert max(checkpoint.antisymmetry([head])) < 1e-6
    lopsided = LinearHead(weight=head.weight * torch.tensor([[1.0], [0.5]]), bias=head.bias)
    assert max(checkpoint.antisymmetry([lopsided])) > 0.1


def test_only_a_checkpoint_this_tool_wrote_is_replaced(tmp_path):
    """At the checkpoint's path, a file of ours that does not fit is retrained and replaced; anything else (damaged,
    or someone else's file) stops the build with one sentence and is left byte-identical."""
    logged = []
    ours = {"wrong-format.pt", "bad-json.pt", "meta-list.pt", "meta-incomplete.pt", "no-heads.pt",
            "heads-not-tensors.pt", "heads-missing-bias.pt"}
    for name, p in bad_checkpoints(tmp_path).items():
        before = p.read_bytes()
        if name in ours:
            assert checkpoint.load_matching(p, tiny_backbone(), meta_for(), log=logged.append) is None, name
            assert logged[-1].endswith("; retraining and replacing it.")
            continue
        with pytest.raises(WeightsError) as info:
            checkpoint.load_matching(p, tiny_backbone(), meta_for(), log=logged.append)
        msg = str(info.value)
        assert msg.startswith(f"{p}: ") and msg.endswith("a build never overwrites a file it did not write, so "
                                                         "move that file away or choose another --weights-dir."), msg
        assert p.read_bytes() == before


def test_checkpoints_of_other_classes_have_names_of_their_own(tmp_path):
    assert checkpoint.checkpoint_path(tmp_path, "resnet18", ("cat", "dog")).name == "catdog-resnet18.pt"
    three = checkpoint.checkpoint_path(tmp_path, "resnet18", ("a", "b", "c"))
    other = checkpoint.checkpoint_path(tmp_path, "resnet18", ("a", "c", "b"))  # the same names in another order
    assert three.name.startswith("k3-") and three.name.endswith("-resnet18.pt") and three != other
    from generator.manifest import FITTED

    assert all(FITTED.match(p.name) for p in (three, other, tmp_path / "catdog-resnet18.pt"))
    assert not FITTED.match("resnet18-f37072fd.pth")


def test_a_checkpoint_of_another_class_list_is_one_sentence(tmp_path):
    """A two-class checkpoint met by a three-class build: check_heads says so in one sentence naming both lists;
    load_matching replaces its own file with that sentence logged."""
    p = tmp_path / "ck.pt"
    checkpoint.save_checkpoint(p, heads_for((4, 6)), meta_for())
    got, meta = checkpoint.read_checkpoint(p)
    with pytest.raises(WeightsError) as exc:
        checkpoint.check_heads(p, got, tiny_backbone(), ("a", "b", "c"), meta)
    assert str(exc.value) == f"{p}: made for 2 classes (cat, dog), not for the 3 of this training set (a, b, c)"
    with pytest.raises(WeightsError, match="head 0 has shape"):  # the metadata agrees, the shapes do not
        checkpoint.check_heads(p, got, tiny_backbone(), ("a", "b", "c"), None)
    logged: list[str] = []
    assert checkpoint.load_matching(p, tiny_backbone(), meta_for(classes=("a", "b", "c")), log=logged.append) is None
    assert len(logged) == 1 and "made for 2 classes" in logged[0] and "retraining" in logged[0]


def test_a_tuned_checkpoint_keeps_its_network_and_its_weights_enter_the_fingerprint(tmp_path):
    """The tuned state dict comes back into a fresh network; a probe checkpoint's fingerprint is what it was
    (no tuned weights), a tuned one's changes with the tuned weights; a swapped tensor is refused by its hash."""
    tuned = tiny_backbone()
    with torch.no_grad():
        tuned.model[0].weight.add_(1.0)
    state = tuned.model.state_dict()
    meta = dict(meta_for(), **{checkpoint.TUNED: checkpoint.state_sha256(state)})
    p = tmp_path / "tuned.pt"
    checkpoint.save_checkpoint(p, heads_for((4, 6)), meta, tuned=state)
    fresh = tiny_backbone()
    _, got = checkpoint.read_checkpoint(p)
    checkpoint.load_tuned(p, fresh, got)
    assert all(torch.equal(v, fresh.model.state_dict()[k]) for k, v in state.items())

    plain = meta_for()
    assert checkpoint.identity_hash(plain, 16) == checkpoint.identity_hash(dict(plain, **{checkpoint.TUNED: ""}), 16)
    other = dict(meta, **{checkpoint.TUNED: checkpoint.state_sha256(tiny_backbone().model.state_dict())})
    assert len({checkpoint.identity_hash(m, 16) for m in (plain, meta, other)}) == 3

    swapped = dict(state, **{"0.weight": state["0.weight"] * 2})
    q = tmp_path / "swapped.pt"
    checkpoint.save_checkpoint(q, heads_for((4, 6)), meta, tuned=swapped)
    with pytest.raises(WeightsError, match="swapped.pt: the tuned network's weights do not match"):
        checkpoint.load_tuned(q, tiny_backbone(), meta)
    checkpoint.load_tuned(q, tiny_backbone(), plain)  # a probe checkpoint: nothing to load


def test_each_recipe_has_its_own_checkpoint_and_the_probe_keeps_its_name_and_recipe():
    from generator.config import make_settings

    d = pathlib.Path("w")
    assert checkpoint.checkpoint_path(d, "resnet18") == d / "catdog-resnet18.pt"
    assert checkpoint.checkpoint_path(d, "resnet18", recipe="lp-ft") == d / "catdog-resnet18-lp-ft.pt"
    b = tiny_backbone()
    probe = checkpoint.expected_meta(b, make_settings(), "k", CLASSES)["recipe"]
    assert set(probe) == {"method", "weight_decay", "hflip", "seed", "resize"}  # what checkpoints on disk record
    tuned = checkpoint.expected_meta(b, make_settings({"recipe": "lp-ft", "finetune_epochs": "5"}), "k",
                                   CLASSES)["recipe"]
    assert tuned["name"] == "lp-ft" and tuned["epochs"] == 5 and "probe's head fitted first" in tuned["method"]
