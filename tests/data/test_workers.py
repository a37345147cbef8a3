"""generator/data/workers.py: forked workers get their context by fork (never pickled) and keep the items' order;
decoding for the network and for the report, in chunks, on real bytes the test writes."""

from __future__ import annotations

import os
import pickle

import numpy as np
import pytest
from PIL import Image

from generator.data import workers


class Unpicklable:
    """A context that cannot be pickled: forked workers must inherit it, not receive it."""

    def __init__(self, offset: int) -> None:
        self.offset = offset
        self.lock = __import__("threading").Lock()  # locks refuse pickling


def _add(ctx: Unpicklable, item: int) -> tuple[int, int]:
    return item + ctx.offset, os.getpid()


def test_forked_map_passes_the_context_by_fork_and_keeps_the_order():
    ctx = Unpicklable(100)
    with pytest.raises(TypeError):
        pickle.dumps(ctx)
    items = list(range(40))
    out = workers.forked_map(_add, ctx, items, processes=2)
    assert [v for v, _ in out] == [i + 100 for i in items]
    if "fork" in __import__("multiprocessing").get_all_start_methods():
        assert os.getpid() not in {pid for _, pid in out}  # computed by the workers, not here
    serial = workers.forked_map(_add, ctx, items, processes=1)
    assert [v for v, _ in serial] == [v for v, _ in out] and {pid for _, pid in serial} == {os.getpid()}


def _slow_add(ctx: Unpicklable, item: int) -> tuple[int, int, float]:
    import time

    time.sleep(0.02)
    return item + ctx.offset, os.getpid(), time.monotonic()


def test_forked_map_started_runs_while_the_caller_works():
    import time

    ctx, items = Unpicklable(7), list(range(20))
    with workers.forked_map_started(_slow_add, ctx, items, processes=2) as results:
        out = results()
    assert [v for v, _, _ in out] == [i + 7 for i in items]
    if "fork" in __import__("multiprocessing").get_all_start_methods():
        assert os.getpid() not in {pid for _, pid, _ in out}
    with workers.forked_map_started(_slow_add, ctx, items, processes=1) as results:
        caller_done = time.monotonic()  # without workers, nothing is computed before the results are asked for
        serial = results()
    assert [v for v, _, _ in serial] == [v for v, _, _ in out]
    assert {pid for _, pid, _ in serial} == {os.getpid()} and min(t for _, _, t in serial) > caller_done


def _mutate(ctx: dict, item: int) -> int:
    ctx["seen"] = ctx.get("seen", 0) + 1  # each worker's own copy: the caller's dict never changes
    return item


def test_workers_change_only_their_own_copy_of_the_context():
    ctx: dict = {}
    assert workers.forked_map(_mutate, ctx, [1, 2, 3, 4], processes=2) == [1, 2, 3, 4]
    if "fork" in __import__("multiprocessing").get_all_start_methods():
        assert ctx == {}


def test_decode_for_model_and_for_report(tmp_path):
    rng = np.random.default_rng(0)
    path = tmp_path / "p.png"
    Image.fromarray(rng.integers(0, 255, (30, 50, 3), dtype=np.uint8)).save(path)
    arr, status = workers.decode_for_model((str(path), 16, 10_000))
    assert status == "ok" and arr.shape == (16, 16, 3) and arr.dtype == np.uint8
    (tmp_path / "bad.png").write_bytes(b"not an image")
    arr, status = workers.decode_for_model((str(tmp_path / "bad.png"), 16, 10_000))
    assert arr is None and status.startswith("skipped: ")
    job = {"path": str(path), "max_pixels": 10_000, "input_size": 16, "display_size": 40, "thumb_size": 20,
           "quality": 60, "asset_dir": str(tmp_path / "asset")}
    out = workers.decode_for_report(job)
    assert out["status"] == "ok" and (out["width"], out["height"]) == (50, 30)
    name, w, h = workers.picture_files(tmp_path / "asset")
    assert name == "photo.webp" and max(w, h) == 40  # a PNG is not web-ready: encoded as WebP
    assert workers.picture_files(tmp_path / "nothing") is None


def test_decoded_in_chunks_keeps_order_and_bounds_each_chunk():
    with workers.make_pool(2) as pool:
        out = list(workers.decoded_in_chunks(pool, abs, [-i for i in range(130)], chunk=64))
    assert out == list(range(130))


def test_keeping_freed_memory_spaces_the_trimming(monkeypatch):
    """Without keep_freed_memory, HeapTrimmer trims every `every` calls; with it in force (glibc), only every
    KEPT_TRIM_EVERY calls (a trim undoes the keeping until the heap is faulted in again)."""
    from generator.data import workers

    monkeypatch.setattr(workers, "_KEEPING_FREED", False)  # restored after the test
    monkeypatch.setattr(workers, "KEPT_TRIM_EVERY", 5)
    calls = []
    trimmer = workers.HeapTrimmer(every=2)
    trimmer._trim = lambda pad: calls.append(trimmer.calls)
    for _ in range(4):
        trimmer()
    assert calls == [2, 4]
    if not workers.keep_freed_memory():
        pytest.skip("not glibc: mallopt is not there, so nothing is kept and the trimming goes on")
    for _ in range(6):
        trimmer()
    assert calls == [2, 4, 5, 10]  # every 5th call from now on, not every 2nd


def test_freed_memory_is_kept_where_the_network_runs_on_the_cpu(monkeypatch):
    """One rule for the build, the Ray actors and the floor: kept on a CPU, left alone for a GPU."""
    from generator.data import workers

    monkeypatch.setattr(workers, "_KEEPING_FREED", False)  # restored after the test
    assert workers.keep_freed_memory_on("cuda") is False and workers._KEEPING_FREED is False
    kept = workers.keep_freed_memory_on("cpu")
    assert kept is (workers._glibc() is not None) and workers._KEEPING_FREED is kept
