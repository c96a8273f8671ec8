"""benchmarks/scaling.py --quick: every series measured at its points, and the files it writes."""
import json
import os
import subprocess
import sys
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
# The --quick sweeps: the swept values of each series.
QUICK = {("n_way", "protonet"): [5, 10], ("n_way", "protonet+gan"): [5, 10],
         ("k_shot", "protonet"): [1, 2], ("k_shot", "protonet+gan"): [1, 2],
         ("n_synthetic", "protonet+gan"): [0, 10, 100],
         ("episodes", "protonet"): [10, 30], ("episodes", "protonet+gan"): [10, 30]}


def test_quick_run_measures_every_series_and_writes_the_json_and_the_plot(tmp_path):
    out, figure = tmp_path / "scaling.json", tmp_path / "scaling.png"
    done = subprocess.run([sys.executable, "benchmarks/scaling.py", "--quick", "--device", "cpu", "--out", str(out),
                           "--plot", str(figure)], cwd=ROOT, capture_output=True, text=True,
                          env={**os.environ, "OMP_NUM_THREADS": "1"})
    assert done.returncode == 0, done.stderr

    result = json.loads(out.read_text())
    measured = {}
    for row in result["points"]:
        measured.setdefault((row["sweep"], row["series"]), []).append(row[row["sweep"]])
    assert measured == QUICK
    for row in result["points"]:
        assert row["seconds" if row["sweep"] == "episodes" else "ms_per_step"] > 0, row
    assert result["bank"]["seconds"] > 0
    assert set(result["growth"]) == {"n_way", "k_shot", "n_synthetic", "episodes"}

    synthetic = {row["n_synthetic"]: row["saved_bytes"] for row in result["points"] if row["sweep"] == "n_synthetic"}
    assert synthetic[100] > synthetic[0] > 0
    plain_default, = [row["saved_bytes"] for row in result["points"]
                      if (row["sweep"], row["series"], row["k_shot"]) == ("k_shot", "protonet", 1)]
    assert synthetic[0] == plain_default  # M = 0: the plain step, the GAN's weights unused

    assert figure.read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    summary = json.loads(done.stdout.strip().splitlines()[-1])
    assert summary["out"] == str(out) and summary["plot"] == str(figure)
