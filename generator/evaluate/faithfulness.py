"""Do the maps explain the model? Perturbation scores of any number of maps of one photo, batched.

- Deletion / insertion AUC (RISE, Petsiuk et al. 2018): pixels are removed from (deletion, lower is better) or
  inserted into (insertion, higher is better) the photo in the order of the map, and the area under the curve of
  the class probability is taken over the fraction of pixels changed.
- Average Drop and Increase in Confidence (Grad-CAM++, Chattopadhyay et al. 2018): the photo multiplied by the
  [0, 1] map; drop = max(0, p - p_masked) / p (lower is better); increase = p_masked > p.
Baselines: a random map (seeded, at the map's resolution, upsampled) and a centred Gaussian map.

The curves' end points do not depend on the map (the photo, the all-removed photo, the blurred photo), so they
are evaluated once per photo; every other perturbed input goes through the network in chunks of `chunk`.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
import torch.nn.functional as F

SCORES = ("deletion_auc", "insertion_auc", "average_drop", "increase")
BASELINES = ("random", "gaussian")  # the reference maps every method is held against (drawn below)


def gaussian_map(size: int, sigma_frac: float = 0.25) -> torch.Tensor:
    """A centred isotropic Gaussian over a size x size image, sigma = sigma_frac * size, peak 1."""
    r = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * (sigma_frac * size) ** 2))
    return g / g.max()


def random_map(shape: tuple[int, int], size: int, generator: torch.Generator) -> torch.Tensor:
    """Uniform noise at a map's resolution, upsampled bilinearly to size x size (as a real map would be)."""
    small = torch.rand((1, 1, *shape), generator=generator)
    return F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)[0, 0]


def minmax(m: torch.Tensor) -> torch.Tensor:
    m = m - m.min()
    top = m.max()
    return m / top if top > 0 else m


def upsampled01(m: torch.Tensor, size: int) -> torch.Tensor:
    """A raw (H, W) map -> (size, size) in [0, 1]: bilinear (half-pixel centres), then min-max."""
    up = F.interpolate(m[None, None].float(), size=(size, size), mode="bilinear", align_corners=False)[0, 0]
    return minmax(up)


def auc(curve: torch.Tensor) -> torch.Tensor:
    """Trapezoid area under a curve sampled at equal steps over [0, 1]. (..., S+1) -> (...)."""
    return (curve[..., 1:] + curve[..., :-1]).sum(-1) / (2 * (curve.shape[-1] - 1))


def perturbation_masks(saliency: torch.Tensor, steps: int) -> torch.Tensor:
    """(H, W) map -> (steps+1, H, W) masks; mask k marks the k/steps most salient pixels with 1 (ties: raster
    order, so the result is deterministic)."""
    h, w = saliency.shape
    order = torch.argsort(saliency.flatten(), descending=True, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel())
    counts = torch.round(torch.linspace(0, h * w, steps + 1)).long()
    return (rank[None, :] < counts[:, None]).float().view(steps + 1, h, w)


def blurred(x: torch.Tensor) -> torch.Tensor:
    """The insertion start: the photo blurred with sigma = size / 28 (8 px at 224 px)."""
    from torchvision.transforms.functional import gaussian_blur

    size = min(x.shape[-2:])
    sigma = max(size / 28, 0.5)
    k = int(4 * sigma) | 1  # about size / 7: always inside the image
    return gaussian_blur(x[None], [k, k], [sigma, sigma])[0]


def _inputs(x: torch.Tensor, soft: torch.Tensor, start: torch.Tensor, maps: list[torch.Tensor],
            steps: int) -> Iterator[torch.Tensor]:
    """Per map, its 2 * (steps - 1) + 1 perturbed inputs: deletion steps 1..steps-1 (pixels set to the dataset
    mean, 0 in normalized space), insertion steps 1..steps-1 (pixels restored into the blurred photo), and the
    photo multiplied by the map."""
    for m in maps:
        masks = perturbation_masks(m, steps)[1:-1, None]  # (steps-1, 1, H, W)
        yield x[None] * (1 - masks)
        yield start[None] * (1 - masks) + x[None] * masks
        yield (x * m[None] + soft * (1 - m[None]))[None]


def score_maps(probs_of: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, maps: list[torch.Tensor],
               cls: int, steps: int, chunk: int = 64) -> list[dict[str, float]]:
    """Scores of each [0, 1] map (size x size) for photo x (3, size, size, normalized input) and class `cls`.

    `probs_of` maps a batch (N, 3, H, W) to class probabilities (N, K).
    """
    zero = torch.zeros_like(x)  # the dataset mean in normalized space
    start = blurred(x)
    with torch.inference_mode():
        p0, p_all_removed, p_blurred = probs_of(torch.stack([x, zero, start]))[:, cls].float().tolist()
        outs, pending, n_pending = [], [], 0
        for part in _inputs(x, zero, start, maps, steps):
            pending.append(part)
            n_pending += len(part)
            if n_pending >= chunk:
                outs.append(probs_of(torch.cat(pending))[:, cls].float())
                pending, n_pending = [], 0
        if pending:
            outs.append(probs_of(torch.cat(pending))[:, cls].float())
    p = torch.cat(outs) if outs else torch.zeros(0)
    inner = steps - 1
    per_map = 2 * inner + 1
    results = []
    for i in range(len(maps)):
        block = p[i * per_map:(i + 1) * per_map]
        deletion = torch.cat([torch.tensor([p0]), block[:inner], torch.tensor([p_all_removed])])
        insertion = torch.cat([torch.tensor([p_blurred]), block[inner:2 * inner], torch.tensor([p0])])
        pm = float(block[-1])
        results.append({
            "deletion_auc": float(auc(deletion)),
            "insertion_auc": float(auc(insertion)),
            "average_drop": max(0.0, p0 - pm) / p0 if p0 > 0 else 0.0,
            "increase": float(pm > p0),
        })
    return results
