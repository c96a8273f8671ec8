"""The table scripts that read shipped files only: learners_table.py --merge and budget_table.py."""
import json
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def run_script(*arguments: str) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, *arguments], cwd=ROOT, capture_output=True, text=True)


def test_budget_table_reads_the_relation_networks_curve_and_scales_the_reference_recipe():
    done = run_script("benchmarks/budget_table.py", "--dataset", "cifar_fs",
                      "--results", "docs/cifar_fs_learners_relation.json")
    assert done.returncode == 0, done.stderr
    relation, = [line for line in done.stdout.splitlines() if line.startswith("| relation |")]
    # 3000 episodes trained against the reference 500,000; validation 31.2% at 1500 -> 34.4% at 3000
    assert "3,000 (5-way 1-shot 15-query)" in relation
    assert "(167× this run)" in relation
    assert "+3.2 (from episode 1,500)" in relation
    assert "5w1s 42.0 vs 55.0 (-13.0)" in relation
    # no results were given for the other learners: each of them is said to be not evaluated, not left out
    protonet, = [line for line in done.stdout.splitlines() if line.startswith("| protonet |")]
    assert "5w1s: not evaluated" in protonet


def test_merge_refuses_runs_with_other_seeds(tmp_path):
    run = json.loads((ROOT / "docs/cifar_fs_learners_relation.json").read_text())
    run["seed"] = 1
    other = tmp_path / "other_seed.json"
    other.write_text(json.dumps(run))
    done = run_script("benchmarks/learners_table.py", "--dataset", "cifar_fs",
                      "--merge", "docs/cifar_fs_learners_relation.json", str(other))
    assert done.returncode == 2
    assert "different episode counts or seeds" in done.stderr


def test_merge_prints_a_file_from_before_the_two_stage_gan_in_the_noise_gan_columns():
    run = json.loads((ROOT / "docs/cifar_fs_learners_relation.json").read_text())
    assert "two_stage_gan" not in run
    done = run_script("benchmarks/learners_table.py", "--dataset", "cifar_fs",
                      "--merge", "docs/cifar_fs_learners_relation.json")
    assert done.returncode == 0, done.stderr
    row, = [r for r in run["rows"] if (r["n_way"], r["k_shot"]) == (5, 1)]
    line, = [line for line in done.stdout.splitlines() if line.startswith("| relation | 5-way 1-shot |")]
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    # two-stage off, on, on - off, on - plain: not in that file; then the noise GAN's on, on - off, on - plain
    assert cells[4:8] == ["not measured", "not measured", "—", "—"]
    assert cells[8] == f"{row['on']['accuracy']:.2f} ± {row['on']['ci95']:.2f}"
    assert cells[9] == f"{row['gain_on_minus_off'][0]:+.2f} ± {row['gain_on_minus_off'][1]:.2f}"


def test_merge_takes_each_cells_columns_from_every_file_that_measured_them(tmp_path):
    """A two-stage run made with --no-noise and an earlier file's noise GAN arms, same episodes: one row with both."""
    old = json.loads((ROOT / "docs/cifar_fs_learners_relation.json").read_text())
    row, = [r for r in old["rows"] if (r["n_way"], r["k_shot"]) == (5, 1)]
    two_stage = {"learner": "relation", "n_way": 5, "k_shot": 1, "missing": [], "plain": row["plain"],
                 "off": {"accuracy": 50.0, "ci95": 0.5}, "on": {"accuracy": 51.0, "ci95": 0.5},
                 "gain_on_minus_off": [1.0, 0.25], "gain_on_minus_plain": [2.0, 0.3]}
    new = tmp_path / "two_stage.json"
    new.write_text(json.dumps({"command": "test", "episodes": old["episodes"], "seed": old["seed"],
                               "two_stage_gan": True, "rows": [two_stage]}))
    done = run_script("benchmarks/learners_table.py", "--dataset", "cifar_fs",
                      "--merge", "docs/cifar_fs_learners_relation.json", str(new))
    assert done.returncode == 0, done.stderr
    assert "relation 5-way 1-shot: plain from" in done.stdout  # measured twice: said so
    line, = [line for line in done.stdout.splitlines() if line.startswith("| relation | 5-way 1-shot |")]
    cells = [cell.strip() for cell in line.strip("|").split("|")]
    assert cells[4:8] == ["50.00 ± 0.50", "51.00 ± 0.50", "+1.00 ± 0.25", "+2.00 ± 0.30"]
    assert cells[8] == f"{row['on']['accuracy']:.2f} ± {row['on']['ci95']:.2f}"
    assert cells[9] == f"{row['gain_on_minus_off'][0]:+.2f} ± {row['gain_on_minus_off'][1]:.2f}"
