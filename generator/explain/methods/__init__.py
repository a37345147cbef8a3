"""Explanation methods as plug-ins: each is one small class registered under its name.

Adding a method: one class in a family file (activation.py, gradient.py, score.py) or a new file imported
below, plus one test. Nothing else in the project names a method.
"""

from __future__ import annotations

from generator.explain.methods import activation, gradient, score  # noqa: F401  (importing registers the methods)
from generator.explain.methods.base import REGISTRY, BatchInputs, MapMethod, Need, TapInputs, register
from generator.explain.record import NO_CAM_METHOD  # the map pages show where there is no CAM

__all__ = ["REGISTRY", "BatchInputs", "MapMethod", "Need", "TapInputs", "register", "resolve", "get", "names",
           "NO_CAM_METHOD"]


def names() -> tuple[str, ...]:
    """Every registered method, in the order pages show them."""
    return tuple(REGISTRY)


def get(name: str) -> MapMethod:
    return REGISTRY[name]




def resolve(spec: str | tuple[str, ...] | list[str], cam_head: bool = True) -> tuple[str, ...]:
    """'all', 'default' or a comma-separated list of names -> registered names in registry order.

    CAM is always chosen (earlier taps' probes give it there); cam_head=False (a user's model whose head is not
    pooling + linear, so no CAM at the last tap) adds NO_CAM_METHOD, the map its pages show in CAM's place.

    Raises ValueError naming the unknown method and the known ones.
    """
    items = [s.strip().lower() for s in (spec.split(",") if isinstance(spec, str) else spec) if s.strip()]
    if not items:
        raise ValueError("no map method chosen; choose from " + ", ".join(("all", "default", *REGISTRY)))
    if "all" in items:
        return names()
    chosen: set[str] = set()
    for item in items:
        if item == "default":
            chosen.update(n for n, m in REGISTRY.items() if m.default_on)
        elif item in REGISTRY:
            chosen.add(item)
        else:
            raise ValueError(f"unknown map method {item!r}; choose from " + ", ".join(("all", "default", *REGISTRY)))
    if "cam" not in chosen:  # the report is about CAM: its maps, boxes and figures are always made
        chosen.add("cam")
    if not cam_head:
        chosen.add(NO_CAM_METHOD)
    return tuple(n for n in REGISTRY if n in chosen)
