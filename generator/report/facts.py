"""What was run: the typed facts of one build (model, weights, taps, methods, runtime), as pages state them."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any


@dataclass(frozen=True)
class MethodFacts:
    """A map method as the pages describe it (from the method registry)."""

    title: str
    citation: str
    needs: str  # features, gradients or forwards
    cost: str  # a message id: the pages translate it
    per_class: bool
    last_tap_only: bool
    opt_in: bool


@dataclass(frozen=True)
class RunFacts:
    started: str  # ISO time the compute stage started, to the second
    backbone: str
    classes: tuple[str, ...]  # the class of each output of the head, in order (the scan's)
    weights_file: str
    weights_sha256: str
    checkpoint: str
    model_fingerprint: str  # keys every per-photo record of this model
    recipe: dict[str, Any]
    train_scores: dict[str, float]  # cross-validated accuracy of the head and probes on the training photos
    seed: int
    runtime: dict[str, Any]  # device, autocast, channels_last
    versions: dict[str, str]  # library versions
    sets: tuple[str, ...]  # every set scanned, the training set included
    tap_names: tuple[str, ...]  # message ids ("stage 3"); the pages translate them
    tap_modules: tuple[str, ...]
    tap_sizes: tuple[int, ...]  # side of each tap's map at the network input size
    methods_chosen: tuple[str, ...]
    methods_scored: tuple[str, ...]
    methods_info: dict[str, MethodFacts]
    antisymmetry: tuple[float, ...]  # per tap, largest |w_0 + w_1| of two-class heads (inf for K > 2)
    head_bias: tuple[float, ...]  # empty when the last stage has no linear head
    compute_timings: dict[str, float] = field(default_factory=dict)  # seconds per compute stage
    leaderboard: dict[str, Any] = field(default_factory=dict)  # how the leaderboard's sample stopped (Outcome)
    # a fine-tuned network's training, per epoch (train and held-out loss and accuracy), and its summary
    training_curve: tuple[dict[str, float], ...] = ()
    training: dict[str, Any] = field(default_factory=dict)

    @property
    def recipe_name(self) -> str:
        """probe, finetune or lp-ft (a probe checkpoint's recipe carries no name)."""
        return str(self.recipe.get("name", "probe"))

    @property
    def tuned(self) -> bool:
        """A network fine-tuned here (recipe finetune or lp-ft)."""
        return self.recipe_name in ("finetune", "lp-ft")

    @property
    def own(self) -> bool:
        """The user's own classifier (setting model), explained with its own head: nothing of it trained here."""
        return self.recipe_name == "own"

    @property
    def no_cam_reason(self) -> str:
        """Why the last stage has no CAM ('' when it has): a user's model whose head is not pooling + linear,
        e.g. "its output does not come from a linear layer"."""
        return str(self.recipe.get("no_cam", ""))

    @property
    def last_method(self) -> str:
        """The method of the map the pages show at the last stage: CAM, or the gradient map in its place."""
        if not self.no_cam_reason:
            return "cam"
        from generator.explain.record import NO_CAM_METHOD  # here: the nothing-changed rerun imports no numpy

        return NO_CAM_METHOD

    @property
    def last_title(self) -> str:
        """The title of that method, as readers see it: "CAM" or "Grad-CAM"."""
        return self.methods_info[self.last_method].title

    @property
    def n_classes(self) -> int:
        return len(self.classes)

    @property
    def n_taps(self) -> int:
        return len(self.tap_modules)

    def as_json(self) -> dict[str, Any]:
        """Plain JSON types, for run.json."""
        return asdict(self)
