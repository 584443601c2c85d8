"""Probes built from a training file: deterministic, drawn only from trained rows, foils that fit."""

import json
from pathlib import Path

from eval.probes import ProbeSizes, build_probes, build_probes_from_file, probe_rows, row_parts, split_words
from trainers.base_model.corpus import fact_set

FACTS = fact_set("probes", n=24, seed=0)


def test_probes_depend_only_on_rows_and_seed() -> None:
    sizes = ProbeSizes(recall=8, recognition=9)
    assert build_probes(FACTS, seed=3, sizes=sizes) == build_probes(FACTS, seed=3, sizes=sizes)
    assert build_probes(FACTS, seed=3, sizes=sizes) != build_probes(FACTS, seed=4, sizes=sizes)


def test_held_out_rows_are_never_probed_as_seen() -> None:
    probes = build_probes(FACTS, seed=0, sizes=ProbeSizes(recall=32, recognition=32, held_out_fraction=0.25))
    assert len(probes.held_out_rows) == 6
    seen = {item["row"] for item in probes.recall} | {item["row"] for item in probes.recognition}
    assert seen.isdisjoint(probes.held_out_rows)
    assert len(probes.recall) == len(probes.recognition) == 18  # every trained row, no more
    assert [item["row"] for item in probes.held_out] == probes.held_out_rows


def test_recall_cue_and_continuation_split_the_target() -> None:
    rows = [{"prompt": "Q: Who wrote it?\nA:", "completion": " Ada wrote the first note."}]
    (item,) = build_probes(rows, seed=0, sizes=ProbeSizes(held_out_fraction=0.0)).recall
    assert item["context"] == "Q: Who wrote it?\nA:"
    assert (item["cue"], item["continuation"]) == (" Ada wrote", " the first note.")


def test_a_one_word_completion_is_recalled_from_its_prompt() -> None:
    rows = [{"prompt": "Q: Where?\nA:", "completion": " Velmora."}]
    (item,) = build_probes(rows, seed=0, sizes=ProbeSizes(held_out_fraction=0.0)).recall
    assert (item["cue"], item["continuation"]) == ("", " Velmora.")


def test_foil_families_rotate_and_match_the_seen_length() -> None:
    probes = build_probes(FACTS, seed=1, sizes=ProbeSizes(recognition=12, held_out_fraction=0.25))
    families = [item["family"] for item in probes.recognition]
    assert families[:6] == ["novel", "shuffled", "swap", "novel", "shuffled", "swap"]
    for item in probes.recognition:
        seen, foil = item["seen"], item["foil"]
        seen_words = split_words(seen["context"] + seen["target"])
        foil_words = split_words(foil["context"] + foil["target"])
        assert foil != seen
        if item["family"] == "novel":
            assert foil["target"] in [row_parts(FACTS[i])[1] for i in probes.held_out_rows]
        else:
            assert len(foil_words) == len(seen_words)
        if item["family"] == "swap":
            assert foil["context"] == seen["context"]


def test_without_held_out_rows_there_are_no_novel_foils() -> None:
    probes = build_probes(FACTS, seed=0, sizes=ProbeSizes(recognition=6, held_out_fraction=0.0))
    assert {item["family"] for item in probes.recognition} == {"shuffled", "swap"}
    assert probes.held_out == []


def test_chat_rows_probe_the_last_assistant_turn() -> None:
    messages = [
        {"role": "user", "content": "Name the river."},
        {"role": "assistant", "content": "The river is the Ostra."},
    ]
    (item,) = build_probes([{"messages": messages}], seed=0, sizes=ProbeSizes(held_out_fraction=0.0)).recall
    assert item["context"] == messages[:1]
    assert item["cue"] + item["continuation"] == "The river is the Ostra."


def test_a_tiny_file_keeps_every_row_for_training() -> None:
    assert ProbeSizes(held_out_fraction=0.5).held_out_rows(1) == 0
    assert ProbeSizes(held_out_fraction=0.1, max_held_out=4).held_out_rows(1000) == 4


def test_probes_from_a_large_file_read_only_the_rows_they_use(tmp_path: Path) -> None:
    rows = [{"prompt": f"Q: Where is Person{i}?\nA:", "completion": f" In Town{i}."} for i in range(5000)]
    path = tmp_path / "train.jsonl"
    path.write_text("\n\n".join(json.dumps(row) for row in rows))  # blank lines do not count as rows
    sizes = ProbeSizes()

    used = probe_rows(len(rows), seed=7, sizes=sizes)

    assert len(used) <= sizes.candidates() + sizes.max_held_out < len(rows) // 10
    assert build_probes_from_file(path, len(rows), seed=7, sizes=sizes) == build_probes(
        rows, seed=7, sizes=sizes
    )


def test_a_small_file_draws_from_every_row() -> None:
    assert sorted(probe_rows(len(FACTS), seed=0, sizes=ProbeSizes(held_out_fraction=0.25))) == list(
        range(len(FACTS))
    )


def test_a_preference_pair_is_probed_on_its_preferred_output() -> None:
    """A dpo job's probes ask for what it taught to prefer, after the pair's conversation."""
    question = [{"role": "user", "content": "Capital of France?"}]
    pair = {
        "input": {"messages": question},
        "preferred_output": [{"role": "assistant", "content": "Paris."}],
        "non_preferred_output": [{"role": "assistant", "content": "Well, it is Paris, I would say."}],
    }
    assert row_parts(pair) == (question, "Paris.")


def test_a_chat_row_is_probed_on_its_last_assistant_message_of_weight_1() -> None:
    """A turn of weight 0 was not trained on: the probe asks for the last one that was, and the
    context the model reads carries no `weight` keys."""
    messages = [
        {"role": "user", "content": "Where does Velomar live?"},
        {"role": "assistant", "content": "In Trasku.", "weight": 1},
        {"role": "user", "content": "And his sister?"},
        {"role": "assistant", "content": "I do not know.", "weight": 0},
    ]
    assert row_parts({"messages": messages}) == (
        [{"role": "user", "content": "Where does Velomar live?"}],
        "In Trasku.",
    )
