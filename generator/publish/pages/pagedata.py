"""What an image page and its gallery entry take from the photo's record, computed once and cached.

A photo's page data (its maps packed for the browser, as JSON), the thumbnail's overlay payload and the facts its
page states are pure functions of the record file and of the run's settings and code. They are most of the work
of rendering an image page (reading the .npz, decoding it, quantising and encoding every map), so a rerun after a
template or page-setting change reads them from cache_dir/pages/<key>.pkl instead: one file per key, where the key
(given by the build) covers the code, the compute and figure settings; each photo's entry is kept only while the
SHA-256 of its record file, its set's signed scales and its label are the ones it was made from.
"""

from __future__ import annotations

import hashlib
import io
import pickle
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from generator.explain.record import PhotoRecord, record_path
from generator.files import keep_newest, touch, write_bytes

PAGEDATA_FORMAT = 2  # bump when what PhotoData holds, or how it is made, changes without a code change elsewhere


@dataclass(frozen=True)
class PhotoData:
    """What the image page and the gallery take from one record."""

    gallery_map: dict  # the last-tap CAM of the predicted class, for the thumbnail's overlay (photos.js)
    data: str  # the page's maps and drawing parameters, JSON for a script element (photo.photo_page_data)
    facts: dict[str, Any]  # the numbers the page states (photo.photo_facts)
    order: tuple[str, ...]  # the classes whose maps the page carries, in the order its controls list them


@dataclass(frozen=True)
class Entry:
    record_sha256: str
    scales: tuple[float, ...]
    label: str  # the photo's label: which classes a page of many classes shows depends on it
    value: PhotoData


def cache_path(cache_dir: Path | str, key: str) -> Path:
    return Path(cache_dir) / "pages" / f"v{PAGEDATA_FORMAT}-{key[:24]}.pkl"


KEEP = 4  # page data files kept per cache (the most recently used): one per key, several MB each
_OURS = re.compile(r"v\d+-[0-9a-f]{24}\.pkl")  # the names cache_path gives


class PageDataCache:
    """The photos' PhotoData of one key, by photo SHA-256. Loaded whole in the main process before the render's
    workers fork (they inherit it); the entries the workers make come back to the main process, which saves the
    file once at the end if anything was added. path=None: nothing is read or saved (every value is made).

    It also keeps site files that are a pure function of the key (`text`), such as static/colormaps.js, whose
    tables come from matplotlib: a rerun then never imports it."""

    def __init__(self, path: Path | None) -> None:
        self.path = path
        self.entries: dict[str, Entry] = {}
        self.texts: dict[str, str] = {}
        self.added = False
        if path is not None:
            try:
                loaded = pickle.loads(Path(path).read_bytes())  # our own cache file
            except Exception:  # missing or damaged: made again
                loaded = None
            if isinstance(loaded, dict) and isinstance(loaded.get("photos"), dict) \
                    and isinstance(loaded.get("texts"), dict):
                self.entries, self.texts = loaded["photos"], loaded["texts"]

    def text(self, name: str, make: Callable[[], str]) -> str:
        """The text `name`, made by make() once per key."""
        if not isinstance(self.texts.get(name), str):
            self.texts[name] = make()
            self.added = True
        return self.texts[name]

    def lookup(self, sha: str, record_sha256: str, scales: tuple[float, ...], label: str = "") -> PhotoData | None:
        e = self.entries.get(sha)
        if isinstance(e, Entry) and e.record_sha256 == record_sha256 and e.scales == scales and e.label == label:
            return e.value
        return None

    def update(self, entries: dict[str, Entry]) -> None:
        for sha, e in entries.items():
            if self.entries.get(sha) != e:
                self.entries[sha] = e
                self.added = True

    def save(self) -> None:
        """Write the file if anything was added, mark it used, and delete all but the KEEP most recently used
        page data files of the folder (other keys': another code version or other settings)."""
        if self.path is None:
            return
        if self.added:
            write_bytes(self.path, pickle.dumps({"photos": self.entries, "texts": self.texts},
                                                protocol=pickle.HIGHEST_PROTOCOL))
            self.added = False
        touch(self.path)
        keep_newest(Path(self.path).parent, _OURS, KEEP, in_use=[self.path])


def read_record(cache_dir: Path | str, model_fp: str, sha: str) -> tuple[str, bytes] | None:
    """(SHA-256 of the record file, its bytes), or None when there is no record file."""
    if not sha:
        return None
    try:
        raw = record_path(cache_dir, model_fp, sha).read_bytes()
    except OSError:
        return None
    return hashlib.sha256(raw).hexdigest(), raw


def decode_record(raw: bytes, n_taps: int) -> PhotoRecord | None:
    """The record in these bytes, or None when they are damaged or of another version (as Report.record)."""
    import numpy as np

    try:
        with np.load(io.BytesIO(raw), allow_pickle=False) as z:
            arrays = {k: z[k] for k in z.files}
    except Exception:
        return None
    return PhotoRecord.from_npz(arrays, n_taps)
