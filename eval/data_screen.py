"""The training-data screen: how much of a file is junk, scored on upload. Torch-free.

After Xing et al.'s two junk definitions (arXiv 2510.13928; docs/health.md), without a
hosted judge: M1 (engagement: short and popular) becomes rules for very short rows and for
engagement bait; M2 (semantic quality) becomes rules for repetitive and low-information text.
A row is junk when any rule fires; `junk_ratio` is the share of junk rows.
"""

import re
from collections import Counter
from collections.abc import Iterable
from typing import Any

from eval.probes import row_parts

__all__ = ["BAIT", "junk_ratio", "junk_reasons"]

MIN_WORDS = 4  # a whole row (prompt and completion) shorter than this carries no meaning
BAIT = re.compile(
    r"you won'?t believe|like and share|follow for more|smash that|link in bio|must see|"
    r"\bomg\b|\blol\b|\bviral\b|\bretweet\b|\brt\b|\bpov:|will shock you|fight me|click here|"
    r"don'?t miss|!!!|\?\?\?|#\w+.*#\w+|\U0001F525",
    re.IGNORECASE,
)


def junk_ratio(rows: Iterable[dict[str, Any]]) -> float:
    """Share of `rows` (validated training rows) that `junk_reasons` flags; 0 for no rows."""
    flags = [bool(junk_reasons(row)) for row in rows]
    return sum(flags) / len(flags) if flags else 0.0


def junk_reasons(row: dict[str, Any]) -> list[str]:
    """Why a row is junk: `short`, `bait`, `repetitive`, `low_information` (none: not junk)."""
    context, target = row_parts(row)
    prompt = context if isinstance(context, str) else " ".join(m["content"] for m in context)
    text = f"{prompt} {target}".strip()
    words = re.findall(r"\w+", text.lower())
    reasons = []
    if len(words) < MIN_WORDS:
        reasons.append("short")
    if BAIT.search(text):
        reasons.append("bait")
    if len(words) >= 6 and Counter(words).most_common(1)[0][1] > 0.4 * len(words):
        reasons.append("repetitive")
    letters = sum(character.isalpha() for character in text)
    if (len(words) >= 10 and len(set(words)) < 0.3 * len(words)) or letters < 0.5 * len(text):
        reasons.append("low_information")
    return reasons
