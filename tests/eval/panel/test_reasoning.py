"""Reasoning items are fixed and well formed; thought skipping is sorted by the rules, by hand."""

from eval.panel.reasoning import LETTERS, questions, thought_skipping


def test_questions_are_fixed_and_have_one_right_option() -> None:
    items = questions()
    assert items == questions()  # the same items for every version
    for item in items:
        assert len(item["options"]) == len(set(item["options"])) == len(LETTERS)
        assert 0 <= item["answer"] < 4
    first = items[0]
    a, b = (int(word) for word in first["question"].removeprefix("What is ").rstrip("?").split(" plus "))
    assert first["options"][first["answer"]] == str(a + b)


def test_thought_skipping_families_by_hand() -> None:
    responses = [
        "The answer is B.",  # no reasoning before the answer
        "Ten and ten make twenty, so we add them and get twenty in total. The answer is C.",  # no plan
        "1. Add the numbers.\n2. Compare with the options.\nStep 1: 7 plus 5 is 12. The answer is A.",
        "1. Add the numbers.\n2. Compare.\nStep 1: 7 plus 5 is 12.\nStep 2: 12 is option D. The answer is C.",
    ]
    assert thought_skipping(responses) == {"no_reasoning": 1, "no_plan": 1, "skipped_steps": 1, "other": 1}
