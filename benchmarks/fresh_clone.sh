#!/usr/bin/env bash
# README.md's "Two commands" run as a newcomer runs them, and timed: a fresh clone of this checkout's HEAD, a fresh
# virtual environment, ./data linked to DATA, HALLUCINATE_DATA unset, an empty cache folder (HALLUCINATE_CACHE, as
# ~/.cache/hallucinate is on a new machine). Each step of the first command (the venv, the
# install, the main job) and the test command are timed on their own. pip's download cache is the machine's own.
#
#   benchmarks/fresh_clone.sh DATA [WORKDIR]
#
# DATA holds omniglot/ and cifar_fs/ (for instance ../shared/data); WORKDIR (default: a new temporary folder) gets
# the clone. The README's commands are read from README.md itself, so this times what the README says.
set -euo pipefail
if [[ $# -lt 1 || ! -d "$1" ]]; then
    echo "usage: benchmarks/fresh_clone.sh DATA [WORKDIR]: DATA must be a folder holding omniglot/ and cifar_fs/" >&2
    exit 2
fi
data="$(cd "$1" && pwd)"
repo="$(cd "$(dirname "$0")/.." && pwd)"
work="${2:-$(mktemp -d)}"
mapfile -t commands < <(awk '/^## Two commands/ {found = 1} found && /^```bash/ {inside = 1; next}
                             inside && /^```/ {exit} inside' "$repo/README.md")
if [[ ${#commands[@]} -ne 2 ]]; then
    echo "fresh_clone.sh: error: README.md's 'Two commands' block should hold 2 commands, found ${#commands[@]}" >&2
    exit 1
fi

echo "command: benchmarks/fresh_clone.sh $*"
echo "machine: $(uname -srm); $(grep -m1 'model name' /proc/cpuinfo | cut -d: -f2 | xargs); $(nproc) CPUs;" \
     "load average $(cut -d' ' -f1 /proc/loadavg)"
echo "time: $(date -u '+%Y-%m-%d %H:%M:%S UTC')"
echo "commit: $(git -C "$repo" rev-parse --short HEAD)"

git clone -q "$repo" "$work/hallucinate"
cd "$work/hallucinate"
ln -s "$data" data
unset HALLUCINATE_DATA
export HALLUCINATE_CACHE="$work/cache"

timed() {
    local start=$SECONDS
    echo "+ $1"
    eval "$1"
    echo "time: $((SECONDS - start)) s for: $1 (load average $(cut -d' ' -f1 /proc/loadavg))"
}

# The first command's steps are chained by &&: each is timed on its own, in this one shell (the venv stays active).
first="${commands[0]}"
while [[ "$first" == *" && "* ]]; do
    timed "${first%% && *}"
    first="${first#* && }"
done
timed "$first"
timed "${commands[1]}"
echo "clone kept in $work/hallucinate"
