"""Is the photo a cat or a dog at all? Scores from the backbone's own 1,000-class ImageNet head.

A two-class head must answer cat or dog, however unrelated the photo. The ImageNet head knows better: it puts
little probability on its 123 cat and dog classes for a photo of coins or a face. The "neither" rule is a
threshold on that summed probability, chosen on the training photos only (analysis.keep_threshold).
"""

from __future__ import annotations

import torch

from generator.model.backbones import IMAGENET_CATS, IMAGENET_DOGS

PET_CLASSES = torch.tensor([*IMAGENET_DOGS, *IMAGENET_CATS])
TOP_K = 3


def pet_probability(imagenet_logits: torch.Tensor) -> torch.Tensor:
    """(B, 1000) ImageNet logits -> (B,) summed softmax probability of the cat and dog classes."""
    return imagenet_logits.float().softmax(1)[:, PET_CLASSES.to(imagenet_logits.device)].sum(1)


def energy(imagenet_logits: torch.Tensor) -> torch.Tensor:
    """Energy score (Liu et al. 2020): -logsumexp of the ImageNet logits; lower = more like ImageNet photos."""
    return -torch.logsumexp(imagenet_logits.float(), dim=1)


def top_classes(imagenet_logits: torch.Tensor, k: int = TOP_K) -> tuple[torch.Tensor, torch.Tensor]:
    """(B, 1000) -> ((B, k) class indices, (B, k) probabilities), most probable first."""
    p, idx = imagenet_logits.float().softmax(1).topk(k, dim=1)
    return idx, p
