"""What a map method is, and what the explainer hands it.

The explainer runs the network once per batch with hooks on every tap (one forward), runs at most one backward
(the logit of the explained class, into every tap) when a chosen method needs gradients, and then asks each
chosen method for its map at every tap it supports. A method never runs the network itself, except through
`BatchInputs.class_scores` when it declares `Need.FORWARDS` (Score-CAM).
"""

from __future__ import annotations

import enum
from collections.abc import Callable
from dataclasses import dataclass
from typing import ClassVar

import torch

from generator.model.heads import LinearHead


class Need(enum.IntEnum):
    """What a method needs beyond the one forward pass; ordered by cost."""

    FEATURES = 0  # the tapped feature maps only
    GRADIENTS = 1  # and their gradients from the one shared backward pass
    FORWARDS = 2  # and extra forward passes of its own


@dataclass(frozen=True)
class TapInputs:
    """One tap of one batch. B photos, C channels, H x W positions."""

    features: torch.Tensor  # (B, C, H, W) float32, detached
    gradients: torch.Tensor | None  # (B, C, H, W) float32: d logit[target] / d features; None without a backward
    head: LinearHead | None  # the tap's linear head: a probe, or the classifier head at the last tap; None at the
    # last tap of a user's model whose head is not global average pooling + linear (no CAM weights there)
    is_last: bool  # the tap the classifier head pools


@dataclass(frozen=True)
class BatchInputs:
    """Everything a method may use for one batch."""

    x: torch.Tensor  # (B, 3, S, S) normalized network input
    target: torch.Tensor  # (B,) long: the class explained (the predicted class)
    taps: tuple[TapInputs, ...]  # shallow to deep
    # (N, 3, S, S) -> (N, K) logits of the classifier head, batched and autocast as the explainer runs them.
    class_scores: Callable[[torch.Tensor], torch.Tensor]


class MapMethod:
    """One explanation method. Subclasses set the class attributes and implement `tap_map`.

    Maps are raw (not scaled): the site and the scores min-max scale them. Shapes: (B, H, W) for the target
    class, or (B, K, H, W) for every class when `per_class` is true.
    """

    name: ClassVar[str]  # registry key, lower case: "gradcam"
    title: ClassVar[str]  # as shown to readers: "Grad-CAM"
    citation: ClassVar[str]  # "Selvaraju et al. 2017"
    needs: ClassVar[Need]
    per_class: ClassVar[bool] = False
    last_tap_only: ClassVar[bool] = False
    default_on: ClassVar[bool] = False  # drawn on every page unless --methods says otherwise
    opt_in: ClassVar[bool] = False  # too costly to be part of the leaderboard unless chosen
    needs_head: ClassVar[bool] = False  # made only at taps with a linear head (CAM): none where TapInputs.head is None
    cost: ClassVar[str]  # what it costs beyond the shared passes, for readers: "no extra pass"

    def tap_map(self, tap: TapInputs, batch: BatchInputs) -> torch.Tensor:
        raise NotImplementedError

    def taps_of(self, n_taps: int) -> range:
        """Indices of the taps this method makes maps at."""
        return range(n_taps - 1, n_taps) if self.last_tap_only else range(n_taps)


REGISTRY: dict[str, MapMethod] = {}


def register(cls: type[MapMethod]) -> type[MapMethod]:
    """Class decorator: one instance of each method, under its name."""
    if cls.name in REGISTRY:
        raise ValueError(f"two map methods are named {cls.name!r}")
    REGISTRY[cls.name] = cls()
    return cls
