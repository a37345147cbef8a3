"""generator/explain/ray_engine.py: the explain stage on Ray Data writes the same record files and results rows as
the local engine, survives an actor killed mid-batch, computes only what a killed run left, and stops with one
sentence when a node cannot see the photos or the cache. Each test runs on a local Ray (num_cpus=2) and on a
simulated two-node cluster (ray.cluster_utils.Cluster, one core per node): one cluster per parameter, started once
for the module (start-up costs seconds), on a few real photos."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import pytest
from conftest import make_small_data, small_settings

ray = pytest.importorskip("ray", reason="ray is not installed (pip install -r requirements.txt)")
pytest.importorskip("ray.data", reason="ray[data] is not installed (pip install -r requirements.txt)")

from generator.errors import UserError  # noqa: E402
from generator.explain import ray_engine  # noqa: E402


def _explain(world, cache: Path, engine=None):
    """explain_sets over the evaluation sets into `cache`; the results rows sorted by (set, file)."""
    from dataclasses import replace

    from generator.explain import run as explain

    settings = replace(world["settings"], cache_dir=cache)
    table = world["table"]
    out = explain.explain_sets(world["model"], table[table["set"] != settings.train_set], settings, world["pool"],
                               world["runtime"], progress=False, scored=world["scored"], engine=engine)
    return out.sort_values(["set", "file"]).reset_index(drop=True)


def _files(cache: Path) -> dict[str, bytes]:
    """Every record and picture the cache holds, by path inside it."""
    return {p.relative_to(cache).as_posix(): p.read_bytes()
            for sub in ("records", "pictures") for p in sorted((cache / sub).rglob("*")) if p.is_file()}


@pytest.fixture(scope="module", params=["local", "two_nodes"])
def world(request, tmp_path_factory):
    """A model trained on 4+4 real photos, a Ray (local, or a two-node cluster) with the actor-kill hook armed
    through a file, and the local engine's records and rows computed with the actors' thread count."""
    import torch

    from generator.data.scan import as_table, discover_sets, scan_rows
    from generator.data.workers import make_pool
    from generator.evaluate import leaderboard
    from generator.model import backbones, train
    from generator.model.runtime import choose_runtime

    root = tmp_path_factory.mktemp(f"ray-{request.param}")
    data = make_small_data(root, n_train=4, n_test=2)
    settings = small_settings(root, data, faithfulness_sample=1)
    kill_file = root / "kill-one-actor"
    env = {"env_vars": {ray_engine.KILL_FILE_ENV: str(kill_file)}}
    cluster = None
    if request.param == "local":
        # address="local": a new instance even where a killed run left a cluster's address behind (ray.init would
        # connect to it, and refuse num_cpus with it)
        ray.init(address="local", num_cpus=2, runtime_env=env, log_to_driver=False, logging_level="ERROR",
                 include_dashboard=False)
    else:
        from ray.cluster_utils import Cluster

        cluster = Cluster(initialize_head=True, head_node_args={"num_cpus": 1, "include_dashboard": False})
        cluster.add_node(num_cpus=1)
        cluster.wait_for_nodes()
        ray.init(address=cluster.address, runtime_env=env, log_to_driver=False, logging_level="ERROR")
    pool = make_pool(2)
    threads = torch.get_num_threads()
    try:
        sets = discover_sets(settings.data_dir, settings.train_set, settings.eval_sets)
        table = as_table(scan_rows(settings.data_dir, sets))
        runtime = choose_runtime(settings)
        backbone = backbones.build(settings.backbone, settings.weights_dir)
        trows = table[table["set"] == settings.train_set]
        model = train.train_or_load(backbone, trows, settings, pool, runtime, ("cat", "dog"), log=lambda _m: None,
                                    progress=False).model
        eval_sets = [s for s in sets if s != settings.train_set]
        sampled = leaderboard.sample_rows(table, eval_sets, settings.faithfulness_sample, settings.seed)
        plan = ray_engine.plan_pool(settings, batches=100)
        world = dict(settings=settings, table=table, model=model, pool=pool, runtime=runtime, plan=plan,
                     scored=set(zip(sampled["set"], sampled["file"])), kill_file=kill_file, root=root,
                     kind=request.param)
        torch.set_num_threads(plan.threads)  # float32 sums depend on the thread count: the actors' count
        world["local_rows"] = _explain(world, root / "cache-local")
        world["local_files"] = _files(root / "cache-local")
        yield world
    finally:
        torch.set_num_threads(threads)
        pool.terminate()
        ray.shutdown()
        if cluster is not None:
            cluster.shutdown()


def _same_as_local(world, rows, cache: Path) -> None:
    import pandas as pd

    pd.testing.assert_frame_equal(rows.drop(columns="pictures"), world["local_rows"].drop(columns="pictures"),
                                  check_exact=True)
    # the picture folders differ only by the cache they are in
    assert [Path(p).relative_to(cache) if p else "" for p in rows["pictures"]] == \
        [Path(p).relative_to(world["root"] / "cache-local") if p else "" for p in world["local_rows"]["pictures"]]
    files = _files(cache)
    assert files.keys() == world["local_files"].keys()
    different = [name for name, blob in files.items() if blob != world["local_files"][name]]
    assert not different, f"{len(different)} files differ from the local engine's, e.g. {different[:3]}"


def test_the_pool_uses_every_node(world):
    plan = world["plan"]
    assert (plan.size, plan.threads, plan.gpu) == ((1, 2, False) if world["kind"] == "local" else (2, 1, False))


def test_ray_writes_the_same_records_and_rows_as_the_local_engine(world):
    cache = world["root"] / "cache-ray"
    engine = ray_engine.RayEngine()
    rows = _explain(world, cache, engine)
    ok = int((rows["status"] == "ok").sum())
    assert ok > 0 and engine.computed == ok and engine.peak_mb > 0
    assert 0 < engine.actor_start_s < 600  # the pool's start, measured from the actors' own clocks
    assert any(k.startswith("records/") for k in world["local_files"])
    _same_as_local(world, rows, cache)


def test_an_actor_killed_mid_batch_is_restarted_and_the_build_completes(world):
    cache = world["root"] / "cache-killed"
    kill = world["kill_file"]
    kill.write_text("once")
    rows = _explain(world, cache, ray_engine.RayEngine())
    assert not kill.exists() and kill.with_name(kill.name + ".used").exists()  # an actor did die
    kill.with_name(kill.name + ".used").unlink()
    _same_as_local(world, rows, cache)


def test_a_rerun_after_a_killed_run_computes_only_the_missing_records(world):
    # As a driver killed mid-run leaves the cache: some records written, others not yet. Both engines redo only
    # those, in a batch of their own (so not bit for bit as in the full run: a batch of another shape), and the
    # two engines' reruns agree byte for byte.
    caches = {}
    for name, engine in (("local", None), ("ray", ray_engine.RayEngine())):
        cache = caches[name] = world["root"] / f"cache-partial-{name}"
        shutil.copytree(world["root"] / "cache-local", cache)
        for r in sorted((cache / "records").rglob("*.npz"))[:3]:
            r.unlink()
        _explain(world, cache, engine)
        if engine is not None:
            assert engine.computed == 3
    assert _files(caches["local"]) == _files(caches["ray"])
    assert _files(caches["ray"]).keys() == world["local_files"].keys()


def test_a_node_that_cannot_read_the_photos_or_write_the_cache_stops_the_build_with_one_sentence(world, tmp_path):
    missing = tmp_path / "not-shared" / "cat.jpg"
    with pytest.raises(UserError) as err:
        ray_engine.check_storage([str(missing)], [(str(tmp_path), "--cache-dir")])
    text = str(err.value)
    assert str(missing) in text and "node " in text and "--data-dir" in text and "\n" not in text
    blocked = tmp_path / "a-file"
    blocked.write_text("not a folder")
    with pytest.raises(UserError) as err:
        ray_engine.check_storage([], [(str(blocked / "cache"), "--cache-dir")])
    assert str(blocked / "cache") in str(err.value) and "--cache-dir" in str(err.value)
    ray_engine.check_storage([str(world["table"]["path"].iloc[0])], [(str(tmp_path), "--cache-dir")])  # no error
    assert os.listdir(tmp_path) == ["a-file"]  # the check leaves nothing behind
