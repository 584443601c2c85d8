"""Probe scoring: ROUGE-L by hand, the in-process runner against the model's own loss and generate."""

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from eval.probes import Probes
from eval.retention import rouge_l, score_probes
from eval.runners import InProcessRunner


def test_rouge_l_by_hand() -> None:
    # LCS of "the cat sat on the mat" and "the cat lay on a mat" is "the cat on mat" (4 words).
    assert rouge_l("the cat sat on the mat", "The cat lay on a mat.") == pytest.approx(4 / 6)
    assert rouge_l("Velmora", " velmora.") == 1.0
    assert rouge_l("north", "south") == 0.0
    assert rouge_l("", "") == 1.0


class ScriptedRunner:
    """Answers from tables, to check the scorer's bookkeeping."""

    def __init__(self, nll: dict[str, float], completions: dict[str, str]) -> None:
        self.nll_of, self.completions = nll, completions

    def nll(self, texts, scored_from):  # type: ignore[no-untyped-def]
        return [self.nll_of[text] for text in texts]

    def complete(self, prompts, n_tokens):  # type: ignore[no-untyped-def]
        return [self.completions[prompt] for prompt in prompts]


def test_scores_count_ties_as_wrong_and_split_by_family(tiny_base) -> None:  # type: ignore[no-untyped-def]
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    pair = lambda seen, foil, family: {  # noqa: E731
        "row": 0,
        "family": family,
        "seen": {"context": "", "target": seen},
        "foil": {"context": "", "target": foil},
    }
    probes = Probes(
        seed=0,
        recall=[
            {"row": 0, "context": "Q:", "cue": " one", "continuation": " two three"},
            {"row": 1, "context": "Q:", "cue": " four", "continuation": " five six"},
        ],
        recognition=[pair("a", "b", "swap"), pair("c", "d", "swap"), pair("e", "f", "novel")],
    )
    runner = ScriptedRunner(
        nll={"a": 1.0, "b": 2.0, "c": 2.0, "d": 2.0, "e": 3.0, "f": 1.0},
        completions={"Q: one": "  two three", "Q: four": " five seven"},
    )
    scores = score_probes(runner, tokenizer, probes)
    assert scores["recall_exact"] == 0.5
    assert scores["recall_rouge_l"] == pytest.approx((1.0 + 0.5) / 2)
    assert scores["recognition"] == pytest.approx(1 / 3)  # a < b right; c = d a tie, wrong; e > f wrong
    assert scores["recognition_by_family"] == {"novel": 0.0, "swap": 0.5}
    assert scores["nll_gap"] == pytest.approx((1.0 + 0.0 - 2.0) / 3)
    assert scores["held_out_loss"] is None


def test_in_process_nll_is_the_models_mean_token_loss(tiny_base) -> None:  # type: ignore[no-untyped-def]
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    texts = ["Q: Where does Ada live?\nA: Velmora.", "A short one."]
    runner = InProcessRunner(model, tokenizer)
    for text, nll in zip(texts, runner.nll(texts, [0, 0]), strict=True):
        ids = tokenizer(text, return_tensors="pt").input_ids
        assert nll == pytest.approx(model(input_ids=ids, labels=ids).loss.item(), rel=1e-4)


def test_in_process_nll_scores_only_from_the_given_character(tiny_base) -> None:  # type: ignore[no-untyped-def]
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    context, target = "Q: Where does Ada live?\nA:", " Velmora."
    (nll,) = InProcessRunner(model, tokenizer).nll([context + target], [len(context)])
    ids = tokenizer(context + target, return_tensors="pt").input_ids
    n_target = len(tokenizer(target, add_special_tokens=False).input_ids)
    labels = ids.clone()
    labels[:, : ids.shape[1] - n_target] = -100
    assert nll == pytest.approx(model(input_ids=ids, labels=labels).loss.item(), rel=1e-4)


def test_batched_greedy_completion_equals_one_at_a_time(tiny_base) -> None:  # type: ignore[no-untyped-def]
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    model = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    prompts, lengths = ["Q: Where does Ada live?\nA:", "Once"], [3, 5]
    batched = InProcessRunner(model, tokenizer).complete(prompts, lengths)
    for prompt, length, text in zip(prompts, lengths, batched, strict=True):
        ids = tokenizer(prompt, return_tensors="pt").input_ids
        with torch.no_grad():
            out = model.generate(
                input_ids=ids,
                max_new_tokens=length,
                min_new_tokens=length,
                do_sample=False,
                pad_token_id=tokenizer.pad_token_id,
            )
        assert text == tokenizer.decode(out[0, ids.shape[1] :], skip_special_tokens=True)
