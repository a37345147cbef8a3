"""The gradient family: every method here shares the explainer's one backward pass.

Each map is ReLU(sum_k a_k * f_k) over the tap's channels k, and a method only says what its weights a are: one
per channel, (B, C, 1, 1), or one per channel and position, (B, C, H, W). Below, f is the tap's features and
g = d logit[target] / d f their gradient, both (B, C, H, W). At the last tap of a GAP + linear network,
g_k = w_k / (H*W) at every position (w: the head's weights of the target class), which is what each
"at a GAP-linear last tap" line uses.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

from generator.explain.methods.base import BatchInputs, MapMethod, Need, TapInputs, register
from generator.i18n import N_

SPACE = (2, 3)  # the H, W dimensions of a (B, C, H, W) tensor


class GradientWeighted(MapMethod):
    """ReLU(sum_k a_k f_k) with a from the tap's features and gradients. Subclasses give only `weights`."""

    needs = Need.GRADIENTS
    cost = N_("no extra pass: shares the one backward pass")

    def weights(self, features: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        """(B, C, H, W) features f and gradients g -> weights a, (B, C, 1, 1) or (B, C, H, W)."""
        raise NotImplementedError

    def tap_map(self, tap: TapInputs, batch: BatchInputs) -> torch.Tensor:
        """-> (B, H, W): the raw map of the target class, after the ReLU, not scaled."""
        if tap.gradients is None:
            raise ValueError(f"{self.title} needs the gradients of the shared backward pass; this tap has none")
        return F.relu((self.weights(tap.features, tap.gradients) * tap.features).sum(dim=1))


@register
class GradCAM(GradientWeighted):
    """Selvaraju et al. 2017: a_k = mean_xy g_k(x, y), the spatial mean of the gradient.

    At a GAP-linear last tap: ReLU(CAM_c) / (H*W).
    """

    name = "gradcam"
    title = "Grad-CAM"
    citation = "Selvaraju et al. 2017"
    default_on = True

    def weights(self, features: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        return gradients.mean(dim=SPACE, keepdim=True)


@register
class GradCAMPlusPlus(GradientWeighted):
    """Chattopadhay et al. 2018, eq. 19: a_k = sum_ij alpha_k(i, j) ReLU(g_k(i, j)) with
    alpha_k(i, j) = g^2 / (2 g^2 + g^3 sum_ab f_k(a, b)) = 1 / (2 + g_k(i, j) sum_ab f_k(a, b)) where g != 0.

    The sum over (a, b) multiplies the gradient at (i, j): the paper's formula, as pytorch-grad-cam has it
    (torchcam instead sums g^3 f over positions, and its in-place division on a masked copy leaves alpha = g^2).
    The higher derivatives are powers of g, as the paper derives for an exponential of a piecewise-linear
    network's logit; its exp(logit) factor is dropped, as both libraries do: it scales the map by a positive
    number per photo. No eps: pytorch-grad-cam adds 1e-6 to the denominator, which outweighs 2 g^2 once
    |g| < ~1e-3; the reduced form needs none. alpha = 0 where the denominator is 0.

    Meant for features >= 0 (after a ReLU), as the paper's derivation is. Where a channel sums negative,
    2 + g sum(f) passes through 0 for some g > 0 and the positions near that pole dominate: at EfficientNet-Lite0's
    blocks.4 (a linear bottleneck; random weights, noise input) a third of the positive-gradient positions had a
    negative denominator, and pytorch-grad-cam's eps alone moved its scaled map by 1.0.

    At a GAP-linear last tap: ReLU(sum_k [w_k > 0] w_k / (2 + w_k mean_xy f_k) f_k).
    """

    name = "gradcampp"
    title = "Grad-CAM++"
    citation = "Chattopadhay et al. 2018"

    def weights(self, features: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        denominator = 2 + gradients * features.sum(dim=SPACE, keepdim=True)
        alpha = torch.where(denominator == 0, 0.0, denominator.reciprocal())
        return (alpha * F.relu(gradients)).sum(dim=SPACE, keepdim=True)


@register
class XGradCAM(GradientWeighted):
    """Fu et al. 2020: a_k = sum_xy g_k(x, y) f_k(x, y) / sum_xy f_k(x, y), the gradient averaged with the
    features' own weights; as torchcam and pytorch-grad-cam have it, but a channel whose features sum to exactly 0
    gets a_k = 0 (they divide by an eps instead). Meant for features >= 0 (after a ReLU): at a tap that can be
    negative, a channel whose sum is near 0 gets a very large weight.

    At a GAP-linear last tap: ReLU(CAM_c) / (H*W), the same as Grad-CAM.
    """

    name = "xgradcam"
    title = "XGrad-CAM"
    citation = "Fu et al. 2020"

    def weights(self, features: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        total = features.sum(dim=SPACE, keepdim=True)
        weighted = (gradients * features).sum(dim=SPACE, keepdim=True)
        return torch.where(total == 0, 0.0, weighted / total)


@register
class LayerCAM(GradientWeighted):
    """Jiang et al. 2021: a_k(x, y) = ReLU(g_k(x, y)), one weight per channel and position.

    At a GAP-linear last tap: ReLU(sum_k ReLU(w_k) f_k) / (H*W).
    """

    name = "layercam"
    title = "LayerCAM"
    citation = "Jiang et al. 2021"

    def weights(self, features: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        return F.relu(gradients)


@register
class HiResCAM(GradientWeighted):
    """Draelos & Carin 2020: a_k(x, y) = g_k(x, y), the gradient itself instead of its spatial mean: before the
    ReLU, each position holds its gradient x activation summed over channels. The ReLU is pytorch-grad-cam's, as
    for the rest of the family.

    At a GAP-linear last tap: ReLU(CAM_c) / (H*W), the same as Grad-CAM.
    """

    name = "hirescam"
    title = "HiResCAM"
    citation = "Draelos & Carin 2020"

    def weights(self, features: torch.Tensor, gradients: torch.Tensor) -> torch.Tensor:
        return gradients
