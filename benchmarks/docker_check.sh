#!/usr/bin/env bash
# The Docker check recorded in docs/docker.md: on a machine with a Docker engine (docker/ci-setup.sh starts one on
# Debian), build the local base image (docker/local-base.sh), build the image from it with no cache, and run the
# tests marked `docker`, printing the machine, each command and its time.
#   benchmarks/docker_check.sh            # everything from scratch (the base too: ~6 minutes of it)
#   REUSE_BASE=1 benchmarks/docker_check.sh   # keep an existing hallucinate-base:local
# HALLUCINATE_DATA: the data sets (default ../shared/data, as in CI); PYTHON: the host's Python 3.11 with the
# project installed (default python).
set -euo pipefail
cd "$(dirname "$0")/.."
export HALLUCINATE_DATA="${HALLUCINATE_DATA:-../shared/data}"
PYTHON="${PYTHON:-python}"
started=$SECONDS

timed() {  # timed COMMAND...: print it, run it, print how long it took; stop on failure
    echo
    echo "\$ $*"
    local t0=$SECONDS
    "$@" || { echo "benchmarks/docker_check.sh: error: \`$*\` failed after $((SECONDS - t0)) s" >&2; exit 1; }
    echo "--> $((SECONDS - t0)) s"
}

echo "== machine"
echo "$(date -u '+%Y-%m-%d %H:%M UTC'); $(uname -sr); $(nproc) CPU cores ($(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs)); $(free -g | awk '/Mem:/ {print $2}') GiB memory"
echo "load average: $(cut -d' ' -f1-3 /proc/loadavg) (other jobs share these cores)"
echo "$(. /etc/os-release && echo "$PRETTY_NAME"); docker: client $(docker version --format '{{.Client.Version}}'), engine $(docker version --format '{{.Server.Version}}'), storage driver $(docker info --format '{{.Driver}}')"
echo "git: $(git rev-parse --short HEAD 2>/dev/null || echo none)$(git diff --quiet HEAD 2>/dev/null || echo ' + working tree changes')"

echo
echo "== the local base image (docker/local-base.sh)"
if [[ "${REUSE_BASE:-0}" == 1 ]]; then
    timed docker/local-base.sh --if-missing
else
    timed docker/local-base.sh
fi

echo
echo "== the image"
timed docker build --no-cache -q --network host --build-arg BASE=hallucinate-base:local -t hallucinate .
echo "image hallucinate: $(docker image inspect -f '{{.Size}}' hallucinate | awk '{printf "%.2f GB", $1 / 1e9}'), on hallucinate-base:local $(docker image inspect -f '{{.Size}}' hallucinate-base:local | awk '{printf "%.2f GB", $1 / 1e9}')"
echo "its layers (docker history; the last is the docker import of the bookworm tree):"
docker history --no-trunc --format '{{.Size}}{{"\t"}}{{json .CreatedBy}}' hallucinate | awk -F'\t' '$1 != "0B" {
    s = $2; gsub(/\\n/, " ", s); gsub(/^"|"$/, "", s); gsub(/\/bin\/sh -c (#\(nop\) +)?/, "", s)
    gsub(/(dir|multi|file):[0-9a-f]+ in /, "", s); gsub(/ +/, " ", s); printf "  %8s  %.100s\n", $1, s}'

echo
echo "== the tests marked docker (tests/test_docker_engine.py), HALLUCINATE_DATA=$HALLUCINATE_DATA"
timed "$PYTHON" -m pytest -q -s -p no:cacheprovider -m docker tests/test_docker_engine.py

echo
echo "== total: $((SECONDS - started)) s"
