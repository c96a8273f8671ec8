# hallucinate as a `docker run` training job. Data sets are mounted read-only at /data; runs (checkpoints, metrics)
# and the LMDB stores and feature banks are written under the mounted /runs. docs/docker.md has the commands and
# what was measured.
#
# BASE: an image with Python, pip and torch (2.2 to 2.14, setup.py's range) on PATH, run as root. The default is the
# official PyTorch CUDA runtime image. Where no image registry is reachable, docker/local-base.sh builds a stand-in
# from Debian's packages and PyPI's wheels: docker build --network host --build-arg BASE=hallucinate-base:local .
ARG BASE=pytorch/pytorch:2.14.1-cuda12.6-cudnn9-runtime
FROM ${BASE}

ENV PYTHONDONTWRITEBYTECODE=1 \
    PYTHONUNBUFFERED=1 \
    PIP_NO_CACHE_DIR=1 \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    NO_ALBUMENTATIONS_UPDATE=1

# The package alone first, so editing a pipeline does not reinstall it. torch comes with the base image;
# setup.py accepts it (torch>=2.2,<2.15).
WORKDIR /tmp/hallucinate-src
COPY setup.py README.md ./
COPY hallucinate ./hallucinate
RUN pip install . && rm -rf /tmp/hallucinate-src

# A non-root user (uid 10001: Ubuntu 24.04 images already have a uid 1000); /workspace/runs is /runs, so the CLI's
# default `runs/<pipeline>` lands on the mounted volume.
RUN useradd --create-home --uid 10001 --user-group --shell /bin/bash hallucinate \
    && mkdir -p /data /runs /workspace \
    && chown hallucinate:hallucinate /runs \
    && ln -s /runs /workspace/runs
WORKDIR /workspace
COPY pipelines ./pipelines
COPY checkpoints ./checkpoints

ENV HALLUCINATE_DATA=/data \
    HALLUCINATE_CACHE=/runs/.cache
VOLUME ["/data", "/runs"]
USER hallucinate
ENTRYPOINT ["hallucinate"]
CMD ["--help"]
