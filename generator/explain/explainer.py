"""The explainer: one forward pass per batch with hooks on every tap, at most one backward, maps from plug-ins.

Zhou et al. 2016: CAM_c(x, y) = sum_k w_k^c f_k(x, y), with f the tapped feature map and w the weights of a
linear layer on its global average pool. For the last tap that layer is the trained head; for earlier taps it
is a linear probe fitted the same way (see train.py). The methods themselves are in generator/explain/methods/.

A user's model whose head is not global average pooling + linear has no head at the last tap (heads[-1] is None):
its logits are then the network's own output (backpropagated through its head, whatever that is, for the gradient
methods), and the methods that need a linear head (CAM) make no map there; the earlier taps keep their probes.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn

from generator.model.heads import LinearHead
from generator.model.taps import recording


@dataclass
class BatchResult:
    """What one batch yields. Shapes: B images, K classes, T taps, tap t of size H_t x W_t."""

    logits: torch.Tensor  # (B, K) from the head on the last tap (the network's own output when it has none)
    probe_logits: list[torch.Tensor]  # T x (B, K), each tap's probe (the last one equals `logits`)
    imagenet_logits: torch.Tensor  # (B, 1000) from the backbone's own classifier
    # method name -> T entries: (B, H_t, W_t), or (B, K, H_t, W_t) for per-class methods; None where the method
    # makes no map (Score-CAM before the last tap)
    maps: dict[str, list[torch.Tensor | None]]
    imagenet: bool = True  # imagenet_logits are ImageNet's; False: a user's classifier, they are its own K logits


class Explainer:
    """Runs the backbone once per batch with hooks on every tap, at most one backward pass (when a chosen
    method needs gradients: of the predicted class's logit, into every tap), and asks each method for its maps.

    Use as a context manager (`with Explainer(...) as ex: ex(batch)`): the hooks live only inside it, and the
    model's requires_grad flags are restored on the way out.
    """

    def __init__(
        self,
        model: nn.Module,
        taps: tuple[str, ...],
        heads: list[LinearHead | None],  # one per tap; the last may be None (no linear head: see above)
        methods: list,  # generator.explain.methods.MapMethod instances
        autocast_dtype: torch.dtype | None = None,
        score_batch: int = 32,
        channels_last: bool = False,
        imagenet: bool = True,
    ) -> None:
        if len(heads) != len(taps):
            raise ValueError(f"need one head per tap: {len(taps)} taps, {len(heads)} heads")
        if any(h is None for h in heads[:-1]):
            raise ValueError("only the last tap may lack a linear head")
        self.model = model.eval()
        self.taps = taps
        self.heads = heads
        self.methods = list(methods)
        self.autocast_dtype = autocast_dtype
        self.score_batch = score_batch
        self.channels_last = channels_last
        self.imagenet = imagenet
        self._ctx = None
        self._store: dict[str, torch.Tensor] | None = None
        self._grad_flags: list[bool] = []

    @property
    def needs_gradients(self) -> bool:
        from generator.explain.methods import Need

        return any(m.needs == Need.GRADIENTS for m in self.methods)  # Score-CAM (FORWARDS) needs no backward

    def __enter__(self) -> Explainer:
        self._grad_flags = [p.requires_grad for p in self.model.parameters()]
        for p in self.model.parameters():
            p.requires_grad_(False)  # gradients of activations only, never of weights
        self._ctx = recording(self.model, self.taps)
        self._store = self._ctx.__enter__()
        return self

    def __exit__(self, *exc) -> None:
        for p, flag in zip(self.model.parameters(), self._grad_flags):
            p.requires_grad_(flag)
        if self._ctx is not None:
            self._ctx.__exit__(*exc)
        self._ctx = None
        self._store = None

    def _autocast(self, device_type: str):
        return torch.autocast(device_type, dtype=self.autocast_dtype or torch.bfloat16,
                              enabled=self.autocast_dtype is not None)

    def class_scores(self, x: torch.Tensor) -> torch.Tensor:
        """(N, 3, S, S) -> (N, K) logits of the classifier head (the network's own output when the last tap has
        no linear head), in chunks; for methods with extra passes."""
        if self._store is None:
            raise RuntimeError("use Explainer inside a `with` block")
        head, last = self.heads[-1], self.taps[-1]
        out = []
        with torch.inference_mode():
            for chunk in x.split(self.score_batch):
                if self.channels_last:
                    chunk = chunk.contiguous(memory_format=torch.channels_last)
                with self._autocast(chunk.device.type):
                    own = self.model(chunk)
                if head is None:
                    out.append(own.float())
                    continue
                pooled = self._store[last].float().mean(dim=(2, 3))
                out.append(pooled @ head.weight.T.to(pooled) + head.bias.to(pooled))
        return torch.cat(out)

    def __call__(self, x: torch.Tensor, target: torch.Tensor | None = None) -> BatchResult:
        """Maps of `target` (B,) classes, by default each photo's predicted class."""
        from generator.explain.methods import BatchInputs, TapInputs

        if self._store is None:
            raise RuntimeError("use Explainer inside a `with` block")
        backward = self.needs_gradients
        with torch.enable_grad() if backward else torch.inference_mode():
            if backward:
                x = x.detach().requires_grad_(True)
            with self._autocast(x.device.type):
                imagenet_logits = self.model(x)
            feats = [self._store[t] for t in self.taps]
            pooled = [f.float().mean(dim=(2, 3)) for f in feats]
            probe_logits = [imagenet_logits.float() if h is None else p @ h.weight.T.to(p) + h.bias.to(p)
                            for p, h in zip(pooled, self.heads)]
            logits = probe_logits[-1]
            target = logits.argmax(1) if target is None else target.to(logits.device)
            grads: tuple[torch.Tensor | None, ...] = (None,) * len(feats)
            if backward:
                grads = torch.autograd.grad(logits.gather(1, target[:, None]).sum(), feats)
        self._store.clear()
        last = len(self.taps) - 1
        batch = BatchInputs(
            x=x.detach(),
            target=target.detach(),
            taps=tuple(TapInputs(features=f.detach().float(), gradients=None if g is None else g.float(), head=h,
                                 is_last=t == last)
                       for t, (f, g, h) in enumerate(zip(feats, grads, self.heads))),
            class_scores=self.class_scores,
        )
        maps: dict[str, list[torch.Tensor | None]] = {}
        with torch.no_grad():
            for m in self.methods:
                made = set(m.taps_of(len(self.taps)))
                maps[m.name] = [m.tap_map(tap, batch).float() if t in made and (tap.head is not None
                                                                                 or not m.needs_head) else None
                                for t, tap in enumerate(batch.taps)]
        return BatchResult(
            logits=logits.detach().float(),
            probe_logits=[p.detach().float() for p in probe_logits],
            imagenet_logits=imagenet_logits.detach().float(),
            maps=maps,
            imagenet=self.imagenet,
        )
