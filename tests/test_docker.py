"""What can be checked of the Docker image without a Docker engine: the Dockerfile parses, agrees with setup.py and
the CLI, and the `docker run` lines in docs/docker.md and README.md agree with it. tests/test_docker_engine.py builds
and runs the image where an engine answers."""
import ast
import fnmatch
import json
import posixpath
import re
import shlex
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
INSTRUCTIONS = {"FROM", "RUN", "CMD", "LABEL", "EXPOSE", "ENV", "ADD", "COPY", "ENTRYPOINT", "VOLUME", "USER",
                "WORKDIR", "ARG", "ONBUILD", "STOPSIGNAL", "HEALTHCHECK", "SHELL"}


def parse_dockerfile(text: str) -> list[tuple[str, str]]:
    """``[(INSTRUCTION, arguments)]``: comments dropped, lines ending in a backslash joined to the next."""
    instructions, pending = [], ""
    for number, line in enumerate(text.splitlines(), 1):
        stripped = line.strip()
        if stripped.startswith("#") or (not stripped and not pending):
            continue  # inside a continued instruction too, as Docker does
        if stripped.endswith("\\"):
            pending += stripped[:-1].rstrip() + " "
            continue
        keyword, _, arguments = (pending + stripped).partition(" ")
        if keyword.upper() not in INSTRUCTIONS:
            raise ValueError(f"Dockerfile line {number}: unknown instruction {keyword!r}")
        instructions.append((keyword.upper(), arguments.strip()))
        pending = ""
    if pending:
        raise ValueError("the Dockerfile ends inside a continued line")
    return instructions


def test_parser_handles_continuations_comments_and_refuses_nonsense():
    text = "# c\nFROM a:b\n\nRUN x \\\n  # inside\n    && y\nENV A=1 \\\n    B=2\n"
    assert parse_dockerfile(text) == [("FROM", "a:b"), ("RUN", "x && y"), ("ENV", "A=1 B=2")]
    with pytest.raises(ValueError, match="unknown instruction 'RUNN'"):
        parse_dockerfile("FROM a\nRUNN x\n")
    with pytest.raises(ValueError, match="ends inside a continued line"):
        parse_dockerfile("FROM a\nRUN x \\\n")


@pytest.fixture(scope="module")
def dockerfile() -> list[tuple[str, str]]:
    return parse_dockerfile((REPO / "Dockerfile").read_text())


def _all(dockerfile, keyword: str) -> list[str]:
    return [arguments for name, arguments in dockerfile if name == keyword]


def _env(dockerfile) -> dict[str, str]:
    return dict(item.split("=", 1) for arguments in _all(dockerfile, "ENV") for item in shlex.split(arguments))


def _setup_keywords() -> dict:
    call = next(node for node in ast.walk(ast.parse((REPO / "setup.py").read_text()))
                if isinstance(node, ast.Call) and getattr(node.func, "id", None) == "setup")
    return {k.arg: ast.literal_eval(k.value) for k in call.keywords if k.arg in ("install_requires", "entry_points")}


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in text.split("."))


def _base_argument(dockerfile) -> str:
    """The default of ``ARG BASE``, which must come before the only FROM, ``FROM ${BASE}``."""
    assert dockerfile[0][0] == "ARG" and dockerfile[0][1].startswith("BASE="), dockerfile[0]
    assert dockerfile[1][0] == "FROM" and len(_all(dockerfile, "FROM")) == 1
    assert dockerfile[1][1] in ("${BASE}", "$BASE"), dockerfile[1]
    return dockerfile[0][1].removeprefix("BASE=")


def _torch_range() -> tuple[str, str]:
    torch_requirement = next(r for r in _setup_keywords()["install_requires"] if r.startswith("torch>"))
    return re.fullmatch(r"torch>=([\d.]+),<([\d.]+)", torch_requirement).groups()


def test_base_is_a_pytorch_cuda_runtime_image_whose_torch_setup_py_accepts(dockerfile):
    base = _base_argument(dockerfile)
    match = re.fullmatch(r"pytorch/pytorch:(\d+\.\d+\.\d+)-cuda[\d.]+-cudnn\d+-runtime", base)
    assert match, f"not an official PyTorch CUDA runtime image: {base}"
    lowest, below = _torch_range()
    assert _version(lowest) <= _version(match[1]) < _version(below), (match[1], lowest, below)


def test_local_base_script_builds_the_stand_in_with_a_torch_setup_py_accepts():
    """docker/local-base.sh: hallucinate-base:local from debootstrap'd bookworm and pinned torch wheels."""
    script = (REPO / "docker/local-base.sh").read_text()
    assert script.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in script
    assert (REPO / "docker/local-base.sh").stat().st_mode & 0o111, "docker/local-base.sh is not executable"
    assert 'BASE_TAG="${BASE_TAG:-hallucinate-base:local}"' in script
    assert "debootstrap --variant=minbase" in script and " bookworm " in script and "docker import" in script
    assert "pip download" in script and "docker commit" in script
    torch = re.search(r'TORCH="torch==([\d.]+)"', script)[1]
    lowest, below = _torch_range()
    assert _version(lowest) <= _version(torch) < _version(below), (torch, lowest, below)
    torchvision = re.search(r'TORCHVISION="torchvision==([\d.]+)"', script)[1]
    vision = next(r for r in _setup_keywords()["install_requires"] if r.startswith("torchvision>"))
    low, high = re.fullmatch(r"torchvision>=([\d.]+),<([\d.]+)", vision).groups()
    assert _version(low) <= _version(torchvision) < _version(high), (torchvision, vision)
    assert "--build-arg BASE=$BASE_TAG" in script  # it says how to use what it built


def test_entrypoint_is_the_console_script(dockerfile):
    (entrypoint,) = _all(dockerfile, "ENTRYPOINT")
    assert json.loads(entrypoint) == ["hallucinate"]
    scripts = dict(line.replace(" ", "").split("=") for line in _setup_keywords()["entry_points"]["console_scripts"])
    assert scripts == {"hallucinate": "hallucinate.cli:main"}
    assert any(shlex.split(run)[:3] == ["pip", "install", "."] for run in _all(dockerfile, "RUN"))


def test_data_cache_and_runs_are_where_the_code_looks_for_them(dockerfile, monkeypatch):
    from hallucinate.data.paths import cache_dir, data_root

    env = _env(dockerfile)
    volumes = set(json.loads(_all(dockerfile, "VOLUME")[-1]))
    assert env["HALLUCINATE_DATA"] == "/data" and volumes == {"/data", "/runs"}
    assert env["HALLUCINATE_CACHE"].startswith("/runs/")  # written, and kept between jobs
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    assert data_root() == Path("/data") and cache_dir() == Path(env["HALLUCINATE_CACHE"])


def _final_workdir_and_links(dockerfile) -> tuple[str, dict[str, str]]:
    """The last WORKDIR, and every ``ln -s TARGET LINK`` the RUN lines make (LINK made absolute)."""
    workdir, links = "/", {}
    for name, arguments in dockerfile:
        if name == "WORKDIR":
            workdir = posixpath.join(workdir, arguments)
        elif name == "RUN":
            for command in re.split(r"&&|;", arguments):
                words = shlex.split(command)
                if words[:1] == ["ln"] and any(w.startswith("-") and "s" in w for w in words[1:-2]):
                    links[posixpath.normpath(posixpath.join(workdir, words[-1]))] = words[-2]
    return workdir, links


def test_runs_folder_of_the_working_folder_is_the_runs_volume(dockerfile):
    """The CLI writes to runs/<pipeline> by default: that must land on the mounted /runs."""
    workdir, links = _final_workdir_and_links(dockerfile)
    runs = posixpath.join(workdir, "runs")
    assert runs == "/runs" or links.get(runs) == "/runs", (workdir, links)


def test_pipelines_and_checkpoints_are_copied_to_the_working_folder(dockerfile):
    workdir, _ = _final_workdir_and_links(dockerfile)
    copied, current = {}, "/"
    for name, arguments in dockerfile:
        if name == "WORKDIR":
            current = posixpath.join(current, arguments)
        elif name == "COPY":
            *sources, destination = [w for w in shlex.split(arguments) if not w.startswith("--")]
            for source in sources:
                assert (REPO / source).exists(), f"COPY {source}: no such file in the repository"
                copied[source] = posixpath.normpath(posixpath.join(current, destination))
    assert copied["pipelines"] == f"{workdir}/pipelines" and copied["checkpoints"] == f"{workdir}/checkpoints"


def _dockerignore() -> list[str]:
    lines = (REPO / ".dockerignore").read_text().splitlines()
    return [line.strip() for line in lines if line.strip() and not line.startswith("#")]


def _ignored(path: str, patterns: list[str]) -> bool:
    return any(fnmatch.fnmatch(path, p) or fnmatch.fnmatch(path.split("/")[-1], p.removeprefix("**/"))
               or path.startswith(p.rstrip("/") + "/") for p in patterns if not p.startswith("!"))


def test_dockerignore_keeps_what_the_build_copies_and_drops_local_state(dockerfile):
    patterns = _dockerignore()
    for arguments in _all(dockerfile, "COPY"):
        for source in [w for w in shlex.split(arguments) if not w.startswith("--")][:-1]:
            assert not _ignored(source, patterns), f"{source} is copied but .dockerignore drops it"
    assert not _ignored("README.md", patterns)  # setup.py reads it
    for local in (".git", ".venv", "runs", "data", "hallucinate/__pycache__", ".pytest_cache"):
        assert _ignored(local, patterns), f"{local} would be sent to the Docker build"


def test_runs_as_a_user_that_is_not_root(dockerfile):
    users = _all(dockerfile, "USER")
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert any("useradd" in run and users[-1].split(":")[0] in shlex.split(run) for run in _all(dockerfile, "RUN"))


# --- the documented commands ----------------------------------------------------------------------------------------

DOCS = REPO / "docs/docker.md"
_DOCKER_RUN_OPTIONS_WITH_VALUE = {"-v", "--volume", "--user", "-u", "--shm-size", "--gpus", "-e", "--env", "--name"}
_DOCKER_RUN_FLAGS = {"--rm", "-it", "-i", "-t", "-d"}


def _commands(text: str) -> list[list[str]]:
    """The shell commands of the ```bash blocks, continuations joined, as words (comments dropped)."""
    commands = []
    for block in re.findall(r"```bash\n(.*?)```", text, re.S):
        for command in block.replace("\\\n", " ").splitlines():
            if words := shlex.split(command, comments=True):
                commands.append(words)
    return commands


def _docker_runs() -> list[tuple[dict[str, list[str]], str, list[str]]]:
    """``(options, image, hallucinate arguments)`` of every `docker run` in docs/docker.md and README.md."""
    runs = []
    for words in _commands(DOCS.read_text()) + _commands((REPO / "README.md").read_text()):
        if words[:2] != ["docker", "run"]:
            continue
        options, rest = {}, words[2:]
        while rest[0].startswith("-"):
            option = rest.pop(0)
            if option in _DOCKER_RUN_OPTIONS_WITH_VALUE:
                options.setdefault(option, []).append(rest.pop(0))
            else:
                assert option in _DOCKER_RUN_FLAGS, f"docker run option {option} is not known to this test"
                options.setdefault(option, [])
        runs.append((options, rest[0], rest[1:]))
    return runs


def test_docs_record_the_image_built_and_run_here():
    """docs/docker.md no longer says the image was never built: it records benchmarks/docker_check.sh's output,
    with the docker tests passed, and the local base's build line."""
    text = DOCS.read_text()
    assert "has not been built" not in text and "docker/local-base.sh" in text
    records = [block for block in re.findall(r"```text\n(.*?)```", text, re.S) if "== machine" in block]
    assert len(records) == 1, "docs/docker.md holds no record of benchmarks/docker_check.sh"
    record = records[0]
    for wanted in ("$ docker/local-base.sh", "$ docker build --no-cache -q --network host --build-arg "
                   "BASE=hallucinate-base:local -t hallucinate .", "image hallucinate: ", "== total: "):
        assert wanted in record, f"the record lacks {wanted!r}"
    assert re.search(r"\b(\d+) passed\b", record) and not re.search(r"\b\d+ (failed|error|skipped)", record)


def test_docs_build_the_image_the_run_lines_use():
    builds = [words for words in _commands(DOCS.read_text()) if words[:2] == ["docker", "build"]]
    assert builds and all(words[-1] == "." for words in builds)
    (tag,) = {words[words.index("-t") + 1] for words in builds}
    assert ["docker", "build", "-t", tag, "."] in builds  # the plain build, on the official base
    assert any("BASE=hallucinate-base:local" in words for words in builds)  # and the one on the local stand-in
    runs = _docker_runs()
    assert len(runs) >= 5 and {image for _, image, _ in runs} == {tag}
    arguments = [args for _, _, args in runs]
    for wanted in (["run", "pipelines/omniglot_protonet_gan.py"], ["run", "pipelines/omniglot_protonet_gan.py",
                                                                     "--resume"], ["eval"]):
        assert any(args[:len(wanted)] == wanted for args in arguments), f"no docker run line for {wanted}"
    assert any("--gpus" in options for options, _, _ in runs)


def test_docs_mount_only_the_images_volumes(dockerfile):
    volumes = set(json.loads(_all(dockerfile, "VOLUME")[-1]))
    for options, _, args in _docker_runs():
        mounts = [volume.split(":") for volume in options.get("-v", []) + options.get("--volume", [])]
        assert {mount[1] for mount in mounts} == volumes, (mounts, args)
        assert all(mount[2:] in ([], ["ro"]) and not (mount[1] == "/runs" and mount[2:]) for mount in mounts), mounts


def test_docs_commands_parse_and_name_files_that_exist():
    from hallucinate.cli import _parser

    pipelines = {path.stem for path in (REPO / "pipelines").glob("*.py")}
    for _, _, arguments in _docker_runs():
        try:
            args = _parser().parse_args(arguments)
        except SystemExit:
            pytest.fail(f"`hallucinate {' '.join(arguments)}` does not parse")
        assert args.data_root is None and args.cache_dir is None  # the image's environment says where
        if args.command == "run":
            assert (REPO / args.pipeline).is_file(), args.pipeline
            assert args.out is None or args.out.startswith(("runs/", "/runs/"))
        if args.command == "eval":
            path = Path(args.checkpoint)
            if path.parts[0] == "runs":  # written by a documented run of that pipeline
                assert path.parts[1] in pipelines and path.name == "checkpoint.pt", path
            else:
                assert path.parts[0] == "checkpoints" and (REPO / path).is_file(), path
