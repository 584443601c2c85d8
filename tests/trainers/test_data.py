"""The data pipeline: which tokens carry loss for each row shape, caching, batches."""

from pathlib import Path

import pytest
import torch
from transformers import AutoTokenizer, PreTrainedTokenizerBase

from tests.trainers.conftest import write_jsonl
from trainers.data import IGNORE_INDEX, BatchOrder, Collator, load_training_data

ROWS = [
    {"text": "The old man walked to the market."},
    {"prompt": "Q: Where does Velomar live?\nA:", "completion": " Velomar lives in Trasku."},
    {
        "messages": [
            {"role": "system", "content": "Be brief."},
            {"role": "user", "content": "Hi"},
            {"role": "assistant", "content": "Hello."},
            {"role": "user", "content": "Where does Velomar live?"},
            {"role": "assistant", "content": "Velomar lives in Trasku."},
        ]
    },
]


@pytest.fixture(scope="module")
def tokenizer(tiny_base: Path) -> PreTrainedTokenizerBase:
    return AutoTokenizer.from_pretrained(tiny_base)


def _load(tmp_path: Path, tokenizer: PreTrainedTokenizerBase, rows: list[dict], max_seq_len: int = 256):
    path = write_jsonl(tmp_path / "train.jsonl", rows)
    return load_training_data(path, "sha", tokenizer, max_seq_len, tmp_path / "cache")


def _learned(tokenizer: PreTrainedTokenizerBase, row: dict) -> str:
    """The text of the tokens that carry loss."""
    return tokenizer.decode([token for token in row["labels"] if token != IGNORE_INDEX])


class TestLossTokens:
    def test_text_rows_learn_every_token_and_the_end(self, tmp_path: Path, tokenizer) -> None:
        row = _load(tmp_path, tokenizer, ROWS[:1]).rows[0]
        assert row["labels"] == row["input_ids"]
        assert tokenizer.decode(row["input_ids"]) == "<s>The old man walked to the market.</s>"

    def test_prompt_rows_learn_only_the_completion_and_the_end(self, tmp_path: Path, tokenizer) -> None:
        row = _load(tmp_path, tokenizer, ROWS[1:2]).rows[0]
        assert tokenizer.decode(row["input_ids"]) == (
            "<s>Q: Where does Velomar live?\nA: Velomar lives in Trasku.</s>"
        )
        assert _learned(tokenizer, row) == " Velomar lives in Trasku.</s>"

    def test_chat_rows_learn_only_the_assistant_turns(self, tmp_path: Path, tokenizer) -> None:
        row = _load(tmp_path, tokenizer, ROWS[2:]).rows[0]
        assert tokenizer.decode(row["input_ids"]) == tokenizer.apply_chat_template(
            ROWS[2]["messages"], tokenize=False
        )
        assert _learned(tokenizer, row) == "Hello.</s>\nVelomar lives in Trasku.</s>\n"

    def test_an_assistant_turn_of_weight_0_is_not_learned(self, tmp_path: Path, tokenizer) -> None:
        messages = [dict(message) for message in ROWS[2]["messages"]]
        messages[2]["weight"] = 0  # "Hello."
        messages[4]["weight"] = 1
        rows = _load(tmp_path, tokenizer, [{"messages": messages}, ROWS[2]]).rows
        assert tokenizer.decode(rows[0]["input_ids"]) == tokenizer.apply_chat_template(
            ROWS[2]["messages"], tokenize=False
        )
        assert _learned(tokenizer, rows[0]) == "Velomar lives in Trasku.</s>\n"
        assert _learned(tokenizer, rows[1]) == "Hello.</s>\nVelomar lives in Trasku.</s>\n"  # no weights

    def test_a_file_may_mix_shapes(self, tmp_path: Path, tokenizer) -> None:
        rows = _load(tmp_path, tokenizer, ROWS).rows
        assert [_learned(tokenizer, row)[:6] for row in rows] == ["<s>The", " Velom", "Hello."]


class TestTruncation:
    def test_rows_are_cut_at_max_seq_len(self, tmp_path: Path, tokenizer) -> None:
        data = _load(tmp_path, tokenizer, ROWS[:1] * 3, max_seq_len=8)
        assert data.rows["length"] == [8, 8, 8]
        assert all(len(ids) == 8 for ids in data.rows["input_ids"])

    def test_rows_left_with_nothing_to_learn_are_dropped(self, tmp_path: Path, tokenizer) -> None:
        prompt_tokens = len(tokenizer(ROWS[1]["prompt"]).input_ids)
        data = _load(tmp_path, tokenizer, ROWS[:2], max_seq_len=prompt_tokens)
        assert data.dropped == 1
        assert len(data.rows) == 1
        assert data.rows[0]["labels"] == data.rows[0]["input_ids"]  # the text row stays


def test_tokenized_files_are_cached_by_hash(tmp_path: Path, tokenizer) -> None:
    path = write_jsonl(tmp_path / "train.jsonl", ROWS)
    first = load_training_data(path, "sha-1", tokenizer, 256, tmp_path / "cache")
    path.write_text("this is no longer JSON\n")  # a cache hit never reads the file again
    again = load_training_data(path, "sha-1", tokenizer, 256, tmp_path / "cache")
    assert again.rows["input_ids"] == first.rows["input_ids"]
    assert len(list((tmp_path / "cache" / "tokenized").iterdir())) == 1
    load_training_data(write_jsonl(path, ROWS[:1]), "sha-1", tokenizer, 64, tmp_path / "cache")
    assert len(list((tmp_path / "cache" / "tokenized").iterdir())) == 2  # max_seq_len is in the key


def test_collator_right_pads_with_masked_labels() -> None:
    rows = [
        {"input_ids": [1, 5, 6, 2], "labels": [-100, -100, 6, 2], "length": 4},
        {"input_ids": [1, 7], "labels": [1, 7], "length": 2},
    ]
    batch = Collator(pad_token_id=0)(rows)
    assert batch["input_ids"].tolist() == [[1, 5, 6, 2], [1, 7, 0, 0]]
    assert batch["attention_mask"].tolist() == [[1, 1, 1, 1], [1, 1, 0, 0]]
    assert batch["labels"].tolist() == [[-100, -100, 6, 2], [1, 7, -100, -100]]
    assert batch["input_ids"].dtype == torch.long


class TestBatchOrder:
    def test_each_epoch_sees_every_row_once_in_a_new_order(self) -> None:
        order = BatchOrder(rows=10, batch_size=4, seed=0)
        assert order.steps_per_epoch == 3
        epochs = [[i for step in range(e * 3, e * 3 + 3) for i in order.batch(step)] for e in range(2)]
        assert sorted(epochs[0]) == sorted(epochs[1]) == list(range(10))
        assert epochs[0] != epochs[1]
        assert [len(order.batch(step)) for step in range(3)] == [4, 4, 2]

    def test_batches_depend_only_on_seed_and_step(self) -> None:
        first, second = BatchOrder(10, 4, seed=0), BatchOrder(10, 4, seed=0)
        assert [first.batch(s) for s in range(7)] == [second.batch(s) for s in reversed(range(7))][::-1]
        assert BatchOrder(10, 4, seed=1).batch(0) != first.batch(0)
