"""Before anything is timed: do our maps equal the libraries' maps? Checked in float32 on the site's model, each
library's map against ours after that library's own scaling (and, for pytorch-grad-cam, its upsampling to the
input size), with the conventions of tests/test_methods_*.py."""

from __future__ import annotations

from dataclasses import dataclass, field, replace

import numpy as np
import torch

from generator.explain.explainer import BatchResult
from generator.explain.methods.activation import first_component_projection
from generator.model.heads import LinearHead
from generator.model.taps import recording

from .contenders import (
    PEERS,
    PGC,
    SCORE_PEER,
    TORCHCAM,
    CatDogNet,
    Peer,
    cheap_methods,
    library_net,
    ours,
    pgc_maps,
    torchcam_maps,
)
from .inputs import Setup

TOLERANCE = 1e-3  # largest difference allowed between two maps scaled to [0, 1]


@dataclass(frozen=True)
class Difference:
    peer: Peer
    tap: int
    value: float  # max abs difference over the photos (and the classes, for CAM)
    counted: bool = True  # False: printed for information, outside the method's domain (see Peer.last_tap_only)
    note: str = ""


@dataclass
class Agreement:
    differences: list[Difference] = field(default_factory=list)
    same_prediction: bool = True  # the library net's predicted classes equal our head's

    def worst(self) -> dict[str, float]:
        """'<method> vs <library> <class>' -> its largest counted difference over the taps."""
        out: dict[str, float] = {}
        for d in self.differences:
            if d.counted:
                key = f"{d.peer.method} vs {d.peer.label}"
                out[key] = max(out.get(key, 0.0), d.value)
        return out

    @property
    def ok(self) -> bool:
        return self.same_prediction and all(v <= TOLERANCE for v in self.worst().values())


def torchcam_scaled(maps: torch.Tensor) -> torch.Tensor:
    """(B, H, W) -> torchcam's min-max scaling of each map."""
    from torchcam.methods.core import _CAM

    return _CAM._normalize(maps.detach().clone().float())


def pgc_scaled(maps: torch.Tensor, size: tuple[int, int]) -> np.ndarray:
    """(B, H, W) -> what pytorch-grad-cam makes of one layer's maps: ReLU, scaled to [0, 1] and resized to `size`
    (H, W) with cv2, then scaled again (its aggregation over layers)."""
    from pytorch_grad_cam.utils.image import scale_cam_image

    cam = np.maximum(maps.detach().float().cpu().numpy(), 0)
    return scale_cam_image(scale_cam_image(cam, (size[1], size[0])))


def largest_difference(ours: torch.Tensor | np.ndarray, theirs: torch.Tensor | np.ndarray) -> float:
    ours = torch.as_tensor(np.asarray(ours), dtype=torch.float32)
    theirs = torch.as_tensor(np.asarray(theirs), dtype=torch.float32)
    return float((ours - theirs).abs().max())


def with_head_scaled(setup: Setup, scale: float) -> Setup:
    """The same model with the classifier head's weights and bias times `scale` (same predictions)."""
    if scale == 1.0:
        return setup
    h = setup.heads[-1]
    return replace(setup, heads=[*setup.heads[:-1], LinearHead(h.weight * scale, h.bias * scale)])


def check_agreement(setup: Setup, x: torch.Tensor, taps: tuple[int, ...] | None = None,
                    score_photos: int = 1, score_x: torch.Tensor | None = None) -> Agreement:
    """Every checked peer at each tap in `taps` (default: all four) on the photos x, for the predicted class;
    Score-CAM at the last tap on score_x, by default the first `score_photos` photos of x (0: not checked)."""
    if setup.dtype is not None:
        raise ValueError("check_agreement needs a float32 setup (Setup.float32())")
    n_taps = len(setup.taps)
    taps = tuple(range(n_taps)) if taps is None else taps
    runs: dict[float, tuple[BatchResult, CatDogNet]] = {}

    def run(scale: float) -> tuple[BatchResult, CatDogNet]:
        if scale not in runs:
            scaled = with_head_scaled(setup, scale)
            runs[scale] = ours(scaled, cheap_methods())(x), library_net(scaled)
        return runs[scale]

    result, model = run(1.0)
    target = result.logits.argmax(1)
    agreement = Agreement()
    with torch.no_grad():
        agreement.same_prediction = torch.equal(model(x).argmax(1), target)
    with recording(setup.backbone.model, setup.taps) as store, torch.no_grad():
        setup.backbone.model(x)
        features = {t: store[setup.taps[t]].float() for t in taps}
    for peer in PEERS:
        if not peer.checked:
            continue
        scaled_result, scaled_model = run(peer.head_scale)
        for t in taps:
            d = _compare(peer, t, scaled_result.maps[peer.method][t], scaled_model, x, target, features[t])
            if peer.last_tap_only and t != n_taps - 1:
                d = replace(d, counted=False, note=f"{d.note}, signed features: not counted".lstrip(", "))
            agreement.differences.append(d)
        if peer.head_scale != 1.0 and n_taps - 1 in taps:  # for the record: what the real head gives
            d = _compare(peer, n_taps - 1, result.maps[peer.method][-1], model, x, target, features[n_taps - 1])
            agreement.differences.append(replace(d, counted=False, note="real head: not counted, the library's "
                                                                        "eps outweighs its small gradients"))
    if score_x is None and score_photos > 0:
        score_x = x[:score_photos]
    if score_x is not None:
        mine = ours(setup, ("scorecam",))(score_x)
        theirs = torchcam_maps(model, SCORE_PEER.name, n_taps - 1, score_x, None, mine.logits.argmax(1).tolist())
        size = "x".join(map(str, score_x.shape[-2:]))
        agreement.differences.append(Difference(
            SCORE_PEER, n_taps - 1, largest_difference(torchcam_scaled(mine.maps["scorecam"][-1]), theirs),
            note=f"{len(score_x)} photo(s) at {size}"))
    return agreement


def _compare(peer: Peer, tap: int, mine: torch.Tensor, model: CatDogNet, x: torch.Tensor, target: torch.Tensor,
             features: torch.Tensor) -> Difference:
    classes = target.tolist()
    scaled = f"head x {peer.head_scale:g}" if peer.head_scale != 1.0 else ""
    if peer.library == TORCHCAM and peer.method == "cam":  # every class, as the site draws them
        worst = max(largest_difference(torchcam_scaled(mine[:, k]),
                                       torchcam_maps(model, peer.name, tap, x, None, [k] * len(x)))
                    for k in range(mine.shape[1]))
        return Difference(peer, tap, worst, note="every class")
    if peer.library == TORCHCAM:
        theirs = torchcam_maps(model, peer.name, tap, x, None, classes)
        return Difference(peer, tap, largest_difference(torchcam_scaled(mine), theirs), note=scaled)
    assert peer.library == PGC, peer
    size = tuple(x.shape[-2:])
    theirs = pgc_maps(model, peer.name, tap, x, None, classes)
    if peer.method != "eigencam":
        return Difference(peer, tap, largest_difference(pgc_scaled(mine, size), theirs), note=scaled)
    # The SVD's sign is arbitrary: where pytorch-grad-cam's projection is the negative of ours, it shows the other
    # half of the same projection, ReLU(-ours before the ReLU). Compared photo by photo with the sign it used.
    from pytorch_grad_cam.utils.svd_on_activations import get_2d_projection

    signed = first_component_projection(features)
    their_signed = torch.from_numpy(get_2d_projection(features.numpy()))
    flipped = [float((signed[i] * their_signed[i]).sum()) < 0 for i in range(len(x))]
    shown = torch.stack([torch.relu(-signed[i]) if f else mine[i] for i, f in enumerate(flipped)])
    note = f"other sign on {sum(flipped)} of {len(x)} photos" if any(flipped) else ""
    return Difference(peer, tap, largest_difference(pgc_scaled(shown, size), theirs), note=note)
