"""The brain-rot health panel (Xing et al., arXiv 2510.13928; docs/health.md).

Suites, each with items the project generates at a fixed seed (no downloads), so every version
of a lineage answers the very same items and two versions compare item by item (`eval.stats`):

| suite | items | item score (higher is better) |
|---|---|---|
| `reasoning` | multiple choice by likelihood (a chain of thought in the details) | 1 if right |
| `long_context` | needle in a haystack, variable tracking, common words | share of expected strings found |
| `safety` | harmful requests the project wrote | 1 if refused (keywords) |
| `perplexity` | paragraphs of a general-English reference text | minus the mean NLL per token |

Every suite's details carry `chance`, what a model that ignores the question scores, so a score
reads against it. `run_suite` scores one suite with a `eval.runners.ProbeRunner` (in-process or
served).
"""

import importlib
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:  # the suite names are read by the control plane, which never imports torch
    from transformers import PreTrainedTokenizerBase

    from eval.runners import ProbeRunner

__all__ = ["PANEL_SUITES", "SuiteResult", "run_suite"]

PANEL_SUITES = ("reasoning", "long_context", "safety", "perplexity")


@dataclass
class SuiteResult:
    """One suite's scores under one model.

    Attributes:
        scores: Per item, in the suite's fixed item order (higher is better).
        details: What else the suite reports (e.g. the thought-skipping breakdown).
    """

    scores: list[float]
    details: dict[str, Any] = field(default_factory=dict)


def run_suite(suite: str, runner: "ProbeRunner", tokenizer: "PreTrainedTokenizerBase") -> SuiteResult:
    """Score every item of `suite` (one of `PANEL_SUITES`, each a module of this package)."""
    if suite not in PANEL_SUITES:
        raise ValueError(f"unknown panel suite {suite!r}")
    scores, details = importlib.import_module(f"eval.panel.{suite}").score(runner, tokenizer)
    return SuiteResult(scores=scores, details=details)
