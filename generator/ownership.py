"""Which folders are the tool's to replace or delete, and the check of every folder setting before any work.

The rule: the tool deletes, moves or replaces only what it wrote itself, and says so in the folder.
- A site folder (--site-dir, and its two siblings .<name>.new and .<name>.old) is the tool's when it is absent,
  empty, or holds a run.json with "tool": "cam-report" that lists every file in it (a site written before the
  list existed, recognised by its run.json's own keys, counts whole). A folder being built holds a run.json stub
  from its first moment, so a build killed half-way can be cleared by the next one.
- The lock file (.<name>.lock) is the tool's when it is a file holding nothing but a process id.
- A cache folder is the tool's when it holds CACHEDIR.TAG (the Cache Directory Tagging convention, written by
  every build) naming this tool, or only the subfolders a build makes.
Anything else is refused with one sentence naming the folder, one file in it, and how to go on; nothing is touched.

This module imports only the standard library: `python -m generator clean` runs without the virtual environment.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import tempfile
from pathlib import Path

from generator.errors import UserError, from_os_error

TOOL = "cam-report"
SITE_FORMAT = 1
MARKER = "run.json"
# run.json keys of sites written before "tool" existed (all of them, so a user's own run.json never matches)
_LEGACY_KEYS = ("model_fingerprint", "manifest", "settings", "timings", "methods_chosen")
_STUB_TMP = re.compile(r"\.run\.json\.\d+\.tmp")
CACHE_TAG = "CACHEDIR.TAG"
CACHE_TAG_TEXT = ("Signature: 8a477f597d28d172789f06886806bc55\n"
                  f"# This file is a cache directory tag created by {TOOL} (python -m generator).\n"
                  "# For information about cache directory tags see https://bford.info/cachedir/\n")
CACHE_PARTS = frozenset({"features", "records", "pictures", "leaderboard", "runs", "manifests", "finetune", "pages",
                         "templates",
                         CACHE_TAG})
FOLDER_SETTINGS = ("data_dir", "site_dir", "cache_dir", "weights_dir")


class NotOurs(UserError):
    """A folder or file the build would delete, move or replace is not one this tool wrote."""


# ---- what is in a folder ----------------------------------------------------------------------------------------


def entries(folder: Path) -> list[str]:
    """Every entry under folder that is not a folder (files, links, even links to folders: never followed), as
    sorted '/'-separated paths relative to folder."""
    out: list[str] = []

    def walk(path: str, prefix: str) -> None:
        try:
            with os.scandir(path) as it:
                found = list(it)
        except OSError:  # a folder that cannot be read: counted as an entry, so it is never taken for the tool's
            out.append(prefix.rstrip("/") or ".")
            return
        for e in found:
            if e.is_dir(follow_symlinks=False):
                walk(e.path, prefix + e.name + "/")
            else:
                out.append(prefix + e.name)

    walk(str(folder), "")
    return sorted(out)


def site_marker(files: list[str] | None) -> dict:
    """The keys run.json carries so that the next build knows the folder is its own: files=None for a folder
    still being built (the build writes this stub first), else every file of the finished site."""
    return {"tool": TOOL, "site_format": SITE_FORMAT,
            "files": None if files is None else [f for f in files if f != MARKER]}


def write_stub(folder: Path) -> None:
    from generator.files import write_text  # numpy: only where a build runs

    write_text(Path(folder) / MARKER, json.dumps(site_marker(None)))


def _marker(folder: Path) -> dict | None:
    path = Path(folder) / MARKER
    if path.is_symlink() or not path.is_file():
        return None
    try:
        run = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(run, dict):
        return None
    if run.get("tool") == TOOL:
        return run
    return dict(run, files=None) if all(k in run for k in _LEGACY_KEYS) else None


def foreign_file(folder: Path) -> str | None:
    """A file in the site folder `folder` that this tool did not write (its path inside folder), or None when the
    tool may replace the folder whole (absent, empty, or all of it written by a build)."""
    folder = Path(folder)
    if not folder.is_dir() or folder.is_symlink():
        return None
    found = entries(folder)
    if not found:
        return None
    marker = _marker(folder)
    if marker is None:
        # a build killed while it wrote its stub leaves only the stub's temporary file (files.write_with's name)
        other = [f for f in found if not _STUB_TMP.fullmatch(f)]
        return next((f for f in other if f != MARKER), other[0]) if other else None
    listed = marker.get("files")
    if not isinstance(listed, list):  # a folder being built, or a site from before the list
        return None
    extra = sorted(set(found) - set(listed) - {MARKER})
    return extra[0] if extra else None


# ---- the site folder and its siblings ---------------------------------------------------------------------------


def siblings(site_dir: Path) -> dict[str, Path]:
    site_dir = Path(site_dir)
    return {"new": site_dir.with_name(f".{site_dir.name}.new"), "old": site_dir.with_name(f".{site_dir.name}.old"),
            "lock": site_dir.with_name(f".{site_dir.name}.lock")}


def check_site_folder(site_dir: Path) -> None:
    """Refuse a site folder that is a link, a file, or holds a file this tool did not write."""
    site_dir = Path(site_dir)
    if site_dir.is_symlink():
        raise NotOurs(f"setting site_dir = '{site_dir}' is a symbolic link (to {os.readlink(site_dir)}), and a build "
                      "replaces the site folder whole; give the real folder's path as --site-dir, or choose "
                      "another one.")
    if site_dir.exists() and not site_dir.is_dir():
        raise NotOurs(f"setting site_dir = '{site_dir}' is a file, not a folder, and a build would replace it; "
                      "choose another --site-dir (a new or empty folder), or move that file away.")
    name = foreign_file(site_dir)
    if name is not None:
        raise NotOurs(f"{site_dir} holds files this tool did not write (such as {name}), and a build replaces "
                      "that folder whole; choose another --site-dir (a new or empty folder), or empty "
                      f"{site_dir} yourself if nothing in it is needed.")


def _refuse_sibling(path: Path, site_dir: Path) -> None:
    """.site.new and .site.old: names the build uses next to the site; someone else's folder there is refused."""
    why = f"the build uses that name next to {site_dir} for its own work"
    if path.is_symlink() or (path.exists() and not path.is_dir()):
        raise NotOurs(f"{path} is in the way ({why}, and it is a file or a link); move or rename it, or choose "
                      "another --site-dir.")
    name = foreign_file(path)
    if name is not None:
        raise NotOurs(f"{path} is in the way ({why}, and it holds {name}, which this tool did not write); move "
                      "or rename it, or choose another --site-dir.")


def _refuse_lock(lock: Path, site_dir: Path) -> None:
    if not (lock.exists() or lock.is_symlink()):
        return
    ours = lock.is_file() and not lock.is_symlink() and lock.stat().st_size <= 32 \
        and re.fullmatch(rb"\d*", lock.read_bytes().strip()) is not None
    if not ours:
        raise NotOurs(f"{lock} is in the way (the build keeps its lock file under that name next to {site_dir}, "
                      "and this one holds something else); move or rename it, or choose another --site-dir.")


def check_siblings(site_dir: Path) -> None:
    """Refuse a .<site>.new or .<site>.old that the build may not clear."""
    sib = siblings(site_dir)
    _refuse_sibling(sib["new"], site_dir)
    _refuse_sibling(sib["old"], site_dir)


def check_site(site_dir: Path) -> None:
    """Refuse, before any work, a site folder (or one of its siblings, or its lock file) that the build may not
    replace."""
    site_dir = Path(site_dir)
    check_site_folder(site_dir)
    check_siblings(site_dir)
    _refuse_lock(siblings(site_dir)["lock"], site_dir)


def remove_site_folder(path: Path, site_dir: Path) -> None:
    """Delete a site folder (or .new/.old sibling) the tool wrote; NotOurs, and nothing deleted, otherwise."""
    path = Path(path)
    if path == Path(site_dir):
        check_site_folder(path)
    else:
        _refuse_sibling(path, site_dir)
    if path.is_dir():
        shutil.rmtree(path)


def recover_site(site_dir: Path) -> None:
    """A run killed between the two renames of a swap leaves only .site.old: put it back (when it is ours)."""
    site_dir = Path(site_dir)
    old = siblings(site_dir)["old"]
    if not (site_dir.exists() or site_dir.is_symlink()) and old.is_dir() and not old.is_symlink():
        _refuse_sibling(old, site_dir)
        os.replace(old, site_dir)


# ---- every folder setting, before any work ----------------------------------------------------------------------


def _existing(path: Path) -> Path:
    """path itself, or its nearest ancestor that exists (the folder a missing one would be made in)."""
    p = path.absolute()
    while not os.path.lexists(p) and p != p.parent:
        p = p.parent
    return p


def _try_write(folder: Path) -> None:
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as exc:
        raise (from_os_error(exc, folder, "writing into") or exc) from None


def check_folder(name: str, value: Path, writable: bool = True) -> None:
    """One folder setting: a folder, or a path where one can be made; written into when `writable`. Nothing is
    created here: a missing folder is tried in the folder it would be made in."""
    path = Path(value)
    at = _existing(path)
    if not at.is_dir():
        kind = "is a file, not a folder" if at.is_file() else \
            "is a broken link, not a folder" if at.is_symlink() else "is not a folder"
        if at == path.absolute():
            raise NotOurs(f"setting {name} = '{value}' {kind}; give the path of a folder (it is made if missing), "
                          "or move that file away.")
        raise NotOurs(f"setting {name} = '{value}' cannot be made: {at} {kind}; give another path, or move that "
                      "file away.")
    if writable:
        _try_write(at)


def check_paths(settings) -> None:
    """Every folder setting checked before any work, each mistake one sentence: a file where a folder is expected,
    a folder that cannot be made or written. The data folder is only read by a build (a read-only one works)."""
    for name in FOLDER_SETTINGS:
        check_folder(name, getattr(settings, name), writable=name != "data_dir")
    site = Path(settings.site_dir)
    check_site(site)  # the lock file too, before the lock is taken: taking it empties the file
    _try_write(_existing(site.absolute().parent))  # the new site is renamed into place there
    if site.is_dir():
        _try_write(site)


# ---- caches ------------------------------------------------------------------------------------------------------


def tag_cache(cache_dir: Path) -> None:
    """Mark the cache folder as this tool's (only added to: an existing tag is left as it is)."""
    from generator.files import write_text

    tag = Path(cache_dir) / CACHE_TAG
    if not (tag.exists() or tag.is_symlink()):
        write_text(tag, CACHE_TAG_TEXT)


def cache_foreign(cache_dir: Path) -> str | None:
    """A file in cache_dir that shows it is not (only) this tool's cache, or None."""
    cache_dir = Path(cache_dir)
    if not cache_dir.is_dir() or cache_dir.is_symlink():
        return None if not (cache_dir.exists() or cache_dir.is_symlink()) else cache_dir.name
    tag = cache_dir / CACHE_TAG
    try:
        if tag.is_file() and not tag.is_symlink() and f"created by {TOOL} " in tag.read_text(encoding="utf-8"):
            return None
    except (OSError, UnicodeDecodeError):
        pass
    other = sorted(e.name for e in os.scandir(cache_dir) if e.name not in CACHE_PARTS)
    return other[0] if other else None


# ---- `make clean` ------------------------------------------------------------------------------------------------


def _not_for_clean(path: Path, name: str) -> NotOurs:
    return NotOurs(f"{path} holds {name}, which this tool did not write, so `make clean` deleted nothing; move or "
                   f"delete {path} yourself if nothing in it is needed.")


def clean(site_dir: Path, cache_dir: Path, log=print) -> None:
    """Delete the site, its siblings, the lock file and the cache: all checked first, so a refusal deletes
    nothing."""
    from generator.lock import site_lock

    site_dir, cache_dir = Path(site_dir), Path(cache_dir)
    sib = siblings(site_dir)
    folders = [site_dir, sib["new"], sib["old"]]
    for path in folders:
        if path.is_symlink() or (path.exists() and not path.is_dir()):
            raise _not_for_clean(path.parent, path.name)
        name = foreign_file(path)
        if name is not None:
            raise _not_for_clean(path, name)
    name = cache_foreign(cache_dir)
    if name is not None:
        raise _not_for_clean(cache_dir if cache_dir.is_dir() else cache_dir.parent, name)
    _refuse_lock(sib["lock"], site_dir)
    if not site_dir.absolute().parent.is_dir():
        return  # no site, hence no sibling either
    with site_lock(site_dir):  # never under a build that is running
        for path in folders:
            if path.is_dir():
                shutil.rmtree(path)
                log(f"removed {path}")
        if cache_dir.is_dir():
            shutil.rmtree(cache_dir)
            log(f"removed {cache_dir}")
        sib["lock"].unlink(missing_ok=True)  # still held by this process; a later build makes a new one
