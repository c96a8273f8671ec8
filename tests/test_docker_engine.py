"""The Docker image built and run with a Docker engine: the tests marked `docker`, skipped where no engine answers
`docker info` (tests/test_docker.py checks what can be checked without one).

The image is built from the working tree (`docker build --network host`) on ``$HALLUCINATE_DOCKER_BASE``, else on
hallucinate-base:local where that image exists (docker/local-base.sh builds it where no registry is reachable), else
on the Dockerfile's default, the official PyTorch image. Then, as docs/docker.md shows it (data mounted read-only at
/data, runs at /runs, a non-root user): a short training job, killed with `docker kill` after a checkpoint and
resumed with `--resume`, ends with the weights of the same job never stopped; `hallucinate eval` in a container
scores the result; what the jobs write belongs to the user they ran as; the image holds no data set; and a mounted
checkpoint that would run code when unpickled is refused, its code not run.

Environment: HALLUCINATE_DOCKER_IMAGE (tag to build, default hallucinate), HALLUCINATE_DOCKER_BASE (the BASE build
argument), HALLUCINATE_DATA (the data sets; Omniglot is used)."""
import json
import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest
import torch

REPO = Path(__file__).resolve().parents[1]
IMAGE = os.environ.get("HALLUCINATE_DOCKER_IMAGE", "hallucinate")
LOCAL_BASE = "hallucinate-base:local"
# A short run of a shipped pipeline: 60 episodes, validated at 30 and 60, a checkpoint every 10.
PIPELINE = "pipelines/omniglot_protonet.py"
SHORT = ["episodes=60", "val_every=30", "val_episodes=20", "checkpoint_every=10", "log_every=10", "num_workers=0"]
# A uid that is not root: the job's user when the tests run as root (as in CI), standing in for a user of that uid.
NON_ROOT = (1000, 1000)

pytestmark = pytest.mark.docker


def say(message: str) -> None:
    """Printed (shown with ``pytest -s``; benchmarks/docker_check.sh records it)."""
    print(f"[docker] {message}", flush=True)


def _engine_missing() -> str | None:
    """Why no Docker engine can be used here, or None."""
    if shutil.which("docker") is None:
        return "no `docker` command on PATH (Debian: apt-get install -y docker.io, then start dockerd)"
    try:
        info = subprocess.run(["docker", "info", "--format", "{{.ServerVersion}}"], capture_output=True, text=True,
                              timeout=30)
    except subprocess.TimeoutExpired:
        return "`docker info` did not answer within 30 s"
    if info.returncode != 0:
        last = (info.stderr.strip().splitlines() or ["no output"])[-1]
        return f"no Docker engine answers `docker info` ({last})"
    return None


def _image_exists(tag: str) -> bool:
    return subprocess.run(["docker", "image", "inspect", tag], capture_output=True, timeout=60).returncode == 0


_names = iter(range(1_000_000))


def docker(*args: str, timeout: float = 120, check: bool = True) -> subprocess.CompletedProcess:
    try:
        result = subprocess.run(["docker", *args], capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        pytest.fail(f"`docker {' '.join(args)}` did not finish within {timeout:.0f} s")
    if check and result.returncode != 0:
        pytest.fail(f"`docker {' '.join(args)}` exited with {result.returncode}:\n{result.stderr[-3000:]}")
    return result


def container_name() -> str:
    return f"hallucinate-pytest-{os.getpid()}-{next(_names)}"


def job(runs: Path, data: Path, user: tuple[int, int], *arguments: str, timeout: float = 900, check: bool = True,
        detach: bool = False, name: str | None = None) -> subprocess.CompletedProcess:
    """`docker run` of the image as docs/docker.md shows it: data read-only at /data, ``runs`` at /runs, as
    ``user``. Every container is named, and removed if the job outlives ``timeout``."""
    name = name or container_name()
    command = ["run", "--name", name, "--shm-size", "1g", "--user", f"{user[0]}:{user[1]}", "-e", "OMP_NUM_THREADS=1",
               "-v", f"{data}:/data:ro", "-v", f"{runs}:/runs"]
    command += ["-d"] if detach else ["--rm"]
    try:
        result = subprocess.run(["docker", *command, IMAGE, *arguments], capture_output=True, text=True,
                                timeout=timeout)
    except subprocess.TimeoutExpired:
        subprocess.run(["docker", "rm", "-f", "-v", name], capture_output=True, timeout=60)
        pytest.fail(f"`hallucinate {' '.join(arguments)}` in a container did not finish within {timeout:.0f} s")
    if check and result.returncode != 0:
        pytest.fail(f"`hallucinate {' '.join(arguments)}` in a container exited with {result.returncode}:\n"
                    f"{result.stdout[-2000:]}\n{result.stderr[-3000:]}")
    return result


def last_json(output: str) -> dict:
    return json.loads(output.strip().splitlines()[-1])


def sets(*settings: str) -> list[str]:
    return [x for item in settings for x in ("--set", item)]


# --- fixtures -------------------------------------------------------------------------------------------------------

@pytest.fixture(scope="session")
def engine() -> None:
    if reason := _engine_missing():
        pytest.skip(reason)


@pytest.fixture(scope="session")
def image(engine) -> str:
    """The image, built from the working tree."""
    base = os.environ.get("HALLUCINATE_DOCKER_BASE") or (LOCAL_BASE if _image_exists(LOCAL_BASE) else None)
    command = ["build", "--network", "host", "-t", IMAGE] + (["--build-arg", f"BASE={base}"] if base else []) + ["."]
    start = time.monotonic()
    try:
        result = subprocess.run(["docker", *command], cwd=REPO, capture_output=True, text=True, timeout=3600)
    except subprocess.TimeoutExpired:
        pytest.fail("`docker build` did not finish within an hour")
    if result.returncode != 0:
        hint = "" if base else (f"; where no image registry is reachable, docker/local-base.sh builds {LOCAL_BASE}, "
                                f"which these tests then use")
        pytest.fail(f"`docker {' '.join(command)}` failed{hint}:\n{(result.stdout + result.stderr)[-4000:]}")
    say(f"docker {' '.join(command)}: {time.monotonic() - start:.0f} s (base {base or 'the Dockerfile default'})")
    return IMAGE


@pytest.fixture(scope="session")
def data(data_root) -> Path:
    return data_root.resolve()


def job_user() -> tuple[int, int]:
    """The caller, unless that is root: then a non-root uid (the image must not need root, nor write as root)."""
    return (os.getuid(), os.getgid()) if os.getuid() != 0 else NON_ROOT


def runs_folder(path: Path, user: tuple[int, int]) -> Path:
    """``mkdir -p runs`` as ``user`` (root makes it and gives it to them)."""
    path.mkdir(parents=True, exist_ok=True)
    if os.getuid() == 0:
        os.chown(path, *user)
    return path


@pytest.fixture(scope="session")
def runs(image, data, tmp_path_factory) -> Path:
    """A runs folder whose Omniglot store is ingested (`hallucinate ingest omniglot`, as documented)."""
    runs = runs_folder(tmp_path_factory.mktemp("docker") / "runs", job_user())
    start = time.monotonic()
    store = last_json(job(runs, data, job_user(), "ingest", "omniglot").stdout)
    say(f"ingest omniglot into /runs/.cache: {time.monotonic() - start:.0f} s, {store['splits']}")
    return runs


def _trained_episodes(path: Path) -> int:
    from hallucinate.training import CheckpointError, load_checkpoint
    from hallucinate.training.checkpoint import trained_episodes

    try:
        return trained_episodes(load_checkpoint(path))
    except (CheckpointError, OSError):  # not written yet
        return 0


@pytest.fixture(scope="session")
def straight(runs, data) -> dict:
    """The short job, never stopped."""
    start = time.monotonic()
    summary = last_json(job(runs, data, job_user(), "run", PIPELINE, "--out", "runs/straight", "--no-progress",
                            *sets(*SHORT)).stdout)
    say(f"uninterrupted run: {time.monotonic() - start:.0f} s, {summary}")
    return summary


@pytest.fixture(scope="session")
def resumed(runs, data, straight) -> dict:
    """The same job (another folder), killed with `docker kill` once a checkpoint past episode 20 is written, then
    resumed with `--resume`."""
    arguments = ["run", PIPELINE, "--out", "runs/interrupted", "--no-progress", *sets(*SHORT)]
    checkpoint = runs / "interrupted" / "checkpoint.pt"
    name = container_name()
    start = time.monotonic()
    job(runs, data, job_user(), *arguments, detach=True, name=name)
    try:
        while (episodes := _trained_episodes(checkpoint)) < 20:
            state = docker("inspect", "-f", "{{.State.Status}}", name).stdout.strip()
            if state != "running":
                logs = docker("logs", name, check=False)
                pytest.fail(f"the job stopped ({state}) before its checkpoint at episode 20:\n{logs.stderr[-3000:]}")
            if time.monotonic() - start > 900:
                pytest.fail("no checkpoint at episode 20 within 900 s")
            time.sleep(0.5)
        docker("kill", name)
        status = int(docker("wait", name, timeout=120).stdout.strip())
    finally:
        docker("rm", "-f", "-v", name, check=False)
    episodes = _trained_episodes(checkpoint)
    say(f"docker kill after {time.monotonic() - start:.0f} s: exit status {status}, checkpoint at episode {episodes}")
    assert status == 137, f"docker kill: the container exited with {status}, not 137 (SIGKILL)"
    assert 20 <= episodes < 60, f"the job was not stopped part way: its checkpoint is at episode {episodes} of 60"
    start = time.monotonic()
    summary = last_json(job(runs, data, job_user(), *arguments, "--resume").stdout)
    say(f"resumed with --resume from episode {episodes}: {time.monotonic() - start:.0f} s, {summary}")
    return summary | {"killed_at": episodes}


# --- tests ----------------------------------------------------------------------------------------------------------

def test_the_image_builds_and_runs_the_console_script(image):
    inspect = json.loads(docker("image", "inspect", image).stdout)[0]
    config = inspect["Config"]
    assert config["Entrypoint"] == ["hallucinate"] and config["User"] == "hallucinate"
    assert "HALLUCINATE_DATA=/data" in config["Env"] and set(config["Volumes"]) == {"/data", "/runs"}
    say(f"image {image}: {inspect['Size'] / 1e9:.2f} GB")
    usage = docker("run", "--rm", image, "--help").stdout
    assert "{run,eval,ingest,report,export}" in usage
    versions = docker("run", "--rm", "--entrypoint", "python", image, "-c",
                      "import sys, torch, hallucinate; print(sys.version.split()[0], torch.__version__, "
                      "hallucinate.__version__)").stdout.split()
    say(f"in the image: Python {versions[0]}, torch {versions[1]}, hallucinate {versions[2]}")
    assert versions[2] == __import__("hallucinate").__version__


def test_the_image_holds_no_data_set(image):
    """No data set went into the image: /data is empty, and no archive, store or image folder of one is anywhere."""
    script = ("ls -A /data; find / -xdev \\( -name '*.zip' -o -name '*.tar' -o -name '*.tar.gz' -o -name '*.tgz' -o -name '*.mdb' -o -name '*.lmdb' "
              "-o -name 'images_background*' -o -name 'images_evaluation*' -o -name 'cifar-100-python' "
              "-o -type d \\( -name omniglot -o -name cifar_fs -o -name mini_imagenet \\) \\) -print")
    found = docker("run", "--rm", "--user", "root", "--entrypoint", "sh", image, "-c", script, timeout=300).stdout.split()
    assert found == [], f"data in the image: {found[:20]}"
    workspace = docker("run", "--rm", "--entrypoint", "sh", image, "-c", "ls -A /workspace; du -sm /workspace").stdout
    assert sorted(workspace.split()[:3]) == ["checkpoints", "pipelines", "runs"], workspace


def test_a_killed_job_resumes_to_the_weights_of_the_job_never_stopped(runs, straight, resumed):
    from hallucinate.training import load_checkpoint

    assert straight["episodes"] == resumed["episodes"] == 60
    a = load_checkpoint(runs / "straight" / "checkpoint.pt")
    b = load_checkpoint(runs / "interrupted" / "checkpoint.pt")
    compared = 0
    for part in ("model", "best_model"):
        assert a[part].keys() == b[part].keys()
        for name in a[part]:
            assert torch.equal(a[part][name], b[part][name]), f"{part}.{name} differs after the resume"
            compared += 1
    for x, y in zip(a["optimizer"]["state"].values(), b["optimizer"]["state"].values()):
        assert all(torch.equal(x[key], y[key]) for key in x)
    assert (a["best_val_accuracy"], a["best_episode"]) == (b["best_val_accuracy"], b["best_episode"])
    say(f"killed at episode {resumed['killed_at']}, resumed to 60: all {compared} tensors of model and best_model "
        f"(and the optimizer's state) equal to the uninterrupted run's; best val accuracy "
        f"{b['best_val_accuracy']:.3f} at episode {b['best_episode']} in both")


def test_eval_in_a_container_scores_the_resumed_run_as_the_uninterrupted_one(runs, data, resumed):
    scores = {}
    for run in ("interrupted", "straight"):
        start = time.monotonic()
        result = job(runs, data, job_user(), "eval", f"runs/{run}/checkpoint.pt", "--n-way", "5", "--k-shot", "1",
                     "--episodes", "200", "--no-progress")
        scores[run] = last_json(result.stdout)
        say(f"hallucinate eval runs/{run}/checkpoint.pt --n-way 5 --k-shot 1 --episodes 200: "
            f"{time.monotonic() - start:.0f} s, {scores[run]}")
    assert scores["interrupted"]["accuracy"] == scores["straight"]["accuracy"]
    assert scores["interrupted"]["accuracy"] > 20.0 * 1.5  # above 5-way chance (20%)


def test_what_the_jobs_write_belongs_to_the_user_they_ran_as(runs, resumed):
    user = job_user()
    written = [p for p in runs.rglob("*")]
    assert len(written) > 5 and (runs / "interrupted" / "checkpoint.pt") in written
    others = [(str(p.relative_to(runs)), p.lstat().st_uid, p.lstat().st_gid) for p in written
              if (p.lstat().st_uid, p.lstat().st_gid) != user]
    assert others == [], f"not owned by {user}: {others[:10]}"
    say(f"{len(written)} files and folders under runs/, all owned by uid:gid {user[0]}:{user[1]}")


def test_as_the_caller_with_id_u_id_g_what_it_writes_is_the_callers(image, data, tmp_path):
    """The documented `--user "$(id -u):$(id -g)"`, whoever runs the tests (root too)."""
    user = (os.getuid(), os.getgid())
    runs = runs_folder(tmp_path / "runs", user)
    job(runs, data, user, "ingest", "omniglot", "--image-size", "16")
    written = list(runs.rglob("*"))
    assert written and all((p.lstat().st_uid, p.lstat().st_gid) == user for p in written)


class _RunsCode:
    """Unpickling this runs ``sh -c COMMAND`` (what a malicious checkpoint would do)."""

    def __init__(self, command: str):
        self.command = command

    def __reduce__(self):
        return os.system, (self.command,)


def test_a_mounted_checkpoint_that_would_run_code_is_refused_and_runs_none(image, runs, data):
    evil = runs_folder(runs / "evil", job_user())
    marker = evil / "code_ran"
    with open(evil / "checkpoint.pt", "wb") as f:  # torch's zip format, a real config; the weights are the payload
        torch.save({"format": "hallucinate.checkpoint/1", "config": {"dataset": "omniglot"},
                    "best_model": _RunsCode("touch /runs/evil/code_ran")}, f)
    if os.getuid() == 0:
        os.chown(evil / "checkpoint.pt", *job_user())
    for arguments in (["eval", "runs/evil/checkpoint.pt", "--episodes", "5", "--no-progress"],
                      ["run", PIPELINE, "--out", "runs/evil", "--resume", "--no-progress", *sets(*SHORT)]):
        result = job(runs, data, job_user(), *arguments, check=False)
        assert result.returncode == 2, (result.returncode, result.stderr[-2000:])
        assert "holds objects other than tensors and plain data, which could run code when loaded; it was refused" \
               in result.stderr
        assert not marker.exists(), f"`hallucinate {arguments[0]}` ran the checkpoint's code"
        say(f"hallucinate {arguments[0]} on a checkpoint that runs code: exit 2, "
            f"{result.stderr.strip().splitlines()[-1].split(' (')[0]}; its code did not run")
    # The plant is real: unpickled without weights_only, in the same image, it runs its code.
    docker("run", "--rm", "--user", f"{job_user()[0]}:{job_user()[1]}", "-v", f"{runs}:/runs", "--entrypoint",
           "python", image, "-c", "import torch; torch.load('/runs/evil/checkpoint.pt', weights_only=False)",
           check=False)
    assert marker.exists(), "the planted checkpoint does not run code even when loaded unsafely: the test is void"
    say("the same file loaded with torch.load(weights_only=False) in the image did run its code")

