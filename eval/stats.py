"""Effect sizes for the health panel: Hedges' g with a paired bootstrap interval, and verdicts.

A panel suite scores the same items under a candidate version and a reference version (higher is
better per item). Xing et al. (arXiv 2510.13928; docs/health.md) call a decline
non-trivial at Hedges' g > 0.3. Here g is signed so that positive means *worse* (the harmful
direction):

    d = (mean(reference) - mean(candidate)) / s_pooled,
    s_pooled = sqrt(((n1 - 1) s1^2 + (n2 - 1) s2^2) / (n1 + n2 - 2)),
    g = J d,  J = 1 - 3 / (4 (n1 + n2) - 9).

Because the items are shared, the interval comes from a paired bootstrap: items are resampled
with replacement (the same draw for both versions) and g recomputed. Torch-free.
"""

import math
import random
import statistics
from collections.abc import Sequence
from dataclasses import dataclass

__all__ = ["Comparison", "Thresholds", "compare", "hedges_g", "overall_verdict"]

NO_SPREAD_G = 10.0  # |g| reported when both versions score every item alike but differ in mean
VERDICTS = ("ok", "warn", "rot")


@dataclass(frozen=True)
class Thresholds:
    """When a suite's decline is a finding.

    Attributes:
        rot: g above this, with the interval excluding zero, is `rot` (Xing et al.: 0.3).
        warn: g above this (or above `rot` with an interval that includes zero) is `warn`.
        confidence: Width of the bootstrap interval.
    """

    rot: float = 0.3
    warn: float = 0.15
    confidence: float = 0.95


@dataclass(frozen=True)
class Comparison:
    """One suite's candidate against its reference.

    Attributes:
        candidate: Mean item score of the candidate.
        reference: Mean item score of the reference.
        g: Hedges' g, positive when the candidate is worse.
        low: Lower end of the bootstrap interval of g.
        high: Upper end.
        verdict: `ok`, `warn` or `rot`.
    """

    candidate: float
    reference: float
    g: float
    low: float
    high: float
    verdict: str


def hedges_g(candidate: Sequence[float], reference: Sequence[float]) -> float:
    """Hedges' g of the decline from `reference` to `candidate` (positive: candidate worse).

    With no spread in either sample, g is 0 for equal means and +-`NO_SPREAD_G` otherwise.
    """
    n1, n2 = len(reference), len(candidate)
    if n1 < 2 or n2 < 2:
        raise ValueError("Hedges' g needs at least two items per version")
    difference = statistics.fmean(reference) - statistics.fmean(candidate)
    pooled = math.sqrt(
        ((n1 - 1) * statistics.variance(reference) + (n2 - 1) * statistics.variance(candidate))
        / (n1 + n2 - 2)
    )
    if pooled == 0:
        return 0.0 if difference == 0 else math.copysign(NO_SPREAD_G, difference)
    correction = 1 - 3 / (4 * (n1 + n2) - 9)
    return correction * difference / pooled


def compare(
    candidate: Sequence[float],
    reference: Sequence[float],
    thresholds: Thresholds,
    resamples: int = 1000,
    seed: int = 0,
) -> Comparison:
    """Hedges' g of paired item scores, its paired bootstrap interval and the verdict."""
    if len(candidate) != len(reference):
        raise ValueError("paired scores: both versions must score the same items")
    g = hedges_g(candidate, reference)
    rng = random.Random(seed)
    items = range(len(candidate))
    draws = []
    for _ in range(resamples):
        sample = rng.choices(items, k=len(candidate))
        draws.append(hedges_g([candidate[i] for i in sample], [reference[i] for i in sample]))
    draws.sort()
    tail = (1 - thresholds.confidence) / 2
    low, high = draws[int(tail * (resamples - 1))], draws[math.ceil((1 - tail) * (resamples - 1))]
    if g > thresholds.rot and low > 0:
        verdict = "rot"
    elif g > thresholds.warn:
        verdict = "warn"
    else:
        verdict = "ok"
    return Comparison(
        candidate=statistics.fmean(candidate),
        reference=statistics.fmean(reference),
        g=g,
        low=low,
        high=high,
        verdict=verdict,
    )


def overall_verdict(verdicts: Sequence[str]) -> str:
    """The worst of the suites' verdicts (`ok` for none)."""
    return max(verdicts, key=VERDICTS.index, default="ok")
