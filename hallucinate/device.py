"""Where tensors live and in which precision the backbone runs."""
import contextlib

import torch


def resolve_device(name: str | None = None) -> torch.device:
    """``name`` forces a device ("cpu", "cuda", "cuda:1"); otherwise cuda when available, else cpu."""
    if name:
        device = torch.device(name)
        if device.type == "cuda" and not torch.cuda.is_available():
            raise RuntimeError(f"device {name!r} was asked for but CUDA is not available on this machine")
        return device
    return torch.device("cuda" if torch.cuda.is_available() else "cpu")


def bf16_supported(device: torch.device) -> bool:
    """Whether ``device`` computes in bf16 natively: a CUDA GPU of compute capability 8.0 or more (ROCm GPUs all
    do), a CPU with oneDNN's bf16. Not `torch.cuda.is_bf16_supported()`, which also says yes on older GPUs that
    only emulate bf16, slower than float32."""
    if device.type == "cuda":
        return bool(torch.version.hip) or torch.cuda.get_device_capability(device)[0] >= 8
    return bool(torch.ops.mkldnn._is_mkldnn_bf16_supported())


def autocast(device: torch.device, precision: str):
    """``precision``: "fp32", "bf16", or "auto" (bf16 where the hardware supports it)."""
    if precision not in ("auto", "bf16", "fp32"):
        raise ValueError(f"precision must be 'auto', 'bf16' or 'fp32', got {precision!r}")
    if precision == "fp32" or (precision == "auto" and not bf16_supported(device)):
        return contextlib.nullcontext()
    return torch.autocast(device.type, dtype=torch.bfloat16)
