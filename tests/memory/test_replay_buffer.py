"""The replay buffer: uniform reservoir, per-job quotas, surprise priority, determinism, save/load."""

import math
from collections import Counter
from pathlib import Path

from memory.replay import ReplayBuffer, ReplayItem


def _item(job: str, i: int, surprise: float = 0.0) -> ReplayItem:
    return ReplayItem([1, i], [-100, i], job, surprise)


def _chi2_critical(df: int, z: float) -> float:
    """Upper quantile of chi-squared with `df` degrees of freedom (Wilson-Hilferty), for normal quantile z."""
    return df * (1 - 2 / (9 * df) + z * math.sqrt(2 / (9 * df))) ** 3


def test_reservoir_keeps_every_row_of_the_stream_with_equal_probability() -> None:
    stream, capacity, runs = 50, 10, 1000
    kept: Counter[int] = Counter()
    for seed in range(runs):
        buffer = ReplayBuffer(capacity, seed=seed, job_quota=0.0)
        for i in range(stream):
            buffer.add(_item("job", i))
        assert len(buffer) == capacity
        kept.update(item.input_ids[1] for item in buffer.items)
    expected = runs * capacity / stream  # 200 per row
    chi2 = sum((kept[i] - expected) ** 2 / expected for i in range(stream))
    assert chi2 < _chi2_critical(stream - 1, z=3.09)  # p > 0.001 under uniformity
    # Early and late rows alike: the first and last tenth keep the same share.
    early = sum(kept[i] for i in range(5))
    late = sum(kept[i] for i in range(stream - 5, stream))
    assert abs(early - late) < 0.15 * expected * 5


def test_quotas_keep_a_small_early_job_in_memory() -> None:
    buffer = ReplayBuffer(20, seed=0, job_quota=0.5)
    for i in range(5):
        buffer.add(_item("small", i))
    for i in range(5000):
        buffer.add(_item("large", i))
    counts = Counter(item.job_id for item in buffer.items)
    assert buffer.quota() == 5
    assert counts == {"small": 5, "large": 15}

    without_quota = ReplayBuffer(20, seed=0, job_quota=0.0)
    for item in [_item("small", i) for i in range(5)] + [_item("large", i) for i in range(5000)]:
        without_quota.add(item)
    assert Counter(item.job_id for item in without_quota.items)["small"] <= 1


def test_quotas_bound_every_job_in_a_long_lineage() -> None:
    buffer = ReplayBuffer(30, seed=3, job_quota=1.0)
    for job in range(3):
        for i in range(100 * (job + 1)):
            buffer.add(_item(f"job-{job}", i))
    counts = Counter(item.job_id for item in buffer.items)
    assert all(counts[f"job-{job}"] >= buffer.quota() == 10 for job in range(3))


def test_surprise_mode_keeps_and_replays_the_most_surprising_rows() -> None:
    buffer = ReplayBuffer(5, seed=0, job_quota=0.0, priority="surprise")
    for i in range(100):
        buffer.add(_item("job", i, surprise=float((i * 37) % 100)))
    assert sorted(item.surprise for item in buffer.items) == [95.0, 96.0, 97.0, 98.0, 99.0]

    weighted = ReplayBuffer(10, seed=0, job_quota=0.0, priority="surprise")
    for i in range(10):
        weighted.add(_item("job", i, surprise=10.0 if i == 0 else 0.5))
    drawn = Counter(weighted.sample(1, key=f"{k}")[0].input_ids[1] for k in range(500))
    assert drawn[0] > 200  # weight 10 of 14.5 in total: about 345 of 500


def test_same_seed_same_buffer_and_samples_across_save_and_load(tmp_path: Path) -> None:
    def stream(buffer: ReplayBuffer, start: int, stop: int) -> None:
        for i in range(start, stop):
            buffer.add(_item(f"job-{i // 40}", i))

    whole = ReplayBuffer(16, seed=7)
    stream(whole, 0, 120)

    first = ReplayBuffer(16, seed=7)
    stream(first, 0, 60)
    first.save(tmp_path)
    continued = ReplayBuffer.load(tmp_path)
    stream(continued, 60, 120)

    assert continued.items == whole.items
    assert continued.seen == 120
    assert continued.sample(4, key="job-9:3") == whole.sample(4, key="job-9:3")
    assert whole.sample(4, key="job-9:3") != whole.sample(4, key="job-9:4")


def test_sampling_leaves_out_the_job_being_trained() -> None:
    buffer = ReplayBuffer(100, seed=0)
    for i in range(10):
        buffer.add(_item("old", i))
    for i in range(10):
        buffer.add(_item("current", i))
    drawn = buffer.sample(8, key="current:0", exclude_job="current")
    assert len(drawn) == 8 and {item.job_id for item in drawn} == {"old"}
    assert buffer.sample(8, key="x", exclude_job="old") != []
    assert ReplayBuffer(4).sample(3, key="x") == []
