"""The lines every benchmark prints first, so that each number in README.md is traced to its command and machine."""
import os
import platform
import sys
import time
from pathlib import Path

import torch

import hallucinate


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def print_run_header(*extra: str) -> float:
    """Print the command, the machine, the time and then each of ``extra`` on its own line; return
    ``time.perf_counter()``, the caller's start time."""
    print(f"command: {' '.join([Path(sys.executable).name, *sys.argv])}")
    print(f"machine: {platform.platform()}; CPU {cpu_model()}; {os.cpu_count()} CPUs; "
          f"load average {os.getloadavg()[0]:.2f}; torch {torch.__version__} ({torch.get_num_threads()} threads); "
          f"hallucinate {hallucinate.__version__}")
    print(f"time: {time.strftime('%Y-%m-%d %H:%M:%S %Z')}")
    for line in extra:
        print(line)
    return time.perf_counter()
