"""Explanation methods as plug-ins: each is one small class registered under its name.

Adding a method: one class in a family file (activation.py, gradient.py, score.py) or a new file imported
below, plus one test. Nothing else in the project names a method.
"""

from __future__ import annotations

from generator.explain.methods import activation, gradient, score  # noqa: F401  (importing registers the methods)
from generator.explain.methods.base import REGISTRY, BatchInputs, MapMethod, Need, TapInputs, register

__all__ = ["REGISTRY", "BatchInputs", "MapMethod", "Need", "TapInputs", "register", "resolve", "get", "names"]


def names() -> tuple[str, ...]:
    """Every registered method, in the order pages show them."""
    return tuple(REGISTRY)


def get(name: str) -> MapMethod:
    return REGISTRY[name]


def resolve(spec: str | tuple[str, ...] | list[str]) -> tuple[str, ...]:
    """'all', 'default' or a comma-separated list of names -> registered names in registry order.

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
    return tuple(n for n in REGISTRY if n in chosen)
