"""The CUDA path: skipped without a GPU (see conftest.py)."""
import pytest
import torch

from hallucinate import load
from hallucinate.cli import main
from hallucinate.evaluation import evaluate
from tests.conftest import TINY


@pytest.mark.gpu
def test_training_and_evaluation_run_on_cuda(omniglot, data_root, cache, tmp_path):
    args = ["run", "pipelines/omniglot_protonet_gan.py", "--out", str(tmp_path), "--device", "cuda", "--data-root",
            str(data_root), "--cache-dir", str(cache), "--no-progress", "--set", "episodes=20"]
    assert main(args + [x for item in TINY for x in ("--set", item)]) == 0
    test = omniglot.split("test")
    settings = dict(n_way=5, k_shot=1, episodes=50, seed=0, hallucinate=False)
    on_gpu = evaluate(load(tmp_path / "checkpoint.pt", device="cuda"), test, device=torch.device("cuda"), **settings)
    on_cpu = evaluate(load(tmp_path / "checkpoint.pt", device="cpu"), test, device=torch.device("cpu"), **settings)
    assert abs(on_gpu.accuracy - on_cpu.accuracy) < 1.0
    hallucinating = evaluate(load(tmp_path / "checkpoint.pt", device="cuda"), test, device=torch.device("cuda"),
                             **settings | {"hallucinate": True})
    assert 0 < hallucinating.accuracy <= 100
