"""bench/panel.py: the ordinary jobs' rows and the thresholds chosen from control updates."""

from bench.panel import KINDS, ROWS, chosen_thresholds, training_rows


def test_ordinary_rows_differ_between_the_dev_and_held_out_sets() -> None:
    for kind in KINDS:
        dev, held_out = training_rows("dev", kind), training_rows("held_out", kind)
        assert len(dev) == len(held_out) == ROWS
        assert dev == training_rows("dev", kind)  # fixed
        assert not {str(row) for row in dev} & {str(row) for row in held_out}, kind
    assert all("messages" in row for row in training_rows("dev", "chat"))
    assert all("text" in row for row in training_rows("dev", "prose"))


def test_thresholds_sit_above_every_dev_control_update_and_never_below_the_papers() -> None:
    chosen = chosen_thresholds({"perplexity": [0.42, 0.61, 0.2], "safety": [-0.1, 0.05], "reasoning": [0.2]})
    assert chosen["perplexity"].rot == 0.75 and chosen["perplexity"].warn == 0.375
    assert chosen["safety"].rot == 0.3 and chosen["safety"].warn == 0.15
    assert chosen["reasoning"].rot == 0.3  # 0.2 + 0.1 is 0.3, not a float above it
