"""generator/config.py: defaults, TOML file, flags, and one clear sentence for every bad value of every setting,
whatever its type (Hypothesis throws random values at all of them)."""

from __future__ import annotations

import math
import re
import subprocess
import sys
import types
import typing
from dataclasses import fields
from pathlib import Path

import pytest
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st

from generator.__main__ import parser
from generator.config import Settings, annotation_sources, make_settings, settings_from_args
from generator.errors import SettingsError

ROOT = Path(__file__).resolve().parent.parent
NAMES = [f.name for f in fields(Settings)]


def test_defaults_and_string_coercion():
    s = make_settings({"batch_size": "8", "hflip": "false", "eval_sets": "test,unrelated", "data_dir": "x"})
    assert s.batch_size == 8 and s.hflip is False and s.eval_sets == ("test", "unrelated")
    assert s.data_dir == Path("x")
    assert make_settings().backbone == Settings().backbone == "auto"


def test_ray_address_takes_auto_an_address_or_nothing():
    for value in ("", "auto", "10.0.0.5:6379", "ray://head.example:10001"):
        assert make_settings({"engine": "ray", "ray_address": value}).ray_address == value
    assert make_settings().engine == "local"


@pytest.mark.parametrize(("overrides", "sentence"), [
    ({"backbone": "VGG 16"}, "setting backbone = 'VGG 16' is not allowed: use auto or a backbone name such as "
                             "efficientnet_lite0 or resnet18."),
    ({"hflip": "maybe"}, "setting hflip = 'maybe' has the wrong type: expected true or false."),
    ({"batch_size": "-3"}, "setting batch_size = -3 is not allowed: use a number from 1 to 1,024."),
    ({"input_size": "0"}, "setting input_size = 0 is not allowed: use a number from 32 to 1,024."),
    ({"box_threshold": "1"},
     "setting box_threshold = 1.0 is not allowed: use a number greater than 0 and less than 1."),
    ({"seed": "1.5"}, "setting seed = '1.5' has the wrong type: expected a whole number."),
    ({"weight_decay": "nan"}, "setting weight_decay = 'nan' has the wrong type: expected a number."),
    ({"eval_sets": "test,test"}, "setting eval_sets = 'test,test' is not allowed: name each set once."),
    ({"eval_sets": "train"}, "setting eval_sets names the training set (setting train_set = 'train')"),
    ({"site_dir": "data"}, "setting site_dir = 'data' overlaps data_dir = 'data'"),
    ({"lang": "fr"}, "setting lang = 'fr' is not allowed: use one of en, ko."),
    ({"thumb_size": "600"}, "setting thumb_size = 600 is larger than display_size = 512"),
    ({"data_url": "ftp://x"}, "setting data_url = 'ftp://x' is not allowed: use an http://, https:// or file:// URL"),
    # a forgotten slash: the port would read "8000cats.zip" and the download would blame the network
    ({"data_url": "http://127.0.0.1:8000cats.zip"}, "setting data_url = 'http://127.0.0.1:8000cats.zip' is not"),
    ({"data_url": "https:///cats.zip"}, "setting data_url = 'https:///cats.zip' is not allowed"),
    ({"nope": 1}, "unknown setting 'nope'"),
    ({"engine": "spark"}, "setting engine = 'spark' is not allowed: use one of local, ray."),
    ({"ray_address": "head"}, "setting ray_address = 'head' is not allowed: use auto (the cluster this machine"),
    ({"ray_address": "http://head:6379"}, "setting ray_address = 'http://head:6379' is not allowed"),
])
def test_bad_values_are_refused_with_a_sentence(overrides, sentence):
    with pytest.raises(SettingsError) as exc:
        make_settings(overrides)
    assert str(exc.value).startswith(sentence)
    assert "\n" not in str(exc.value)


def test_toml_then_flags(tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text('seed = 7\nbatch_size = 4\neval_sets = ["test"]\n')
    args = parser().parse_args(["site", "--config", str(cfg), "--batch-size", "16"])
    s = settings_from_args(args)
    assert (s.seed, s.batch_size, s.eval_sets) == (7, 16, ("test",))


@pytest.mark.parametrize(("text", "sentence"), [
    ("sed = 7\n", r"s\.toml: unknown setting\(s\) sed"),
    ("seed = \n", r"s\.toml: cannot read this settings file"),
    ('batch_size = "eight"\n', "setting batch_size = 'eight' has the wrong type"),
    ("eval_sets = 5\n", "setting eval_sets = 5 has the wrong type: expected names separated by commas"),
    ("hflip = 1\n", "setting hflip = 1 has the wrong type: expected true or false"),
])
def test_bad_toml_names_the_file_or_the_setting(tmp_path, text, sentence):
    cfg = tmp_path / "s.toml"
    cfg.write_text(text)
    with pytest.raises(SettingsError, match=sentence):
        settings_from_args(parser().parse_args(["site", "--config", str(cfg)]))


def test_help_documents_every_setting():
    site = subprocess.run([sys.executable, "-m", "generator", "site", "--help"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout
    top = subprocess.run([sys.executable, "-m", "generator", "--help"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    for name, f in Settings.__dataclass_fields__.items():
        assert "--" + name.replace("_", "-") in site, name
        assert f"  {name} = " in top and f.metadata["help"] in top, name
    assert "CAM_BF16=0 in the environment forces it off" in top  # the switch make test's float32 pass uses


@pytest.mark.parametrize(("env", "setting", "wanted"), [(None, True, True), (None, False, False), ("0", True, False),
                                                        ("off", True, False), ("1", True, True), ("1", False, False),
                                                        (" No ", True, False)])
def test_cam_bf16_forces_bf16_off(monkeypatch, env, setting, wanted):
    from generator.config import bf16_wanted

    if env is None:
        monkeypatch.delenv("CAM_BF16", raising=False)
    else:
        monkeypatch.setenv("CAM_BF16", env)
    assert bf16_wanted(make_settings({"bf16": setting})) is wanted


def test_a_bad_cam_bf16_is_one_sentence(monkeypatch):
    from generator.config import bf16_wanted

    monkeypatch.setenv("CAM_BF16", "maybe")
    with pytest.raises(SettingsError, match=r"^environment variable CAM_BF16 = 'maybe' is not allowed: use 0 "):
        bf16_wanted(make_settings())


# ---- every setting, every type: a Settings or one sentence, never anything else ------------------------------

anything = st.one_of(
    st.none(), st.booleans(), st.integers(-(2**70), 2**70), st.floats(allow_nan=True, allow_infinity=True),
    st.text(max_size=30), st.lists(st.text(max_size=8), max_size=4), st.dictionaries(st.text(max_size=5), st.integers(),
                                                                                  max_size=2),
    st.sampled_from(["", "0", "-1", "1e9", "nan", "inf", "true", "no", "a,b", "test,test", "all", "cam;x", "data",
                     "site", ".", "/", "http://x/", "file:///tmp/x.zip", "ko", "en", "jet", "cuda"]),
)


@given(st.dictionaries(st.sampled_from(NAMES), anything, min_size=1, max_size=4))
@example({"train_set": "test"})  # valid alone, but the default eval_sets hold it: the sentence must name train_set
@settings(max_examples=1500, deadline=None, suppress_health_check=[HealthCheck.too_slow])
def test_any_value_of_any_setting_gives_settings_or_one_sentence(values):
    try:
        s = make_settings(values)
    except SettingsError as exc:
        text = str(exc)
        assert text and "\n" not in text and text.endswith(".")
        assert any(name in text for name in values), text  # it names the setting
        return
    hints = typing.get_type_hints(Settings)
    for f in fields(s):  # accepted: every value has its field's type and is finite
        v = getattr(s, f.name)
        assert has_type(v, hints[f.name]), f"{f.name} = {v!r} is not a {hints[f.name]}"
        if isinstance(v, float):
            assert math.isfinite(v)


def has_type(value, hint) -> bool:
    """isinstance for the annotations Settings uses: Path, str, bool, int, float, tuple[X, ...], X | None."""
    origin, args = typing.get_origin(hint), typing.get_args(hint)
    if origin is tuple:
        return isinstance(value, tuple) and all(has_type(v, args[0]) for v in value)
    if origin in (typing.Union, types.UnionType):
        return any(has_type(value, a) for a in args)
    if hint is type(None):
        return value is None
    if hint is float:
        return isinstance(value, float | int) and not isinstance(value, bool)
    if hint is int:
        return isinstance(value, int) and not isinstance(value, bool)
    return isinstance(value, hint)


def test_has_type_can_say_no():
    assert has_type((1, 2), tuple[int, ...]) and not has_type((1, "2"), tuple[int, ...])
    assert not has_type(True, int) and not has_type("1", float) and not has_type("x", Path)
    assert has_type(None, int | None) and not has_type("x", int | None)


# ---- through the command line: exit 0 (a build) or exit 2 with one line, never a traceback ---------------------

FLAG_VALUES = st.tuples(
    st.sampled_from(NAMES),
    st.one_of(st.sampled_from(["-3", "0", "1.5", "abc", "", "nan", "9" * 30, "true", "test,test", "x/y", "1"]),
              st.text(st.characters(blacklist_categories=("Cs",), blacklist_characters="\x00"), max_size=12)),
)


@pytest.mark.slow
@given(FLAG_VALUES)
@settings(max_examples=10, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture,
                                                                 HealthCheck.too_slow])
def test_command_line_gives_a_build_or_one_line(tiny_project, flag_value):
    name, value = flag_value
    if name in ("data_dir", "site_dir", "cache_dir", "weights_dir"):
        return  # folders: their own tests (read-only, overlapping, missing) cover them without writing anywhere
    root = tiny_project
    cmd = [sys.executable, "-m", "generator", "site", "--quiet", "--no-download", "--data-dir", str(root / "data"),
           "--site-dir", str(root / "site"), "--cache-dir", str(root / "cache"), "--weights-dir", str(root / "w"),
           "--workers", "1", "--faithfulness-sample", "1", "--faithfulness-steps", "2",
           f"--{name.replace('_', '-')}={value}"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert "Traceback" not in proc.stderr, proc.stderr[-3000:]
    if proc.returncode == 2:
        # the stages that ran before the mistake was found log their "[stage] ..." lines; then one sentence
        lines = [ln for ln in proc.stderr.splitlines() if ln.strip() and not re.match(r"\[\w+\] ", ln)]
        assert len(lines) == 1 and lines[0].startswith("error: "), proc.stderr
    else:
        assert proc.returncode == 0, proc.stderr[-3000:]
        assert (root / "site" / "index.html").is_file()


def test_a_training_set_that_is_not_there_is_named_with_the_sets_that_are(tiny_project):
    """A typo in train_set is not a missing download: the sentence names the setting and the folders found."""
    root = tiny_project
    cmd = [sys.executable, "-m", "generator", "site", "--quiet", "--no-download", "--data-dir", str(root / "data"),
           "--site-dir", str(root / "site"), "--cache-dir", str(root / "cache"), "--weights-dir", str(root / "w"),
           "--train-set", "trian"]
    proc = subprocess.run(cmd, cwd=ROOT, capture_output=True, text=True, timeout=120)
    assert proc.returncode == 2
    last = proc.stderr.strip().splitlines()[-1]
    assert last.startswith("error: setting train_set = 'trian' names no folder of photos in ")
    assert "personal, test, train, unrelated" in last and "network" not in last


def test_roles_name_the_set_of_each_part_of_the_story():
    s = make_settings({"roles": "test=test,personal=mine", "eval_sets": "test,mine"})
    assert (s.set_for("test"), s.set_for("personal"), s.set_for("unrelated")) == ("test", "mine", None)
    d = make_settings()
    assert [d.set_for(r) for r in ("test", "personal", "unrelated")] == ["test", "personal", "unrelated"]
    with pytest.raises(SettingsError, match=r"^setting roles = 'tset=test' is not allowed: give role=set pairs"):
        make_settings({"roles": "tset=test"})
    with pytest.raises(SettingsError, match="give the role test once"):
        make_settings({"roles": "test=a,test=b"})
    with pytest.raises(SettingsError, match=r"setting roles = '\.\./x' is not allowed: use the name of a visible"):
        make_settings({"roles": "test=../x"})


# ---- annotations: set=path, given per set, or found beside the set ---------------------------------------------


def test_annotations_are_given_per_set_by_flags_or_toml(tmp_path):
    coco, voc = tmp_path / "personal.json", tmp_path / "voc"
    coco.write_text("{}")
    voc.mkdir()
    args = parser().parse_args(["site", "--annotations", f"personal={coco}", "--annotations", f"test = {voc}"])
    s = settings_from_args(args)
    assert s.annotations == (f"personal={coco}", f"test = {voc}")
    assert annotation_sources(s, ["test", "personal"]) == {"personal": coco, "test": voc}
    cfg = tmp_path / "s.toml"
    cfg.write_text(f'annotations = ["personal={coco}"]\n')
    from_toml = settings_from_args(parser().parse_args(["site", "--config", str(cfg)]))
    assert annotation_sources(from_toml, ["personal"]) == {"personal": coco}
    assert make_settings().annotations == ()


def test_annotations_beside_the_set_are_found_and_a_named_file_wins(tmp_path):
    data = tmp_path / "data"
    (data / "personal").mkdir(parents=True)
    (data / "test").mkdir()
    beside = data / "personal.annotations.json"
    beside.write_text("{}")
    s = make_settings({"data_dir": data})
    assert annotation_sources(s, ["test", "personal"]) == {"personal": beside}
    other = tmp_path / "other.json"
    other.write_text("{}")
    named = make_settings({"data_dir": data, "annotations": [f"personal={other}"]})
    assert annotation_sources(named, ["test", "personal"]) == {"personal": other}


@pytest.mark.parametrize(("value", "sentence"), [
    ("personal", "setting annotations = 'personal' is not allowed: use set=path"),
    ("personal=", "setting annotations = 'personal=' is not allowed: use set=path"),
    ("=x.json", "setting annotations = '' is not allowed: use the name of a visible folder"),
    (".hidden={here}", "setting annotations = '.hidden' is not allowed"),
    ("personal={here},personal={here}", "setting annotations = 'personal={here}' is not allowed: give set "
                                        "'personal' one annotations file or folder."),
    ("personal={here}/missing.json", "setting annotations: the annotations of set 'personal' ({here}/missing.json) "
                                     "do not exist; check the path, or leave the set out."),
])
def test_bad_annotations_are_refused_with_a_sentence(tmp_path, value, sentence):
    with pytest.raises(SettingsError) as exc:
        make_settings({"annotations": value.format(here=tmp_path)})
    assert str(exc.value).startswith(sentence.format(here=tmp_path)) and "\n" not in str(exc.value)


def test_annotations_of_a_set_that_is_not_there_are_refused(tmp_path):
    s = make_settings({"annotations": [f"persnal={tmp_path}"]})
    with pytest.raises(SettingsError, match=r"names set 'persnal', which is not a set in data \(sets: test, pers"):
        annotation_sources(s, ["test", "personal"])
