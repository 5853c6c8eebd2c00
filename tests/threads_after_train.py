"""Run by test_distributed under torchrun: `mnist-train`'s body, then the names of the threads it left,
written to `rank<N>.threads` in the folder named by the first argument (not stdout, which both ranks
share: their lines could run together)."""
import os
import sys
from pathlib import Path

from mnist_nbdev.cli import train_main

code = train_main(sys.argv[2:])
names = sorted(open(f"/proc/self/task/{t}/comm").read().strip() for t in os.listdir("/proc/self/task"))
(Path(sys.argv[1]) / f"rank{os.environ['RANK']}.threads").write_text(",".join(names))
sys.exit(code)
