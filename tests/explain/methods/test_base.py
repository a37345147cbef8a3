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


def test_a_model_without_cam_at_its_last_tap_always_gets_the_map_drawn_in_its_place():
    """CAM needs a linear head (needs_head): a model without one at its last tap gets NO_CAM_METHOD chosen too,
    whatever --methods says, since its pages draw that map where CAM would be."""
    assert methods.get("cam").needs_head and not methods.get("gradcam").needs_head
    assert methods.resolve("cam") == ("cam",)
    assert methods.resolve("cam", cam_head=False) == ("cam", methods.NO_CAM_METHOD) == ("cam", "gradcam")
    assert methods.resolve("layercam", cam_head=False) == ("cam", "gradcam", "layercam")
