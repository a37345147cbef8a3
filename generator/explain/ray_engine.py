"""The explain stage on Ray Data (`--engine ray`): decoding and the network pass as `map_batches` over the photos,
with a pool of actors that each hold the model, on this machine or on a cluster.

Each actor loads the checkpoint itself (weights/ must be on storage every node sees, like the photos and the
cache), so the model never travels through Ray's object store. An actor decodes its batch, runs the same
Explainer the local engine runs, writes each record into the same content-addressed RecordCache as soon as its
batch is done, and returns only the small results row of each photo. A build killed half way so keeps every
finished record, and its rerun computes only the rest (explain_sets loads what the cache holds).

Same batches, same bytes: the photos to compute are cut, in the local engine's order and per need (the
leaderboard's sample first), into blocks of whole network batches of exactly `batch_size` rows (map_batches
with batch_size=None hands an actor a whole block; the actor cuts it into its batches, decoding the next while
computing one). So every network batch holds the same photos as the local engine's, and on the same machine,
with the same thread count, the records are byte-identical. One difference remains, by design: when a photo of a
batch turns out unreadable, the local engine fills the batch up with the next photo, an actor runs the rest of
that batch one short; float32 sums over a smaller batch may then differ in the last bits (relative 1e-6), only
for the photos of that batch.

The training-feature pass (model/features.py) and the leaderboard's perturbation passes stay local.
"""

from __future__ import annotations

import json
import logging
import math
import os
import resource
import time
import warnings
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

import numpy as np
from tqdm import tqdm

from generator.config import Settings
from generator.data.workers import HeapTrimmer, decode_for_report, keep_freed_memory_on, picture_files
from generator.errors import UserError
from generator.explain.run import Caches, RecordCache, _decode_jobs, _finish_row, make_explainer, records_of
from generator.frames import pd
from generator.model.runtime import Runtime

# Test hook: when this variable names a file, the first actor that finds the file there (it renames it away, so
# this happens once) dies in the middle of a batch, after writing that batch's first record.
KILL_FILE_ENV = "CAM_TEST_KILL_ACTOR_FILE"
RETRIES = 3  # a dead actor is restarted, and its batch run again, this many times before the build fails
# network batches per Ray block: an actor decodes a block's next batch while it computes one. Measured on this
# 2-core machine it made no difference (200 photos: 1.62x the local engine against 1.63x with one batch a block;
# the network's threads hold both cores); kept for nodes with cores to spare, where decoding would otherwise wait
BLOCK_BATCHES = 4


@contextmanager
def ray_session(settings: Settings) -> Iterator[None]:
    """Ray for the length of the build: joins the cluster at settings.ray_address (auto or an address), or starts
    one on this machine that stops on the way out, on errors and Ctrl-C too. A Ray already started in this
    process (a test's) is used as it is and left running."""
    import ray

    if ray.is_initialized():
        yield
        return
    try:
        ray.init(address=settings.ray_address or None, log_to_driver=False, logging_level="ERROR",
                 include_dashboard=False, configure_logging=True)
    except (ConnectionError, ValueError, RuntimeError) as exc:
        where = settings.ray_address or "this machine"
        raise UserError(f"setting ray_address = {settings.ray_address!r}: no Ray cluster could be joined or started "
                        f"at {where} ({str(exc).splitlines()[0] if str(exc) else type(exc).__name__}); start one "
                        "with `ray start --head`, or leave ray_address empty.") from None
    try:
        yield
    finally:
        ray.shutdown()


@dataclass(frozen=True)
class ModelSpec:
    """What an actor needs to load the model itself: small, plain values."""

    backbone: str
    weights_dir: str
    checkpoint: str
    fingerprint: str
    backbone_sha256: str


def _load_model(spec: ModelSpec):
    from generator.model import backbones
    from generator.model.checkpoint import TrainedModel, load_tuned, read_checkpoint

    backbone = backbones.build(spec.backbone, Path(spec.weights_dir))
    heads, meta = read_checkpoint(Path(spec.checkpoint))
    load_tuned(Path(spec.checkpoint), backbone, meta)  # a fine-tuned network's own weights (none for a probe)
    model = TrainedModel(backbone, heads, meta, Path(spec.checkpoint))
    if model.fingerprint != spec.fingerprint or backbone.weights_sha256 != spec.backbone_sha256:
        raise UserError(f"{spec.checkpoint}: on node {_node_name()} this checkpoint or the backbone's weights in "
                        f"{spec.weights_dir} differ from the driver's; point --weights-dir at storage every node "
                        "sees.")
    return model


def _node_name() -> str:
    import ray

    ctx = ray.get_runtime_context()
    node = ctx.get_node_id()
    ip = next((n["NodeManagerAddress"] for n in ray.nodes() if n["NodeID"] == node), "?")
    return f"{ip} (id {node[:8]})"


class ExplainActor:
    """One model per actor; called with one batch (a block of the photo table) at a time."""

    def __init__(self, spec: ModelSpec, needs: list[tuple[str, ...]], settings: Settings, runtime: Runtime,
                 threads: int, gpu: bool) -> None:
        import torch

        from generator.model.backbones import imagenet_categories
        from generator.model.runtime import choose_runtime

        torch.set_num_threads(threads)
        self.settings, self.needs = settings, needs
        self.runtime = choose_runtime(replace(settings, device="cuda")) if gpu else runtime
        keep_freed_memory_on(self.runtime.device)  # as the local engine's build does: without it, every batch
        # faulted its activations in again (the stage was 1.6x the local's)
        self.model = _load_model(spec)
        self.cache = RecordCache(settings.cache_dir, self.model.fingerprint, len(self.model.backbone.taps))
        self.categories = imagenet_categories()
        self.explainers: dict[int, Any] = {}
        self.ready_at = time.time()  # wall clock: the driver measures how long the pool took to come up
        self.decoders = ThreadPoolExecutor(threads)  # PIL decodes and encodes with the GIL released
        self.prefetch = ThreadPoolExecutor(1)  # runs the decoding of the next batch while this one computes
        self.trim = HeapTrimmer()

    def _decode(self, rows: list[dict]) -> list[dict]:
        return list(self.decoders.map(decode_for_report, _decode_jobs(rows, range(len(rows)), self.settings)))

    def __call__(self, batch: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """A block of whole network batches: each batch's photos are decoded while the network runs on the batch
        before (as the local engine's decoding processes run ahead of its network pass)."""
        rows = [{"path": str(p), "pictures": str(d), "sha256": str(s)}
                for p, d, s in zip(batch["path"], batch["pictures"], batch["sha256"])]
        need = int(batch["need"][0])
        bs = self.settings.batch_size
        starts = list(range(0, len(rows), bs))
        ahead = self.prefetch.submit(self._decode, rows[:bs])
        decoded: list[dict] = []
        out = [""] * len(rows)
        for k, start in enumerate(starts):
            part = ahead.result()
            if k + 1 < len(starts):
                ahead = self.prefetch.submit(self._decode, rows[start + bs:start + 2 * bs])
            decoded += part
            self._explain(rows, start, part, need, out)
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
        return {"idx": batch["idx"], "status": np.array([d["status"] for d in decoded]), "row": np.array(out),
                "peak_mb": np.full(len(rows), peak), "ready_at": np.full(len(rows), self.ready_at)}

    def _explain(self, rows: list[dict], start: int, decoded: list[dict], need: int, out: list[str]) -> None:
        """One network batch: rows[start:start + len(decoded)], decoded; each photo's results row into out."""
        ok = [start + j for j, d in enumerate(decoded) if d["status"] == "ok"]
        if not ok:
            return
        self.trim()
        if need not in self.explainers:
            self.explainers[need] = make_explainer(self.model, self.needs[need], self.runtime)
        explainer = self.explainers[need]
        x = self.model.backbone.to_input(np.stack([decoded[j - start]["input"] for j in ok]),
                                         self.runtime.channels_last, self.runtime.device)
        with explainer:
            result = explainer(x)
        records = records_of(result, [(decoded[j - start]["width"], decoded[j - start]["height"]) for j in ok])
        for n, (j, record) in enumerate(zip(ok, records)):
            self.cache.save(rows[j]["sha256"], record)
            if n == 0:
                _maybe_die_for_test()
            row: dict[str, Any] = {}
            _finish_row(row, record, picture_files(Path(rows[j]["pictures"])), self.settings, self.categories,
                        self.model.classes)
            out[j] = json.dumps(row, default=_plain)  # floats as repr: they come back bit for bit


def _plain(value: Any) -> Any:
    return value.item()  # numpy scalars (box corners, areas) as Python numbers


def _maybe_die_for_test() -> None:
    marker = os.environ.get(KILL_FILE_ENV)
    if not marker:
        return
    try:
        os.rename(marker, marker + ".used")  # only one actor wins the rename: the fault happens once
    except OSError:
        return
    os._exit(1)


@contextmanager
def _user_errors_unwrapped() -> Iterator[None]:
    """A UserError raised in an actor (a checkpoint a node cannot read, say) reaches the driver wrapped in Ray's
    errors: raise the sentence itself."""
    try:
        yield
    except UserError:
        raise
    except Exception as exc:
        seen, cause = set(), exc
        while cause is not None and id(cause) not in seen:
            seen.add(id(cause))
            if isinstance(cause, UserError):
                raise UserError(str(cause).splitlines()[0]) from None
            cause = cause.__cause__ or getattr(cause, "cause", None)
        raise


# ---- storage every node sees ----------------------------------------------------------------------------------


def _storage_problem(photos: list[str], folders: list[tuple[str, str]]) -> str | None:
    """On one node: None when it reads every photo in `photos` and writes into every (folder, what) of
    `folders`, else one sentence naming the path and the node."""
    import tempfile

    for path in photos:
        try:
            with open(path, "rb") as f:
                f.read(1)
        except OSError as exc:
            return (f"node {_node_name()} cannot read the photo {path} ({exc.strerror or exc}); put --data-dir on "
                    "storage every node of the cluster sees (a shared file system path).")
    for folder, what in folders:
        try:
            Path(folder).mkdir(parents=True, exist_ok=True)
            with tempfile.TemporaryFile(dir=folder):
                pass
        except OSError as exc:
            return (f"node {_node_name()} cannot write into {folder} ({exc.strerror or exc}); put {what} on "
                    "storage every node of the cluster sees (a shared file system path).")
    return None


def check_storage(photos: list[str], folders: list[tuple[str, str]]) -> None:
    """Run _storage_problem on every live node of the cluster before any work; UserError with the first
    problem found."""
    import ray
    from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy

    check = ray.remote(num_cpus=0, max_retries=0)(_storage_problem)
    nodes = [n["NodeID"] for n in ray.nodes() if n["Alive"]]
    found = ray.get([check.options(scheduling_strategy=NodeAffinitySchedulingStrategy(node, soft=False))
                     .remote(photos, folders) for node in nodes])
    problem = next((p for p in found if p), None)
    if problem:
        raise UserError(problem)


# ---- the engine -------------------------------------------------------------------------------------------------


@dataclass
class Pool:
    size: int  # actors
    threads: int  # CPU cores (and torch threads) per actor
    gpu: bool  # one GPU per actor


def plan_pool(settings: Settings, batches: int) -> Pool:
    """GPU actors where the cluster has GPUs (and device is not cpu), one per GPU; else one CPU actor per node,
    holding as many cores as the smallest node has (one model copy per node, its cores as torch threads)."""
    import ray

    nodes = [n["Resources"] for n in ray.nodes() if n["Alive"]]
    gpus = int(sum(r.get("GPU", 0) for r in nodes))
    if gpus and settings.device != "cpu":
        cpus = int(sum(r.get("CPU", 0) for r in nodes))
        return Pool(size=max(1, min(gpus, batches)), threads=max(1, cpus // gpus // 2), gpu=True)
    per_node = [int(r.get("CPU", 0)) for r in nodes if r.get("CPU", 0) >= 1] or [1]
    threads = max(1, min(per_node))
    return Pool(size=max(1, min(sum(c // threads for c in per_node), batches)), threads=threads, gpu=False)


class RayEngine:
    """explain_sets(..., engine=RayEngine()) computes the missing records with Ray Data instead of in this
    process. `peak_mb` is the largest peak memory (RSS) of an actor seen in the last compute; `actor_start_s` the
    seconds until its first actor had started and loaded the model."""

    def __init__(self) -> None:
        self.peak_mb = 0.0
        self.actor_start_s = 0.0  # from the start of the last compute until its first actor was ready to work
        self.computed = 0  # photos sent to the actors in the last compute
        self.pool: Pool | None = None

    def compute(self, model, rows: list[dict], todo: dict[tuple[str, ...], list[int]], settings: Settings,
                runtime: Runtime, caches: Caches, progress: bool) -> None:
        import ray
        from ray.data import ActorPoolStrategy, DataContext

        needs = [need for need, indices in todo.items() if indices]
        if not needs:
            return
        firsts: dict[str, str] = {}  # one photo per set: the photos of every set are on storage each node sees
        for indices in todo.values():
            for i in indices:
                firsts.setdefault(str(Path(rows[i]["path"]).parent), rows[i]["path"])
        check_storage(list(firsts.values()), [(str(caches.records.path("00" * 32).parent.parent), "--cache-dir"),
                                              (str(caches.pictures.root), "--cache-dir")])
        bs = settings.batch_size
        self.pool = pool = plan_pool(settings, sum(-(-len(todo[need]) // bs) for need in needs))
        blocks = []
        for k, need in enumerate(needs):
            indices = todo[need]
            # whole batches per block: up to BLOCK_BATCHES, fewer when that would leave an actor idle
            step = bs * max(1, min(BLOCK_BATCHES, -(-len(indices) // (bs * pool.size))))
            for start in range(0, len(indices), step):
                part = indices[start:start + step]
                blocks.append(pd.DataFrame({
                    "idx": part, "need": [k] * len(part),
                    "path": [rows[i]["path"] for i in part], "pictures": [rows[i]["pictures"] for i in part],
                    "sha256": [rows[i]["sha256"] for i in part]}))
        logging.getLogger("ray.data").setLevel(logging.ERROR)  # its execution plans and stats, by default
        ctx = DataContext.get_current()
        ctx.enable_progress_bars = False
        ctx.print_on_execution_start = False
        ctx.execution_options.preserve_order = True
        spec = ModelSpec(backbone=model.backbone.name, weights_dir=str(Path(settings.weights_dir).absolute()),
                         checkpoint=str(Path(model.path).absolute()), fingerprint=model.fingerprint,
                         backbone_sha256=model.backbone.weights_sha256)
        absolute = replace(settings, cache_dir=Path(settings.cache_dir).absolute())
        with warnings.catch_warnings():  # Ray 2.60 names no parameter for an actor's restarts but this one
            warnings.filterwarnings("ignore", "`ray_remote_args` is deprecated", DeprecationWarning)
            ds = ray.data.from_pandas(blocks).map_batches(
                ExplainActor, batch_size=None, batch_format="numpy",  # blocks of whole batches: see the docstring
                fn_constructor_kwargs={"spec": spec, "needs": needs, "settings": absolute, "runtime": runtime,
                                       "threads": pool.threads, "gpu": pool.gpu},
                compute=ActorPoolStrategy(size=pool.size), num_cpus=pool.threads,
                num_gpus=1 if pool.gpu else None, max_restarts=RETRIES, max_task_retries=RETRIES)
        total = sum(len(b) for b in blocks)
        self.peak_mb, self.computed = 0.0, total
        began, ready = time.time(), math.inf
        with tqdm(total=total, desc="explain", unit="photo", disable=not progress, mininterval=2) as bar, \
                _user_errors_unwrapped():
            for out in ds.iter_batches(batch_size=None, batch_format="numpy"):
                for idx, status, row in zip(out["idx"], out["status"], out["row"]):
                    target = rows[int(idx)]
                    if status != "ok":
                        target.update(status=str(status), pictures="")
                    else:
                        target.update(json.loads(str(row)))
                self.peak_mb = max(self.peak_mb, float(out["peak_mb"].max()))
                ready = min(ready, float(out["ready_at"].min()))
                bar.update(len(out["idx"]))
        self.actor_start_s = max(0.0, ready - began) if math.isfinite(ready) else 0.0
