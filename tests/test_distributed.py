"""Training on two CPU processes with gloo, started as torchrun starts them: they train, stay identical, write one
set of files, compute what one process computes on the mean of their episodes' losses, and resume."""
import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import torch.multiprocessing as mp

from hallucinate.data.sampler import EpisodeCollate, EpisodeSampler
from hallucinate.learners import episode_loss
from hallucinate.model import build_classifier
from hallucinate.pipeline import load_pipeline
from hallucinate.training import load_checkpoint, override
from tests.conftest import TINY, TINY_STAGE_2

REPO = Path(__file__).resolve().parents[1]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


# The loss function a rank can poison (called once per training step): the calibrated GAN's per-sample loss, in
# stage 2 of the default two-stage GAN pipeline.
POISONED = ("hallucinate.hallucinators.calibrated_gan", "per_sample_loss")
# Stage 2 of the GAN pipeline in the tiny shape of the tests, after 4 episodes of stage 1.
STAGE_2 = TINY_STAGE_2 + ["episodes=4"]


def _rank(rank: int, runs: list[list[str]], ports: list[int], weights: str, nan_at: int) -> None:
    """One of two ranks, given the environment torchrun gives: `hallucinate run` with each argument list of
    ``runs`` in turn, saving this rank's weights after each to ``weights``/run<i>-rank<r>.pt (after stage 1 of a
    two-stage run, also to run<i>-stage1-rank<r>.pt). With ``nan_at``, rank 1's `POISONED` loss is NaN at that
    step."""
    torch.set_num_threads(1)
    import importlib

    import hallucinate.pipeline
    from hallucinate.cli import main

    train, number = hallucinate.pipeline.train_episodic, 0

    def train_and_keep(config, model, *args, **kwargs):
        summary = train(config, model, *args, **kwargs)
        stage = "-stage1" if Path(kwargs["out_dir"]).name == "stage1" else ""
        torch.save(model.state_dict(), Path(weights) / f"run{number}{stage}-rank{rank}.pt")
        return summary

    module = importlib.import_module(POISONED[0])
    loss, calls = getattr(module, POISONED[1]), []

    def nan_once(*args):
        calls.append(1)
        value = loss(*args)
        return value * float("nan") if rank == 1 and len(calls) == nan_at else value

    hallucinate.pipeline.train_episodic = train_and_keep
    setattr(module, POISONED[1], nan_once)
    for number, (args, port) in enumerate(zip(runs, ports)):
        os.environ.update(WORLD_SIZE="2", RANK=str(rank), LOCAL_RANK=str(rank), MASTER_ADDR="127.0.0.1",
                          MASTER_PORT=str(port))
        if main(args) != 0:
            raise RuntimeError(f"rank {rank}: hallucinate {' '.join(args)} failed")


def _two_ranks(runs: list[list[str]], weights: Path, nan_at: int = 0) -> None:
    mp.spawn(_rank, args=(runs, [_free_port() for _ in runs], str(weights), nan_at), nprocs=2)


def _run_args(pipeline: str, out: Path, data_root, cache, settings: list[str], *extra: str) -> list[str]:
    return ["run", pipeline, "--out", str(out), "--data-root", str(data_root), "--cache-dir", str(cache),
            "--no-progress", *[x for item in settings for x in ("--set", item)], *extra]


def _assert_same(a: dict, b: dict) -> None:
    assert a.keys() == b.keys()
    for name in a:
        assert torch.equal(a[name], b[name]), name


@pytest.fixture
def one_thread():
    """The ranks compute on one thread each; the single-process reference must too, or its reductions run in
    another order (pytest's own process has as many threads as cores unless OMP_NUM_THREADS says otherwise)."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def test_one_step_of_two_ranks_is_one_step_on_the_mean_of_their_two_episodes(omniglot, data_root, cache, tmp_path,
                                                                           one_thread):
    settings = TINY + ["episodes=1", "precision=fp32"]
    out = tmp_path / "run"
    _two_ranks([_run_args("pipelines/omniglot_protonet.py", out, data_root, cache, settings)], tmp_path)
    rank0, rank1 = (torch.load(tmp_path / f"run0-rank{r}.pt") for r in range(2))
    _assert_same(rank0, rank1)  # weights and batch-norm statistics
    state = load_checkpoint(out / "checkpoint.pt")
    _assert_same(state["model"], rank0)

    # One process, the same initial weights, one Adam step on the mean of episodes 0 and 1's losses.
    config = override(load_pipeline("pipelines/omniglot_protonet.py").CONFIG, settings)
    assert config.augment == "none" and config.hallucinator == "none"
    torch.manual_seed(config.seed)
    model = build_classifier(config).train()
    train = omniglot.split("train")
    sampler = EpisodeSampler(train.labels, n_way=config.n_way, k_shot=config.k_shot, q_query=config.q_query,
                             episodes=2, seed=config.seed)
    collate = EpisodeCollate(config.n_way, config.k_shot, config.q_query)
    parameters = [p for _, p in model.named_parameters()]
    optimizer = torch.optim.Adam(parameters, lr=config.lr)
    gradients = []
    for number in (0, 1):
        episode = collate(train.__getitems__(sampler.episode_indices(number)))
        images = torch.cat([episode.support, episode.query]).contiguous(memory_format=torch.channels_last)
        features = model.embed(images).float()
        n_support = config.n_way * config.k_shot
        logits = model.learner(features[:n_support], episode.support_labels, features[n_support:])
        loss = episode_loss(model.learner, logits, episode.query_labels)
        gradients.append(torch.autograd.grad(loss, parameters))
    for p, g0, g1 in zip(parameters, *gradients):
        p.grad = (g0 + g1) / 2
    optimizer.step()

    # Equal to rounding (on this machine, bit for bit): Adam's moments carry the gradient's scale, which its update
    # (about lr x the gradient's sign at the first step) would hide.
    for index, (name, p) in enumerate(model.named_parameters()):
        assert torch.allclose(state["model"][name], p, rtol=0, atol=1e-8), name
        moments = state["optimizer"]["state"][index]
        expected = optimizer.state[p]
        assert torch.allclose(moments["exp_avg"], expected["exp_avg"], rtol=1e-6, atol=1e-12), name
        assert torch.allclose(moments["exp_avg_sq"], expected["exp_avg_sq"], rtol=1e-6, atol=1e-15), name
    # The averaged gradient is neither rank's own (exp_avg is 0.1 x the gradient after one step).
    weight = state["optimizer"]["state"][0]["exp_avg"]
    for own in gradients:
        assert not torch.allclose(weight, 0.1 * own[0], rtol=1e-2, atol=0)


def test_two_ranks_resume_from_rank_zero_checkpoint_as_an_unbroken_run(omniglot, data_root, cache, tmp_path):
    """Rank 1 is given a run folder of its own, empty: it reads nothing and writes nothing, and still resumes. The
    default two-stage run: stage 1 (4 episodes) is trained once and found finished by the resumed run, which goes on
    with stage 2 from rank 0's checkpoint."""
    settings = TINY + STAGE_2 + ["checkpoint_every=4"]
    pipeline = "pipelines/omniglot_protonet_gan.py"
    straight, broken = tmp_path / "straight", tmp_path / "broken"
    runs = [_run_args(pipeline, straight, data_root, cache, settings + ["hallucinator_episodes=8"]),
            _run_args(pipeline, broken, data_root, cache, settings + ["hallucinator_episodes=4"]),
            _run_args(pipeline, broken, data_root, cache, settings + ["hallucinator_episodes=8"], "--resume")]
    elsewhere = tmp_path / "rank1"
    mp.spawn(_rank_one_elsewhere, args=(runs, [_free_port() for _ in runs], str(tmp_path), str(elsewhere)), nprocs=2)
    assert not elsewhere.exists()

    for number in range(3):
        _assert_same(*(torch.load(tmp_path / f"run{number}-rank{r}.pt") for r in range(2)))
    for number in range(2):  # the resumed run found stage 1 finished: no stage 1 trained in it
        _assert_same(*(torch.load(tmp_path / f"run{number}-stage1-rank{r}.pt") for r in range(2)))
    a, b = load_checkpoint(straight / "checkpoint.pt"), load_checkpoint(broken / "checkpoint.pt")
    assert a["sampler"] == b["sampler"] == {"seed": 0, "next_episode": 8, "world_size": 2}
    _assert_same(a["model"], b["model"])
    for optimizer in ("optimizer", "critic_optimizer"):
        assert a[optimizer]["state"]
        for index, moments in a[optimizer]["state"].items():
            _assert_same(moments, b[optimizer]["state"][index])
    stage1 = [load_checkpoint(path / "stage1" / "checkpoint.pt") for path in (straight, broken)]
    assert stage1[0]["sampler"] == stage1[1]["sampler"] == {"seed": 0, "next_episode": 4, "world_size": 2}
    _assert_same(stage1[0]["best_model"], stage1[1]["best_model"])


def _rank_one_elsewhere(rank: int, runs: list[list[str]], ports: list[int], weights: str, elsewhere: str) -> None:
    if rank == 1:
        runs = [args[:args.index("--out") + 1] + [elsewhere] + args[args.index("--out") + 2:] for args in runs]
    _rank(rank, runs, ports, weights, nan_at=0)


def test_a_nan_on_one_rank_skips_the_step_on_both(omniglot, data_root, cache, tmp_path):
    out = tmp_path / "run"
    _two_ranks([_run_args("pipelines/omniglot_protonet_gan.py", out, data_root, cache,
                          TINY + STAGE_2 + ["hallucinator_episodes=4"])], tmp_path, nan_at=2)
    _assert_same(*(torch.load(tmp_path / f"run0-rank{r}.pt") for r in range(2)))
    state = load_checkpoint(out / "checkpoint.pt")
    (row,) = [row for row in state["metrics"] if "skipped_steps" in row]
    assert row["skipped_steps"] == 1
    assert all(torch.isfinite(w).all() for w in state["model"].values())


def test_torchrun_two_ranks_print_one_summary_and_write_one_set_of_files(omniglot, data_root, cache, tmp_path):
    out = tmp_path / "run"
    command = [sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node=2", "-m",
               "hallucinate.cli", *_run_args("pipelines/omniglot_protonet_gan.py", out, data_root, cache,
                                             TINY + STAGE_2 + ["hallucinator_episodes=6"])]
    result = subprocess.run(command, cwd=REPO, capture_output=True, text=True, timeout=300,
                            env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert result.returncode == 0, result.stderr
    (line,) = result.stdout.splitlines()  # stage 2's summary; stage 1 prints none
    assert json.loads(line)["episodes"] == 6
    assert sorted(p.name for p in out.iterdir()) == ["checkpoint.pt", "metrics.json", "metrics.jsonl", "stage1"]
    assert sorted(p.name for p in (out / "stage1").iterdir()) == ["checkpoint.pt", "metrics.json", "metrics.jsonl"]
    rows = [json.loads(row) for row in (out / "metrics.jsonl").read_text().splitlines()]
    assert [row["episode"] for row in rows] == [6, 6] and rows[0]["skipped_steps"] == 0 and "val_accuracy" in rows[1]
    state = load_checkpoint(out / "checkpoint.pt")
    assert state["sampler"]["world_size"] == 2 and state["metrics"] == rows
    assert load_checkpoint(out / "stage1" / "checkpoint.pt")["sampler"] == {"seed": 0, "next_episode": 4,
                                                                             "world_size": 2}


def test_what_runs_in_one_process_only_is_refused_under_torchrun(tmp_path, monkeypatch):
    import hallucinate.training.distributed as distributed
    from hallucinate.training import EpisodicConfig, train_episodic
    from hallucinate.training.pretrain import pretrain_backbone

    monkeypatch.setenv("WORLD_SIZE", "2")
    with pytest.raises(ValueError, match="each rank trains on cuda:LOCAL_RANK"):
        with distributed.process_group("cuda:1"):
            pass
    monkeypatch.setattr(distributed, "world_size", lambda: 2)
    monkeypatch.setattr("hallucinate.training.pretrain.world_size", lambda: 2)
    config = EpisodicConfig(learner="baseline", pretrain_epochs=1, hallucinator="analogy", hallucinator_hidden=8)
    model = build_classifier(config)
    with pytest.raises(ValueError, match="pre-training .* runs in one process; this one is 1 of 2"):
        pretrain_backbone(config, model, [], [], out_dir=tmp_path, device=torch.device("cpu"))
    with pytest.raises(ValueError, match="analogy hallucinator .* train it in one process"):
        train_episodic(config, model, [], [], out_dir=tmp_path, device=torch.device("cpu"))
