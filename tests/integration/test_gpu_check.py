"""scripts/gpu_check.sh, the one command that checks training on CUDA, as a person runs it:
on a machine without a GPU it runs its CPU mode, says so, and passes."""

import subprocess
from pathlib import Path

import torch

ROOT = Path(__file__).resolve().parents[2]


def test_gpu_check_runs_and_says_which_mode():
    done = subprocess.run(["bash", str(ROOT / "scripts" / "gpu_check.sh")], capture_output=True, text=True, timeout=280)
    out = done.stdout
    mode = "CUDA" if torch.cuda.is_available() else "CPU"
    assert done.returncode == 0, out + done.stderr
    assert out.startswith(f"{mode} mode") and out.rstrip().endswith(f"gpu check passed ({mode} mode)"), out
    device = "cuda" if mode == "CUDA" else "cpu"
    for part in ("built-in trainer", "seed SimpleTrainer"):
        line = next(line for line in out.splitlines() if line.startswith(part))
        assert line.endswith(": ok") and f"'{device}" in line, line
