"""A linear class head over one tap's pooled channels: the trained head at the last tap, a probe before it."""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass(frozen=True)
class LinearHead:
    """Class weights over one tap's channels: logit = weight @ mean_xy(f) + bias."""

    weight: torch.Tensor  # (K, C)
    bias: torch.Tensor  # (K,)
