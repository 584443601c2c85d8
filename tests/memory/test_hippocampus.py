"""The hippocampal store: delayed writes, top-k reads, surprise, eviction with quotas, replay, save/load."""

import math
from collections import Counter
from pathlib import Path

import pytest
import torch

from memory.hippocampus import Episode, Hippocampus


def _episode(job: str, i: int, surprise: float = 1.0, dim: int = 4) -> Episode:
    key = torch.nn.functional.normalize(torch.randn(dim, generator=torch.Generator().manual_seed(i)), dim=0)
    return Episode([1, i], [-100, i], job, surprise, key, torch.full((dim,), float(i)))


def test_stashed_writes_are_invisible_to_reads_until_commit() -> None:
    store = Hippocampus(capacity=8, key_dim=4, value_dim=4)
    first = _episode("job-1", 1)
    store.stash([first], nll=[2.0])
    query = first.key.unsqueeze(0)  # (1, key_dim): exactly the stashed key
    assert store.read(query, top_k=4, temperature=0.1).abs().sum() == 0  # same step: nothing there
    assert len(store) == 0 and store.sample(4, key="s") == []
    store.commit()
    torch.testing.assert_close(store.read(query, top_k=4, temperature=0.1), first.value.unsqueeze(0))

    second = _episode("job-1", 2)
    store.stash([second], nll=[2.0])  # step 2 writes; its read sees step 1 only
    torch.testing.assert_close(
        store.read(second.key.unsqueeze(0), top_k=4, temperature=0.1), first.value.unsqueeze(0)
    )
    store.commit()
    assert len(store) == 2


def test_read_weights_the_nearest_keys_by_softmax_of_cosine() -> None:
    store = Hippocampus(capacity=8, key_dim=2, value_dim=1)
    keys = [torch.tensor([1.0, 0.0]), torch.tensor([0.0, 1.0]), torch.tensor([-1.0, 0.0])]
    store.stash(
        [Episode([1, i], [1, i], "j", 1.0, k, torch.tensor([float(i)])) for i, k in enumerate(keys)], []
    )
    store.commit()
    query = torch.nn.functional.normalize(torch.tensor([[1.0, 0.5]]), dim=-1)  # (1, 2)
    similarity = query @ torch.stack(keys[:2]).T  # the two nearest: keys 0 and 1
    weights = torch.softmax(similarity / 0.5, dim=-1)
    expected = weights @ torch.tensor([[0.0], [1.0]])
    torch.testing.assert_close(store.read(query, top_k=2, temperature=0.5), expected)


def test_surprise_is_the_z_score_under_the_slow_critic_updated_at_commit() -> None:
    store = Hippocampus(capacity=8, key_dim=4, value_dim=4)
    assert math.isinf(store.surprise(torch.tensor([1.0])).item())  # nothing seen yet: all surprising
    store.stash([], nll=[2.0, 4.0])
    assert math.isinf(store.surprise(torch.tensor([1.0])).item())  # the critic learns at commit only
    store.commit()
    mean = 0.999 * 2.0 + 0.001 * 4.0
    var = 0.001 * (4.0 - mean) ** 2
    assert store.nll_mean == pytest.approx(mean)
    assert store.surprise(torch.tensor([5.0])).item() == pytest.approx(
        (5.0 - mean) / (math.sqrt(var) + 1e-6), rel=1e-4
    )


def test_a_row_written_twice_is_refreshed_not_duplicated() -> None:
    store = Hippocampus(capacity=8, key_dim=4, value_dim=4)
    store.stash([_episode("job-1", 1, surprise=3.0)], [])
    store.commit()
    store.stash([_episode("job-1", 1, surprise=0.5)], [])
    store.commit()
    assert len(store) == 1
    assert (store.episodes[0].surprise, store.episodes[0].step) == (0.5, 2)


def test_eviction_drops_lowest_priority_but_keeps_each_jobs_quota() -> None:
    store = Hippocampus(capacity=10, key_dim=4, value_dim=4, job_quota=0.5)
    store.stash([_episode("old", i, surprise=0.1) for i in range(10)], [])  # low priority, fills the store
    store.commit()
    store.stash([_episode("new", 100 + i, surprise=5.0) for i in range(20)], [])
    store.commit()
    counts = Counter(e.job_id for e in store.episodes)
    assert counts["old"] == store.quota() == 2  # floor(0.5 * 10 / 2 jobs): protected
    assert counts["new"] == 8

    # A new entry below every evictable entry's priority is not stored.
    store.stash([_episode("new", 999, surprise=0.01)], [])
    store.commit()
    assert all(e.input_ids != [1, 999] for e in store.episodes)


def test_priority_decays_with_age() -> None:
    store = Hippocampus(capacity=8, key_dim=4, value_dim=4, age_scale=10.0)
    store.stash([_episode("job-1", 1, surprise=2.0)], [])
    store.commit()
    episode = store.episodes[0]
    for _ in range(10):
        store.commit()
    assert store.priority(episode) == pytest.approx(2.0 * math.exp(-1.0))


def test_sampling_prefers_surprise_excludes_the_current_job_and_is_deterministic() -> None:
    store = Hippocampus(capacity=100, key_dim=4, value_dim=4)
    store.stash([_episode("job-1", i, surprise=10.0 if i < 5 else 0.1) for i in range(40)], [])
    store.stash([_episode("job-2", 100 + i) for i in range(10)], [])
    store.commit()
    picks: Counter[bool] = Counter()
    for step in range(200):
        drawn = store.sample(4, key=f"job-2:{step}", exclude_job="job-2")
        assert len({e.sample_id for e in drawn}) == 4
        assert all(e.job_id == "job-1" for e in drawn)
        picks.update(e.input_ids[1] < 5 for e in drawn)
    assert picks[True] > 0.7 * sum(picks.values())  # 5 of 40 rows hold ~95% of the weight
    assert store.sample(4, key="k") == store.sample(4, key="k")


def test_save_and_load_continue_exactly(tmp_path: Path) -> None:
    store = Hippocampus(capacity=6, key_dim=4, value_dim=4, job_quota=0.5, age_scale=50.0, seed=3)
    store.stash([_episode("job-1", i, surprise=1.0 + i) for i in range(8)], nll=[1.0, 3.0, 2.0])
    store.commit()
    store.save(tmp_path)
    loaded = Hippocampus.load(tmp_path)
    assert (loaded.clock, loaded.jobs, loaded.nll_mean, loaded.nll_var) == (
        store.clock,
        store.jobs,
        store.nll_mean,
        store.nll_var,
    )
    assert [e.input_ids for e in loaded.episodes] == [e.input_ids for e in store.episodes]
    query = torch.nn.functional.normalize(
        torch.randn(3, 4, generator=torch.Generator().manual_seed(9)), dim=-1
    )
    torch.testing.assert_close(loaded.read(query, 3, 0.1), store.read(query, 3, 0.1))
    assert [e.sample_id for e in loaded.sample(3, "k")] == [e.sample_id for e in store.sample(3, "k")]
    for copy in (store, loaded):  # both continue the same way
        copy.stash([_episode("job-2", 50 + i, surprise=9.0) for i in range(4)], [])
        copy.commit()
    assert [e.input_ids for e in loaded.episodes] == [e.input_ids for e in store.episodes]


def test_saving_with_uncommitted_writes_is_refused(tmp_path: Path) -> None:
    store = Hippocampus(capacity=4, key_dim=4, value_dim=4)
    store.stash([_episode("job-1", 1)], [])
    with pytest.raises(RuntimeError, match="committed"):
        store.save(tmp_path)
