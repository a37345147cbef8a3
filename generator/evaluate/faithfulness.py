"""Do the maps explain the model? Perturbation scores of any number of maps of one photo, batched.

- Deletion / insertion AUC (RISE, Petsiuk et al. 2018): pixels are removed from (deletion, lower is better) or
  inserted into (insertion, higher is better) the photo in the order of the map, and the area under the curve of
  the class probability is taken over the fraction of pixels changed. Both curves fill the pixels that are not
  the photo's with the same blurred copy of it (RISE's deletion used black): deletion's removed pixels and
  insertion's pixels not yet restored. That is the choice of ROAD (Rong et al. 2022), which perturbs its
  most-relevant-first and least-relevant-first curves with one imputation and reports their difference (as
  pytorch-grad-cam's ROADCombined does). It makes insertion minus deletion antisymmetric: a map and its reverse
  (the same pixels in the opposite order) score exactly opposite, because the insertion step keeping a map's top
  k/n pixels is the deletion step of its reverse that keeps them. A uniformly random map is as likely as its
  reverse, so its expected insertion minus deletion is exactly 0 on every photo: the board holds each method
  against that known value instead of against one noisy random draw (evaluate.stats.comparisons).
- Average Drop and Increase in Confidence (Grad-CAM++, Chattopadhyay et al. 2018): the photo multiplied by the
  [0, 1] map; drop = max(0, p - p_masked) / p (lower is better); increase = p_masked > p.
Baselines: a random map (seeded, at the map's resolution, upsampled) and a centred Gaussian map.

What the network sees, and what it is spared:
- The curves' end points do not depend on the map (the photo and the blurred photo): they are evaluated once per
  photo, whatever the number of maps.
- Two maps with the same perturbation masks at every step (the same ranking, as far as the curves can tell) share
  their curves: only their masked photos (Average Drop) are evaluated apart.
- Every other perturbed input of every map of every photo goes through the network in chunks of `chunk`, across
  photos: one chunk can hold several photos' inputs.
Float32 results may depend on the batch's shape (CPU kernels pick their blocking by it): scores of one photo
scored alone and scored among others agree within float32 rounding, not bit for bit.
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable
from dataclasses import dataclass

import torch
import torch.nn.functional as F

SCORES = ("deletion_auc", "insertion_auc", "average_drop", "increase")


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
    # Step k keeps round(k n / steps) pixels and step steps - k the rest (n minus as many): a map's masks and its
    # reverse's are complements step for step, whatever the rounding.
    half = torch.round(torch.linspace(0, h * w, steps + 1)).long()
    counts = torch.where(torch.arange(steps + 1) <= steps // 2, half, h * w - half.flip(0))
    return (rank[None, :] < counts[:, None]).float().view(steps + 1, h, w)


def blurred(x: torch.Tensor) -> torch.Tensor:
    """The insertion start: the photo blurred with sigma = size / 28 (8 px at 224 px)."""
    from torchvision.transforms.functional import gaussian_blur

    size = min(x.shape[-2:])
    sigma = max(size / 28, 0.5)
    k = int(4 * sigma) | 1  # about size / 7: always inside the image
    return gaussian_blur(x[None], [k, k], [sigma, sigma])[0]


def ranking_key(masks: torch.Tensor) -> bytes:
    """What a map's deletion and insertion curves depend on: its inner perturbation masks, as a digest. Two maps
    with the same key give the same curves (their perturbed inputs are the same images)."""
    return hashlib.sha256(masks.to(torch.bool).numpy().tobytes()).digest()


@dataclass
class PhotoMaps:
    """One photo to score: its network input (3, size, size, normalized), its [0, 1] maps (size x size) and the
    class whose probability the curves follow."""

    x: torch.Tensor
    maps: list[torch.Tensor]
    cls: int


def curve_index(maps: list[torch.Tensor], steps: int) -> tuple[list[int], list[int]]:
    """Per map, the index of its distinct curve among the photo's maps; and per distinct curve, its first map."""
    seen: dict[bytes, int] = {}
    index, first = [], []
    for j, m in enumerate(maps):
        key = ranking_key(perturbation_masks(m, steps)[1:-1])
        if key not in seen:
            seen[key] = len(first)
            first.append(j)
        index.append(seen[key])
    return index, first


def _parts(photos: list[PhotoMaps], firsts: list[list[int]], steps: int):
    """(photo, kind, images) in network order, made lazily (a photo's inputs are ~0.6 MB each): kind 0 the two
    end points (the photo, the blurred photo), 1 a distinct curve's deletion steps 1..steps-1 (the most salient
    pixels replaced by the blurred photo's) then insertion steps 1..steps-1 (the most salient pixels restored
    into the blurred photo), 2 a map's masked photo (the photo times the map: 0, the dataset mean in normalized
    space, where the map is 0)."""
    for i, ph in enumerate(photos):
        start = blurred(ph.x)
        yield i, 0, torch.stack([ph.x, start])
        for j in firsts[i]:
            masks = perturbation_masks(ph.maps[j], steps)[1:-1, None]  # (steps-1, 1, H, W)
            yield i, 1, torch.cat([ph.x[None] * (1 - masks) + start[None] * masks,
                                   start[None] * (1 - masks) + ph.x[None] * masks])
        for m in ph.maps:  # the photo multiplied by the map (Average Drop, Increase in Confidence)
            yield i, 2, (ph.x * m[None])[None]


def _forward(probs_of: Callable[[torch.Tensor], torch.Tensor], parts, photos: list[PhotoMaps],
             chunk: int) -> list[tuple[int, int, torch.Tensor]]:
    """(photo, kind, class probability of each image) per part; parts are cut into batches of `chunk` images,
    across photos."""
    done: list[tuple[int, int, torch.Tensor]] = []
    pending: list[tuple[int, int, torch.Tensor]] = []
    queue: list[torch.Tensor] = []  # images waiting for the next batch
    outs: list[torch.Tensor] = []

    def flush() -> None:
        batch = torch.cat(queue)
        cls = torch.cat([torch.full((len(t),), photos[i].cls) for i, _, t in pending_slices])
        outs.append(probs_of(batch).float()[torch.arange(len(batch)), cls])
        queue.clear()
        pending_slices.clear()

    pending_slices: list[tuple[int, int, torch.Tensor]] = []
    n_queued = 0
    with torch.inference_mode():
        for i, kind, images in parts:
            pending.append((i, kind, images))
            k = 0
            while k < len(images):
                take = min(chunk - n_queued, len(images) - k)
                queue.append(images[k:k + take])
                pending_slices.append((i, kind, images[k:k + take]))
                n_queued += take
                k += take
                if n_queued == chunk:
                    flush()
                    n_queued = 0
        if queue:
            flush()
    flat = torch.cat(outs) if outs else torch.zeros(0)
    at = 0
    for i, kind, images in pending:
        done.append((i, kind, flat[at:at + len(images)]))
        at += len(images)
    return done


def score_photos(probs_of: Callable[[torch.Tensor], torch.Tensor], photos: list[PhotoMaps], steps: int,
                 chunk: int = 64) -> list[list[dict[str, float]]]:
    """Scores of each map of each photo (one list of dicts per photo, in the order of its maps).

    `probs_of` maps a batch (N, 3, H, W) to class probabilities (N, K); the inputs of all photos are cut into
    batches of at most `chunk` images."""
    index, firsts = zip(*(curve_index(ph.maps, steps) for ph in photos)) if photos else ((), ())
    probs = _forward(probs_of, _parts(photos, list(firsts), steps), photos, chunk)
    inner = steps - 1
    ends: dict[int, list[float]] = {}
    curves: dict[int, list[torch.Tensor]] = {}
    masked: dict[int, list[float]] = {}
    for i, kind, p in probs:
        if kind == 0:
            ends[i] = p.tolist()
        elif kind == 1:
            curves.setdefault(i, []).append(p)
        else:
            masked.setdefault(i, []).append(float(p[0]))
    results = []
    for i, ph in enumerate(photos):
        p0, p_blurred = ends[i]
        mine = []
        for j in range(len(ph.maps)):
            block = curves[i][index[i][j]]
            deletion = torch.cat([torch.tensor([p0]), block[:inner], torch.tensor([p_blurred])])
            insertion = torch.cat([torch.tensor([p_blurred]), block[inner:], torch.tensor([p0])])
            pm = masked[i][j]
            mine.append({
                "deletion_auc": float(auc(deletion)),
                "insertion_auc": float(auc(insertion)),
                "average_drop": max(0.0, p0 - pm) / p0 if p0 > 0 else 0.0,
                "increase": float(pm > p0),
            })
        results.append(mine)
    return results


def score_maps(probs_of: Callable[[torch.Tensor], torch.Tensor], x: torch.Tensor, maps: list[torch.Tensor],
               cls: int, steps: int, chunk: int = 64) -> list[dict[str, float]]:
    """Scores of each [0, 1] map (size x size) for one photo x (3, size, size, normalized input) and class `cls`."""
    return score_photos(probs_of, [PhotoMaps(x, maps, cls)], steps, chunk)[0]


def passes(photos: list[PhotoMaps], steps: int) -> int:
    """Images `score_photos` sends through the network for these photos: 2 per photo, 2 (steps - 1) per
    distinct curve, 1 per map."""
    return sum(2 + 2 * (steps - 1) * len(curve_index(ph.maps, steps)[1]) + len(ph.maps) for ph in photos)
