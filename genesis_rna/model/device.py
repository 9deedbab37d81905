"""Devices and precisions: pick what a user's hardware supports (``--device auto``, ``--dtype auto``), for
inference and training alike."""

from __future__ import annotations

import contextlib

import torch

from ..errors import InputError


# --------------------------------------------------------------------------------------------- devices/dtypes
def resolve_device(device: str | torch.device = "auto") -> torch.device:
    """``auto`` picks CUDA when available, else CPU; asking for CUDA without one is an error, not a fallback."""
    if isinstance(device, torch.device):
        return device
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise InputError(f"--device {device} requested but no CUDA device is available (use cpu or auto)")
    if device not in ("cpu",) and not device.startswith("cuda"):
        raise InputError(f"unknown device {device!r}: use auto, cpu or cuda")
    return torch.device(device)


def bf16_supported(device: torch.device) -> bool:
    """bf16 is worth using where the hardware computes it natively: CUDA with bf16, or CPUs with AVX512-BF16/AMX."""
    if device.type == "cuda":
        return torch.cuda.is_bf16_supported()
    if device.type == "cpu":
        checks = [getattr(torch.cpu, "_is_avx512_bf16_supported", None), getattr(torch.cpu, "_is_amx_tile_supported", None)]
        return any(bool(check()) for check in checks if check is not None)
    return False


def resolve_dtype(dtype: str, device: torch.device) -> torch.dtype:
    """Compute dtype for autocast: ``auto`` = bf16 where the hardware supports it natively, else fp32."""
    table = {"fp32": torch.float32, "bf16": torch.bfloat16, "fp16": torch.float16}
    if dtype == "auto":
        return torch.bfloat16 if bf16_supported(device) else torch.float32
    if dtype not in table:
        raise InputError(f"unknown dtype {dtype!r}: use auto, fp32, bf16 or fp16")
    if dtype == "fp16" and device.type == "cpu":
        raise InputError("fp16 is not supported on CPU; use bf16 or fp32")
    return table[dtype]


def autocast_context(device: torch.device, dtype: torch.dtype):
    """Autocast for reduced precision; a no-op context for fp32 so results stay bit-exact there."""
    if dtype == torch.float32:
        return contextlib.nullcontext()
    return torch.autocast(device_type=device.type, dtype=dtype)
