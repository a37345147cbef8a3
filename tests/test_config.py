"""Settings: defaults, TOML file, flags, and clear errors."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

from generator.__main__ import parser
from generator.config import Settings, load_toml, make_settings, settings_from_args

ROOT = Path(__file__).resolve().parent.parent


def test_defaults_and_string_coercion():
    s = make_settings({"batch_size": "8", "hflip": "false", "eval_sets": "test,unrelated", "data_dir": "x"})
    assert s.batch_size == 8 and s.hflip is False and s.eval_sets == ("test", "unrelated")
    assert s.data_dir == Path("x")
    assert make_settings().backbone == Settings().backbone == "auto"


def test_bad_values_are_refused_with_a_sentence():
    with pytest.raises(ValueError, match="backbone must be one of"):
        make_settings({"backbone": "vgg"})
    with pytest.raises(ValueError, match="true or false"):
        make_settings({"hflip": "maybe"})
    with pytest.raises(ValueError, match="unknown setting"):
        make_settings({"nope": 1})


def test_toml_then_flags(tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text('seed = 7\nbatch_size = 4\neval_sets = ["test"]\n')
    args = parser().parse_args(["site", "--config", str(cfg), "--batch-size", "16"])
    s = settings_from_args(args)
    assert (s.seed, s.batch_size, s.eval_sets) == (7, 16, ("test",))


def test_unknown_toml_key_names_the_file(tmp_path):
    cfg = tmp_path / "s.toml"
    cfg.write_text("sed = 7\n")
    with pytest.raises(ValueError, match=r"s\.toml: unknown setting\(s\) sed"):
        load_toml(cfg)


def test_help_documents_every_setting():
    site = subprocess.run([sys.executable, "-m", "generator", "site", "--help"], cwd=ROOT, capture_output=True,
                          text=True, check=True).stdout
    top = subprocess.run([sys.executable, "-m", "generator", "--help"], cwd=ROOT, capture_output=True,
                         text=True, check=True).stdout
    for name, f in Settings.__dataclass_fields__.items():
        assert "--" + name.replace("_", "-") in site, name
        assert f"  {name} = " in top and f.metadata["help"] in top, name
