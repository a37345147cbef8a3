"""Do the maps explain the model? Perturbation scores, batched, for a map and two baselines.

- Deletion / insertion AUC (RISE, Petsiuk et al. 2018): pixels are removed from (deletion, lower is better) or
  inserted into (insertion, higher is better) the photo in the order of the map, and the area under the curve of
  the class probability is taken over the fraction of pixels changed.
- Average Drop and Increase in Confidence (Grad-CAM++, Chattopadhyay et al. 2018): the photo multiplied by the
  [0, 1] map; drop = max(0, p - p_masked) / p (lower is better); increase = p_masked > p.
Baselines: a random map (seeded, at the CAM's resolution, upsampled) and a centred Gaussian map.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
import torch.nn.functional as F

METHODS = ("cam", "random", "gaussian")
SCORES = ("deletion_auc", "insertion_auc", "average_drop", "increase")


def gaussian_map(size: int, sigma_frac: float = 0.25) -> torch.Tensor:
    """A centred isotropic Gaussian over a size x size image, sigma = sigma_frac * size."""
    r = torch.arange(size, dtype=torch.float32) - (size - 1) / 2
    g = torch.exp(-(r[:, None] ** 2 + r[None, :] ** 2) / (2 * (sigma_frac * size) ** 2))
    return g / g.max()


def random_map(shape: tuple[int, int], size: int, seed: int) -> torch.Tensor:
    gen = torch.Generator().manual_seed(seed)
    small = torch.rand((1, 1, *shape), generator=gen)
    return F.interpolate(small, size=(size, size), mode="bilinear", align_corners=False)[0, 0]


def minmax(m: torch.Tensor) -> torch.Tensor:
    m = m - m.min()
    top = m.max()
    return m / top if top > 0 else m


def auc(curve: torch.Tensor) -> torch.Tensor:
    """Trapezoid area under a curve sampled at equal steps over [0, 1]. (..., S+1) -> (...)."""
    return (curve[..., 1:] + curve[..., :-1]).sum(-1) / (2 * (curve.shape[-1] - 1))


def perturbation_masks(saliency: torch.Tensor, steps: int) -> torch.Tensor:
    """(H, W) map -> (steps+1, H, W) masks; mask k marks the k/steps most salient pixels with 1."""
    h, w = saliency.shape
    order = torch.argsort(saliency.flatten(), descending=True, stable=True)
    rank = torch.empty_like(order)
    rank[order] = torch.arange(order.numel())
    counts = torch.round(torch.linspace(0, h * w, steps + 1)).long()
    return (rank[None, :] < counts[:, None]).float().view(steps + 1, h, w)


def score_maps(
    probs_of: Callable[[torch.Tensor], torch.Tensor],
    x: torch.Tensor,
    maps: dict[str, torch.Tensor],
    cls: int,
    steps: int,
) -> dict[str, dict[str, float]]:
    """Scores of each [0, 1] map (H, W) for photo x (3, H, W, normalized input) and class `cls`.

    `probs_of` maps a batch (B, 3, H, W) to class probabilities (B, K). One batched call per photo.
    """
    blurred = _blur(x)
    zero = torch.zeros_like(x)  # the dataset mean in normalized space
    batches, spans = [], {}
    for name, m in maps.items():
        masks = perturbation_masks(m, steps)[:, None]  # (S+1, 1, H, W)
        deletion = x[None] * (1 - masks) + zero[None] * masks
        insertion = blurred[None] * (1 - masks) + x[None] * masks
        masked = (x * m[None] + zero * (1 - m[None]))[None]
        start = sum(b.shape[0] for b in batches)
        batches += [deletion, insertion, masked]
        spans[name] = start
    batch = torch.cat(batches)
    with torch.inference_mode():
        p = probs_of(batch)[:, cls].float()
        p0 = probs_of(x[None])[0, cls].float()
    out: dict[str, dict[str, float]] = {}
    n = steps + 1
    for name, start in spans.items():
        dele = p[start:start + n]
        ins = p[start + n:start + 2 * n]
        pm = p[start + 2 * n]
        out[name] = {
            "deletion_auc": float(auc(dele)),
            "insertion_auc": float(auc(ins)),
            "average_drop": float(torch.clamp(p0 - pm, min=0) / p0) if p0 > 0 else 0.0,
            "increase": float(pm > p0),
        }
    return out


def _blur(x: torch.Tensor) -> torch.Tensor:
    """The insertion start: the photo blurred with sigma = size / 28 (8 px at 224 px)."""
    from torchvision.transforms.functional import gaussian_blur

    size = min(x.shape[-2:])
    sigma = max(size / 28, 0.5)
    k = int(4 * sigma) | 1  # about size / 7: always inside the image
    return gaussian_blur(x[None], [k, k], [sigma, sigma])[0]


def photo_scores(probs_of, x: torch.Tensor, cam: torch.Tensor, cls: int, steps: int, seed: int) -> dict[str, float]:
    """Flat dict {f"{score}_{method}": value} for one photo: its CAM (any resolution) against the baselines."""
    size = x.shape[-1]
    cam_up = minmax(F.interpolate(cam[None, None].float(), size=(size, size), mode="bilinear",
                                  align_corners=False)[0, 0])
    maps = {"cam": cam_up, "random": random_map(tuple(cam.shape), size, seed), "gaussian": gaussian_map(size)}
    scores = score_maps(probs_of, x, maps, cls, steps)
    return {f"{s}_{m}": scores[m][s] for m in METHODS for s in SCORES}
