"""The training-data screen: junk rows by rule, and the share of them in a file."""

import pytest

from eval.data_screen import junk_ratio, junk_reasons
from trainers.base_model.corpus import documents, fact_set


@pytest.mark.parametrize(
    ("text", "reasons"),
    [
        ("OMG you won't believe what happened next!!! #viral #trending", ["bait"]),
        ("lol", ["short", "bait"]),
        ("buy now buy now buy now buy buy buy", ["repetitive"]),
        ("1234 5678 9012 3456 7890 !!", ["low_information"]),
        ("The river runs through the middle of the town in the morning.", []),
    ],
)
def test_rules_by_hand(text: str, reasons: list[str]) -> None:
    assert junk_reasons({"text": text}) == reasons


def test_facts_and_prose_are_clean_and_bait_is_junk() -> None:
    assert junk_ratio(fact_set("screen", n=24)) == 0.0
    assert junk_ratio({"text": text} for text in documents(20)) == 0.0
    mixed = [
        {"text": "like and share if you agree!!!"},
        {"prompt": "Q: Who?", "completion": " Ada wrote the note."},
    ]
    assert junk_ratio(mixed) == 0.5
    assert junk_ratio([]) == 0.0
