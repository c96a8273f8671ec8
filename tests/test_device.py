"""Which precision "auto" picks: bf16 only where the hardware computes in it."""
import pytest
import torch

from hallucinate.device import bf16_supported


@pytest.mark.parametrize(("capability", "native"), [((7, 0), False), ((7, 5), False), ((8, 0), True), ((9, 0), True)])
def test_auto_precision_takes_bf16_on_gpus_of_compute_capability_8_and_up(capability, native, monkeypatch):
    # torch.cuda.is_bf16_supported() says yes on 7.x GPUs too, which only emulate bf16 (slower than float32).
    monkeypatch.setattr(torch.version, "hip", None)
    monkeypatch.setattr(torch.cuda, "get_device_capability", lambda device=None: capability)
    assert bf16_supported(torch.device("cuda")) is native
