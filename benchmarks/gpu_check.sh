#!/usr/bin/env bash
# The CUDA path, checked on a machine with a GPU. Nothing in it has run on a GPU yet: it was written on a machine
# without one, where its tests are skipped.
#
#     HALLUCINATE_DATA=/path/to/data bash benchmarks/gpu_check.sh
#
# Settings from the environment: HALLUCINATE_DATA (the data folder, with omniglot/ as the README's Data section
# says), HALLUCINATE_CACHE (where the LMDB store goes, for the tests too; default ~/.cache/hallucinate), PYTHON
# (default python3), CUDA_EPISODES (default 600) and CPU_EPISODES (default 60). It stops at once without CUDA.
#
# What it does, in order (about 4-5 minutes on one H200 with 16 CPU cores, by estimate; each part has a time limit
# so the whole stays under about 9 minutes even if the store has to be built and a part hangs):
# 1. Prints the machine (nvidia-smi -L, CPU model and count, torch and its CUDA, bf16 support).
# 2. `hallucinate ingest omniglot`: builds the Omniglot store unless a current one exists (the first use of a cache
#    reads the two official zips once, about a minute).
# 3. `pytest -m gpu tests/test_gpu.py`: a short CUDA training run and evaluation against the CPU's; every
#    episodically trained learner with each learned hallucinator trained for 3 steps under
#    torch.cuda.set_sync_debug_mode("error") (any host-device sync in a step fails it); the prefetched episodes equal
#    to the loader's bit for bit.
# 4. The same short training of pipelines/omniglot_protonet_gan.py (60-way 1-shot 5-query, Conv-4, ProtoNet, GAN)
#    with --device cuda, then with --device cpu (all CPU cores), each with the pipeline's other settings (precision
#    "auto": bf16 where supported; one loader worker). The rate is the loop's own episodes_per_s from
#    metrics.jsonl, which leaves out validation and checkpointing, over every log interval but the first (cuDNN's
#    autotuning, the loader worker's start): their episodes over their time. The wall time includes the start and
#    one validation of 50 20-way 1-shot episodes at the end.
#
# Each command is printed before it runs, with its wall time after it; the last line is one JSON object with the
# test result and the two rates (null where a run wrote fewer than two log intervals).
set -uo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
CUDA_EPISODES=${CUDA_EPISODES:-600}
CPU_EPISODES=${CPU_EPISODES:-60}
export PYTHONPATH="$PWD${PYTHONPATH:+:$PYTHONPATH}"
export HALLUCINATE_CACHE=${HALLUCINATE_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hallucinate}  # else the tests ingest anew
OUT=$(mktemp -d -t hallucinate_gpu_check.XXXXXX)
START=$SECONDS

timed() {  # timed LIMIT_S COMMAND...: print the command, run it under a time limit, print its wall time
    local limit=$1 began=$SECONDS status
    shift
    echo "command: $*"
    timeout "$limit" "$@"
    status=$?
    echo "wall time: $((SECONDS - began)) s (exit $status$([ $status = 124 ] && echo ", stopped at its ${limit} s limit"))"
    return $status
}

rate() {  # rate METRICS_JSONL: episodes/s over the log intervals after the first
    "$PYTHON" - "$1" <<'EOF'
import json, sys
rows = [json.loads(line) for line in open(sys.argv[1]) if '"episodes_per_s"' in line]
episodes = [row["episode"] - previous for row, previous in zip(rows, [0] + [r["episode"] for r in rows])][1:]
seconds = [n / row["episodes_per_s"] for n, row in zip(episodes, rows[1:])]
print(f"{sum(episodes) / sum(seconds):.2f}" if seconds else "null")
EOF
}

echo "command: $0 $*"
echo "machine: $(nvidia-smi -L 2>&1 | tr '\n' ';') CPU $(lscpu | sed -n 's/^Model name: *//p'), $(nproc --all) cores"
"$PYTHON" -c 'import sys, torch
print(f"python {sys.version.split()[0]}, torch {torch.__version__}, CUDA {torch.version.cuda}, "
      f"torch.get_num_threads()={torch.get_num_threads()}")
if not torch.cuda.is_available():
    sys.exit("CUDA is not available to torch here: this check is for a machine with a GPU")
from hallucinate.device import bf16_supported
bf16 = bf16_supported(torch.device("cuda"))
print(f"GPU {torch.cuda.get_device_name()}, compute capability {torch.cuda.get_device_capability()}, "
      f"bf16 autocast with precision=auto: {bf16}, cuDNN {torch.backends.cudnn.version()}")' \
    || exit 1
echo "data: ${HALLUCINATE_DATA:-./data}; store cache: $HALLUCINATE_CACHE; output folder: $OUT"

timed 300 "$PYTHON" -m hallucinate.cli ingest omniglot

if timed 240 "$PYTHON" -m pytest -q -rs -m gpu -p no:cacheprovider tests/test_gpu.py; then tests=passed; else tests=failed; fi

declare -A rates
for device in cuda cpu; do
    episodes=$CUDA_EPISODES log_every=100 limit=150
    [ $device = cpu ] && episodes=$CPU_EPISODES log_every=20 limit=120
    timed $limit "$PYTHON" -m hallucinate.cli run pipelines/omniglot_protonet_gan.py --device $device \
        --out "$OUT/$device" --no-progress --set episodes=$episodes --set log_every=$log_every \
        --set val_every=100000 --set val_episodes=50 --set checkpoint_every=100000
    rates[$device]=$(rate "$OUT/$device/metrics.jsonl" 2>/dev/null || echo null)
    echo "$device: ${rates[$device]} episodes/s (60-way 1-shot 5-query, $episodes episodes, log every $log_every)"
done

echo "total wall time: $((SECONDS - START)) s"
echo "{\"gpu_tests\": \"$tests\", \"cuda_episodes_per_s\": ${rates[cuda]}, \"cpu_episodes_per_s\": ${rates[cpu]}}"
