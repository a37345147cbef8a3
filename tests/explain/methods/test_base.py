"""generator/explain/methods/base.py: a map method is one registered class; the explainer, --methods and the
registry find it with nothing else to edit."""

from __future__ import annotations

import pytest
import torch

from generator.explain import methods
from generator.explain.methods.base import REGISTRY, MapMethod, Need, register
from tests.fixtures_models import explain_watching_autograd, tiny_net


@pytest.fixture
def toy_method():
    """A toy method (the channel maximum of the features), registered for one test and removed after it."""

    class ChannelMax(MapMethod):
        name = "toymax"
        title = "Channel max"
        citation = "a test"
        needs = Need.FEATURES
        cost = "no extra pass"

        def tap_map(self, tap, batch):
            return tap.features.amax(dim=1)

    register(ChannelMax)
    yield REGISTRY["toymax"]
    REGISTRY.pop("toymax")


def test_a_method_is_one_registered_class(toy_method):
    assert "toymax" in methods.names() and methods.get("toymax") is toy_method
    assert "toymax" in methods.resolve("cam,toymax")
    net = tiny_net()
    x = torch.randn(3, 3, 16, 16)
    result, grads_on = explain_watching_autograd(net, toy_method, x)
    maps = result.maps["toymax"]
    assert len(maps) == 2 and all(m is not None and m.shape[0] == 3 for m in maps)  # every tap, every photo
    assert grads_on == [False]  # a features-only method: one forward pass, no backward


def test_two_methods_of_one_name_are_refused(toy_method):
    class Again(MapMethod):
        name = "toymax"

    with pytest.raises(ValueError, match="two map methods are named 'toymax'"):
        register(Again)
