"""generator/ownership.py: the tool replaces or deletes only folders it wrote, and every folder setting is checked
before any work (one sentence, exit 2, nothing touched).

First the rules on small folders made here (no model), then the command line on the warm tiny project.
"""

from __future__ import annotations

import hashlib
import json
import re
import subprocess
import sys
from pathlib import Path

import pytest

from generator import ownership
from generator.config import make_settings
from generator.errors import UserError
from generator.ownership import NotOurs

ROOT = Path(__file__).resolve().parent.parent


def snapshot(folder: Path) -> dict[str, str]:
    """Every entry under folder by content (links by target): a refused folder must stay byte-identical."""
    out = {}
    for p in sorted(folder.rglob("*")):
        rel = str(p.relative_to(folder))
        out[rel] = ("link:" + str(p.readlink())) if p.is_symlink() else \
            hashlib.sha256(p.read_bytes()).hexdigest() if p.is_file() else "folder"
    return out


def blog(folder: Path) -> Path:
    """The folder of the issue: a user's own files, where the site was to be written."""
    (folder / "_posts").mkdir(parents=True)
    (folder / "thesis.txt").write_text("four years of work\n")
    (folder / "_posts" / "2020-01-01-hello.md").write_text("---\ntitle: hello\n---\n")
    return folder


def fake_site(folder: Path, names=("index.html", "sets/test/a.html", "assets/ab/x.webp")) -> Path:
    """A folder laid out as a build leaves it: its files, and run.json listing them."""
    for n in names:
        (folder / n).parent.mkdir(parents=True, exist_ok=True)
        (folder / n).write_text(n)
    files = ownership.entries(folder)
    (folder / "run.json").write_text(json.dumps({"backbone": "x", **ownership.site_marker(files)}))
    return folder


# ---- the rule, folder by folder -------------------------------------------------------------------------------


def test_a_folder_of_someone_elses_files_is_refused_and_left_byte_identical(tmp_path):
    site = blog(tmp_path / "blog")
    before = snapshot(site)
    with pytest.raises(NotOurs) as exc:
        ownership.check_site(site)
    text = str(exc.value)
    assert text.startswith(f"{site} holds files this tool did not write (such as ") and "\n" not in text
    assert "_posts/2020-01-01-hello.md" in text or "thesis.txt" in text
    assert "--site-dir" in text and "empty" in text
    with pytest.raises(NotOurs):
        ownership.remove_site_folder(site, site)
    assert snapshot(site) == before


def test_a_site_the_tool_wrote_may_be_replaced_and_a_file_added_to_it_may_not(tmp_path):
    site = fake_site(tmp_path / "site")
    assert ownership.foreign_file(site) is None
    ownership.check_site(site)
    (site / "CNAME").write_text("cats.example.org\n")  # the user's own file for their host
    assert ownership.foreign_file(site) == "CNAME"
    (site / "CNAME").unlink()
    (site / "sets" / "test" / "notes").mkdir()
    (site / "sets" / "test" / "notes" / "n.txt").write_text("mine")
    assert ownership.foreign_file(site) == "sets/test/notes/n.txt"
    (site / "sets" / "test" / "notes" / "n.txt").unlink()  # an empty folder holds nothing to lose
    ownership.remove_site_folder(site, site)  # only what the build wrote (an empty folder holds no file)
    assert not site.exists()


def test_a_run_json_decides_only_when_it_is_the_tools(tmp_path):
    mine = tmp_path / "mine"
    mine.mkdir()
    (mine / "run.json").write_text('{"name": "my run", "files": ["run.json"]}')  # someone else's run.json
    assert ownership.foreign_file(mine) == "run.json"
    legacy = tmp_path / "legacy"  # a site written before run.json said "tool": its own keys, all of them
    legacy.mkdir()
    (legacy / "index.html").write_text("x")
    keys = dict.fromkeys(("model_fingerprint", "manifest", "settings", "timings", "methods_chosen"), 1)
    (legacy / "run.json").write_text(json.dumps(keys))
    assert ownership.foreign_file(legacy) is None
    del keys["manifest"]
    (legacy / "run.json").write_text(json.dumps(keys))
    assert ownership.foreign_file(legacy) == "index.html"
    stub_cut = tmp_path / "cut"  # a build killed while writing its stub: only the stub's temporary file
    stub_cut.mkdir()
    (stub_cut / ".run.json.4242.tmp").write_text('{"tool": "cam-re')
    assert ownership.foreign_file(stub_cut) is None
    (stub_cut / "mine.txt").write_text("x")
    assert ownership.foreign_file(stub_cut) == "mine.txt"
    building = tmp_path / ".site.new"  # a build killed half-way: only the stub says whose it is
    building.mkdir()
    ownership.write_stub(building)
    (building / "sets").mkdir()
    (building / "sets" / "half.html").write_text("<")
    assert ownership.foreign_file(building) is None


def test_an_empty_or_missing_folder_is_used(tmp_path):
    (tmp_path / "empty").mkdir()
    ownership.check_site(tmp_path / "empty")
    ownership.check_site(tmp_path / "missing")
    assert ownership.foreign_file(tmp_path / "empty") is None


def test_the_siblings_and_the_lock_follow_the_same_rule(tmp_path):
    site = tmp_path / "site"
    blog(tmp_path / ".site.new")
    before = snapshot(tmp_path)
    with pytest.raises(NotOurs, match=r"\.site\.new is in the way \(the build uses that name next to "):
        ownership.check_site(site)
    with pytest.raises(NotOurs):
        ownership.remove_site_folder(tmp_path / ".site.new", site)
    assert snapshot(tmp_path) == before
    (tmp_path / ".site.old").write_text("a file")
    (tmp_path / ".site.new" / "thesis.txt").unlink()
    with pytest.raises(NotOurs, match=r"\.site\.new is in the way"):
        ownership.check_site(site)
    for p in sorted((tmp_path / ".site.new").rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    with pytest.raises(NotOurs, match=r"\.site\.old is in the way .* it is a file or a link"):
        ownership.check_site(site)
    (tmp_path / ".site.old").unlink()
    (tmp_path / ".site.lock").write_text("my notes about locks\n")
    with pytest.raises(NotOurs, match=r"\.site\.lock is in the way"):
        ownership.check_site(site)
    assert (tmp_path / ".site.lock").read_text() == "my notes about locks\n"
    (tmp_path / ".site.lock").write_text("12345")  # what a build leaves
    ownership.check_site(site)


def test_a_build_killed_between_the_two_renames_gets_its_site_back(tmp_path):
    site = fake_site(tmp_path / "site")
    before = snapshot(site)
    site.rename(tmp_path / ".site.old")  # the first rename of the swap done, the second not
    ownership.recover_site(site)
    assert snapshot(site) == before and not (tmp_path / ".site.old").exists()
    # someone else's folder under that name is never moved into the site's place
    site.rename(tmp_path / "keep")
    blog(tmp_path / ".site.old")
    with pytest.raises(NotOurs):
        ownership.recover_site(site)
    assert not site.exists() and (tmp_path / ".site.old" / "thesis.txt").is_file()


def test_swap_in_stopped_between_its_renames_then_recovered(tmp_path, monkeypatch):
    """build.swap_in interrupted after the old site moved aside: the next build's recovery restores it whole."""
    from generator import build

    site = fake_site(tmp_path / "site")
    before = snapshot(site)
    new = fake_site(tmp_path / ".site.new", names=("index.html", "other.html"))
    real = build.os.replace
    calls = []

    def replace(a, b):
        calls.append((a, b))
        if len(calls) == 2:
            raise KeyboardInterrupt  # killed right between the two renames
        return real(a, b)

    monkeypatch.setattr(build.os, "replace", replace)
    with pytest.raises(KeyboardInterrupt):
        build.swap_in(new, site)
    monkeypatch.undo()
    assert not site.exists() and (tmp_path / ".site.old").is_dir()
    ownership.recover_site(site)
    assert snapshot(site) == before


# ---- folder settings: one sentence before any work ---------------------------------------------------------------


@pytest.mark.parametrize("name", ["site_dir", "cache_dir", "weights_dir", "data_dir"])
def test_a_file_where_a_folder_is_expected_is_one_sentence_and_left_as_it_was(tmp_path, name):
    f = tmp_path / "notes.txt"
    f.write_bytes(b"my notes\n")
    values = {n: tmp_path / n for n in ownership.FOLDER_SETTINGS}
    for value, expect in ((f, f"setting {name} = '{f}' is a file, not a folder; "),
                          (f / "sub", f"setting {name} = '{f / 'sub'}' cannot be made: {f} is a file, not a folder; ")):
        settings = make_settings(dict(values, **{name: value}))
        with pytest.raises(NotOurs) as exc:
            ownership.check_paths(settings)
        assert str(exc.value).startswith(expect) and "\n" not in str(exc.value), str(exc.value)
        assert f.read_bytes() == b"my notes\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["notes.txt"]  # nothing made before the refusal


def test_a_folder_that_cannot_be_written_is_one_sentence(tmp_path):
    from conftest import read_only

    (tmp_path / "locked").mkdir()
    settings = make_settings({n: tmp_path / n for n in ownership.FOLDER_SETTINGS} | {"cache_dir": tmp_path / "locked"
                                                                                     / "cache"})
    with read_only(tmp_path / "locked"):
        with pytest.raises(UserError) as exc:
            ownership.check_paths(settings)
    assert str(exc.value).startswith(f"cannot write {tmp_path / 'locked'} (")


# ---- caches and `make clean` -------------------------------------------------------------------------------------


def test_the_cache_is_tagged_and_only_a_tagged_or_known_cache_is_cleaned(tmp_path):
    cache = tmp_path / "cache"
    (cache / "records").mkdir(parents=True)
    assert ownership.cache_foreign(cache) is None  # only what a build makes (a cache from before the tag)
    (cache / "photos.zip").write_text("mine")
    assert ownership.cache_foreign(cache) == "photos.zip"
    ownership.tag_cache(cache)
    assert (cache / "CACHEDIR.TAG").read_text().startswith("Signature: 8a477f597d28d172789f06886806bc55\n")
    assert ownership.cache_foreign(cache) is None  # the tag says the folder is the tool's


def clean(tmp_path: Path) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "generator", "clean", "--site-dir", str(tmp_path / "site"),
                           "--cache-dir", str(tmp_path / "cache")], cwd=ROOT, capture_output=True, text=True,
                          timeout=60)


def test_make_clean_deletes_only_what_the_tool_wrote(tmp_path):
    blog(tmp_path / "site")
    (tmp_path / "cache" / "records").mkdir(parents=True)
    before = snapshot(tmp_path)
    proc = clean(tmp_path)
    assert proc.returncode == 2 and proc.stderr.strip().splitlines() == [
        f"error: {tmp_path / 'site'} holds _posts/2020-01-01-hello.md, which this tool did not write, so `make "
        f"clean` deleted nothing; move or delete {tmp_path / 'site'} yourself if nothing in it is needed."]
    assert snapshot(tmp_path) == before
    for p in sorted((tmp_path / "site").rglob("*"), reverse=True):
        p.unlink() if p.is_file() else p.rmdir()
    fake_site(tmp_path / "site")
    fake_site(tmp_path / ".site.new")
    (tmp_path / ".site.lock").write_text("99")
    proc = clean(tmp_path)
    assert proc.returncode == 0, proc.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []


# ---- through the command line, on the warm tiny project -----------------------------------------------------------


def site_cmd(root: Path, **dirs) -> list[str]:
    folders = {"data-dir": root / "data", "site-dir": root / "site", "cache-dir": root / "cache",
               "weights-dir": root / "w"} | {k.replace("_", "-"): v for k, v in dirs.items()}
    cmd = [sys.executable, "-m", "generator", "site", "--quiet", "--no-download", "--workers", "1",
           "--faithfulness-sample", "1", "--faithfulness-steps", "2"]
    for flag, value in folders.items():
        cmd += [f"--{flag}", str(value)]
    return cmd


def one_sentence(proc: subprocess.CompletedProcess) -> str:
    """The one line of a refusal (after the "[stage] ..." lines of the stages that ran before it, if any)."""
    lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not re.match(r"\[\w+\] ", ln)]
    assert proc.returncode == 2 and len(lines) == 1 and lines[0].startswith("error: "), proc.stderr[-3000:]
    return lines[0]


def run(cmd: list[str]) -> subprocess.CompletedProcess:
    return subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=400)


def test_the_blog_folder_of_the_issue_is_refused_before_any_work(tiny_project, tmp_path):
    folder = blog(tmp_path / "my-blog")
    before, around = snapshot(folder), sorted(tmp_path.iterdir())
    line = one_sentence(run(site_cmd(tiny_project, site_dir=folder)))
    assert line == (f"error: {folder} holds files this tool did not write (such as _posts/2020-01-01-hello.md), "
                    "and a build replaces that folder whole; choose another --site-dir (a new or empty folder), or "
                    f"empty {folder} yourself if nothing in it is needed.")
    assert snapshot(folder) == before and sorted(tmp_path.iterdir()) == around  # not even a lock file


@pytest.mark.parametrize("flag", ["site_dir", "cache_dir", "weights_dir"])
def test_a_file_given_as_a_folder_is_refused_and_left_as_it_was(tiny_project, tmp_path, flag):
    f = tmp_path / "a-file"
    f.write_bytes(b"keep me\n")
    line = one_sentence(run(site_cmd(tiny_project, **{flag: f})))
    assert line == (f"error: setting {flag} = '{f}' is a file, not a folder; give the path of a folder (it is made "
                    "if missing), or move that file away.")
    assert f.read_bytes() == b"keep me\n" and sorted(p.name for p in tmp_path.iterdir()) == ["a-file"]


def test_an_eval_set_that_is_not_there_is_named_with_the_sets_that_are(tiny_project):
    line = one_sentence(run(site_cmd(tiny_project) + ["--eval-sets", "nope"]))
    assert line == (f"error: setting eval_sets = 'nope' names no folder of photos in {tiny_project / 'data'} (sets "
                    "there: personal, test, train, unrelated); name one of them.")


def test_an_empty_folder_is_used_then_its_old_site_replaced_but_not_once_a_user_file_is_added(tiny_project,
                                                                                               tmp_path):
    site = tmp_path / "report"
    site.mkdir()
    assert run(site_cmd(tiny_project, site_dir=site)).returncode == 0
    first = json.loads((site / "run.json").read_text())
    assert first["tool"] == "cam-report" and first["site_format"] == 1
    assert set(first["files"]) == set(ownership.entries(site)) - {"run.json"}
    proc = run(site_cmd(tiny_project, site_dir=site) + ["--page-size", "1"])  # pages change: the site is replaced
    assert proc.returncode == 0, proc.stderr[-3000:]
    second = json.loads((site / "run.json").read_text())
    assert second["manifest"] != first["manifest"] and (site / "sets" / "test" / "page-2.html").is_file()
    assert not (tmp_path / ".report.new").exists() and not (tmp_path / ".report.old").exists()
    (site / "CNAME").write_text("cats.example.org\n")
    before = snapshot(site)
    line = one_sentence(run(site_cmd(tiny_project, site_dir=site)))
    assert "(such as CNAME)" in line
    assert snapshot(site) == before
