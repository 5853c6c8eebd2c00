"""The GPU benchmark script, checked where no GPU is lent: it runs on the CPU with --quick, and refuses CUDA cleanly."""
import subprocess
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
GPU = [sys.executable, str(ROOT / "benchmarks" / "gpu.py")]


def test_gpu_script_runs_its_variants_on_the_cpu(mnist_dir):
    result = subprocess.run([*GPU, "--device", "cpu", "--quick"], capture_output=True, text=True,
                            timeout=600, env={"MNIST_NBDEV_DATA": str(mnist_dir), "PATH": "/usr/bin:/bin"})
    assert result.returncode == 0, result.stderr[-2000:]
    rows = [line for line in result.stdout.splitlines() if line.startswith("|")]
    assert len(rows) == 2 + 3  # header, rule, three variants
    assert "bf16 autocast" in result.stdout and "not a measurement" in result.stdout
    assert not (ROOT / "benchmarks" / "gpu_results.md").exists() or "--quick" not in (
        ROOT / "benchmarks" / "gpu_results.md").read_text()  # a check never overwrites a measurement


@pytest.mark.skipif(torch.cuda.is_available(), reason="this machine has CUDA")
def test_gpu_script_without_cuda_says_so():
    result = subprocess.run(GPU, capture_output=True, text=True, timeout=120)
    assert result.returncode == 2
    assert "no CUDA device here" in result.stderr and "Traceback" not in result.stderr
