"""Deletion/insertion and Average Drop on a model whose answer is known in closed form."""

from __future__ import annotations

import pytest
import torch

from generator.evaluate import faithfulness as fa


def test_auc_trapezoid():
    assert float(fa.auc(torch.tensor([1.0, 1.0, 1.0]))) == pytest.approx(1.0)
    assert float(fa.auc(torch.tensor([1.0, 0.0]))) == pytest.approx(0.5)
    assert float(fa.auc(torch.tensor([0.0, 1.0, 1.0, 1.0, 1.0]))) == pytest.approx(0.875)


def test_masks_remove_the_most_salient_pixels_first():
    sal = torch.tensor([[0.9, 0.1], [0.5, 0.3]])
    masks = fa.perturbation_masks(sal, 4)
    assert masks.shape == (5, 2, 2)
    assert masks[0].sum() == 0 and masks[-1].sum() == 4
    assert masks[1].tolist() == [[1, 0], [0, 0]]
    assert masks[2].tolist() == [[1, 0], [1, 0]]


def _corner_model(size: int):
    """p(class 0) = sigmoid(10 * mean of channel 0 over the top-left quadrant - 2)."""

    def probs_of(batch: torch.Tensor) -> torch.Tensor:
        q = batch[:, 0, : size // 2, : size // 2].mean(dim=(1, 2))
        p = torch.sigmoid(10 * q - 2)
        return torch.stack([p, 1 - p], dim=1)

    return probs_of


def test_a_map_on_the_evidence_beats_the_baselines():
    size = 16
    x = torch.zeros(3, size, size)
    x[0, : size // 2, : size // 2] = 1.0  # evidence for class 0 in the top-left quadrant
    good = torch.zeros(size, size)
    good[: size // 2, : size // 2] = 1.0
    bad = 1 - good
    good_s, bad_s = fa.score_maps(_corner_model(size), x, [good, bad], cls=0, steps=8)
    assert good_s["deletion_auc"] < bad_s["deletion_auc"]
    assert good_s["insertion_auc"] > bad_s["insertion_auc"]
    # Multiplying by the good map keeps all evidence: no drop. The bad map removes it all.
    assert good_s["average_drop"] == pytest.approx(0.0, abs=1e-6)
    p0 = torch.sigmoid(torch.tensor(8.0))
    p_bad = torch.sigmoid(torch.tensor(-2.0))
    assert bad_s["average_drop"] == pytest.approx(float((p0 - p_bad) / p0), rel=1e-4)
    assert bad_s["increase"] == 0.0


def test_curve_end_points_are_shared_and_chunks_do_not_change_scores():
    """The photo, the all-removed photo and the blurred photo are scored once per photo, whatever the number of
    maps; the chunk size only batches the other inputs."""
    size = 16
    torch.manual_seed(0)
    x = torch.randn(3, size, size)
    maps = [fa.upsampled01(torch.rand(4, 4), size) for _ in range(3)]
    seen = []

    def counting(batch):
        seen.append(len(batch))
        return _corner_model(size)(batch)

    a = fa.score_maps(counting, x, maps, cls=0, steps=5, chunk=7)
    assert seen[0] == 3 and sum(seen) == 3 + 3 * (2 * 4 + 1)
    b = fa.score_maps(_corner_model(size), x, maps, cls=0, steps=5, chunk=1000)
    assert a == b


def test_gaussian_map_is_centred():
    g = fa.gaussian_map(9)
    assert g[4, 4] == pytest.approx(1.0)
    assert g[0, 0] < g[4, 0] < g[4, 4]
