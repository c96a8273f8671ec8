"""Short real training runs on Omniglot must classify unseen characters far above chance (20% for 5-way)."""
import pytest
import torch

from hallucinate import load
from hallucinate.cli import main
from hallucinate.evaluation import evaluate


@pytest.mark.parametrize("pipeline, settings, threshold", [
    # Two stages: 300 episodes of the plain pipeline's, then 100 of the calibrated GAN on the frozen embedding.
    ("pipelines/omniglot_protonet_gan.py", ["n_way=20", "episodes=300", "hallucinator_episodes=100"], 80),
    ("pipelines/omniglot_protonet.py", ["n_way=20", "episodes=200"], 80),
    ("pipelines/omniglot_matching.py", ["episodes=150"], 60),
    ("pipelines/omniglot_relation.py", ["episodes=150"], 60),
    ("pipelines/omniglot_siamese.py", ["episodes=150"], 60),
])
def test_short_run_beats_chance_on_5_way_1_shot_test_episodes(pipeline, settings, threshold, omniglot, data_root,
                                                              cache, tmp_path):
    sets = settings + ["val_every=100", "val_episodes=50", "checkpoint_every=1000"]
    assert main(["run", pipeline, "--out", str(tmp_path), "--data-root", str(data_root), "--cache-dir", str(cache),
                 "--no-progress", *[x for item in sets for x in ("--set", item)]]) == 0
    model = load(tmp_path / "checkpoint.pt")
    result = evaluate(model, omniglot.split("test"), n_way=5, k_shot=1, episodes=300, seed=1,
                      device=torch.device("cpu"))
    assert result.hallucinate == (model.hallucinator is not None)
    assert result.accuracy >= threshold, result.as_dict()
