"""Reading a network's taps: forward hooks that keep each tapped module's output for one pass."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch
from torch import nn


@contextmanager
def recording(model: nn.Module, taps: tuple[str, ...]) -> Iterator[dict[str, torch.Tensor]]:
    """Forward hooks that store each tap's output in the yielded dict; always removed on exit."""
    modules = dict(model.named_modules())
    missing = [t for t in taps if t not in modules]
    if missing:
        raise ValueError(f"model has no module named {', '.join(missing)}")
    store: dict[str, torch.Tensor] = {}
    handles = [
        modules[t].register_forward_hook(lambda _m, _i, out, t=t: store.__setitem__(t, out)) for t in taps
    ]
    try:
        yield store
    finally:
        for h in handles:
            h.remove()
