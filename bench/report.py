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


def write_section(name: str, markdown: str) -> None:
    """Replace (or append) the section `name` of docs/benchmarks.md with `markdown`."""
    text = REPORT.read_text() if REPORT.exists() else HEADER
    block = f"<!-- bench:{name} -->\n{markdown.strip()}\n<!-- /bench:{name} -->"
    pattern = re.compile(rf"<!-- bench:{re.escape(name)} -->.*?<!-- /bench:{re.escape(name)} -->", re.DOTALL)
    text = pattern.sub(lambda _: block, text) if pattern.search(text) else f"{text.rstrip()}\n\n{block}\n"
    REPORT.write_text(text)
