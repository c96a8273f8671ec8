#!/usr/bin/env bash
# Build hallucinate-base:local, a local stand-in for the Dockerfile's default base image (the official PyTorch CUDA
# runtime image), for a machine that reaches no image registry but does reach Debian's package mirrors and PyPI.
#
# What it builds, in three steps:
#   1. `debootstrap` of Debian bookworm (minbase, with python3 3.11, python3-venv and ca-certificates), made an image
#      with `docker import`: hallucinate-base:bookworm (about 170 MB);
#   2. `pip download torch==2.14.1 torchvision==0.29.1` on the host: the wheels the host's pip resolves (with their
#      dependencies: the CUDA build of torch from PyPI and its nvidia-* libraries, about 2.9 GB of wheels), so the
#      host must run Python 3.11, bookworm's python3;
#   3. a container of hallucinate-base:bookworm installs those wheels, mounted read-only, with no index, into a venv
#      at /opt/venv (on PATH, as /opt/conda is in the official image); `docker commit` makes it
#      hallucinate-base:local (about 5.8 GB). The host's CA bundle replaces the image's, and PIP_CERT points at it:
#      where the way out passes through a proxy with its own CA (as on the machine this was written on), pip in
#      `docker build` needs it. A bundle with no extra CA in it is Debian's own, and changes nothing.
#
# Then, from the repository root (--network host: with `dockerd --iptables=false` the default bridge network has no
# way out, so pip in the build could not reach PyPI):
#   docker build --network host --build-arg BASE=hallucinate-base:local -t hallucinate .
#
# Usage: docker/local-base.sh [--if-missing]   (--if-missing: do nothing when the image already exists)
# Environment: BASE_TAG (default hallucinate-base:local), DEBIAN_MIRROR (default http://deb.debian.org/debian),
#   PYTHON (the host's Python 3.11, default python3), HOST_CA (default /etc/ssl/certs/ca-certificates.crt),
#   TMPDIR (where the bookworm tree and the wheels are put while building; removed at the end; ~3.5 GB).
# Needs root (debootstrap), debootstrap, a Docker engine, and network access to the mirror and to PyPI.
set -euo pipefail

BASE_TAG="${BASE_TAG:-hallucinate-base:local}"
BOOKWORM_TAG="${BASE_TAG%%:*}:bookworm"
DEBIAN_MIRROR="${DEBIAN_MIRROR:-http://deb.debian.org/debian}"
PYTHON="${PYTHON:-python3}"
HOST_CA="${HOST_CA:-/etc/ssl/certs/ca-certificates.crt}"
TORCH="torch==2.14.1"
TORCHVISION="torchvision==0.29.1"

die() { echo "docker/local-base.sh: error: $*" >&2; exit 1; }
step() { echo "docker/local-base.sh: $* ($(date -u +%H:%M:%S))"; }

if [[ "${1:-}" == "--if-missing" ]]; then
    if docker image inspect "$BASE_TAG" >/dev/null 2>&1; then
        step "$BASE_TAG exists; nothing to do"
        exit 0
    fi
elif [[ $# -gt 0 ]]; then
    die "unknown argument $1 (usage: docker/local-base.sh [--if-missing])"
fi

[[ "$(id -u)" == 0 ]] || die "debootstrap needs root; run this as root (or with sudo)"
command -v debootstrap >/dev/null || die "debootstrap is not installed (apt-get install -y debootstrap)"
command -v docker >/dev/null || die "docker is not installed (apt-get install -y docker.io)"
timeout 20 docker info >/dev/null 2>&1 || die "no Docker engine answers (start one: dockerd --iptables=false &)"
host_python="$("$PYTHON" -c 'import sys; print("%d.%d" % sys.version_info[:2])')" \
    || die "$PYTHON does not run; set PYTHON to a Python 3.11"
[[ "$host_python" == 3.11 ]] || die "$PYTHON is Python $host_python; the wheels must be for bookworm's Python 3.11: set PYTHON"
[[ -f "$HOST_CA" ]] || die "no CA bundle at $HOST_CA (set HOST_CA)"

work="$(mktemp -d "${TMPDIR:-/tmp}/hallucinate-base.XXXXXX")"
builder="hallucinate-base-builder-$$"
cleanup() {
    docker rm -f "$builder" >/dev/null 2>&1 || true
    rm -rf "$work"
}
trap cleanup EXIT

step "1/3 debootstrap Debian bookworm from $DEBIAN_MIRROR into $work/rootfs"
timeout 1200 debootstrap --variant=minbase --include=python3,python3-venv,ca-certificates \
    bookworm "$work/rootfs" "$DEBIAN_MIRROR" > "$work/debootstrap.log" 2>&1 \
    || { tail -20 "$work/debootstrap.log" >&2; die "debootstrap failed (log above)"; }
rm -rf "$work"/rootfs/var/cache/apt/archives/*.deb "$work"/rootfs/var/lib/apt/lists/*
tar -C "$work/rootfs" -c . | timeout 600 docker import \
    -c 'CMD ["/bin/bash"]' -m "debootstrap --variant=minbase bookworm (docker/local-base.sh)" - "$BOOKWORM_TAG" \
    >/dev/null || die "docker import of the bookworm tree failed"
rm -rf "$work/rootfs"

step "2/3 pip download $TORCH $TORCHVISION (the wheels this host's pip resolves, for Python $host_python)"
timeout 1800 "$PYTHON" -m pip download -q --disable-pip-version-check --only-binary=:all: \
    "$TORCH" "$TORCHVISION" -d "$work/wheels" 2> >(grep -v "is ignored: it is neither a file nor a directory" >&2) \
    || die "pip download of $TORCH $TORCHVISION failed"
echo "  $(ls "$work/wheels" | wc -l) wheels, $(du -sh "$work/wheels" | cut -f1)"

step "3/3 install them into /opt/venv of $BOOKWORM_TAG, then docker commit $BASE_TAG"
timeout 1800 docker run --name "$builder" --network none \
    -v "$work/wheels:/wheels:ro" -v "$HOST_CA:/tmp/host-ca.crt:ro" "$BOOKWORM_TAG" sh -euc "
        python3 -m venv /opt/venv
        /opt/venv/bin/pip install -q --no-index --no-cache-dir --disable-pip-version-check --find-links /wheels \
            $TORCH $TORCHVISION
        find /opt/venv -name __pycache__ -prune -exec rm -rf {} +
        cp /tmp/host-ca.crt /etc/ssl/certs/ca-certificates.crt
        /opt/venv/bin/python -c 'import torch, torchvision; print(\"  torch\", torch.__version__, \"torchvision\", torchvision.__version__)'
    " || die "installing the wheels into the bookworm image failed"
timeout 900 docker commit \
    -c 'ENV PATH=/opt/venv/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin' \
    -c 'ENV PIP_CERT=/etc/ssl/certs/ca-certificates.crt' \
    -c 'WORKDIR /workspace' \
    -c 'CMD ["/bin/bash"]' \
    -c 'LABEL org.opencontainers.image.description="hallucinate-base:local: a stand-in for pytorch/pytorch:2.14.1-cuda12.6-cudnn9-runtime built by docker/local-base.sh (Debian bookworm, Python 3.11, torch 2.14.1 from PyPI in /opt/venv)"' \
    -m "docker/local-base.sh: torch and torchvision from PyPI in /opt/venv" \
    "$builder" "$BASE_TAG" >/dev/null || die "docker commit failed"
step "built $BASE_TAG ($(docker image inspect -f '{{.Size}}' "$BASE_TAG" | awk '{printf "%.2f GB", $1 / 1e9}'))"
echo "Next: docker build --network host --build-arg BASE=$BASE_TAG -t hallucinate ."
