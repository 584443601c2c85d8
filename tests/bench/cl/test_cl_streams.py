"""The benchmark's streams: nothing scored is trained on, and the test family shares nothing with dev."""

import json
import re

import pytest

from bench.cl.streams import FAMILIES, family, task_orders


def _prompt_text(item: dict) -> str:
    context = item["context"]
    return (context if isinstance(context, str) else context[-1]["content"]) + item["cue"]


def _training_text(rows: list[dict]) -> str:
    return json.dumps(rows)


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_no_probe_is_a_training_row(name: str) -> None:
    for task in family(name, seed=3):
        trained = _training_text(task.train)
        for item in task.validation + task.test:
            assert _prompt_text(item) not in trained, f"{task.name}: {item} is asked as taught"
        scored = {_prompt_text(item) for item in task.test}
        assert scored.isdisjoint(_prompt_text(item) for item in task.validation)


def test_facts_are_asked_back_about_what_was_taught() -> None:
    facts = next(task for task in family("dev", seed=0) if task.kind == "facts")
    trained = _training_text(facts.train)
    for item in facts.test:
        assert item["continuation"] in trained  # the answer was taught, under other questions


@pytest.mark.parametrize("name", sorted(FAMILIES))
def test_skill_items_are_new(name: str) -> None:
    skill = next(task for task in family(name, seed=1) if task.kind == "skill")
    taught = {row["messages"][0]["content"] for row in skill.train}
    assert not taught & {_prompt_text(item) for item in skill.test + skill.validation}


def test_the_test_family_shares_no_entity_or_phrasing_with_dev() -> None:
    def words(name: str) -> set[str]:
        rows = [task.train + task.validation + task.test for task in family(name, seed=0)]
        return set(re.findall(r"[A-Za-z]+", json.dumps(rows)))

    keys = {
        "messages",
        "role",
        "user",
        "assistant",
        "content",
        "text",
        "row",
        "context",
        "cue",
        "continuation",
    }
    ordinary = {"In", "The", "What", "When", "Which", "a", "in", "is", "of", "the", "to", "was", "see"}
    colours = {"red", "white", "orange", "silver", "violet"}  # values both may draw
    assert words("dev") & words("test") <= keys | ordinary | colours
    assert {task.kind for task in family("test")} == {task.kind for task in family("dev")}


def test_seeds_draw_different_tasks_the_same_way_each_time() -> None:
    assert family("test", seed=2) == family("test", seed=2)
    assert family("test", seed=2)[0].train != family("test", seed=3)[0].train


def test_orders_put_each_task_in_each_position() -> None:
    orders = task_orders(3)
    assert sorted(map(tuple, orders)) == [(0, 1, 2), (1, 2, 0), (2, 0, 1)]
    assert all({order[position] for order in orders} == {0, 1, 2} for position in range(3))


def test_an_unknown_family_is_refused() -> None:
    with pytest.raises(ValueError, match="unknown family"):
        family("prod")
