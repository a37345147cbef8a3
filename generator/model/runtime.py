"""Where and how the network runs: device, bf16 autocast, memory format."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import torch

from generator.config import Settings, bf16_wanted
from generator.errors import SettingsError


@dataclass(frozen=True)
class Runtime:
    device: str
    autocast: bool  # bf16 autocast
    channels_last: bool

    @property
    def dtype(self) -> torch.dtype | None:
        """The autocast dtype, or None for float32."""
        return torch.bfloat16 if self.autocast else None

    def prepare(self, net: torch.nn.Module) -> torch.nn.Module:
        """The network moved to the device and memory format this runtime uses."""
        net = net.to(self.device)
        return net.to(memory_format=torch.channels_last) if self.channels_last else net


def choose_runtime(settings: Settings) -> Runtime:
    """The runtime the settings ask for; SettingsError if they ask for a device this machine lacks."""
    device = settings.device
    if device == "auto":
        device = "cuda" if torch.cuda.is_available() else "cpu"
    elif device == "cuda" and not torch.cuda.is_available():
        raise SettingsError("setting device = 'cuda' but this machine has no usable CUDA GPU; use auto or cpu.")
    wanted = bf16_wanted(settings)  # setting bf16, unless CAM_BF16=0 forces it off
    bf16 = wanted and (torch.cuda.is_bf16_supported() if device == "cuda" else cpu_has_bf16())
    return Runtime(device=device, autocast=bf16, channels_last=settings.channels_last)


def cpu_has_bf16() -> bool:
    """Native bf16 (AVX512-BF16 or AMX); elsewhere autocast would emulate it and be slower than float32."""
    try:
        flags = Path("/proc/cpuinfo").read_text()
    except OSError:
        return False
    return "avx512_bf16" in flags or "amx_bf16" in flags
