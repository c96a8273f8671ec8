import json
from pathlib import Path

import pytest
import torch

from hallucinate import load
from hallucinate.cli import main
from hallucinate.training import CheckpointError, EpisodicConfig, load_checkpoint, override, save_checkpoint


def test_unknown_setting_lists_the_valid_keys():
    with pytest.raises(ValueError, match="unknown setting 'n_ways'; valid keys: dataset \\(str\\).*n_way \\(int\\)"):
        override(EpisodicConfig(), ["n_ways=5"])


def test_wrong_type_names_the_expected_type():
    with pytest.raises(ValueError, match="setting 'n_way' expects int, got 'five'"):
        override(EpisodicConfig(), ["n_way=five"])
    with pytest.raises(ValueError, match="expects bool"):
        override(EpisodicConfig(), ["channels_last=maybe"])
    assert override(EpisodicConfig(), ["n_way=7", "lr=0.01", "channels_last=false"]) == \
        EpisodicConfig(n_way=7, lr=0.01, channels_last=False)


def test_run_with_a_bad_setting_exits_with_an_error(capsys):
    assert main(["run", "pipelines/omniglot_protonet.py", "--set", "episodes=many"]) == 2
    assert "setting 'episodes' expects int" in capsys.readouterr().err


def _eval(capsys, checkpoint, data_root, cache, *extra):
    assert main(["eval", str(checkpoint), "--episodes", "30", "--data-root", str(data_root), "--cache-dir",
                 str(cache), "--no-progress", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_eval_prints_one_json_object_and_pairs_episodes(tiny_gan_checkpoint, data_root, cache, capsys):
    on = _eval(capsys, tiny_gan_checkpoint, data_root, cache, "--per-episode")
    again = _eval(capsys, tiny_gan_checkpoint, data_root, cache, "--per-episode")
    off = _eval(capsys, tiny_gan_checkpoint, data_root, cache, "--per-episode", "--no-hallucinate")
    assert on["hallucinate"] is True and off["hallucinate"] is False
    assert {"accuracy", "ci95", "episodes", "n_way", "k_shot"} <= on.keys()
    assert on["episodes"] == 30 and len(on["per_episode"]) == 30 and on["n_way"] == 5 and on["k_shot"] == 1
    assert on == again
    assert 0 < on["accuracy"] <= 100 and on["ci95"] > 0
    other_shape = _eval(capsys, tiny_gan_checkpoint, data_root, cache, "--n-way", "20", "--k-shot", "5")
    assert other_shape["n_way"] == 20 and other_shape["k_shot"] == 5 and "per_episode" not in other_shape


def test_eval_on_another_dataset_needs_the_checkpoints_image_shape(tiny_gan_checkpoint, data_root, cache, capsys):
    default = _eval(capsys, tiny_gan_checkpoint, data_root, cache)
    named = _eval(capsys, tiny_gan_checkpoint, data_root, cache, "--dataset", "omniglot")
    assert named == default and named["dataset"] == "omniglot"
    assert main(["eval", str(tiny_gan_checkpoint), "--dataset", "cifar_fs", "--data-root", str(data_root),
                 "--cache-dir", str(cache), "--no-progress"]) == 2
    assert "takes 1-channel images (omniglot); cifar_fs has 3" in capsys.readouterr().err


def test_export_keeps_what_load_needs(tiny_gan_checkpoint, tmp_path, capsys):
    assert main(["export", str(tiny_gan_checkpoint), str(tmp_path / "small.pt")]) == 0
    assert json.loads(capsys.readouterr().out)["bytes"] < tiny_gan_checkpoint.stat().st_size
    assert not any(name.startswith("hallucinator.critic.")
                   for name in load_checkpoint(tmp_path / "small.pt")["best_model"])  # training-only weights
    full, small = load(tiny_gan_checkpoint).state_dict(), load(tmp_path / "small.pt").state_dict()
    for name, tensor in full.items():
        if not name.startswith("hallucinator.critic."):
            assert torch.equal(tensor, small[name]), name
    assert main(["export", str(tiny_gan_checkpoint), str(tmp_path / "small.pt")]) == 0  # over it: no .prev kept
    assert sorted(p.name for p in tmp_path.iterdir()) == ["small.pt"]


@pytest.mark.parametrize("name", ["hallucinator.generator.residual.0.weight",  # a weight of the calibrated GAN
                                  "hallucinator.generator.base_means"])  # its base statistics, a buffer
def test_load_refuses_weights_that_do_not_fit_the_config(tiny_gan_checkpoint, tmp_path, name):
    state = load_checkpoint(tiny_gan_checkpoint)
    del state["best_model"][name]
    save_checkpoint(tmp_path / "broken.pt", state)
    with pytest.raises(CheckpointError, match=f"missing \\['{name}'\\]"):
        load(tmp_path / "broken.pt")


def test_loaded_model_classifies_pil_images(tiny_gan_checkpoint, omniglot):
    from PIL import Image

    model = load(tiny_gan_checkpoint)
    test = omniglot.split("test")
    images = [Image.fromarray(255 - test[i][0][:, :, 0]) for i in (0, 1, 20, 21)]  # back to dark strokes on white
    batch = torch.stack([model.transform(image) for image in images])
    with torch.no_grad():
        logits = model(batch[[0, 2]], torch.tensor([0, 1]), batch[[1, 3]])
    assert logits.shape == (2, 2) and model.hallucinating
    model.set_hallucination(False)
    with torch.no_grad():
        plain = model(batch[[0, 2]], torch.tensor([0, 1]), batch[[1, 3]])
    assert plain.shape == (2, 2) and not torch.equal(plain, logits)


def test_eval_inner_steps_sets_maml_test_time_adaptation(data_root, cache, capsys):
    checkpoint = Path(__file__).resolve().parents[1] / "checkpoints" / "omniglot_maml_conv4.pt"
    trained = _eval(capsys, checkpoint, data_root, cache)
    unadapted = _eval(capsys, checkpoint, data_root, cache, "--inner-steps", "0")
    more = _eval(capsys, checkpoint, data_root, cache, "--inner-steps", "3")
    assert (trained["inner_steps"], unadapted["inner_steps"], more["inner_steps"]) == (1, 0, 3)
    # Episode labels are arbitrary, so the meta-learned head can only guess before adapting: chance is 20%.
    assert unadapted["accuracy"] < 35 < 80 < trained["accuracy"]
    assert more["accuracy"] != trained["accuracy"]


def test_eval_inner_steps_refuses_a_learner_without_an_inner_loop(tiny_gan_checkpoint, data_root, cache, capsys):
    assert main(["eval", str(tiny_gan_checkpoint), "--inner-steps", "3", "--data-root", str(data_root),
                 "--cache-dir", str(cache), "--no-progress"]) == 2
    assert "--inner-steps applies to MAML and ANIL checkpoints" in capsys.readouterr().err


def test_version_and_the_shipped_pipelines_are_listed(capsys):
    import hallucinate

    with pytest.raises(SystemExit) as done:
        main(["--version"])
    assert done.value.code == 0
    assert capsys.readouterr().out.strip() == f"hallucinate {hallucinate.__version__}"
    with pytest.raises(SystemExit):
        main(["run", "--help"])
    listed = capsys.readouterr().out
    for path in sorted(Path("pipelines").glob("*.py")):
        assert f"  {path}\n" in listed
    assert main(["run", "pipelines/no_such_pipeline.py"]) == 2
    error = capsys.readouterr().err
    assert "no pipeline file at pipelines/no_such_pipeline.py" in error
    assert "pipelines/omniglot_protonet_gan.py" in error
