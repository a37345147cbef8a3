"""bench/ (`python -m bench`): the command line, the results CSV, the data folders it makes, the project copy its
builds run from, the site measurements, and (on the small real build's checkpoint) that this project's maps
equal torchcam's and pytorch-grad-cam's. The benchmark itself is never run here."""

from __future__ import annotations

import csv
import os
import time
from pathlib import Path

import pytest

from bench import builds, cli, results

ROOT = Path(__file__).resolve().parent.parent


def test_parser_defaults_and_flags(tmp_path):
    args = cli.parser().parse_args([])
    assert (args.photos, args.repeats, args.batch_size, args.skip_site, args.synthetic) == (None, None, None, False, 0)
    assert (args.compare_ref, args.out, args.data_dir, args.weights_dir) == (
        "cbf97d3", ROOT / "bench" / "results.csv", ROOT / "data", ROOT / "weights")
    assert (args.photo_set, args.seed, args.quick) == ("test", 0, False)
    plan = cli.plan_of(args)
    assert (plan.photos, plan.repeats, plan.quick) == (128, 5, False)

    args = cli.parser().parse_args(["--photos", "64", "--repeats", "3", "--batch-size", "16", "--skip-site",
                                    "--synthetic", "20000", "--out", str(tmp_path / "r.csv"), "--compare-ref", "",
                                    "--data-dir", "d", "--weights-dir", "w", "--set", "personal", "--seed", "7"])
    assert (args.photos, args.repeats, args.batch_size, args.skip_site, args.synthetic) == (64, 3, 16, True, 20000)
    assert (args.out, args.compare_ref, args.data_dir, args.weights_dir) == (tmp_path / "r.csv", "", Path("d"),
                                                                              Path("w"))
    assert (args.photo_set, args.seed) == ("personal", 7)
    with pytest.raises(SystemExit) as exc:
        cli.parser().parse_args(["--help"])
    assert exc.value.code == 0


def test_quick_makes_everything_small_but_flags_win():
    quick = cli.plan_of(cli.parser().parse_args(["--quick"]))
    full = cli.plan_of(cli.parser().parse_args([]))
    for part in ("photos", "repeats", "check_photos", "score_photos", "leaderboard_photos"):
        assert getattr(quick, part) < getattr(full, part), part
    assert cli.plan_of(cli.parser().parse_args(["--quick", "--photos", "40"])).photos == 40
    with pytest.raises(SystemExit, match="at least 1"):
        cli.plan_of(cli.parser().parse_args(["--repeats", "0"]))


def test_csv_appends_and_widens(tmp_path):
    out = tmp_path / "r.csv"
    results.append_csv(out, {"date": "d1", "A_img_s": "1.0"})
    results.append_csv(out, {"date": "d2", "A_img_s": "2.0"})
    results.append_csv(out, {"date": "d3", "A_img_s": "3.0", "E_cold_s": "9"})
    results.append_csv(out, {"date": "d4", "E_cold_s": "8"})  # fewer columns: appended, no rewrite
    rows = list(csv.DictReader(out.open()))
    assert [r["date"] for r in rows] == ["d1", "d2", "d3", "d4"]
    assert [r["A_img_s"] for r in rows] == ["1.0", "2.0", "3.0", ""]
    assert [r["E_cold_s"] for r in rows] == ["", "", "9", "8"]
    assert next(csv.reader(out.open())) == ["date", "A_img_s", "E_cold_s"]


def test_the_history_keeps_its_old_rows(tmp_path):
    history = ROOT / "bench" / "results.csv"
    copy = tmp_path / "results.csv"
    copy.write_bytes(history.read_bytes())
    before = list(csv.DictReader(copy.open()))
    results.append_csv(copy, {"date": "new", "B+family_img_s": "50.0"})
    after = list(csv.DictReader(copy.open()))
    assert len(after) == len(before) + 1 and len(before) >= 4
    assert [{k: r[k] for k in before[0]} for r in after[:-1]] == before
    assert after[-1]["B+family_img_s"] == "50.0"


def test_synthetic_data_has_n_distinct_links(tmp_path):
    real = tmp_path / "real"
    for label in ("cats", "dogs"):
        (real / "test" / label).mkdir(parents=True)
        for i in range(3):
            (real / "test" / label / f"{label}{i}.jpg").write_bytes(b"x")
    (real / "train").mkdir()
    data = builds.make_synthetic_data(real, tmp_path / "syn", 11)
    links = sorted((data / "test").rglob("*.jpg"))
    assert len(links) == 11 and len({p.name for p in links}) == 11
    assert all(p.is_symlink() for p in links)
    assert {p.resolve().parent.name for p in links} == {"cats", "dogs"}
    assert (data / "train").is_dir()


def test_small_data_links_the_first_photos_of_each_folder(tmp_path):
    real = tmp_path / "real"
    for folder in ("train/cats", "train/dogs", "test/cats", "personal/cat", "unrelated"):
        (real / folder).mkdir(parents=True)
        for i in range(5):
            (real / folder / f"p{i}.jpg").write_bytes(b"x")
        (real / folder / "notes.txt").write_text("not a photo")
    (real / ".cache").mkdir()
    data = builds.make_small_data(real, tmp_path / "small", n_train=3, n_other=2)
    assert sorted(p.name for p in (data / "train" / "dogs").iterdir()) == ["p0.jpg", "p1.jpg", "p2.jpg"]
    assert sorted(p.name for p in (data / "personal" / "cat").iterdir()) == ["p0.jpg", "p1.jpg"]
    assert len(list((data / "unrelated").iterdir())) == 2
    assert not (data / ".cache").exists()
    assert all(p.is_symlink() for p in data.rglob("*.jpg"))


def test_the_project_copy_holds_only_generator_and_templates(tmp_path):
    copy = builds.copy_project(tmp_path / "project")
    assert sorted(p.name for p in copy.iterdir()) == ["generator", "templates"]
    assert not list(copy.rglob("__pycache__")) and not list(copy.rglob("*.pyc"))
    for part in ("generator", "templates"):
        ours = {p.relative_to(ROOT / part) for p in (ROOT / part).rglob("*")
                if p.is_file() and "__pycache__" not in p.parts}
        assert {p.relative_to(copy / part) for p in (copy / part).rglob("*") if p.is_file()} == ours
    assert (copy / "generator" / "publish" / "pages" / "site.py").read_bytes() == \
        (ROOT / "generator" / "publish" / "pages" / "site.py").read_bytes()


@pytest.mark.parametrize("change", sorted(builds.CHANGES))
def test_comments_go_into_the_copy_never_into_the_repository(tmp_path, change):
    relative, comment = builds.CHANGES[change]
    original = (ROOT / relative).read_bytes()
    copy = builds.copy_project(tmp_path / "project")
    changed = builds.append_comment(copy, change)
    assert changed == copy / relative
    assert changed.read_bytes() == original + (b"" if original.endswith(b"\n") else b"\n") + comment.encode() + b"\n"
    assert (ROOT / relative).read_bytes() == original
    with pytest.raises(ValueError, match="repository's own file"):
        builds.append_comment(ROOT, change)
    assert (ROOT / relative).read_bytes() == original


def test_footprint_counts_blocks_files_and_explained_photos(tmp_path):
    site = tmp_path / "site"
    (site / "sets" / "test").mkdir(parents=True)
    (site / "sets" / "test" / "a-0123abcd.html").write_bytes(b"x" * 5000)  # a photo's page
    (site / "sets" / "test" / "index.html").write_bytes(b"g")  # the gallery: shared, however many photos
    (site / "assets" / "ab").mkdir(parents=True)
    (site / "assets" / "ab" / "ab12.webp").write_bytes(b"w" * 7)
    (site / "index.html").write_bytes(b"y" * 10)
    os.link(site / "index.html", site / "same.html")  # one file on disk, counted once
    (site / "results.csv").write_text("set,file,status\ntrain,t.jpg,ok\ntest,a.jpg,ok\ntest,b.jpg,skipped: bad\n"
                                      "personal,c.jpg,ok\n")
    f = builds.footprint(site)
    assert f.files == 5 and f.explained == 2 and f.photo_files == 2 and f.shared_files == 3
    assert f.files_per_photo == 1.0
    assert f.apparent_bytes == 5000 + 1 + 7 + 10 + (site / "results.csv").stat().st_size
    blocks = sum(os.lstat(p).st_blocks * 512 for p in [site, *site.rglob("*")] if p.name != "same.html")
    assert f.disk_bytes == blocks >= f.apparent_bytes


def test_importtime_output_tells_whether_torch_was_imported():
    log = ("import time: self [us] | cumulative | imported package\n"
           "import time:       120 |        120 |   torchvision_like\n"
           "import time:       500 |       9000 | generator.build\n")
    assert not builds.imported(log, "torch")
    assert builds.imported(log + "import time:      3000 |     900000 | torch\n", "torch")
    assert builds.imported(log + "import time:        10 |         10 |     torch._C\n", "torch")


def test_maps_agree_with_the_libraries(small_site):
    """On the small real build's checkpoint and test photos (so that it runs on a fresh clone too): every method
    with a peer, Score-CAM included (on one photo, at 96 px to keep it fast)."""
    from bench.agreement import TOLERANCE, check_agreement
    from bench.contenders import PEERS, SCORE_PEER
    from bench.inputs import decode_photos, load_setup, sample_photos

    settings, _ = small_site
    setup = load_setup(Path(settings.weights_dir)).float32()
    photos = decode_photos(sample_photos(Path(settings.data_dir) / "test", 3), 96)
    setup = setup.with_photos(photos, 3)
    agreement = check_agreement(setup, setup.batches[0], score_photos=1)
    assert agreement.same_prediction
    worst = agreement.worst()
    assert set(worst) == {f"{p.method} vs {p.label}" for p in (*PEERS, SCORE_PEER) if p.checked}
    assert {d.tap for d in agreement.differences} == {0, 1, 2, 3}
    assert max(worst.values()) <= TOLERANCE, worst
    assert agreement.ok


def test_turns_run_every_contender_on_every_batch_in_shuffled_order():
    import torch

    from bench import timing

    calls: list[tuple[str, int]] = []
    contenders = {name: (lambda x, name=name: calls.append((name, int(x[0])))) for name in "abcdef"}
    batches = [torch.full((2,), i) for i in range(5)]
    rates = timing.time_turns(contenders, batches, repeats=3, log=lambda _m: None)
    assert set(rates) == set(contenders) and all(len(v) == 3 and min(v) > 0 for v in rates.values())
    warm_up, timed = calls[:6], calls[6:]
    assert {b for _, b in warm_up} == {0} and len(timed) == 6 * 5 * 3
    turns = [timed[i:i + 6] for i in range(0, len(timed), 6)]
    assert all(sorted(n for n, _ in turn) == list("abcdef") and len({b for _, b in turn}) == 1 for turn in turns)
    assert [turn[0][1] for turn in turns] == list(range(5)) * 3
    assert len({tuple(n for n, _ in turn) for turn in turns}) > 1  # not one fixed order


def test_ratios_are_taken_within_a_repeat_then_the_median():
    from bench import timing

    rates = {"ours": [3.0, 4.0, 6.0], "theirs": [1.0, 4.0, 2.0]}
    assert timing.paired_ratio(rates, "ours", "theirs") == 3.0  # per repeat 3, 1, 3; not median / median = 4 / 2
    assert timing.median([]) != timing.median([])  # nan for no repeats


def test_finetune_rates_time_a_forward_pass_and_a_training_step_that_changes_the_weights():
    """bench.finetune.rates on a tiny network and a few small photos: both rates are measured, and the training
    step really trains (the weights move), so its rate is the cost of training, not of a no-op."""
    import numpy as np
    import torch
    from torch import nn

    from bench.finetune import rates
    from generator.model.backbones import Backbone
    from generator.model.runtime import Runtime

    net = nn.Sequential(nn.Conv2d(3, 4, 3, padding=1), nn.ReLU(), nn.Conv2d(4, 6, 3, stride=2, padding=1))
    b = Backbone(name="tiny", model=net, taps=("0", "2"), tap_names=("a", "b"), strides=(1, 2), mean=(0.5,) * 3,
                 std=(0.5,) * 3, weights_file="none", weights_sha256="0" * 64)
    before = net[0].weight.detach().clone()
    images = np.random.default_rng(0).integers(0, 255, size=(8, 16, 16, 3)).astype(np.uint8)
    r = rates(b, images, np.arange(8) % 2, 4, 1, Runtime(device="cpu", autocast=False, channels_last=False))
    assert r["forward"] > 0 and r["train"] > 0
    assert not torch.equal(before, net[0].weight)


@pytest.mark.parametrize("module", sorted(p.stem for p in (ROOT / "bench").glob("*.py") if p.stem != "__main__"))
def test_every_bench_module_imports(module):
    """A bench that no test runs still has to import: a move of the package's modules must not break it unseen
    (bench.leaderboard_cost once imported generator.faithfulness after it had moved to generator.evaluate)."""
    import importlib

    assert importlib.import_module(f"bench.{module}").__name__ == f"bench.{module}"


def test_the_memory_poller_sees_a_childs_peak_and_reads_pss_only_every_pss_every(tmp_path):
    """A child that holds 200 MB for 2.5 s: both peaks see it; RSS is read every 0.05 s, the tree's PSS (costly
    for the kernel on a big process) only about every 0.5 s."""
    import subprocess
    import sys

    held = str(tmp_path / "held")
    code = (f"import time, numpy as np\na = np.ones(200 * 2**20 // 8)\nopen({held!r}, 'w').write('held')\n"
            "time.sleep(2.5)\n")
    proc = subprocess.Popen([sys.executable, "-c", code])
    poller = builds.MemoryPoller(proc.pid, interval=0.05, pss_every=0.5)
    started = time.perf_counter()
    poller.start()
    proc.wait(timeout=60)
    tree, largest = poller.stop()
    seconds = time.perf_counter() - started
    assert (tmp_path / "held").exists()
    assert tree >= 180 * 2**20 and largest >= 180 * 2**20
    assert 2 <= poller.pss_reads <= seconds / 0.5 + 2
