"""Work done in the decode/encode processes: read a file once, decode it once, write its two pictures.

Functions here take and return plain values (paths, numpy arrays, dicts) so they cross process boundaries.
No torch import: the workers stay small and start fast.
"""

from __future__ import annotations

import multiprocessing
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import numpy as np

from generator.data.imaging import Decoded, SkipImage, decode_bytes, encode_webp, read_image_file, resized
from generator.files import write_bytes


def decode_for_model(job: tuple[str, int, int]) -> tuple[np.ndarray | None, str]:
    """(path, input_size, max_pixels) -> (input uint8 HxWx3 or None, status)."""
    path, input_size, max_pixels = job
    try:
        decoded = decode_bytes(read_image_file(path, max_pixels), input_size, input_size, max_pixels)
    except SkipImage as exc:
        return None, f"skipped: {exc}"
    return decoded.model_input, "ok"




def decode_for_report(job: dict) -> dict:
    """Decode one photo, write its two pictures into job['asset_dir'] unless they are there already, and return
    the network input. Keys out: status, input, width, height (of the original, upright).

    The display copy is the file itself when it is web-ready (photo.jpg), else a WebP encode (photo.webp).
    """
    try:
        data = read_image_file(job["path"], job["max_pixels"])
        decoded: Decoded = decode_bytes(data, job["input_size"], job["display_size"], job["max_pixels"])
    except SkipImage as exc:
        return {"status": f"skipped: {exc}"}
    asset_dir = Path(job["asset_dir"])
    if not (asset_dir / "complete").exists():
        if decoded.web_ready:
            write_bytes(asset_dir / "photo.jpg", data)
        else:
            write_bytes(asset_dir / "photo.webp", encode_webp(decoded.display, job["quality"]))
        write_bytes(asset_dir / "thumb.webp", encode_webp(resized(decoded.display, job["thumb_size"]), job["quality"]))
        h, w = decoded.display.shape[:2]
        write_bytes(asset_dir / "complete", f"{w} {h}\n".encode())
    return {"status": "ok", "input": decoded.model_input, "width": decoded.width, "height": decoded.height}


def picture_files(asset_dir: Path) -> tuple[str, int, int] | None:
    """(display copy's file name, its width, its height) of a complete asset folder, else None."""
    try:
        w, h = (int(v) for v in (Path(asset_dir) / "complete").read_text().split())
    except (OSError, ValueError):
        return None
    name = "photo.jpg" if (Path(asset_dir) / "photo.jpg").exists() else "photo.webp"
    return name, w, h


def forked_map(fn: Callable[[Any, Any], Any], context: Any, items: list, processes: int, chunksize: int = 1) -> list:
    """[fn(context, item) for item in items], computed by `processes` forked workers where the system forks, else
    in this process. The workers inherit `context` (the report, the templates...) with the caller's memory, so it
    is never pickled; only the items and the results are. Each worker has its own copy of it.

    Forked workers ignore Ctrl-C (the caller handles it and ends them) and take the default SIGTERM, with which
    the pool ends them, instead of the command's own handler."""
    if processes < 2 or len(items) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        return [fn(context, item) for item in items]
    # Pool hands initargs to the forked processes as they are: fn and context travel by fork, not by pickle.
    pool = multiprocessing.get_context("fork").Pool(processes, initializer=_forked_worker, initargs=(fn, context))
    try:
        done = pool.map(_in_forked_worker, items, chunksize=chunksize)
        pool.close()
    finally:
        pool.terminate()
        pool.join()
    return done


@contextmanager
def forked_map_started(fn: Callable[[Any, Any], Any], context: Any, items: list, processes: int,
                       chunksize: int = 1) -> Iterator[Callable[[], list]]:
    """forked_map, started on entry: the workers run while the caller does other work in the block, and the
    function it yields waits for and returns the results. Without workers, that function computes them."""
    if processes < 2 or len(items) < 2 or "fork" not in multiprocessing.get_all_start_methods():
        yield lambda: [fn(context, item) for item in items]
        return
    pool = multiprocessing.get_context("fork").Pool(processes, initializer=_forked_worker, initargs=(fn, context))
    try:
        pending = pool.map_async(_in_forked_worker, items, chunksize=chunksize)
        yield pending.get
        pool.close()
    finally:
        pool.terminate()
        pool.join()


_FORKED_JOB: tuple[Callable[[Any, Any], Any], Any] | None = None  # set only inside a forked worker, by its pool


def _forked_worker(fn: Callable[[Any, Any], Any], context: Any) -> None:
    import signal

    global _FORKED_JOB
    _FORKED_JOB = (fn, context)
    signal.signal(signal.SIGINT, signal.SIG_IGN)
    signal.signal(signal.SIGTERM, signal.SIG_DFL)


def _in_forked_worker(item: Any) -> Any:
    fn, context = _FORKED_JOB
    return fn(context, item)


def _ignore_interrupts() -> None:
    # Ctrl-C reaches every process of the terminal's group: the main process handles it (and ends the pool);
    # the workers stay quiet instead of each printing a traceback.
    import signal

    signal.signal(signal.SIGINT, signal.SIG_IGN)


def make_pool(n: int):
    """A process pool started with 'spawn' (forking a process that runs torch threads can deadlock).
    Use it as a context manager: leaving the block ends the workers, on errors and interrupts too."""
    return multiprocessing.get_context("spawn").Pool(n, initializer=_ignore_interrupts)


def decoded_in_chunks(pool, fn, jobs, chunk: int = 64):
    """fn(job) for every job, in order, computed by the pool `chunk` jobs at a time while the caller waits.

    Why not overlap decoding with the network (imap): on a 2-core machine the decoders and the network's two
    threads then fight for the cores, and both run slower than in turn: measured here, 2,000 training photos took
    34 s overlapped and 25 s in turns. Memory stays bounded by one chunk of decoded photos."""
    jobs = iter(jobs)
    while True:
        part = [job for _, job in zip(range(chunk), jobs)]
        if not part:
            return
        yield from pool.map(fn, part, chunksize=max(1, len(part) // (2 * max(1, pool._processes))))


_KEEPING_FREED = False  # keep_freed_memory() is in force: HeapTrimmer trims every KEPT_TRIM_EVERY calls


def _glibc():
    """The C library's handle when it is glibc (mallopt, malloc_trim), else None."""
    try:
        import ctypes

        libc = ctypes.CDLL("libc.so.6")
        libc.mallopt, libc.malloc_trim  # noqa: B018 (both must be there)
        return libc
    except (OSError, AttributeError):
        return None


def keep_freed_memory() -> bool:
    """Tell glibc's malloc to keep the memory the network frees for its next batch, instead of handing it back to
    the OS and faulting it in again: blocks up to 32 MiB (the most glibc allows) come from the heap, not from
    mmap; the heap is trimmed only above 16 GiB; it grows 512 MiB at a time (address space; pages count only once
    touched). Returns whether it applied (glibc only).

    Measured (2 cores): in float32 the first forward pass over 256 photos ran at 58 to 61 images/s with glibc's
    defaults, whose mmap threshold only rises after large blocks have been freed, and at 102 to 104 with this, as
    fast as a warmed-up pass. Every network pass of a cold build is a first pass over its photos. With bf16
    autocast (AVX512-BF16), extracting the features of 1,024 training photos took the network 8.5 s with the
    defaults and 4.3 s with this. In bf16 the kept heap also grows, though (1,219 MB after 256 photos, 1,804 MB
    after 2,000): HeapTrimmer then trims every KEPT_TRIM_EVERY batches instead of every 16."""
    global _KEEPING_FREED
    libc = _glibc()
    if libc is None:
        return False
    m_trim_threshold, m_top_pad, m_mmap_threshold = -1, -2, -3  # glibc's malloc.h
    ok = all(libc.mallopt(opt, value) == 1 for opt, value in
             ((m_mmap_threshold, 32 << 20), (m_trim_threshold, 16 << 30), (m_top_pad, 512 << 20)))
    _KEEPING_FREED = _KEEPING_FREED or ok
    return ok


def keep_freed_memory_on(device: str) -> bool:
    """The network's memory setting, one rule for the build, the Ray actors and the bench's floor: keep the freed
    memory (keep_freed_memory) where the network runs on the CPU, in float32 and in bf16 alike. Returns whether
    it applied."""
    return device == "cpu" and keep_freed_memory()


def trim_between_stages() -> None:
    """While keep_freed_memory() is in force: hand the freed memory back to the OS now, between two stages (the
    next stage's blocks have other sizes; keeping the last stage's would only raise the peak)."""
    libc = _glibc() if _KEEPING_FREED else None
    if libc is not None:
        libc.malloc_trim(0)


KEPT_TRIM_EVERY = 64  # batches between two trims while keep_freed_memory() is in force


class HeapTrimmer:
    """Hands freed heap memory back to the OS every `every` calls (glibc's malloc_trim; a no-op elsewhere), or
    every KEPT_TRIM_EVERY calls while keep_freed_memory() is in force.

    Every 16 calls where the freed memory is not kept (the network on a GPU): with bf16 autocast, glibc kept the
    freed activations of the forward passes and the process grew by about 0.5 GB per 1,000 photos; trimming
    every 16 batches kept it flat at no measurable cost (measured before the freed memory was kept on CPUs:
    1,000 photos, 1,430 -> 1,009 MB peak, 78 -> 80 photos/s). With the freed memory kept, a trim every 64
    batches (512 photos) costs one first pass in 64: measured on 1,500 training photos in bf16, 2.4% more time
    (median of 4 pairs) and a 1,599 MB peak instead of 1,828."""

    def __init__(self, every: int = 16) -> None:
        self.every = every
        self.calls = 0
        libc = _glibc()
        self._trim = libc.malloc_trim if libc is not None else None

    def __call__(self) -> None:
        self.calls += 1
        every = KEPT_TRIM_EVERY if _KEEPING_FREED else self.every
        if self._trim is not None and self.calls % every == 0:
            self._trim(0)
