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
    """p(class 0) = sigmoid(10 * mean over the top-left quadrant of channel 0 squared - 2): the evidence is the
    quadrant's fine texture, which the blurred fill of the curves removes."""

    def probs_of(batch: torch.Tensor) -> torch.Tensor:
        q = (batch[:, 0, : size // 2, : size // 2] ** 2).mean(dim=(1, 2))
        p = torch.sigmoid(10 * q - 2)
        return torch.stack([p, 1 - p], dim=1)

    return probs_of


def _checkered_corner(size: int) -> torch.Tensor:
    x = torch.zeros(3, size, size)
    r = torch.arange(size // 2)
    x[0, : size // 2, : size // 2] = ((r[:, None] + r[None, :]) % 2) * 2.0 - 1.0  # +-1, a pixel at a time
    return x


def test_a_map_on_the_evidence_beats_the_baselines():
    size = 16
    x = _checkered_corner(size)  # evidence for class 0 in the top-left quadrant
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


def test_both_curves_fill_with_the_blurred_photo():
    """Deleted pixels take the blurred photo's values, as insertion's pixels not yet restored do: deleting every
    pixel gives the blurred photo's probability, the insertion curve's start."""
    size = 16
    x = torch.randn(3, size, size, generator=torch.Generator().manual_seed(1))  # unlike its blur at every pixel
    probs_of = _corner_model(size)
    seen = []

    def keeping(batch):
        seen.append(batch.clone())
        return probs_of(batch)

    fa.score_maps(keeping, x, [torch.rand(size, size, generator=torch.Generator().manual_seed(0))], cls=0, steps=4)
    images = torch.cat(seen)
    start = fa.blurred(x)
    assert torch.equal(images[0], x) and torch.equal(images[1], start)  # the two end points
    assert not bool((x == start).any())
    for img in images[2:8]:  # deletion then insertion steps: each pixel is the photo's or the blurred photo's
        assert bool(((img == x) | (img == start)).all())
    deleted = images[2:5]  # 1/4, 2/4, 3/4 removed: ever more of the blurred photo
    assert [int((d == start).all(0).sum()) for d in deleted] == [64, 128, 192]


@pytest.mark.parametrize("steps", [2, 3, 4, 7])
def test_a_map_and_its_reverse_score_exactly_opposite(steps):
    """The insertion step that keeps a map's top k/n pixels is the deletion step of its reverse that keeps the same
    pixels: insertion minus deletion of 1 - m is minus that of m (float32 batch noise aside). So a random map,
    as likely as its reverse, scores 0 on average exactly, and its masks are complements step for step."""
    size = 16
    gen = torch.Generator().manual_seed(5)
    x = torch.randn(3, size, size, generator=gen)
    m = torch.rand(size, size, generator=gen)  # no ties
    for k, (a, b) in enumerate(zip(fa.perturbation_masks(m, steps), fa.perturbation_masks(1 - m, steps).flip(0))):
        assert torch.equal(a + b, torch.ones_like(a)), k
    s, r = fa.score_maps(_conv_model(), x, [m, 1 - m], cls=1, steps=steps)
    combined = s["insertion_auc"] - s["deletion_auc"]
    assert abs(combined) > 1e-3  # not trivially 0
    # the reverse's insertion curve is the map's deletion curve read backwards, and the other way round
    assert r["insertion_auc"] == pytest.approx(s["deletion_auc"], abs=1e-6)
    assert r["deletion_auc"] == pytest.approx(s["insertion_auc"], abs=1e-6)
    assert r["insertion_auc"] - r["deletion_auc"] == pytest.approx(-combined, abs=1e-6)


def _close(a: list[dict], b: list[dict]) -> None:
    """Scores equal within float32 rounding. The code does not promise bit-equal results across batch shapes
    (CPU kernels may block a batch of 7 and one of 1000 differently), so: each probability is within a few ulps
    (float32 eps 1.2e-7) and an AUC averages at most a few hundred of them, hence 1e-5."""
    assert len(a) == len(b)
    for x, y in zip(a, b):
        assert x.keys() == y.keys()
        for k in x:
            assert x[k] == pytest.approx(y[k], abs=1e-5), k


def test_curve_end_points_are_shared_and_chunks_do_not_change_scores():
    """The photo and the blurred photo are scored once per photo, whatever the number of maps; the chunk size
    only batches the other inputs."""
    size = 16
    torch.manual_seed(0)
    x = torch.randn(3, size, size)
    maps = [fa.upsampled01(torch.rand(4, 4), size) for _ in range(3)]
    seen = []

    def counting(batch):
        seen.append(len(batch))
        return _corner_model(size)(batch)

    a = fa.score_maps(counting, x, maps, cls=0, steps=5, chunk=7)
    assert max(seen) == 7 and sum(seen) == 2 + 3 * (2 * 4 + 1) == fa.passes([fa.PhotoMaps(x, maps, 0)], 5)
    b = fa.score_maps(_corner_model(size), x, maps, cls=0, steps=5, chunk=1000)
    _close(a, b)


def _conv_model(seed: int = 0):
    """A tiny real network (conv, ReLU, global average pooling, linear, softmax) whose float32 kernels see every
    batch shape."""
    torch.manual_seed(seed)
    net = torch.nn.Sequential(torch.nn.Conv2d(3, 8, 3, padding=1), torch.nn.ReLU(),
                              torch.nn.AdaptiveAvgPool2d(1), torch.nn.Flatten(), torch.nn.Linear(8, 3)).eval()
    return lambda batch: net(batch).softmax(1)


def test_photos_batched_together_score_as_each_alone():
    """Every perturbed input of every map and photo in shared batches gives each photo's scores unbatched."""
    size = 16
    gen = torch.Generator().manual_seed(1)
    photos = [fa.PhotoMaps(torch.randn(3, size, size, generator=gen),
                           [fa.upsampled01(torch.rand(4, 4, generator=gen), size) for _ in range(k)], cls=k % 3)
              for k in (1, 3, 2)]
    probs_of = _conv_model()
    calls = []

    def counting(batch):
        calls.append(len(batch))
        return probs_of(batch)

    together = fa.score_photos(counting, photos, steps=6, chunk=16)
    assert sum(calls) == fa.passes(photos, 6) and len(calls) == -(-sum(calls) // 16)  # full chunks across photos
    for ph, got in zip(photos, together):
        _close(got, fa.score_maps(probs_of, ph.x, ph.maps, ph.cls, steps=6, chunk=1))


def test_maps_with_the_same_ranking_share_their_curves():
    """A monotone transform keeps the order of the pixels, so the curves (not the masked photo) are shared."""
    size = 16
    torch.manual_seed(2)
    x = torch.randn(3, size, size)
    m = fa.upsampled01(torch.rand(4, 4), size)
    other = fa.upsampled01(torch.rand(4, 4), size)
    maps = [m, m ** 3, other]
    index, first = fa.curve_index(maps, 6)
    assert index == [0, 0, 1] and first == [0, 2]
    calls = []

    def counting(batch):
        calls.append(len(batch))
        return _conv_model()(batch)

    s = fa.score_maps(counting, x, maps, cls=0, steps=6)
    assert sum(calls) == 2 + 2 * (2 * 5) + 3  # two distinct curves, three masked photos
    assert s[0]["deletion_auc"] == s[1]["deletion_auc"] and s[0]["insertion_auc"] == s[1]["insertion_auc"]
    alone = fa.score_maps(_conv_model(), x, [m ** 3], cls=0, steps=6)[0]
    assert s[1]["average_drop"] == pytest.approx(alone["average_drop"], abs=1e-5)
    assert s[0]["deletion_auc"] != s[2]["deletion_auc"]


def test_gaussian_map_is_centred():
    g = fa.gaussian_map(9)
    assert g[4, 4] == pytest.approx(1.0)
    assert g[0, 0] < g[4, 0] < g[4, 4]
