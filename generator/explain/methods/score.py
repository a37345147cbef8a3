"""Methods that run extra forward passes of their own (opt-in: they cost far more than the shared passes)."""

from __future__ import annotations

import torch
import torch.nn.functional as F

from generator.explain.methods.base import BatchInputs, MapMethod, Need, TapInputs, register
from generator.i18n import N_

CHUNK = 64  # masked inputs per class_scores call: 64 x 3 x 224 x 224 float32 is 39 MB
EPS = 1e-8  # torchcam's, in its min-max scaling of each channel: the maps agree with its ScoreCAM to ~1e-7


def masked_scores(features: torch.Tensor, batch: BatchInputs) -> torch.Tensor:
    """(B, C, h, w) features -> (B, C): logit of the target class for the input masked by each channel.

    Mask k of a photo: its channel k min-max scaled at the tap's own resolution, (f - min) / (max - min + EPS),
    then upsampled to the input (bilinear, half-pixel centres). A constant channel's mask is exactly 0, so every
    constant channel of every photo masks the input to the same all-zero image: it is scored once for the batch,
    which changes no number. Masked inputs go through `batch.class_scores` CHUNK at a time, photos mixed (it
    forwards them in batches of its own).
    """
    b, c, h, w = features.shape
    flat = features.flatten(2)
    low = flat.amin(dim=2)
    spread = flat.amax(dim=2) - low  # (B, C); exactly 0 for a constant channel
    scaled = (features - low[..., None, None]) / (spread[..., None, None] + EPS)
    constant = spread == 0
    photo, channel = torch.nonzero(~constant, as_tuple=True)  # row-major, the order boolean indexing fills
    masks = scaled[photo, channel]  # (N, h, w)
    n_varying = len(photo)
    if constant.any():  # one all-zero mask (on photo 0: any photo times 0 is the same image) for all of them
        photo = torch.cat([photo, photo.new_zeros(1)])
        masks = torch.cat([masks, masks.new_zeros(1, h, w)])
    logits = torch.cat([
        batch.class_scores(batch.x[photo[i:i + CHUNK]] * _upsample(masks[i:i + CHUNK], batch.x.shape[-2:])).float()
        for i in range(0, len(photo), CHUNK)
    ])  # (N or N + 1, K)
    scores = features.new_empty(b, c)
    scores[~constant] = logits[:n_varying].gather(1, batch.target[photo[:n_varying], None]).squeeze(1)
    if n_varying < len(photo):
        blank = logits[n_varying][batch.target]  # (B,): the all-zero image's logit of each photo's target
        scores = torch.where(constant, blank[:, None].to(scores), scores)
    return scores


def _upsample(masks: torch.Tensor, size: torch.Size) -> torch.Tensor:
    """(N, h, w) -> (N, 1, S, S), ready to multiply (N, 3, S, S) inputs."""
    return F.interpolate(masks[:, None], size=tuple(size), mode="bilinear", align_corners=False)


@register
class ScoreCAM(MapMethod):
    """Wang et al. 2020, as torchcam's ScoreCAM: ReLU(sum_k a_k f_k) with a = softmax over channels k of the
    target logit for the input masked by channel k (see `masked_scores`).

    Why torchcam's definition and not pytorch-grad-cam's: both score the logit (not the probability) and take the
    softmax over channels, but pytorch-grad-cam upsamples first (bilinear, corners aligned) and min-max scales at
    the input's size, where a constant non-zero channel is no longer constant: a 7x7 map of 0.1 upsampled to
    224 spreads by 1.5e-8, and its scaled mask reaches 0.6. Scaling at the tap's resolution keeps a constant
    channel's mask exactly 0, so scoring the constant channels once is exact; and its half-pixel upsampling is
    the one `overlay.upsample` specifies. torchcam subtracts the photo's own logit from every score first: the
    softmax does not change under a shift, so that pass is left out.
    """

    name = "scorecam"
    title = "Score-CAM"
    citation = "Wang et al. 2020"
    needs = Need.FORWARDS
    last_tap_only = True
    opt_in = True
    cost = N_(
        "one extra forward pass per channel of the last tap (1,280 for EfficientNet-Lite0), "
        "all constant channels together counting as one"
    )

    def tap_map(self, tap: TapInputs, batch: BatchInputs) -> torch.Tensor:
        """-> (B, H, W): the raw map of the target class, after the ReLU, not scaled."""
        with torch.no_grad():
            weights = torch.softmax(masked_scores(tap.features, batch), dim=1)
            return F.relu(torch.einsum("bc,bchw->bhw", weights, tap.features))
