"""docs/benchmarks.md is assembled from sections; each benchmark rewrites only its own."""

import os
import platform
import re
from datetime import date
from pathlib import Path

REPORT = Path(__file__).resolve().parents[1] / "docs" / "benchmarks.md"
HEADER = """# Benchmarks

Each section names the command that produced it. `make bench` (`python -m bench`) reruns them all.
"""


def machine() -> str:
    """Where a benchmark ran, for its section's first line."""
    python = platform.python_version()
    return f"{date.today()}, {platform.machine()}, {os.cpu_count()} cores, Python {python}, no GPU"


def cpu() -> str:
    """The CPU's model name and its bfloat16 instructions, if any (from /proc/cpuinfo on Linux).

    Speeds on a CPU depend on them: the trainer's automatic precision is bfloat16 autocast only
    where they exist (`trainers/precision.py`), and without them bfloat16 products are several
    times slower than float32 ("vLLM on a CPU" in docs/benchmarks.md).
    """
    from trainers.precision import cpu_bf16_instructions  # torch: only for the sections that ask

    info = Path("/proc/cpuinfo")
    lines = info.read_text().splitlines() if info.exists() else []
    name = next((line.split(":", 1)[1].strip() for line in lines if line.startswith("model name")), "")
    native = cpu_bf16_instructions()
    return f"{name or platform.processor() or 'unknown CPU'}, " + (
        f"with {', '.join(native)}" if native else "no bfloat16 instructions"
    )


def write_section(name: str, markdown: str) -> None:
    """Replace (or append) the section `name` of docs/benchmarks.md with `markdown`."""
    text = REPORT.read_text() if REPORT.exists() else HEADER
    block = f"<!-- bench:{name} -->\n{markdown.strip()}\n<!-- /bench:{name} -->"
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else f"{text.rstrip()}\n\n{block}\n"
    REPORT.write_text(text)
