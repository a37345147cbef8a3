"""Whole builds: `python -m generator site --quiet` in a subprocess, timed, its process tree's memory polled, and
the site it wrote measured. Builds run from a copy of the project (generator/ and templates/ only) in a temporary
folder, so that a benchmark can change a template, the CSS or the code between two builds without ever touching
the repository, and so that edits others make meanwhile do not change what is measured."""

from __future__ import annotations

import csv
import io
import json
import math
import os
import re
import shutil
import subprocess
import sys
import tarfile
import threading
import time
from dataclasses import dataclass, field
from pathlib import Path

from .inputs import IMAGE_SUFFIXES

ROOT = Path(__file__).resolve().parent.parent
PROJECT_PARTS = ("generator", "templates")  # all a build needs of the project
# change -> (file in the project, a comment line in that file's language): a change that alters no output
CHANGES = {
    "template": ("templates/photo.html", "{# bench #}"),
    "css": ("templates/static/style.css", "/* bench */"),
    "code": ("generator/publish/pages/site.py", "# bench"),
}


@dataclass
class SiteRun:
    seconds: float  # wall clock, process start to exit
    peak_tree_mb: float  # max over time of the summed PSS of the process tree (proportional set size: a page
    # shared by n forked workers counts 1/n in each, so the sum is the tree's real footprint; RSS where no PSS)
    peak_single_mb: float  # the largest single process's RSS
    returncode: int
    stages: dict[str, float] = field(default_factory=dict)  # site/run.json "timings", seconds
    torch_imported: bool | None = None  # known only for runs made with check_imports

    @property
    def ok(self) -> bool:
        return self.returncode == 0


@dataclass(frozen=True)
class Folders:
    """What one series of builds reads and writes."""

    project: Path  # holds generator/ and templates/; the builds run here
    data: Path
    work: Path  # site/, cache/ and weights/ are made here

    def args(self, backbone: str) -> list[str]:
        return ["--data-dir", str(self.data), "--site-dir", str(self.work / "site"), "--cache-dir",
                str(self.work / "cache"), "--weights-dir", str(self.work / "weights"), "--backbone", backbone]


PSS_EVERY = 1.0  # seconds between two readings of the process tree's PSS (RSS is read every `interval`)


def run_site(folders: Folders, backbone: str, log_path: Path, check_imports: bool = False,
             interval: float = 0.1, pss_every: float = PSS_EVERY) -> SiteRun:
    """One `python -m generator site --quiet` with the project's code; its output is appended to log_path.

    Peak memory: each process's RSS every `interval` seconds (cheap: /proc/PID/statm), the tree's summed PSS every
    `pss_every` seconds. PSS comes from /proc/PID/smaps_rollup, for which the kernel walks the whole address space:
    measured during a cold build, one reading of the tree (4 processes, 1.3 GB) took 35 ms of a core, so reading it
    every 0.1 s took a quarter of one of the 2 cores from the build it measured (cold builds of 112 to 114 s under it,
    95.7 s unobserved). A build's memory peaks last seconds (a stage's working set), not a tenth of one.

    check_imports: run under `-X importtime` and record whether torch was imported (a little slower)."""

    cmd = [sys.executable, *(["-X", "importtime"] if check_imports else []), "-m", "generator", "site", "--quiet",
           *folders.args(backbone)]
    env = dict(os.environ, PYTHONPATH=str(folders.project))
    run_json = folders.work / "site" / "run.json"
    before = _modified(run_json)
    err_path = log_path.with_suffix(".importtime") if check_imports else log_path
    with open(log_path, "ab") as out, open(err_path, "ab") as err:
        out.write(f"\n$ {' '.join(cmd)}  (in {folders.project})\n".encode())
        out.flush()
        start = time.perf_counter()
        proc = subprocess.Popen(cmd, cwd=folders.project, env=env, stdout=out, stderr=err)
        poller = MemoryPoller(proc.pid, interval, pss_every)
        poller.start()
        # Waited for with wait4 and not read from its rusage: ru_maxrss would count the forked child before exec,
        # i.e. a copy of this benchmark process.
        _, status, _ = os.wait4(proc.pid, 0)
        seconds = time.perf_counter() - start
        tree, largest = poller.stop()
        proc.returncode = os.waitstatus_to_exitcode(status)
    run = SiteRun(seconds, tree / 2**20, largest / 2**20, proc.returncode)
    if run.ok and _modified(run_json) not in (before, None):  # a build that had nothing to do leaves it as it was
        run.stages = json.loads(run_json.read_text()).get("timings", {})
    if check_imports:
        run.torch_imported = imported(err_path.read_text(errors="replace"), "torch")
        with open(log_path, "a") as fh:
            fh.write(f"(-X importtime in {err_path.name}: torch {'imported' if run.torch_imported else 'not'})\n")
    return run


class MemoryPoller:
    """Peak memory of a process and its children, polled in a thread: the largest single process's RSS every
    `interval` seconds and the tree's summed PSS every `pss_every` seconds (see run_site for why not as often)."""

    def __init__(self, pid: int, interval: float = 0.1, pss_every: float = PSS_EVERY) -> None:
        import psutil

        self.root, self.interval, self.pss_every = psutil.Process(pid), interval, pss_every
        self.tree, self.largest, self.pss_reads = 0, 0, 0  # bytes, bytes, tree readings
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._poll, daemon=True)

    def start(self) -> None:
        self._thread.start()

    def stop(self) -> tuple[int, int]:
        """(the tree's peak PSS, the largest process's peak RSS), in bytes."""
        self._done.set()
        self._thread.join()
        return self.tree, self.largest

    def _poll(self) -> None:
        import psutil

        last_pss = -math.inf
        while not self._done.is_set():
            with_pss = time.perf_counter() - last_pss >= self.pss_every
            if with_pss:
                last_pss = time.perf_counter()
                self.pss_reads += 1
            try:
                procs = [self.root, *self.root.children(recursive=True)]
            except psutil.Error:
                procs = []
            total = 0
            for p in procs:
                try:
                    rss = p.memory_info().rss
                    total += _pss(p, rss) if with_pss else 0
                except psutil.Error:
                    continue
                self.largest = max(self.largest, rss)
            if with_pss:
                self.tree = max(self.tree, total)
            self._done.wait(self.interval)


def _pss(process, rss: int) -> int:
    """The process's proportional set size (Linux, from /proc/PID/smaps_rollup), or its RSS elsewhere."""
    try:
        return process.memory_full_info().pss
    except AttributeError:  # no pss field on this system
        return rss


def _modified(path: Path) -> int | None:
    try:
        return path.stat().st_mtime_ns
    except OSError:
        return None


def imported(importtime_log: str, package: str) -> bool:
    """Whether `-X importtime` output lists `package` (or a module of it) as imported."""
    pattern = re.compile(rf"^import time:.*\|\s*{re.escape(package)}(\.\S+)?\s*$")
    return any(pattern.match(line) for line in importtime_log.splitlines())


# ---- the site's size ------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class Footprint:
    apparent_bytes: int  # the files' sizes (each file once, however many links it has)
    disk_bytes: int  # allocated blocks of every file and folder, as `du -s --block-size=1` counts them
    files: int
    explained: int  # photos with a page: rows of results.csv with status ok outside the training set
    photo_files: int = 0  # files that exist because of a photo: its pictures under assets/, its page in sets/*/

    @property
    def files_per_photo(self) -> float:
        """Files each explained photo adds (page, display copy, thumbnail); the site's shared files (style,
        scripts, galleries, figures, tables) are left out: they do not grow with the photos."""
        return self.photo_files / self.explained if self.explained else float("nan")

    @property
    def shared_files(self) -> int:
        return self.files - self.photo_files

    @property
    def disk_bytes_per_photo(self) -> float:
        return self.disk_bytes / self.explained if self.explained else float("nan")


def footprint(site: Path, train_set: str = "train") -> Footprint:
    seen: set[tuple[int, int]] = set()
    apparent = disk = files = photo_files = 0
    for folder, dirs, names in os.walk(site):
        for name in [folder, *(os.path.join(folder, n) for n in dirs + names)]:
            st = os.lstat(name)
            if (st.st_dev, st.st_ino) in seen:
                continue
            seen.add((st.st_dev, st.st_ino))
            disk += st.st_blocks * 512
            if not os.path.isdir(name) or os.path.islink(name):
                apparent += st.st_size
                files += 1
                photo_files += _belongs_to_a_photo(Path(name).relative_to(site))
    explained = 0
    results = site / "results.csv"
    if results.exists():
        with open(results, newline="", encoding="utf-8") as fh:
            explained = sum(1 for r in csv.DictReader(fh) if r.get("status") == "ok" and r.get("set") != train_set)
    return Footprint(apparent, disk, files, explained, photo_files)


def _belongs_to_a_photo(relative: Path) -> bool:
    """assets/** (a photo's pictures) or sets/<set>/<slug>-<8 hex>.html (a photo's page: render.slugify's
    names; the gallery's index, page-N and cell-* pages have no such tail)."""
    parts = relative.parts
    if parts[0] == "assets":
        return True
    return len(parts) == 3 and parts[0] == "sets" and re.search(r"-[0-9a-f]{8}\.html$", parts[2]) is not None


# ---- projects and data ----------------------------------------------------------------------------------------


def copy_project(dest: Path, source: Path = ROOT) -> Path:
    """dest/generator and dest/templates, copied from source (caches left out); nothing else."""
    dest.mkdir(parents=True, exist_ok=True)
    for part in PROJECT_PARTS:
        shutil.copytree(source / part, dest / part, ignore=shutil.ignore_patterns("__pycache__", "*.pyc"))
    return dest


def append_comment(project: Path, change: str) -> Path:
    """Append the comment line of `change` (a key of CHANGES) to that file of the project copy; returns the file.
    Refuses the repository's own files."""
    relative, comment = CHANGES[change]
    target = Path(project) / relative
    if target.resolve() == (ROOT / relative).resolve():
        raise ValueError(f"{target} is the repository's own file; the benchmark changes only copies of it")
    text = target.read_text(encoding="utf-8")
    target.write_text(text + ("" if text.endswith("\n") else "\n") + comment + "\n", encoding="utf-8")
    return target


def export_ref(ref: str, dest: Path) -> str:
    """The tree of commit `ref` of this repository, written into dest (read-only use of git: `git archive`, so
    no worktree is registered and nothing under .git changes). Returns the full commit hash."""
    found = subprocess.run(["git", "-C", str(ROOT), "rev-parse", "--verify", "--quiet", f"{ref}^{{commit}}"],
                           capture_output=True, text=True)
    if found.returncode != 0:
        raise SystemExit(f"--compare-ref {ref!r}: no such commit in {ROOT}; give a commit, or --compare-ref '' to "
                         "skip the comparison.")
    commit = found.stdout.strip()
    tar = subprocess.run(["git", "-C", str(ROOT), "archive", "--format=tar", commit], capture_output=True, check=True)
    dest.mkdir(parents=True, exist_ok=True)
    with tarfile.open(fileobj=io.BytesIO(tar.stdout)) as archive:
        archive.extractall(dest, filter="data")
    return commit


def _images(folder: Path) -> list[Path]:
    return sorted(p for p in folder.iterdir() if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file())


def make_synthetic_data(real: Path, dest: Path, n: int) -> Path:
    """dest/{train,personal,unrelated} link to the real sets; dest/test/{cats,dogs} holds n symlinks to the real
    test photos, cycled, under distinct names (the same bytes: computed once, paged n times)."""
    dest.mkdir(parents=True, exist_ok=True)
    for s in ("train", "personal", "unrelated"):
        if (real / s).exists():
            (dest / s).symlink_to((real / s).resolve(), target_is_directory=True)
    photos = {label: _images(real / "test" / label) for label in ("cats", "dogs")}
    for label in photos:
        (dest / "test" / label).mkdir(parents=True)
    for i in range(n):
        label = ("cats", "dogs")[i % 2]
        src = photos[label][(i // 2) % len(photos[label])]
        (dest / "test" / label / f"s{i:06d}-{src.name}").symlink_to(src.resolve())
    return dest


def make_small_data(real: Path, dest: Path, n_train: int, n_other: int) -> Path:
    """The same sets and folders as real, each folder holding links to its first n_train (training set) or
    n_other (every other set) photos: for --quick."""
    for set_dir in sorted(p for p in real.iterdir() if p.is_dir() and not p.name.startswith(".")):
        n = n_train if set_dir.name == "train" else n_other
        for folder, _dirs, _files in os.walk(set_dir, followlinks=True):
            src = Path(folder)
            target = dest / set_dir.name / src.relative_to(set_dir)
            target.mkdir(parents=True, exist_ok=True)
            for photo in _images(src)[:n]:
                (target / photo.name).symlink_to(photo.resolve())
    return dest
