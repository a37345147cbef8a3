"""`make data`: bring the image sets into data/.

- train/test from a local folder or .zip laid out like cats_and_dogs_filtered (train/{cats,dogs},
  validation/{cats,dogs}); when neither data/ nor SOURCE has them, from the public cats_and_dogs_filtered.zip,
  downloaded with resume and checked (size, CRCs, layout, photo counts) before anything in data/ changes.
- personal/unrelated from local folders, or by default from the photos that scikit-image ships.

Local folders are linked, not copied: the photos stay where they are and are never duplicated. An import of
train/test either completes (both linked to a checked copy) or leaves data/ as it was.
"""

from __future__ import annotations

import errno
import http.client
import os
import re
import shutil
import tempfile
import time
import urllib.error
import urllib.parse
import urllib.request
import zipfile
import zlib
from collections.abc import Callable, Mapping
from pathlib import Path
from types import MappingProxyType
from typing import TYPE_CHECKING, BinaryIO

from generator.config import PUBLIC_ZIP_URL
from generator.errors import UserError

if TYPE_CHECKING:  # tqdm only where something is downloaded: a build that has its photos never imports it
    from tqdm import tqdm

PUBLIC_ZIP_NAME = "cats_and_dogs_filtered.zip"
# Photos per class folder of the public archive: a download with other counts is not that archive.
PUBLIC_COUNTS: Mapping[str, int] = MappingProxyType(
    {"train/cats": 1000, "train/dogs": 1000, "validation/cats": 500, "validation/dogs": 500}
)
CLASS_DIRS = tuple(PUBLIC_COUNTS)
TIMEOUT_S = 30.0  # per connect and per read: a stalled connection fails in this time instead of hanging
DOWNLOAD_TRIES = 4  # the first request and up to three resumes of a body cut short
RETRY_PAUSE_S = 2.0  # between tries, so that a brief network blip can pass
CHUNK_BYTES = 1 << 20
SOURCE_HINT = "SOURCE=<folder or .zip laid out like cats_and_dogs_filtered: train/{cats,dogs}, validation/{cats,dogs}>"
SKIMAGE_PERSONAL = ("chelsea.png",)
SKIMAGE_UNRELATED = (
    "astronaut.png", "camera.png", "coffee.png", "rocket.jpg", "coins.png", "hubble_deep_field.jpg",
    "retina.jpg", "clock_motion.png", "brick.png", "grass.png", "gravel.png", "moon.png", "text.png",
)
LAYOUT = {"train": "train", "test": "validation"}

Log = Callable[[str], None]


class DataError(UserError, ValueError):
    """The source of a set is missing or not of the expected layout; the message names it and the fix."""


class _BadArchive(DataError):
    """The archive itself is wrong (unreadable, bad CRC, unsafe member, layout, counts): a new copy is needed."""


# --- data/ entries that `make data` owns -------------------------------------------------------------------


def _own_file(target: Path) -> Path | None:
    """A file at or under target that `make data` did not put there (its entries are links), if any."""
    if target.is_symlink():
        return None
    if target.is_dir():
        return next((p for p in target.rglob("*") if not p.is_dir() and not p.is_symlink()), None)
    return target if target.exists() else None


def _check_clearable(*targets: Path) -> None:
    """Refuse, before any work, to import over a user's own files."""
    for target in targets:
        own = _own_file(target)
        if own == target:
            raise DataError(f"{target} is a file; delete it first.")
        if own is not None:
            raise DataError(f"{target} holds files of its own (such as {own.name}); move them away or delete "
                            f"{target} before importing another folder there.")


def _clear(target: Path) -> None:
    """Remove what `make data` put at target (a link, or a folder of links); never a user's own files."""
    _check_clearable(target)
    if target.is_symlink():
        target.unlink()
    elif target.is_dir():
        shutil.rmtree(target)


def _replace_with_link(target: Path, source: Path) -> None:
    _clear(target)
    target.parent.mkdir(parents=True, exist_ok=True)
    os.symlink(source.resolve(), target, target_is_directory=source.is_dir())


def _link_sets(root: Path, data_dir: Path) -> list[str]:
    """Link data/train and data/test to root's train/ and validation/: both, or (on failure) neither."""
    made: list[Path] = []
    try:
        for name, sub in LAYOUT.items():
            _replace_with_link(data_dir / name, root / sub)
            made.append(data_dir / name)
    except BaseException:
        for link in made:
            link.unlink(missing_ok=True)
        raise
    return [f"{name} <- {root / sub}" for name, sub in LAYOUT.items()]


# --- layout checks -----------------------------------------------------------------------------------------


def _layout_root(folder: Path) -> Path | None:
    """The folder that holds train/ and validation/ (an archive may wrap them in one more folder), if any."""
    if (folder / "train").is_dir() and (folder / "validation").is_dir():
        return folder
    subs = sorted(p for p in folder.iterdir() if p.is_dir() and not p.name.startswith((".", "__")))
    return next((s for s in subs if (s / "train").is_dir() and (s / "validation").is_dir()), None)


def _count_photos(folder: Path) -> int:
    """Files in folder, hidden ones (.DS_Store and the like) not counted; 0 when it is absent."""
    if not folder.is_dir():
        return 0
    return sum(1 for p in folder.iterdir() if p.is_file() and not p.name.startswith("."))


def _files(n: int) -> str:
    return f"{n:,} file" if n == 1 else f"{n:,} files"


def _count_problem(root: Path, expected: Mapping[str, int] | None) -> str | None:
    """How root's class folders differ from expected (None: any non-empty count will do); None if they don't."""
    counts = {key: _count_photos(root / key) for key in (*CLASS_DIRS, *(expected or {}))}
    empty = [key for key in CLASS_DIRS if counts[key] == 0]
    if empty:
        return f"{', '.join(empty)} missing or empty"
    wrong = [f"{key} has {_files(counts[key])} where {n:,} were expected"
             for key, n in (expected or {}).items() if counts[key] != n]
    return ", ".join(wrong) or None


def _checked_root(folder: Path, expected: Mapping[str, int] | None, origin: str, fix: str) -> Path:
    """The layout root in folder, its four class folders checked against expected; raises _BadArchive."""
    root = _layout_root(folder)
    problem = (_count_problem(root, expected) if root is not None else
               "no folder with both train/ and validation/ (each with cats/ and dogs/) at its top or one level down")
    if root is None or problem:
        raise _BadArchive(f"{origin} is not laid out like cats_and_dogs_filtered: {problem}; {fix}.")
    return root


# --- zips ---------------------------------------------------------------------------------------------------


def _write_error(path: Path, exc: OSError) -> DataError:
    """One sentence for a failed write: a full disk, or anything else the OS refused."""
    if exc.errno in (errno.ENOSPC, errno.EDQUOT):
        return DataError(f"no space left on the disk that holds {path} ({exc.strerror}): free some space and run "
                         "the same command again.")
    return DataError(f"cannot write {path} ({exc}): check that the folder is writable and run the same command again.")


def _check_members(zf: zipfile.ZipFile, dest: Path, origin: str, fix: str) -> None:
    """No member may land outside dest (zip-slip)."""
    root = dest.resolve()
    for member in zf.infolist():
        if not (dest / member.filename).resolve().is_relative_to(root):
            raise _BadArchive(f"{origin}: member {member.filename!r} would unpack outside {dest}, so it was "
                              f"refused; {fix}.")


def _check_crcs(zf: zipfile.ZipFile, origin: str, fix: str) -> None:
    """Every member decompresses and matches its CRC."""
    try:
        bad = zf.testzip()
    except (zipfile.BadZipFile, zlib.error, EOFError, OSError, NotImplementedError, RuntimeError) as exc:
        raise _BadArchive(f"{origin} is damaged ({exc}); {fix}.") from exc
    if bad is not None:
        raise _BadArchive(f"{origin} is damaged (member {bad} fails its CRC check); {fix}.")


def _remove_leftovers(work: Path) -> None:
    """Temporary folders of an import that was killed before it could clean up (each may hold a whole archive)."""
    for p in work.glob(".unpack-*"):
        shutil.rmtree(p, ignore_errors=True)
    for p in work.glob(".old-*"):
        shutil.rmtree(p, ignore_errors=True)


def _extract_checked(zip_path: Path, work: Path, expected: Mapping[str, int] | None, origin: str,
                     fix: str) -> tuple[Path, Path]:
    """Unpack zip_path into a new temporary folder under work and check it; return (that folder, layout root).

    On any failure the temporary folder is removed and nothing else under work has changed.
    """
    try:
        work.mkdir(parents=True, exist_ok=True)
        _remove_leftovers(work)
        tmp = Path(tempfile.mkdtemp(prefix=".unpack-", dir=work))
    except OSError as exc:
        raise _write_error(work, exc) from exc
    try:
        try:
            zf = zipfile.ZipFile(zip_path)
        except (OSError, zipfile.BadZipFile) as exc:
            raise _BadArchive(f"{origin} is not a readable zip file ({exc}); {fix}.") from exc
        with zf:
            _check_members(zf, tmp, origin, fix)
            _check_crcs(zf, origin, fix)
            try:
                zf.extractall(tmp)
            except OSError as exc:
                raise _write_error(work, exc) from exc
        return tmp, _checked_root(tmp, expected, origin, fix)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _install(new: Path, dest: Path) -> None:
    """Put folder new at dest with one rename; what was at dest goes only once new is in place."""
    if not (dest.exists() or dest.is_symlink()):
        os.replace(new, dest)
        return
    old = Path(tempfile.mkdtemp(prefix=".old-", dir=dest.parent))
    os.replace(dest, old / dest.name)
    try:
        os.replace(new, dest)
    except OSError:
        os.replace(old / dest.name, dest)  # put the previous import back
        raise
    finally:
        shutil.rmtree(old, ignore_errors=True)


def _place(tmp: Path, root: Path, dest: Path, data_dir: Path) -> list[str]:
    """Move a checked layout root from its temporary folder to dest and link data/train, data/test to it."""
    _install(root, dest)
    shutil.rmtree(tmp, ignore_errors=True)  # gone already when root was tmp itself
    return _link_sets(dest, data_dir)


def import_source(source: Path, data_dir: Path, expected_counts: Mapping[str, int] | None = None) -> list[str]:
    """train/ and test/ from a local folder (linked) or zip (checked, then unpacked into data/.source/<name>/).

    expected_counts: photos per class folder ("train/cats", ...); None: each of the four only has to be non-empty.
    """
    source, data_dir = Path(source), Path(data_dir)
    if not source.exists():
        raise DataError(f"{source}: no such folder or zip; give {SOURCE_HINT}.")
    _check_clearable(data_dir / "train", data_dir / "test")
    fix = f"give {SOURCE_HINT}"
    if source.is_dir():
        return _link_sets(_checked_root(source, expected_counts, str(source), fix), data_dir)
    work = data_dir / ".source"
    tmp, root = _extract_checked(source, work, expected_counts, str(source), fix)
    return _place(tmp, root, work / source.stem, data_dir)


# --- download -----------------------------------------------------------------------------------------------


def _size(n: int) -> str:
    return f"{n / 2**20:.1f} MiB" if n >= 2**20 else f"{n / 2**10:.1f} KiB"


OTHER_WAY = f"give {SOURCE_HINT} to import a copy you already have"  # what a failed download's sentence ends with


def _offline_message(url: str, exc: BaseException, other: str = OTHER_WAY) -> str:
    reason = getattr(exc, "reason", None) or exc
    return (f"could not reach {url} ({reason}), so this machine seems to be offline (or that server is down): run "
            f"`make site` (or `make data`) again where a network exists, or {other}.")


def _http_message(url: str, code: int, reason: str, other: str = OTHER_WAY) -> str:
    return (f"{url} answered HTTP {code} {reason} instead of the archive: check that address, try again later if the "
            f"server is at fault, or {other}.")


def _int_header(headers: http.client.HTTPMessage, name: str) -> int | None:
    value = (headers.get(name) or "").strip()
    return int(value) if value.isdigit() else None


def _body_span(resp: http.client.HTTPResponse, url: str, offset: int,
               other: str = OTHER_WAY) -> tuple[int, int | None] | None:
    """(first byte, total size or None if unknown) of the reply, or None when its range is not the one asked."""
    length = _int_header(resp.headers, "Content-Length")
    if resp.status == 200:
        return 0, length
    if resp.status == 206:
        m = re.fullmatch(r"bytes (\d+)-(\d+)/(\d+|\*)", (resp.headers.get("Content-Range") or "").strip())
        if m is None or int(m[1]) != offset:
            return None
        if m[3] != "*":
            return offset, int(m[3])
        return offset, None if length is None else offset + length
    raise DataError(_http_message(url, resp.status, resp.reason, other))


def _copy_body(resp: http.client.HTTPResponse, out: BinaryIO, bar: tqdm) -> str | None:
    """Copy the body to out; why it broke off, or None at its end. Write errors propagate as OSError."""
    while True:
        try:
            chunk = resp.read1(CHUNK_BYTES)  # what has arrived: a timeout then loses no bytes already received
        except (OSError, http.client.HTTPException) as exc:  # timeouts and resets while reading
            return f"the connection broke ({str(exc) or type(exc).__name__})"
        if not chunk:
            return None
        out.write(chunk)
        bar.update(len(chunk))


def _save_body(resp: http.client.HTTPResponse, part: Path, start: int, total: int | None, progress: bool) -> str | None:
    """Write the body into part from byte start (append or restart); why part is not complete, or None."""
    from tqdm import tqdm

    try:
        with open(part, "ab" if start else "wb") as out, tqdm(
            total=total, initial=start, unit="B", unit_scale=True, unit_divisor=1024,
            desc=part.name.removesuffix(".part"), disable=not progress,
        ) as bar:
            why = _copy_body(resp, out, bar)
    except OSError as exc:
        raise _write_error(part, exc) from exc
    size = part.stat().st_size
    if total is not None and size == total:
        return None
    if why or total is None:
        return why  # without a size to compare with, the archive checks decide
    if size < total:
        return f"the reply ended at {size:,} of {total:,} bytes"
    part.unlink()  # more bytes than announced: nothing in part can be trusted
    return f"the reply ran past its announced {total:,} bytes, so the download starts again"


def _settle_416(headers: http.client.HTTPMessage, part: Path) -> str | None:
    """After "416 Range Not Satisfiable": None when part is already complete, else why it was deleted."""
    size = part.stat().st_size
    m = re.fullmatch(r"bytes \*/(\d+)", (headers.get("Content-Range") or "").strip())
    if (m and int(m[1]) == size) or (m is None and zipfile.is_zipfile(part)):
        return None  # complete (or, with no size given, whole enough for the archive checks to decide)
    part.unlink()
    return "the server cannot resume from the partial file, so the download starts again"


def _try_download(url: str, part: Path, progress: bool, log: Log, other: str = OTHER_WAY) -> str | None:
    """One request for what part lacks (a Range request when part has bytes); why it is not complete, or None."""
    offset = part.stat().st_size if part.is_file() else 0
    log(f"resuming {url} after {_size(offset)}" if offset else f"downloading {url}")
    request = urllib.request.Request(url, headers={"Range": f"bytes={offset}-"} if offset else {})
    try:
        resp = urllib.request.urlopen(request, timeout=TIMEOUT_S)
    except urllib.error.HTTPError as exc:
        with exc:
            if exc.code == 416 and offset:
                return _settle_416(exc.headers, part)
            raise DataError(_http_message(url, exc.code, exc.reason, other)) from exc
    except (urllib.error.URLError, OSError, http.client.HTTPException) as exc:
        raise DataError(_offline_message(url, exc, other)) from exc
    with resp:
        span = _body_span(resp, url, offset, other)
        if span is None:
            part.unlink()
            return "the server resumed at another byte than asked, so the download starts again"
        if offset and span[0] == 0:
            log(f"{url} ignored the resume request; downloading it from the start")
        return _save_body(resp, part, *span, progress)


def download_resumable(url: str, part: Path, *, progress: bool = True, log: Log = print,
                       other: str = OTHER_WAY) -> Path:
    """Fill part with the file at url, resuming what an earlier try left in it; return part once complete by size.

    Only the transfer is checked here (status, Content-Length, Content-Range); the caller checks the content.
    other: the way around a failed download that its sentence ends with ("or <other>.").
    """
    part.parent.mkdir(parents=True, exist_ok=True)
    why = None
    for attempt in range(DOWNLOAD_TRIES):
        if attempt:
            log(f"{why}; trying again")
            time.sleep(RETRY_PAUSE_S)
        why = _try_download(url, part, progress, log, other)
        if why is None:
            return part
    have = part.stat().st_size if part.is_file() else 0
    raise DataError(f"the download of {url} broke off {DOWNLOAD_TRIES} times ({why}) with {_size(have)} saved in "
                    f"{part}: run the same command again to resume it, or {other}.")


def _archive_name(url: str) -> str:
    """The file name of the archive at url (the public name when the URL has none)."""
    name = Path(urllib.parse.urlparse(url).path).name
    return name if name.endswith(".zip") and not name.startswith(".") else PUBLIC_ZIP_NAME


def import_download(data_dir: Path, *, allow_network: bool = True, url: str = PUBLIC_ZIP_URL,
                    expected_counts: Mapping[str, int] | None = PUBLIC_COUNTS, progress: bool = True,
                    log: Log = print) -> list[str]:
    """train/test from the archive at url: the checked copy an earlier run kept in data/.source/, or downloaded.

    The download goes to data/.source/<name>.zip.part and becomes <name>.zip only after every check has passed.
    expected_counts: photos per class folder ("train/cats", ...); None: each of the four only has to be non-empty.
    """
    data_dir = Path(data_dir)
    work = data_dir / ".source"
    final = work / _archive_name(url)
    _check_clearable(data_dir / "train", data_dir / "test")
    if final.is_file():  # renamed from .part only after its checks passed, so no network is needed
        log(f"importing {final}, downloaded earlier from {url}")
        fix = f"delete it and run the same command again to download it afresh, or give {SOURCE_HINT}"
        tmp, root = _extract_checked(final, work, expected_counts, str(final), fix)
        return _place(tmp, root, work / final.stem, data_dir)
    if not allow_network:
        raise DataError(
            f"{data_dir / 'train'} and {data_dir / 'test'} are missing and downloading is off: run `make site` "
            f"(or `make data`) on a machine with a network to download {final.name}, or give {SOURCE_HINT} "
            "to import a copy you already have."
        )
    part = download_resumable(url, final.with_name(final.name + ".part"), progress=progress, log=log)
    origin = f"{part} (downloaded from {url})"
    fix = f"it was deleted, so run the same command again to download it afresh, or give {SOURCE_HINT}"
    try:
        tmp, root = _extract_checked(part, work, expected_counts, origin, fix)
    except _BadArchive:
        part.unlink(missing_ok=True)  # a resume would only extend a bad file
        raise
    os.replace(part, final)
    return [f"downloaded {url} -> {final}", *_place(tmp, root, work / final.stem, data_dir)]


# --- personal / unrelated -----------------------------------------------------------------------------------


def skimage_data_dir() -> Path:
    import skimage

    return Path(skimage.__file__).parent / "data"


def import_folder(name: str, folder: Path | None, data_dir: Path, defaults: tuple[str, ...],
                  default_sub: str = "") -> str:
    """Link a local folder as set `name`, or build the set from scikit-image's bundled photos."""
    target = Path(data_dir) / name
    if folder is not None:
        folder = Path(folder)
        if not folder.is_dir():
            raise DataError(f"{folder}: no such folder for the {name} set.")
        _replace_with_link(target, folder)
        return f"{name} <- {folder}"
    _clear(target)
    dest = target / default_sub if default_sub else target
    dest.mkdir(parents=True, exist_ok=True)
    src = skimage_data_dir()
    for f in defaults:
        if (src / f).is_file():
            os.symlink(src / f, dest / f"skimage_{f}")
    return f"{name} <- scikit-image bundled photos ({len(defaults)})"


def have_set(data_dir: Path, name: str) -> bool:
    p = Path(data_dir) / name
    return p.is_dir() and any(p.iterdir())


def import_all(data_dir: Path, source: Path | None, personal: Path | None, unrelated: Path | None, *,
               download: bool = True, only_missing: bool = False, url: str = PUBLIC_ZIP_URL,
               expected_counts: Mapping[str, int] | None | str = "auto", progress: bool = True,
               log: Log = print, defaults: bool = True) -> list[str]:
    """What `make data` does; one line per imported set. With only_missing, sets already present stay as they are.

    train/test come from `source` when given (never the network), else from the archive at url (see
    import_download), which is downloaded only when download is true. expected_counts "auto": the public
    archive's counts for the public URL; for any other URL (a mirror, your own archive) the layout only.
    defaults false: only the sets asked for (source, personal, unrelated) are imported, nothing downloaded or
    taken from scikit-image: a data folder the user names is read, not written.
    """
    if not defaults:
        if source is None and personal is None and unrelated is None:
            return []
        data_dir = Path(data_dir)
        data_dir.mkdir(parents=True, exist_ok=True)
        asked = import_source(source, data_dir) if source is not None else []
        asked += [import_folder(name, folder, data_dir, ()) for name, folder in
                  (("personal", personal), ("unrelated", unrelated)) if folder is not None]
        return asked
    if expected_counts == "auto":
        expected_counts = PUBLIC_COUNTS if url == PUBLIC_ZIP_URL else None
    data_dir = Path(data_dir)
    data_dir.mkdir(parents=True, exist_ok=True)
    done: list[str] = []
    if source is not None:
        done += import_source(source, data_dir)
    elif not (only_missing and have_set(data_dir, "train") and have_set(data_dir, "test")):
        done += import_download(data_dir, allow_network=download, url=url, expected_counts=expected_counts,
                                progress=progress, log=log)
    if personal is not None or not (only_missing and have_set(data_dir, "personal")):
        done.append(import_folder("personal", personal, data_dir, SKIMAGE_PERSONAL, default_sub="cat"))
    if unrelated is not None or not (only_missing and have_set(data_dir, "unrelated")):
        done.append(import_folder("unrelated", unrelated, data_dir, SKIMAGE_UNRELATED))
    return done
