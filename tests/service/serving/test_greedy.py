"""The near-greedy reference the serving tests compare served text with: ties pass, other text fails."""

from pathlib import Path

import pytest
import torch

from tests.service.serving.greedy import TIE, NearGreedy

PROMPT = "Q: Where does Velo3 live?\nA:"
STEPS = 8


@pytest.fixture(scope="module")
def reference(serving_base: Path) -> NearGreedy:
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model = AutoModelForCausalLM.from_pretrained(serving_base)
    return NearGreedy(model, AutoTokenizer.from_pretrained(serving_base), PROMPT, STEPS)


def _decode(reference: NearGreedy, flip_at: int | None = None) -> tuple[str, list[float]]:
    """Greedy text, taking the runner-up at step `flip_at`; and each step's top-two margin (nats)."""
    ids = reference.tokenizer(PROMPT, return_tensors="pt").input_ids
    new, margins = [], []
    with torch.no_grad():
        for step in range(STEPS):
            log_probs = torch.log_softmax(reference.model(input_ids=ids).logits[0, -1].float(), dim=-1)
            top = torch.topk(log_probs, 2)
            margins.append(float(top.values[0] - top.values[1]))
            token = int(top.indices[1 if step == flip_at else 0])
            new.append(token)
            ids = torch.cat([ids, torch.tensor([[token]])], dim=1)
    return reference._decode(new), margins


def test_the_greedy_text_is_admitted_and_other_text_is_not(reference: NearGreedy) -> None:
    text, _ = _decode(reference)
    assert reference.admits(text)
    assert not reference.admits(text[1:])
    assert not reference.admits(" Velo3 lives in Trasku.")


def test_a_path_through_a_near_tie_is_admitted_only_within_the_tie(reference: NearGreedy) -> None:
    greedy, margins = _decode(reference)
    step = min(range(STEPS), key=margins.__getitem__)
    assert margins[step] < TIE  # a random tiny model ties often: 0.0055 at step 4 here
    flipped, _ = _decode(reference, flip_at=step)
    assert flipped != greedy
    assert reference.admits(flipped)
    assert not NearGreedy(reference.model, reference.tokenizer, PROMPT, STEPS, tie=0.0).admits(flipped)
