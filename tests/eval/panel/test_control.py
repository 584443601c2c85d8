"""A control update (a few steps on ordinary prose) of the tiny model is not rot on any panel suite.

The gate must tell learning from rot: an ordinary update is what every job does, and the panel
compares its version with the model it came from (docs/health.md).
"""

import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from eval.panel import PANEL_SUITES, run_suite
from eval.runners import InProcessRunner
from eval.stats import Thresholds, compare
from trainers.base_model.corpus import documents


def test_a_control_update_of_the_tiny_model_stays_ok(tiny_base) -> None:  # type: ignore[no-untyped-def]
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base)
    before = {suite: run_suite(suite, InProcessRunner(model, tokenizer), tokenizer) for suite in PANEL_SUITES}

    torch.manual_seed(0)
    optimizer = torch.optim.AdamW(model.parameters(), lr=1e-3)
    rows = documents(32, seed=7)
    model.train()
    for step in range(8):  # 8 steps of batch 4 on ordinary prose, as a small job would take
        batch = tokenizer(rows[4 * step : 4 * step + 4], return_tensors="pt", padding=True)
        labels = batch.input_ids.masked_fill(batch.attention_mask == 0, -100)
        model(**batch, labels=labels).loss.backward()
        optimizer.step()
        optimizer.zero_grad()
    model.eval()

    runner = InProcessRunner(model, tokenizer)
    for suite in PANEL_SUITES:
        after = run_suite(suite, runner, tokenizer)
        comparison = compare(after.scores, before[suite].scores, Thresholds())
        assert comparison.verdict != "rot", (suite, comparison)
