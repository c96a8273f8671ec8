"""Where a relation-network training step spends its time on the CPU: the Conv-4 backbone against the relation
module, with the module in float32 (as the library ran it before it joined the backbone's autocast) and under bf16
autocast (as the library runs it now, with the backbone, at precision "auto" or "bf16").

    python benchmarks/relation_profile.py [--steps 8] [--rounds 3]

One training step of `pipelines/omniglot_relation.py`'s model on a 20-way 1-shot 5-query episode of random 28x28
images (speed does not depend on the pixels or the weights), the backbone under bf16 autocast and channels_last as
the training loop runs it. After one untimed round, the three measurements are alternated `--rounds` times, each
timed over `--steps` steps after two warm-up steps, so that a change in machine load hits all of them.
"""
import argparse
import statistics
import time

import torch

from hallucinate.model import build_classifier
from hallucinate.pipeline import load_pipeline
from run_header import print_run_header

N_WAY, K_SHOT, Q_QUERY = 20, 1, 5


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=3)
    args = parser.parse_args()
    start = print_run_header()
    torch.manual_seed(0)
    model = build_classifier(load_pipeline("pipelines/omniglot_relation.py").CONFIG).train()
    images = torch.randn(N_WAY * (K_SHOT + Q_QUERY), 1, 28, 28).contiguous(memory_format=torch.channels_last)
    support_labels = torch.arange(N_WAY).repeat_interleave(K_SHOT)
    query_labels = torch.arange(N_WAY).repeat_interleave(Q_QUERY)

    def backbone_step() -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            features = model.embed(images).float()
        features.sum().backward()

    def training_step(relation_in_bf16: bool) -> None:
        with torch.autocast("cpu", dtype=torch.bfloat16):
            features = model.embed(images).float()
        support, query = features[:N_WAY * K_SHOT], features[N_WAY * K_SHOT:]
        model.learner.precision = "bf16" if relation_in_bf16 else "fp32"
        scores = model.learner(support, support_labels, query, n_way=N_WAY)
        model.learner.loss(scores.float(), query_labels).backward()

    def milliseconds(step, *arguments) -> float:
        for _ in range(2):
            step(*arguments)
        began = time.perf_counter()
        for _ in range(args.steps):
            step(*arguments)
        return (time.perf_counter() - began) / args.steps * 1000

    times = {"backbone alone": [], "step, relation module float32": [], "step, relation module bf16": []}
    for step, *arguments in ((backbone_step,), (training_step, False), (training_step, True)):
        milliseconds(step, *arguments)  # the first calls build the kernels: one untimed round
    for _ in range(args.rounds):
        times["backbone alone"].append(milliseconds(backbone_step))
        times["step, relation module float32"].append(milliseconds(training_step, False))
        times["step, relation module bf16"].append(milliseconds(training_step, True))
    median = {name: statistics.median(values) for name, values in times.items()}
    print(f"\n{N_WAY}-way {K_SHOT}-shot {Q_QUERY}-query training step, forward and backward, median of {args.rounds} "
          f"rounds of {args.steps} steps:")
    for name, value in median.items():
        print(f"  {name}: {value:.0f} ms  (rounds: {', '.join(f'{v:.0f}' for v in times[name])})")
    float32 = median["step, relation module float32"]
    print(f"the relation module's share of a float32 step: {1 - median['backbone alone'] / float32:.0%}; "
          f"bf16 relation module: {float32 / median['step, relation module bf16']:.2f}x the float32 step's speed")
    print(f"wall time {time.perf_counter() - start:.1f} s")


if __name__ == "__main__":
    main()
