"""The repository stands alone: no tracked file points at design or research notes kept outside it.

A comment that cites such a note sends the reader nowhere; what the code relies on is said in
`docs/`, in the project's own words. `docs/benchmarks.md` is written by `make bench` and not checked.
"""

import re
import subprocess
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
EXEMPT = {"docs/benchmarks.md"}
# The notes kept outside the repository: the design file, the research notes, the shared folder.
OUTSIDE_NOTE = re.compile(r"DESIGN\.md|\bresearch/[\w-]+\.md|\.\./shared\b")
# Spelled in pieces, so that this file does not cite them itself.
DESIGN, RESEARCH_NOTE, SHARED = "DESIGN" + ".md", "research" + "/algorithms.md", ".." + "/shared"


def test_a_pointer_to_an_outside_note_is_found() -> None:
    assert pointers(f"plain line\nsee {RESEARCH_NOTE} 3.4\n") == [f"2: see {RESEARCH_NOTE} 3.4"]
    assert pointers(f"x = 1  # {DESIGN} section 8") == [f"1: x = 1  # {DESIGN} section 8"]
    assert pointers(f"cp {SHARED}/seeds/a.txt .") == [f"1: cp {SHARED}/seeds/a.txt ."]
    assert pointers("see docs/evaluation.md, probes; research on recall") == []


def test_no_tracked_file_points_outside_the_repository() -> None:
    files = tracked_text_files()
    assert "docs/methods.md" in files  # the listing found the repository's own files
    found = {path: hits for path, text in files.items() if path not in EXEMPT and (hits := pointers(text))}
    assert found == {}, "cite a file under docs/ instead of a note outside the repository"


def pointers(text: str) -> list[str]:
    """Lines of `text` that cite a note outside the repository, as `<line number>: <line>`."""
    lines = enumerate(text.splitlines(), 1)
    return [f"{n}: {line.strip()}" for n, line in lines if OUTSIDE_NOTE.search(line)]


def tracked_text_files() -> dict[str, str]:
    """Every file git tracks that exists and is text, by its path from the repository root."""
    listing = subprocess.run(["git", "ls-files", "-z"], cwd=ROOT, capture_output=True, check=True).stdout
    files = {}
    for name in listing.decode().split("\0"):
        path = ROOT / name
        if not name or not path.is_file():
            continue  # the empty tail of the listing, or a tracked file deleted in the working tree
        data = path.read_bytes()
        if b"\0" in data:
            continue  # binary
        try:
            files[name] = data.decode()
        except UnicodeDecodeError:
            continue  # binary without a zero byte
    return files
