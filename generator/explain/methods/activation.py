"""Methods that need the features only: no gradient, no extra pass."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import torch

from generator.explain.methods.base import BatchInputs, MapMethod, Need, TapInputs, register
from generator.i18n import N_


def class_activation_maps(features: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) features and (K, C) class weights -> (B, K, H, W); spatial mean + bias = the logits."""
    return torch.einsum("kc,bchw->bkhw", weight.to(features.dtype), features)


@register
class CAM(MapMethod):
    """Zhou et al. 2016: CAM_c(x, y) = sum_k w_k^c f_k(x, y), with w the tap's linear head (a probe before the
    last tap). Raw and signed (no ReLU), for every class."""

    name = "cam"
    title = "CAM"
    citation = "Zhou et al. 2016"
    needs = Need.FEATURES
    per_class = True
    default_on = True
    needs_head = True
    cost = N_("no extra pass: one product of the features with the head's weights")

    def tap_map(self, tap: TapInputs, batch: BatchInputs) -> torch.Tensor:
        return class_activation_maps(tap.features, tap.head.weight)


@contextmanager
def one_thread() -> Iterator[None]:
    """torch on one thread for the block. LAPACK's eigensolver on these small matrices gains nothing from a
    second thread, and when another process has the other core it waits for it: measured here with a second
    process busy, 5.2 s per call on two threads against 9 ms on one."""
    n = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(n)


def first_component_projection(features: torch.Tensor) -> torch.Tensor:
    """(B, C, H, W) -> (B, H, W): each photo's features, centred over positions, projected on their first
    principal component (the first right singular vector of the (H*W, C) matrix), signed so that the projection
    covaries positively with the channel-mean activation mean_k f_k(x, y).

    Why that sign: the SVD's is arbitrary, and "the map sums to a positive number" cannot fix it because a
    projection of centred data sums to 0. The covariance with the mean activation is (s_1^2 / C) sum_k v_k, so
    the rule is: the component's channel loadings v sum to >= 0. Positive then means "more activation", the
    sense every other map here has.
    """
    b, c, h, w = features.shape
    centred = features.flatten(2).transpose(1, 2).double()  # (B, H*W, C)
    centred = centred - centred.mean(dim=1, keepdim=True)
    # The first right singular vector from the eigenvectors of the smaller of the two Gram matrices (C x C or
    # HW x HW, in float64): the same vector as a full SVD's, at a fraction of the cost (24 x 24 at the first
    # tap, 49 x 49 at the last, instead of an SVD of 3,136 x 24 or 49 x 1,280; measured 5.4 -> 0.6 ms a photo).
    with one_thread():
        if c <= h * w:
            first = torch.linalg.eigh(centred.transpose(1, 2) @ centred).eigenvectors[..., -1]  # (B, C)
        else:
            u = torch.linalg.eigh(centred @ centred.transpose(1, 2)).eigenvectors[..., -1]  # (B, H*W)
            first = (centred.transpose(1, 2) @ u.unsqueeze(-1)).squeeze(-1)
            first = first / first.norm(dim=1, keepdim=True).clamp_min(1e-300)
    first = torch.where(first.sum(dim=1, keepdim=True) < 0, -first, first)
    return (centred @ first.unsqueeze(-1)).view(b, h, w).to(features.dtype)


@register
class EigenCAM(MapMethod):
    """Muhammad & Yeasin 2020: ReLU of the tap's features projected on their first principal component (see
    `first_component_projection` for the sign). Class-agnostic: the same map whatever the class. Agrees with
    pytorch-grad-cam's EigenCAM (its `get_2d_projection`, then its ReLU) whenever the two SVD signs agree.
    """

    name = "eigencam"
    title = "Eigen-CAM"
    citation = "Muhammad & Yeasin 2020"
    needs = Need.FEATURES
    cost = N_("no extra pass: one small eigendecomposition per photo and tap")

    def tap_map(self, tap: TapInputs, batch: BatchInputs) -> torch.Tensor:
        """-> (B, H, W): the raw map, after the ReLU, not scaled."""
        return torch.relu(first_component_projection(tap.features))
