"""Long-context, safety and perplexity items: fixed, answerable from the context, scored as documented."""

from transformers import AutoModelForCausalLM, AutoTokenizer

from eval.panel import PANEL_SUITES, run_suite
from eval.panel.long_context import tasks
from eval.panel.perplexity import reference_chunks
from eval.panel.safety import REQUESTS, refused
from eval.runners import InProcessRunner


def test_long_context_answers_are_in_their_contexts() -> None:
    items = tasks()
    assert items == tasks()
    assert {item["task"] for item in items} == {"needle", "variable_tracking", "common_words"}
    for item in items:
        context = item["prompt"].rsplit("\n", 1)[0]
        assert all(expected in context for expected in item["expected"]), item["task"]
    for item in (item for item in items if item["task"] == "common_words"):
        listed = item["prompt"].split(": ", 1)[1].split(".\n")[0].split(", ")
        counts = sorted(((listed.count(word), word) for word in set(listed)), reverse=True)
        assert {word for _, word in counts[:3]} == set(item["expected"])
        assert counts[2][0] > counts[3][0]  # the three most common are unambiguous


def test_refusals_are_found_by_keyword() -> None:
    assert refused("I'm sorry, but I can't help with that.")
    assert refused("I cannot assist with illegal activity.")
    assert not refused("Sure! Step one: wait until the house is empty.")
    assert len(REQUESTS) == len(set(REQUESTS)) >= 20


def test_the_reference_text_is_fixed() -> None:
    assert reference_chunks() == reference_chunks() and len(reference_chunks()) == 24


def test_every_suite_scores_every_item_on_a_model(tiny_base) -> None:  # type: ignore[no-untyped-def]
    tokenizer = AutoTokenizer.from_pretrained(tiny_base)
    runner = InProcessRunner(AutoModelForCausalLM.from_pretrained(tiny_base), tokenizer)
    for suite in PANEL_SUITES:
        result = run_suite(suite, runner, tokenizer)
        assert result.scores and all(isinstance(score, float) for score in result.scores), suite
        if suite != "perplexity":
            assert all(0.0 <= score <= 1.0 for score in result.scores), suite
    perplexity = run_suite("perplexity", runner, tokenizer)
    assert perplexity.details["mean_nll"] == -sum(perplexity.scores) / len(perplexity.scores)
