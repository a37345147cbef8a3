"""generator/model/ood.py: the backbone's own ImageNet head, and which of its classes are cats and dogs."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from generator.model import ood
from generator.model.backbones import IMAGENET_CATS, IMAGENET_DOGS, imagenet_categories


def test_the_cat_and_dog_classes_are_the_right_ones():
    names = imagenet_categories()
    assert len(names) == 1000
    assert [names[i] for i in IMAGENET_CATS] == ["tabby", "tiger cat", "Persian cat", "Siamese cat", "Egyptian cat"]
    assert names[IMAGENET_DOGS.start] == "Chihuahua" and names[IMAGENET_DOGS.stop - 1] == "Mexican hairless"
    assert len(ood.PET_CLASSES) == 123


def test_scores_by_hand():
    logits = torch.full((2, 1000), -10.0)
    logits[0, 281] = 10.0  # all on tabby
    logits[1, 500] = 10.0  # all on one other class
    p = ood.pet_probability(logits)
    assert float(p[0]) == pytest.approx(1.0, abs=1e-5) and float(p[1]) < 1e-5
    idx, top = ood.top_classes(logits)
    assert idx[0].tolist()[0] == 281 and float(top[0, 0]) == pytest.approx(1.0, abs=1e-5)
    e = ood.energy(logits)
    assert float(e[0]) == pytest.approx(-float(torch.logsumexp(logits[0], 0)))


@pytest.mark.slow
def test_the_class_names_line_up_with_the_logits_on_a_real_cat():
    """scikit-image's Chelsea through EfficientNet-Lite0's own ImageNet head: a cat class comes first, and the
    summed cat and dog probability is high; the astronaut gets no pet class and a low sum."""
    import io

    from PIL import Image
    from skimage import data

    from generator.data.imaging import decode_bytes
    from generator.model.backbones import build_efficientnet_lite0

    backbone = build_efficientnet_lite0()
    batch = []
    for photo in (data.chelsea(), data.astronaut()):
        buf = io.BytesIO()
        Image.fromarray(photo).save(buf, "PNG")
        batch.append(decode_bytes(buf.getvalue(), 224, 224, 10**8).model_input)
    with torch.inference_mode():
        logits = backbone.model(backbone.to_input(np.stack(batch)))
    idx, _ = ood.top_classes(logits)
    names = imagenet_categories()
    assert int(idx[0, 0]) in IMAGENET_CATS, names[int(idx[0, 0])]
    pet = ood.pet_probability(logits)
    assert float(pet[0]) > 0.5 > 0.1 > float(pet[1])
    assert not set(idx[1].tolist()) & set(ood.PET_CLASSES.tolist())
