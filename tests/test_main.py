"""The command line (generator/__main__.py) end to end: a folder of every awkward file and name next to a few
real photos, and every way a run can be stopped or refused.

One complete build, then checks that every file is accounted for (results.csv, skipped.html, overview counts),
that no file name reaches the HTML as markup and every link resolves; then runs killed with SIGKILL, interrupted
with SIGINT (Ctrl-C) and SIGTERM while explaining and while writing the new site, the old site checked intact
after each; a full disk; read-only folders; two builds of one site at once; damaged cache entries.
"""

from __future__ import annotations

import csv
import json
import os
import signal
import subprocess
import sys
import unicodedata
from pathlib import Path
from urllib.parse import unquote, urlsplit

import numpy as np
import pytest
from conftest import CATS_DOGS, make_small_data
from PIL import Image

from generator.report.names import safe_name

ROOT = Path(__file__).resolve().parent.parent
# Only a guard against a hung build, never a timing the tests rely on: a loaded 2-core machine took over 400 s
# for the first build here (another test suite running beside it).
HANG = 1800
MAX_PIXELS = 1_000_000
ODD_SET = "odd <xss-set>set & \"q\" #?%"
EMPTY_SET = "empty #?% set"
XSS = "<img src=x onerror=alert(1)>.jpg"


def _png_claiming(width: int, height: int) -> bytes:
    import struct
    import zlib

    def chunk(kind: bytes, body: bytes) -> bytes:
        return struct.pack(">I", len(body)) + kind + body + struct.pack(">I", zlib.crc32(kind + body))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", width, height, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(b"")) + chunk(b"IEND", b""))


def make_odd_set(folder: Path, photos: list[Path]) -> dict[str, str]:
    """Write the awkward set; returns file (as shown) -> expected status prefix."""
    rng = np.random.default_rng(0)
    folder.mkdir(parents=True)
    expect: dict[str, str] = {}

    def img(rel: str, image: Image.Image, fmt: str, status: str = "ok", **kw) -> None:
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        image.save(p, fmt, **kw)
        expect[rel] = status

    def raw(rel: str, data: bytes, status: str) -> None:
        p = folder / rel
        p.parent.mkdir(parents=True, exist_ok=True)
        p.write_bytes(data)
        expect[rel] = status

    noise = Image.fromarray(rng.integers(0, 255, (40, 50, 3), dtype=np.uint8))
    # names: real photos under names full of HTML/URL specials and Unicode traps
    for i, name in enumerate([XSS, "a&b \"q\" 'x' #frag?x=1%20.jpg", "caf\u00e9.jpg", "cafe\u0301.jpg",
                              "Case.jpg", "case.jpg", "\u202egpj.exe.jpg", "  spaced  name .jpg",
                              "cat/<script>alert(1)</script> dir/nested.jpg", "dog/x\u200f\u05d0.jpg"]):
        (folder / name).parent.mkdir(parents=True, exist_ok=True)
        (folder / name).write_bytes(photos[i % len(photos)].read_bytes())
        expect[name] = "ok"
    bad = os.fsencode(folder) + b"/latin1-\xe9t\xe9.jpg"
    with open(bad, "wb") as fh:
        fh.write(photos[0].read_bytes())
    expect[safe_name(os.fsdecode(b"latin1-\xe9t\xe9.jpg"))] = "ok"
    # kinds of picture that must decode
    rgba = np.zeros((30, 30, 4), np.uint8)
    rgba[..., 1] = 200
    rgba[10:, :, 3] = 255
    img("alpha.png", Image.fromarray(rgba, "RGBA"), "PNG")
    img("palette.png", noise.convert("P", palette=Image.Palette.ADAPTIVE, colors=8), "PNG")
    img("gray16.png", Image.fromarray(np.linspace(0, 65535, 900, dtype=np.uint16).reshape(30, 30)), "PNG")
    img("gray.jpg", noise.convert("L"), "JPEG")
    img("cmyk.jpg", noise.convert("CMYK"), "JPEG")
    frames = [Image.new("RGB", (20, 20), c) for c in ((255, 0, 0), (0, 0, 255))]
    img("anim.gif", frames[0], "GIF", save_all=True, append_images=frames[1:], duration=40, loop=0)
    img("photo.webp", noise, "WEBP")
    img("photo.tiff", noise, "TIFF")
    exif = Image.Exif()
    exif[0x0112] = 6
    img("rotated.jpg", noise, "JPEG", exif=exif)
    img("one-pixel.png", Image.new("RGB", (1, 1), (9, 9, 9)), "PNG")
    img("wide.png", Image.fromarray(rng.integers(0, 255, (3, 4000, 3), dtype=np.uint8)), "PNG")
    img("tall.png", Image.fromarray(rng.integers(0, 255, (4000, 3, 3), dtype=np.uint8)), "PNG")
    img("UPPER.JPEG", noise, "JPEG")
    # kinds that must be skipped, each with its reason
    img("big.png", Image.new("RGB", (1200, 1000)), "PNG", "skipped: too large: 1200x1000 pixels")
    raw("bomb.png", _png_claiming(100_000, 100_000), "skipped: too large")
    raw("empty.jpg", b"", "skipped: empty file (0 bytes)")
    jpg = photos[0].read_bytes()
    raw("truncated.jpg", jpg[: len(jpg) // 3], "skipped: damaged or truncated image")
    raw("text.jpg", b"I am text, not a photo\n", "skipped: not a readable image")
    raw("page.png", b"<html><script>alert(1)</script></html>", "skipped: not a readable image")
    raw("notes.txt", b"hello", "skipped: unknown extension")
    raw("noextension", b"hello", "skipped: unknown extension")
    raw(".DS_Store", b"x", "skipped: hidden file, ignored")
    raw(".hidden/inside.jpg", jpg, "")
    del expect[".hidden/inside.jpg"]
    expect[".hidden"] = "skipped: hidden folder, ignored"
    (folder / "link-to-photo.jpg").symlink_to(photos[1])
    expect["link-to-photo.jpg"] = "ok"
    (folder / "cat" / "loop").symlink_to(folder, target_is_directory=True)
    expect["cat/loop"] = "skipped: folder link loop"
    (folder / "broken.jpg").symlink_to(folder / "does-not-exist.jpg")
    expect["broken.jpg"] = "skipped: broken symbolic link"
    return expect


def cli(root: Path, data: Path, site: Path, cache: Path) -> list[str]:
    return [sys.executable, "-m", "generator", "site", "--quiet", "--no-download", "--data-dir", str(data),
            "--site-dir", str(site),
            "--weights-dir", str(root / "weights"), "--cache-dir", str(cache), "--workers", "2",
            "--batch-size", "8", "--layer-sample", "2", "--figure-sample", "4", "--faithfulness-sample", "2",
            "--faithfulness-steps", "4", "--max-pixels", str(MAX_PIXELS)]


def run_build(cmd: list[str]) -> None:
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=HANG)
    assert proc.returncode == 0, proc.stderr[-4000:]


def read_csv(site: Path) -> list[dict]:
    with open(site / "results.csv", newline="", encoding="utf-8") as fh:
        return list(csv.DictReader(fh))


def snapshot(site: Path) -> dict[str, str]:
    """Every file of the site, by content: a previous site must stay byte-identical."""
    import hashlib

    return {str(p.relative_to(site)): hashlib.sha256(p.read_bytes()).hexdigest() for p in sorted(site.rglob("*"))
            if p.is_file()}


@pytest.fixture(scope="module")
def built(tmp_path_factory):
    if not CATS_DOGS.is_dir():
        pytest.skip(f"real photos not found at {CATS_DOGS}")
    root = tmp_path_factory.mktemp("e2e")
    data = make_small_data(root, n_train=6, n_test=2)
    photos = sorted((CATS_DOGS / "validation" / "cats").iterdir())[:3]
    expect = make_odd_set(data / ODD_SET, photos)
    (data / EMPTY_SET).mkdir()
    site, cache = root / "site", root / "cache"
    cmd = cli(root, data, site, cache)
    run_build(cmd)
    return {"root": root, "data": data, "site": site, "cache": cache, "cmd": cmd, "expect": expect}


def test_every_file_accounted_for(built):
    rows = read_csv(built["site"])
    odd = {r["file"]: r["status"] for r in rows if r["set"] == ODD_SET}
    expect = built["expect"]
    assert sorted(odd) == sorted(expect)
    assert len([r for r in rows if r["set"] == ODD_SET]) == len(expect)  # one row per file
    for f, want in expect.items():
        assert odd[f].startswith(want), (f, odd[f], want)
        assert "\n" not in odd[f]
    # the real sets: one row per linked photo, all used
    for s, n in (("train", 12), ("test", 4), ("personal", 6), ("unrelated", 4)):
        got = [r for r in rows if r["set"] == s]
        assert len(got) == n and all(r["status"] == "ok" for r in got), s
    assert not [r for r in rows if r["set"] == EMPTY_SET]
    # an ok eval row has a prediction and a page; a skipped one neither
    for r in rows:
        if r["set"] != "train":
            assert bool(r["page"]) == (r["status"] == "ok"), r
            assert (r["prediction"] in ("cat", "dog")) == (r["status"] == "ok"), r
    # NFC and NFD spellings, and names differing in case, are separate rows with separate pages
    pages = [r["page"] for r in rows if r["page"]]
    assert len(pages) == len(set(pages))
    assert unicodedata.normalize("NFC", "cafe\u0301.jpg") in odd and "cafe\u0301.jpg" in odd


def test_skipped_page_and_counts(built):
    html5lib = pytest.importorskip("html5lib")
    site = built["site"]
    rows = read_csv(site)
    skipped = [(r["set"], r["file"], r["status"]) for r in rows if r["status"] != "ok"]
    doc = html5lib.parse((site / "skipped.html").read_bytes(), namespaceHTMLElements=False)
    listed = [tuple("".join(td.itertext()) for td in tr.findall("td")) for tr in doc.iter("tr")]
    listed = [t for t in listed if t]
    assert sorted(listed) == sorted((s, f, st) for s, f, st in skipped)
    # index: files = explained + skipped for every set, and totals match results.csv
    index = html5lib.parse((site / "overview.html").read_bytes(), namespaceHTMLElements=False)
    table = next(index.iter("table"))
    by_set = {}
    for tr in table.iter("tr"):
        cells = ["".join(c.itertext()).strip() for c in tr if c.tag in ("th", "td")]
        if cells and cells[0] != "set":
            by_set[cells[0].replace(" (fitting)", "")] = [int(c.replace(",", "")) for c in cells[1:4]]
    for s in {r["set"] for r in rows}:
        files, ok, skip = by_set[s]
        assert files == ok + skip == len([r for r in rows if r["set"] == s]), s
        assert skip == len([r for r in rows if r["set"] == s and r["status"] != "ok"]), s


def test_empty_set_has_a_page_that_says_so(built):
    html5lib = pytest.importorskip("html5lib")
    site = built["site"]
    index = html5lib.parse((site / "overview.html").read_bytes(), namespaceHTMLElements=False)
    links = {"".join(a.itertext()).strip(): a.get("href") for a in index.iter("a")}
    assert EMPTY_SET in links, "the empty set is not listed on the overview"
    page = site / unquote(urlsplit(links[EMPTY_SET]).path)
    assert page.is_file()
    text = " ".join("".join(html5lib.parse(page.read_bytes(), namespaceHTMLElements=False).itertext()).split())
    assert "This set has no usable photos." in text, text[:500]  # said in words (the set's name says "empty")


def _pages(site: Path) -> list[Path]:
    return sorted(site.rglob("*.html"))


def test_no_markup_from_names(built):
    html5lib = pytest.importorskip("html5lib")
    site = built["site"]
    seen_xss_text = False
    for page in _pages(site):
        doc = html5lib.parse(page.read_bytes(), namespaceHTMLElements=False)
        for el in doc.iter():
            if not isinstance(el.tag, str):
                continue
            assert not el.tag.startswith("xss") and el.tag not in ("iframe", "object", "embed", "base"), \
                (page, el.tag)
            for attr, value in el.attrib.items():
                assert not attr.lower().startswith("on"), (page, el.tag, attr, value)
                assert not attr.lower().startswith(("xss", "src=", "onerror")), (page, el.tag, attr)
                if attr in ("src", "href"):
                    assert not value.lower().startswith(("javascript:", "vbscript:")), (page, value)
            if el.tag == "img":
                assert set(el.attrib) <= {"src", "alt", "loading", "decoding", "class", "width", "height",
                                          "title", "id"}, (page, el.attrib)
            if el.tag == "script":
                if el.get("src"):
                    assert el.get("src").endswith(("static/app.js", "static/maps.js", "static/colormaps.js")) \
                        or el.get("src") == "photos.js", page
                    assert not (el.text or "").strip(), page
                else:
                    assert el.get("type") == "application/json", page
                    json.loads(el.text)
            if el.text and XSS in el.text:
                seen_xss_text = True
    assert seen_xss_text, "the XSS-like file name is not shown as text anywhere"
    for data in site.rglob("photos.js"):  # the galleries' data: names as JSON strings with < > & escaped
        text = data.read_text(encoding="utf-8")
        assert text.startswith("window.CAM_PHOTOS = ") and not set("<>&") & set(text), data
        json.loads(text[len("window.CAM_PHOTOS = "):].rstrip().rstrip(";"))


def test_every_link_resolves(built):
    html5lib = pytest.importorskip("html5lib")
    site = built["site"].resolve()
    ids: dict[Path, set[str]] = {}

    def ids_of(page: Path) -> set[str]:
        if page not in ids:
            doc = html5lib.parse(page.read_bytes(), namespaceHTMLElements=False)
            ids[page] = {el.get("id") for el in doc.iter() if isinstance(el.tag, str) and el.get("id")}
        return ids[page]

    checked = 0
    for page in _pages(site):
        doc = html5lib.parse(page.read_bytes(), namespaceHTMLElements=False)
        for el in doc.iter():
            if not isinstance(el.tag, str):
                continue
            for attr in ("href", "src"):
                url = el.get(attr)
                if not url or url.startswith("data:"):
                    continue
                parts = urlsplit(url)
                assert not parts.scheme and not parts.netloc, (page, url)  # works offline, from file://
                target = (page.parent / unquote(parts.path)).resolve() if parts.path else page
                assert target.is_relative_to(site), (page, url)
                assert target.is_file(), (page, url)
                if parts.fragment and target.suffix == ".html":
                    assert unquote(parts.fragment) in ids_of(target), (page, url)
                checked += 1
    assert checked > 100


class Paused:
    """A build started with CAM_PAUSE_AT=<point> (generator/pause.py), once it has said on stderr that it waits
    there: the tests stop it at a moment the build itself reports, never by polling for a file that may come and go
    between two polls. A watchdog kills it if it hangs."""

    def __init__(self, cmd: list[str], point: str, limit: float = HANG) -> None:
        import threading

        env = dict(os.environ, CAM_PAUSE_AT=point)
        # A shell starts a background job (`make test &`) with SIGINT ignored, and a child inherits that: the
        # build would never see the Ctrl-C sent to it. Started from a handled SIGINT, it gets the default, as a
        # terminal's foreground job has.
        previous = signal.signal(signal.SIGINT, signal.default_int_handler)
        try:
            self.proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.DEVNULL,
                                         stderr=subprocess.PIPE, text=True, start_new_session=True)
        finally:
            signal.signal(signal.SIGINT, previous)
        self.watchdog = threading.Timer(limit, self.kill)
        self.watchdog.start()
        self.err: list[str] = []
        for line in self.proc.stderr:  # blocks until the build writes a line or ends
            self.err.append(line)
            if line.startswith(f"paused at {point} "):
                return
        self.finish()
        pytest.fail(f"the build ended (status {self.proc.returncode}) before it paused at {point}: "
                    + "".join(self.err[-20:]))

    def kill(self) -> None:
        if self.proc.poll() is None:
            os.killpg(self.proc.pid, signal.SIGKILL)

    def go_on(self) -> None:
        self.proc.stdin.write("\n")
        self.proc.stdin.flush()

    def finish(self) -> subprocess.CompletedProcess:
        """Wait for the build to end (by itself, or killed by the watchdog) and collect all it wrote."""
        self.err.append(self.proc.stderr.read())
        self.proc.wait()
        self.watchdog.cancel()
        self.proc.stdin.close()
        self.proc.stderr.close()
        return subprocess.CompletedProcess(self.proc.args, self.proc.returncode, None, "".join(self.err))


def _kill_at(cmd: list[str], point: str) -> None:
    """Start a build and SIGKILL it, with its worker processes, as a crash would, where it pauses at `point`."""
    build = Paused(cmd, point)
    os.killpg(build.proc.pid, signal.SIGKILL)
    assert build.finish().returncode == -signal.SIGKILL


def test_killed_runs_then_rerun(built):
    root, site, cache, cmd = built["root"], built["site"], built["cache"], built["cmd"]
    before = snapshot(site)
    rows_before = sorted((r["set"], r["file"], r["status"]) for r in read_csv(site))
    # Forget the explanations (keep the trained head and training features) so the next run has work to do.
    import shutil

    for sub in ("records", "pictures", "manifests"):  # the manifest too, or the rerun has nothing to do
        shutil.rmtree(cache / sub)
    build_dir = site.with_name(f".{site.name}.new")

    def eval_files() -> list[Path]:
        return [p for p in (cache / "records").rglob("*.npz") if not p.name.startswith(".")] \
            if (cache / "records").is_dir() else []

    # 1: killed while explaining (its first batch of records written)
    _kill_at(cmd, "explaining")
    assert eval_files(), "no record was written before the kill"
    assert snapshot(site) == before, "the old site changed while a run was going on"
    # 2: killed while the new site is being written next to the old one
    _kill_at(cmd, "writing-site")
    assert build_dir.is_dir(), "the new site's folder was not being written"
    assert snapshot(site) == before
    # a damaged cache entry: truncated, and one replaced by garbage; both must be recomputed
    entries = sorted(eval_files())
    assert len(entries) >= 2
    entries[0].write_bytes(entries[0].read_bytes()[:100])
    entries[1].write_bytes(b"not a zip at all")
    run_build(cmd)
    assert not build_dir.exists() and not site.with_name(f".{site.name}.old").exists()
    rows_after = read_csv(site)
    assert sorted((r["set"], r["file"], r["status"]) for r in rows_after) == rows_before
    for e in entries[:2]:
        with np.load(e) as z:
            assert "scalars" in z.files
    assert not [p for p in root.rglob("*.tmp*") if "cache" not in p.parts]


# ---- stopped on purpose: Ctrl-C and SIGTERM, while explaining and while writing pages --------------------------


def _signal_at(cmd: list[str], point: str, sig: int, whole_group: bool) -> subprocess.CompletedProcess:
    """Start a build and send it `sig` where it pauses at `point` (to its process group, as a terminal's Ctrl-C
    does, or to the main process only, as `kill` does); wait for it to stop by itself."""
    build = Paused(cmd, point)
    (os.killpg if whole_group else os.kill)(build.proc.pid, sig)
    return build.finish()


@pytest.mark.parametrize(("sig", "code", "whole_group"), [(signal.SIGINT, 130, True), (signal.SIGTERM, 143, False)])
def test_interrupted_runs_leave_the_old_site_and_the_caches_valid(built, sig, code, whole_group):
    import shutil

    site, cache, cmd = built["site"], built["cache"], built["cmd"]
    before = snapshot(site)
    build_dir = site.with_name(f".{site.name}.new")

    for point in ("explaining", "writing-site"):
        for sub in ("records", "manifests") if point == "explaining" else ("manifests",):
            shutil.rmtree(cache / sub, ignore_errors=True)
        done = _signal_at(cmd, point, sig, whole_group)
        assert done.returncode == code, done.stderr[-3000:]
        lines = [ln for ln in done.stderr.splitlines() if ln.strip() and not ln.startswith("[")]
        assert "Traceback" not in done.stderr, done.stderr[-3000:]
        assert lines[-1].startswith("interrupted: the previous site is unchanged"), lines[-3:]
        assert snapshot(site) == before, "the previous site changed"
        assert not build_dir.exists() and not site.with_name(f".{site.name}.old").exists()
        assert not [p for p in cache.rglob("*.tmp")], "a half-written cache file was left"
        for record in (cache / "records").rglob("*.npz"):  # what was written is whole
            with np.load(record) as z:
                assert {"scalars", "maps", "layout"} <= set(z.files)
    run_build(cmd)
    assert read_csv(site)


# ---- a full disk ---------------------------------------------------------------------------------------------


@pytest.mark.parametrize("where", ["cache", "site"])
def test_a_full_disk_is_one_sentence_and_loses_nothing(built, monkeypatch, capsys, where):
    """ENOSPC while writing a cache entry or a page: exit 2, one line, the old site untouched, no half files."""
    import errno
    import shutil

    from generator import __main__ as cli_main
    from generator import files

    site, cache = built["site"], built["cache"]
    before = snapshot(site)
    for sub in ("records", "manifests"):
        shutil.rmtree(cache / sub, ignore_errors=True)
    real_open = open
    target = str(cache / "records") if where == "cache" else str(site.with_name(f".{site.name}.new"))

    def full_disk(path, mode="r", *a, **k):
        if "w" in mode and str(path).startswith(target):
            raise OSError(errno.ENOSPC, "No space left on device", str(path))
        return real_open(path, mode, *a, **k)

    monkeypatch.setattr(files, "open", full_disk, raising=False)
    code = cli_main.main(built["cmd"][3:])
    err = capsys.readouterr().err
    lines = [ln for ln in err.splitlines() if ln.strip() and not ln.startswith(("[", "extracting", "fitting"))]
    assert code == 2, err[-3000:]
    assert lines[-1].startswith("error: the disk is full while writing ") and "Traceback" not in err
    assert snapshot(site) == before
    assert not site.with_name(f".{site.name}.new").exists()
    assert not [p for p in cache.rglob("*.tmp")]
    monkeypatch.undo()
    run_build(built["cmd"])


# ---- read-only folders ---------------------------------------------------------------------------------------


def test_read_only_places(built, tmp_path):
    """A read-only photo folder (and data folder) works; a read-only site or weights folder is one sentence."""
    from conftest import read_only

    site, cmd = built["site"], built["cmd"]
    with read_only(built["data"]), read_only(built["data"] / ODD_SET):
        before = {p: p.stat().st_mtime_ns for p in built["data"].rglob("*") if not p.is_symlink()}
        run_build(cmd + ["--page-size", "7"])  # something to do: the pages
        assert {p: p.stat().st_mtime_ns for p in built["data"].rglob("*") if not p.is_symlink()} == before
    for folder in (site, built["root"] / "weights"):
        before = snapshot(site)
        with read_only(folder):
            proc = subprocess.run(cmd + ["--page-size", "9"], cwd=ROOT, capture_output=True, text=True,
                                  timeout=HANG)
        assert proc.returncode == 2, proc.stderr[-2000:]
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip()]
        assert len(lines) == 1 and lines[0].startswith("error: cannot write ") and str(folder) in lines[0], lines
        assert snapshot(site) == before


# ---- one build of a site at a time ---------------------------------------------------------------------------


def test_two_builds_of_one_site_never_interleave(built):
    """While one build runs, a second one on the same site stops at once with one sentence naming the first."""
    import shutil

    site, cache, cmd = built["site"], built["cache"], built["cmd"]
    shutil.rmtree(cache / "manifests", ignore_errors=True)  # the first build has pages to write after the pause
    first = Paused(cmd, "locked")  # holds the lock and waits
    try:
        second = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=HANG)
        assert first.proc.poll() is None, "the first build ended before the second one was refused"
        assert second.returncode == 2
        lines = [ln for ln in second.stderr.splitlines() if ln.strip()]
        assert lines == [f"error: another build of {site}/ is running (process {first.proc.pid}); wait for it to "
                         "finish, then run `make site` again."]
        first.go_on()
        done = first.finish()
        assert done.returncode == 0, done.stderr[-3000:]
    finally:
        first.kill()
        if first.proc.returncode is None:
            first.finish()
    run_build(cmd)  # the lock is free again


def test_default_sets_go_only_into_the_tools_own_data_folder(tmp_path):
    from generator.__main__ import adds_default_sets
    from generator.config import make_settings

    assert adds_default_sets(make_settings({}))
    assert adds_default_sets(make_settings({"data_dir": Path("data").absolute()}))
    assert not adds_default_sets(make_settings({"data_dir": tmp_path / "three-classes"}))
    assert not adds_default_sets(make_settings({"data_dir": "data/breeds"}))


def _exit_now_script(tmp_path, body: str) -> subprocess.CompletedProcess:
    script = tmp_path / "run.py"
    script.write_text("import atexit, sys, threading, time\nfrom generator.__main__ import exit_now\n" + body)
    root = str(Path(__file__).resolve().parents[1])
    return subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, cwd=root,
                          env={**os.environ, "PYTHONPATH": root})


def test_exit_now_runs_the_exit_handlers_flushes_and_keeps_the_code(tmp_path):
    done = tmp_path / "handler-ran"
    r = _exit_now_script(tmp_path, f"atexit.register(lambda: open({str(done)!r}, 'w').write('yes'))\n"
                                   "sys.stdout.write('unflushed line')\nexit_now(3)\nprint('never')\n")
    assert r.returncode == 3 and done.read_text() == "yes"
    assert r.stdout == "unflushed line"  # the buffered output is written, nothing after exit_now runs


def test_exit_now_waits_for_a_running_thread(tmp_path):
    done = tmp_path / "thread-done"
    r = _exit_now_script(tmp_path, "def work():\n    time.sleep(0.5)\n"
                                   f"    open({str(done)!r}, 'w').write('yes')\n"
                                   "threading.Thread(target=work).start()\nexit_now(4)\n")
    assert r.returncode == 4 and done.read_text() == "yes"  # sys.exit's way: the thread finished its work
