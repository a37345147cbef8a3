"""The per-photo record: a round trip through .npz keeps every map and number; damaged or old files are refused."""

from __future__ import annotations

import numpy as np
import pytest
from fixtures_models import make_record

from generator.explain.record import NO_CAM_METHOD, RECORD_VERSION, PhotoRecord, as_stored, map_key, to_half
from generator.files import load_npz, save_npz

pytestmark = pytest.mark.numerics  # make test runs these again in float32 where bf16 is on


def test_round_trip_keeps_every_map_and_number(tmp_path):
    rec = make_record()
    save_npz(tmp_path / "r.npz", rec.to_npz())
    back = PhotoRecord.from_npz(load_npz(tmp_path / "r.npz"), n_taps=3)
    assert back is not None
    assert (back.width, back.height, back.pet_p, back.energy) == (640, 480, 0.73, -9.5)
    np.testing.assert_array_equal(back.logits, rec.logits)
    np.testing.assert_array_equal(back.probe_logits, rec.probe_logits)
    np.testing.assert_array_equal(back.imagenet_top, rec.imagenet_top)
    assert back.methods() == ("cam", "gradcam", "scorecam")
    for name, per_tap in rec.maps.items():
        for t, m in enumerate(per_tap):
            if m is None:
                assert back.maps[name][t] is None
            else:
                np.testing.assert_array_equal(back.maps[name][t], m)
    assert back.pred == int(np.argmax(rec.logits))
    assert back.probs.sum() == pytest.approx(1.0, abs=1e-6)


@pytest.mark.parametrize("scale", [1e-9, 1e-5, 1.0, 7e4, 1e12])
def test_maps_of_any_magnitude_keep_float16_precision(scale):
    """Grad-CAM++ on a GPU gave a map above float16's 65,504 (it became inf); Grad-CAM at the first stage sits near
    float16's 6e-5 floor. Each map gets its own power of two, so neither overflows nor loses bits."""
    rng = np.random.default_rng(1)
    m = rng.normal(size=(56, 56)) * scale
    m[0, 0] = 2.0 ** np.floor(np.log2(np.abs(m).max()))  # an exact power of two among the values
    half, e = to_half(m)
    assert half.dtype == np.float16 and np.isfinite(half).all() and np.abs(half).max() <= 1.0
    stored = as_stored(m)
    big = np.abs(m) > np.abs(m).max() / 8192  # float16 keeps 11 bits down to 2**-14 of 2**e < 2 * peak
    assert np.all(np.abs(stored - m)[big] <= np.abs(m)[big] * 2.0 ** -11 * (1 + 1e-6))
    np.testing.assert_array_equal(as_stored(stored), stored)  # storing again changes nothing


def test_a_peak_that_rounds_up_to_a_power_of_two_is_stored_the_same_way_again():
    """1 - 2**-13 rounds to 1.0 in float16: the stored map's peak is then exactly 2**e, and storing it again must
    keep e (a larger e would halve the float16 subnormals beside it and lose their last bit)."""
    m = np.array([[1 - 2.0 ** -13, 3 * 2.0 ** -24]])
    stored = as_stored(m)
    assert stored[0, 0] == 1.0 and to_half(stored)[1] == to_half(m)[1]
    np.testing.assert_array_equal(as_stored(stored), stored)


def test_three_arrays_per_file():
    """Loading an .npz costs per array: the scalars, one vector of every map, and their layout."""
    arrays = make_record().to_npz()
    assert sorted(arrays) == ["layout", "maps", "scalars"]
    # cam: 2 classes at 8x8, 4x4, 2x2; gradcam: one map at each; scorecam: the last tap only
    assert arrays["maps"].dtype == np.float16 and arrays["maps"].size == 2 * (64 + 16 + 4) + (64 + 16 + 4) + 4


def test_old_or_incomplete_records_are_refused():
    arrays = make_record().to_npz()
    old = arrays["scalars"].copy()
    old[0] = RECORD_VERSION - 1
    assert PhotoRecord.from_npz(dict(arrays, scalars=old), 3) is None
    assert PhotoRecord.from_npz(arrays, 4) is None  # another network (other number of taps)
    assert PhotoRecord.from_npz(dict(arrays, maps=arrays["maps"][:-1]), 3) is None
    assert PhotoRecord.from_npz({k: v for k, v in arrays.items() if k != "layout"}, 3) is None
    assert PhotoRecord.from_npz(dict(arrays, layout=np.frombuffer(b"not json", np.uint8)), 3) is None


def test_map_keys_are_made_in_one_place():
    assert map_key("cam", 3, 1) == "cam/3/1"
    assert map_key("gradcam", 0) == "gradcam/0"


def test_saving_fewer_methods_keeps_the_maps_already_cached(tmp_path):
    """Two builds sharing one cache (two site folders): the one with fewer methods must not take Score-CAM away
    from the other's records, whose leaderboard would then score that photo without it."""
    from generator.explain.run import RecordCache

    cache = RecordCache(tmp_path, "model", n_taps=3)
    full = make_record()
    cache.save("ab" * 32, full)
    fewer = make_record(seed=1)
    del fewer.maps["scorecam"]
    cache.save("ab" * 32, fewer)
    back = cache.load("ab" * 32, need=("cam", "gradcam", "scorecam"))
    assert back is not None
    np.testing.assert_array_equal(back.maps["scorecam"][-1], full.maps["scorecam"][-1])
    np.testing.assert_array_equal(back.maps["cam"][0], full.maps["cam"][0])  # what was stored stays


def test_saving_more_methods_adds_maps_and_keeps_the_stored_numbers(tmp_path):
    """A build that needs more maps of a cached photo (another leaderboard sample) computes it again, in another
    batch, where float32 results differ in the last digits: the record keeps the numbers and maps an earlier build
    reported and only gains the new maps; save returns exactly what the file holds."""
    from generator.explain.run import RecordCache

    cache = RecordCache(tmp_path, "model", n_taps=3)
    fewer = make_record()
    del fewer.maps["scorecam"]
    cache.save("cd" * 32, fewer)
    again = make_record(seed=1)  # other numbers, as a recomputation may give, and one more method
    returned = cache.save("cd" * 32, again)
    back = cache.load("cd" * 32, need=("cam", "gradcam", "scorecam"))
    assert back is not None
    for rec in (back, returned):
        for name in ("logits", "probe_logits", "imagenet_top", "imagenet_top_p"):
            np.testing.assert_array_equal(getattr(rec, name), getattr(fewer, name))
        assert (rec.pet_p, rec.energy, rec.width, rec.height) == (fewer.pet_p, fewer.energy, 640, 480)
        for name in ("cam", "gradcam"):
            for t in range(3):
                np.testing.assert_array_equal(rec.maps[name][t], fewer.maps[name][t])
        np.testing.assert_array_equal(rec.maps["scorecam"][-1], again.maps["scorecam"][-1])
        assert rec.maps["scorecam"][0] is None


def test_a_record_without_cam_at_the_last_tap():
    """A model without a linear head: CAM at the earlier taps, Grad-CAM at the last one, which the pages draw there
    (lead_map); such a record reads back, and one that lacks both at the last tap is refused."""
    rec = make_record()
    rec.maps["cam"][-1] = None
    back = PhotoRecord.from_npz(rec.to_npz(), 3)
    assert back is not None and not back.has_cam(-1) and back.has_cam(0)
    assert back.lead_method(-1) == NO_CAM_METHOD == "gradcam" and back.lead_method(0) == "cam"
    np.testing.assert_array_equal(back.lead_map(-1), back.maps["gradcam"][-1])
    np.testing.assert_array_equal(back.lead_map(0), back.cam(0)[back.pred])
    del rec.maps["gradcam"]
    assert PhotoRecord.from_npz(rec.to_npz(), 3) is None
    rec = make_record()
    rec.maps["cam"][0] = None  # an earlier tap without CAM: incomplete
    assert PhotoRecord.from_npz(rec.to_npz(), 3) is None
