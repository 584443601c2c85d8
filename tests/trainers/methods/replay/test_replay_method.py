"""The replay method: earlier jobs' rows in each batch, the same ones on a resumed run."""

from pathlib import Path

from transformers import AutoModelForCausalLM

from trainers.methods.replay.config import ReplayConfig
from trainers.methods.replay.method import ReplayMethod

ROWS = [{"input_ids": [1, 40 + i, 41], "labels": [-100, 40 + i, 41], "length": 3} for i in range(6)]


def test_batches_after_the_first_job_mix_in_earlier_rows(tiny_base: Path, tmp_path: Path) -> None:
    first = ReplayMethod(ReplayConfig(r=4, replay_ratio=0.5))
    first.prepare_model(AutoModelForCausalLM.from_pretrained(tiny_base), None)
    first.start_job("job-1", ROWS, seed=3)
    assert first.replay_rows(step=0, batch_size=4) == []
    (tmp_path / "v1" / "memory").mkdir(parents=True)
    first.export_adapter(first.model, tmp_path / "v1" / "adapter")
    first.save_memory(tmp_path / "v1" / "memory")

    second = ReplayMethod(ReplayConfig(r=4, replay_ratio=0.5))
    second.prepare_model(AutoModelForCausalLM.from_pretrained(tiny_base), tmp_path / "v1")
    new_rows = [{"input_ids": [1, 60, 61], "labels": [-100, 60, 61], "length": 3}]
    second.start_job("job-2", new_rows, seed=9)
    replayed = second.replay_rows(step=5, batch_size=4)
    assert len(replayed) == 2 and all(row["replayed"] for row in replayed)
    assert all(row["input_ids"] in [r["input_ids"] for r in ROWS] for row in replayed)
    assert second.buffer.seed == 3  # the lineage's buffer keeps its first job's seed
    assert second.replay_rows(step=5, batch_size=4) == replayed
    assert len(second.buffer) == 7
