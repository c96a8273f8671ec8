#!/usr/bin/env bash
# CI (.ci/run calls this): a Docker engine and the local base image, so that the tests marked `docker`
# (tests/test_docker_engine.py) run in CI instead of skipping. On a clean Debian bookworm machine, as root:
#   1. apt-get install docker.io debootstrap (skipped when dockerd and debootstrap are there);
#   2. dockerd --iptables=false in the background (skipped when `docker info` already answers), waiting until
#      `docker info` answers; its log is $DOCKERD_LOG (default /tmp/dockerd.log) and it is left running;
#   3. docker/local-base.sh --if-missing: hallucinate-base:local, the stand-in for the official PyTorch image
#      (no image registry is reachable from CI).
# Every step has a time limit and stops CI with a message saying which step failed; none waits for ever.
set -euo pipefail
cd "$(dirname "$0")/.."
DOCKERD_LOG="${DOCKERD_LOG:-/tmp/dockerd.log}"
started=$SECONDS

die() { echo "docker/ci-setup.sh: error: $*" >&2; exit 1; }
step() { echo "docker/ci-setup.sh: $* (at $((SECONDS - started)) s)"; }

if ! command -v dockerd >/dev/null || ! command -v debootstrap >/dev/null; then
    [[ "$(id -u)" == 0 ]] || die "installing docker.io and debootstrap needs root (or set HALLUCINATE_CI_DOCKER=0)"
    step "apt-get install -y docker.io debootstrap"
    export DEBIAN_FRONTEND=noninteractive
    timeout 600 apt-get update -q > /tmp/ci-apt-update.log 2>&1 \
        || { tail -20 /tmp/ci-apt-update.log >&2; die "apt-get update failed or took over 600 s"; }
    timeout 900 apt-get install -y -q docker.io debootstrap > /tmp/ci-apt-install.log 2>&1 \
        || { tail -20 /tmp/ci-apt-install.log >&2; die "apt-get install docker.io debootstrap failed or took over 900 s"; }
fi

if timeout 20 docker info >/dev/null 2>&1; then
    step "a Docker engine already answers"
else
    step "starting dockerd --iptables=false (log: $DOCKERD_LOG)"
    nohup dockerd --iptables=false > "$DOCKERD_LOG" 2>&1 &
    dockerd_pid=$!
    for _ in $(seq 60); do
        timeout 10 docker info >/dev/null 2>&1 && break
        kill -0 "$dockerd_pid" 2>/dev/null || { tail -20 "$DOCKERD_LOG" >&2; die "dockerd exited (log above)"; }
        sleep 1
    done
    timeout 10 docker info >/dev/null 2>&1 || { tail -20 "$DOCKERD_LOG" >&2; die "dockerd did not answer within 60 s"; }
fi
step "engine: $(docker info --format '{{.ServerVersion}}, storage driver {{.Driver}}')"

timeout 2400 docker/local-base.sh --if-missing || die "docker/local-base.sh failed or took over 2400 s"
step "done"
