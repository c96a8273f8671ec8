"""Two-stage runs: stage 1 is the plain pipeline's run (into OUT/stage1), stage 2 trains the hallucinator on the frozen
embedding (into OUT); `init_from` stands for stage 1, `--resume` of a finished run changes nothing; and the settings
behind them (`two_stage`, `stage1()`, checkpoints from before the settings existed)."""
import json
import shutil
from pathlib import Path

import pytest
import torch

from hallucinate import load
from hallucinate.cli import main
from hallucinate.data import open_store
from hallucinate.evaluation import evaluate
from hallucinate.hallucinators import CalibratedGANHallucinator, GANHallucinator
from hallucinate.model import build_classifier
from hallucinate.pipeline import load_pipeline
from hallucinate.training import EpisodicConfig, load_checkpoint, override, save_checkpoint
from hallucinate.training.config import BEFORE_SETTING, HALLUCINATOR_SETTINGS, changed_settings
from tests.conftest import TINY, TINY_STAGE_2, sets

GAN_PIPELINE = Path("pipelines/omniglot_protonet_gan.py")
TINY_RUN = TINY + TINY_STAGE_2 + ["episodes=20"]  # tiny_gan_checkpoint's settings
# The same run without its hallucinator and stage-2 settings: what stage 1 is.
TINY_PLAIN = [item for item in TINY_RUN if item.split("=")[0] not in HALLUCINATOR_SETTINGS]


def plain_pipeline_of(path: Path) -> Path:
    """The plain pipeline whose run is stage 1 of the two-stage pipeline ``path``."""
    stage1 = load_pipeline(path).CONFIG.stage1()
    (plain,) = [other for other in sorted(Path("pipelines").glob("*.py")) if load_pipeline(other).CONFIG == stage1]
    return plain


def _run(pipeline, out, data_root, cache, settings, *extra) -> int:
    return main(["run", str(pipeline), "--out", str(out), "--data-root", str(data_root), "--cache-dir", str(cache),
                 "--no-progress", *sets(*settings), *extra])


def _assert_same(a: dict, b: dict, where: str) -> None:
    assert a.keys() == b.keys(), where
    for name in a:
        assert torch.equal(a[name], b[name]), (where, name)


@pytest.fixture(scope="module")
def plain_run(omniglot, data_root, cache, tmp_path_factory) -> Path:
    """The plain pipeline's run with tiny_gan_checkpoint's settings (its hallucinator settings left out)."""
    out = tmp_path_factory.mktemp("plain_run")
    assert _run(plain_pipeline_of(GAN_PIPELINE), out, data_root, cache, TINY_PLAIN) == 0
    return out / "checkpoint.pt"


def test_stage_1_is_the_plain_pipelines_run(tiny_gan_checkpoint, plain_run):
    stage1_path = tiny_gan_checkpoint.parent / "stage1" / "checkpoint.pt"
    assert stage1_path.is_file()
    stage1, plain = load_checkpoint(stage1_path), load_checkpoint(plain_run)
    expected = override(load_pipeline(GAN_PIPELINE).CONFIG, TINY_RUN).stage1()
    assert stage1["config"] == plain["config"] == expected.as_dict()
    assert expected.hallucinator == "none" and expected.image_size == 16 and expected.episodes == 20
    for part in ("model", "best_model"):
        _assert_same(stage1[part], plain[part], part)
    assert [row for row in stage1["metrics"] if "val_accuracy" in row] == \
        [row for row in plain["metrics"] if "val_accuracy" in row]


def test_stage_2_trains_the_hallucinator_on_the_frozen_stage_1_embedding(tiny_gan_checkpoint):
    stage1 = load_checkpoint(tiny_gan_checkpoint.parent / "stage1" / "checkpoint.pt")["best_model"]
    state = load_checkpoint(tiny_gan_checkpoint)
    assert state["config"]["hallucinator"] == "gan" and state["config"]["gan_generator"] == "calibrated"
    assert state["sampler"]["next_episode"] == 20  # hallucinator_episodes, not stage 1's episodes
    for part in ("model", "best_model"):
        weights = state[part]
        backbone = {name: w for name, w in weights.items() if name.startswith(("backbone.", "learner."))}
        assert backbone and backbone.keys() == {n for n in stage1 if n.startswith(("backbone.", "learner."))}
        _assert_same(backbone, {name: stage1[name] for name in backbone}, part)  # frozen, batch-norm statistics too
        # The residual starts at zero; stage 2 moved it. The base statistics come from the 4112 base classes.
        assert weights["hallucinator.generator.residual.4.weight"].abs().sum() > 0, part
        assert weights["hallucinator.generator.base_means"].shape == (4112, 64)
        assert weights["hallucinator.generator.base_directions"].shape == (4112, 64, 2)  # calibration_rank 2
    rows = [row for row in state["metrics"] if "per_sample" in row]
    assert rows and all(row["skipped_steps"] == 0 for row in rows)


def test_the_result_loads_without_data_and_classifies(tiny_gan_checkpoint, data_root, cache):
    model = load(tiny_gan_checkpoint)
    assert isinstance(model.hallucinator, CalibratedGANHallucinator) and model.hallucinating
    assert model.hallucinator.generator.base_means.shape == (4112, 64)  # its base statistics travel with it
    test = open_store("omniglot", image_size=16, root=data_root, cache=cache).split("test")
    settings = dict(n_way=5, k_shot=1, episodes=20, seed=0, device=torch.device("cpu"))
    on, off = evaluate(model, test, **settings), evaluate(model, test, hallucinate=False, **settings)
    assert on.hallucinate and not off.hallucinate
    assert on.accuracy > 35 and off.accuracy > 35  # chance is 20%
    assert on.accuracy != off.accuracy  # the same episodes, with and without the synthetic examples


def test_statistics_left_out_of_a_checkpoint_are_recomputed_from_the_train_split(tiny_gan_checkpoint, data_root,
                                                                                 cache, tmp_path):
    """calibration_in_checkpoint=False: the same weights without the base statistics; `load` embeds the train split
    with the frozen backbone, as stage 2 did, and gets the same statistics back. Without the data it says where it
    looked."""
    state = load_checkpoint(tiny_gan_checkpoint)
    statistics = {name: w for name, w in state["best_model"].items() if name.startswith("hallucinator.generator.base_")}
    assert len(statistics) == 3
    state["config"]["calibration_in_checkpoint"] = False
    state["best_model"] = {name: w for name, w in state["best_model"].items() if name not in statistics}
    light = tmp_path / "light.pt"
    save_checkpoint(light, state)
    model = load(light, data_root=data_root, cache_dir=cache)
    assert not model.hallucinator.needs_base_statistics
    for name, saved in statistics.items():
        assert torch.equal(getattr(model.hallucinator.generator, name.rsplit(".", 1)[1]), saved), name
    with pytest.raises(FileNotFoundError, match="omniglot"):
        load(light, data_root=tmp_path / "no_data", cache_dir=tmp_path / "no_cache")


def test_resume_after_stage_2_finished_changes_nothing(tiny_gan_checkpoint, data_root, cache, tmp_path, capsys):
    out = tmp_path / "run"
    shutil.copytree(tiny_gan_checkpoint.parent, out, ignore=shutil.ignore_patterns("report"))
    files = [out / "checkpoint.pt", out / "metrics.jsonl", out / "stage1" / "checkpoint.pt",
             out / "stage1" / "metrics.jsonl"]
    before = {path: path.read_bytes() for path in files}
    assert _run(GAN_PIPELINE, out, data_root, cache, TINY_RUN, "--resume") == 0
    assert json.loads(capsys.readouterr().out)["episodes"] == 20
    for path in files:
        assert path.read_bytes() == before[path], path


def test_init_from_skips_stage_1_and_trains_stage_2_as_from_its_own(tiny_gan_checkpoint, plain_run, data_root, cache,
                                                                   tmp_path):
    """Stage 1 started from a finished run of the plain pipeline (the same run as the fixture's stage 1): no
    OUT/stage1, and stage 2 ends with the weights of the run that trained its own stage 1."""
    out = tmp_path / "run"
    assert _run(GAN_PIPELINE, out, data_root, cache, TINY_RUN + [f"init_from={plain_run}"]) == 0
    assert not (out / "stage1").exists()
    state, expected = load_checkpoint(out / "checkpoint.pt"), load_checkpoint(tiny_gan_checkpoint)
    assert changed_settings(expected["config"], EpisodicConfig.from_saved(state["config"])) == ["init_from"]
    for part in ("model", "best_model"):
        _assert_same(state[part], expected[part], part)


# The settings behind two stages; no data needed.

def test_two_stages_need_a_hallucinator_and_stage_2_episodes():
    assert EpisodicConfig(hallucinator="gan", hallucinator_episodes=10).two_stage
    assert not EpisodicConfig(hallucinator="gan").two_stage  # hallucinator_episodes 0: trained jointly
    assert not EpisodicConfig(hallucinator="none", hallucinator_episodes=10).two_stage


def test_stage1_sets_every_hallucinator_setting_and_init_from_to_its_default():
    defaults = EpisodicConfig()
    changed = {"hallucinator": "mlp", "gan_generator": "noise", "n_synthetic": 7, "shot_aware_weights": False,
               "synthetic_mass": 3.0, "noise_dim": 3, "hallucinator_hidden": 5, "critic_hidden": 5,
               "adversarial_weight": 0.7, "anti_collapse_weight": 0.7, "per_sample_weight": 0.7,
               "gradient_penalty_weight": 0.7, "critic_lr": 0.7, "analogy_weight": 0.7, "calibration_k": 3,
               "calibration_alpha": 0.7, "calibration_tukey": 0.7, "calibration_rank": 3,
               "calibration_in_checkpoint": False, "hallucinator_episodes": 9, "hallucinator_n_way": 9,
               "hallucinator_k_shot": 9, "hallucinator_q_query": 9, "hallucinator_lr": 0.7}
    assert set(changed) == set(HALLUCINATOR_SETTINGS)
    assert all(getattr(defaults, name) != value for name, value in changed.items())
    others = {"n_way": 7, "k_shot": 3, "episodes": 11, "lr": 0.5, "image_size": 16, "learner": "matching"}
    config = EpisodicConfig(**changed, **others, init_from="some/checkpoint.pt")
    assert config.stage1() == EpisodicConfig(**others)


def test_checkpoints_from_before_the_settings_load_as_the_noise_gan_without_shot_aware_weights(tmp_path):
    assert BEFORE_SETTING == {"gan_generator": "noise", "shot_aware_weights": False}
    old = EpisodicConfig(hallucinator="gan", noise_dim=4, hallucinator_hidden=8, critic_hidden=8).as_dict()
    for name in ("gan_generator", "shot_aware_weights", "synthetic_mass", "calibration_rank", "hallucinator_episodes"):
        del old[name]
    config = EpisodicConfig.from_saved(old)
    assert (config.gan_generator, config.shot_aware_weights) == ("noise", False)
    assert (config.synthetic_mass, config.calibration_rank, config.hallucinator_episodes) == (1.0, 16, 0)
    # Resuming such a checkpoint with today's defaults would train another model: refused, naming the settings.
    assert changed_settings(old, config) == []
    assert changed_settings(old, EpisodicConfig(hallucinator="gan", noise_dim=4, hallucinator_hidden=8,
                                                critic_hidden=8)) == ["gan_generator", "shot_aware_weights"]
    # `hallucinate.load` rebuilds the noise GAN, its synthetic examples weighing 1 each, as they did.
    torch.manual_seed(0)
    model = build_classifier(config)
    save_checkpoint(tmp_path / "old.pt", {"config": old, "best_model": model.state_dict()})
    loaded = load(tmp_path / "old.pt")
    assert type(loaded.hallucinator) is GANHallucinator and loaded.hallucinator.synthetic_mass is None
    _, _, weights = loaded.hallucinator(torch.rand(4, 64), torch.tensor([0, 0, 1, 1]), 3)
    assert torch.equal(weights, torch.ones(4 + 6))


def test_a_saved_config_with_a_setting_this_version_does_not_know_is_refused():
    saved = EpisodicConfig().as_dict() | {"hallucinator_temperature": 2.0}
    with pytest.raises(ValueError, match="does not know: \\['hallucinator_temperature'\\]"):
        EpisodicConfig.from_saved(saved)
