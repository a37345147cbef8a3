"""generator/runtime.py: where the network runs, and when bf16 autocast is on."""

from __future__ import annotations

import pytest

from generator.config import make_settings
from generator.model import runtime


@pytest.mark.parametrize(("env", "setting", "autocast"), [(None, True, True), (None, False, False),
                                                          ("0", True, False), ("1", True, True)])
def test_bf16_on_a_cpu_that_has_it_unless_forced_off(monkeypatch, env, setting, autocast):
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: True)  # as on a CPU with AVX512-BF16 or AMX
    if env is None:
        monkeypatch.delenv("CAM_BF16", raising=False)
    else:
        monkeypatch.setenv("CAM_BF16", env)
    chosen = runtime.choose_runtime(make_settings({"device": "cpu", "bf16": setting}))
    assert chosen.autocast is autocast
    assert chosen.dtype == (runtime.torch.bfloat16 if autocast else None)


def test_never_bf16_on_a_cpu_without_it(monkeypatch):
    monkeypatch.setattr(runtime, "cpu_has_bf16", lambda: False)
    monkeypatch.delenv("CAM_BF16", raising=False)
    assert not runtime.choose_runtime(make_settings({"device": "cpu"})).autocast
