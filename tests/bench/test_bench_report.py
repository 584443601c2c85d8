"""Benchmark sections' provenance: the CPU a figure was measured on."""

from bench.report import cpu
from trainers.precision import compute_dtype


def test_the_cpu_line_names_bfloat16_instructions_exactly_where_training_uses_them() -> None:
    line = cpu()
    assert line.split(",")[0].strip()  # a model name
    assert ("no bfloat16 instructions" not in line) == (compute_dtype("auto") == compute_dtype("bfloat16"))
