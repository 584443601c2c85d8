"""Online EWC's anchor: the penalty, the online Fisher update and an exact save/load."""

from pathlib import Path

import pytest
import torch

from memory.fisher import ParameterAnchor


def test_the_penalty_weighs_each_squared_step_from_the_anchor_by_its_fisher() -> None:
    anchor = ParameterAnchor({"w": torch.tensor([1.0, 2.0])}, {"w": torch.tensor([3.0, 0.0])})
    assert anchor.penalty({"w": torch.tensor([1.0, 2.0])}).item() == 0
    # Only the first weight is held: moving the second costs nothing.
    assert anchor.penalty({"w": torch.tensor([0.5, 9.0])}).item() == pytest.approx(3 * 0.25)


def test_a_job_end_moves_the_anchor_and_decays_then_adds_the_fisher(tmp_path: Path) -> None:
    first = ParameterAnchor.fresh({"w": torch.tensor([1.0, 2.0])})
    assert first.penalty({"w": torch.tensor([5.0, 5.0])}).item() == 0  # a first job is held by nothing
    second = first.consolidated({"w": torch.tensor([4.0, 4.0])}, {"w": torch.tensor([2.0, 1.0])}, decay=0.5)
    third = second.consolidated({"w": torch.tensor([0.0, 1.0])}, {"w": torch.tensor([1.0, 1.0])}, decay=0.5)
    torch.testing.assert_close(third.anchor["w"], torch.tensor([0.0, 1.0]))
    torch.testing.assert_close(third.fisher["w"], torch.tensor([2.0, 1.5]))

    third.save(tmp_path)
    loaded = ParameterAnchor.load(tmp_path)
    assert torch.equal(loaded.anchor["w"], third.anchor["w"]) and torch.equal(
        loaded.fisher["w"], third.fisher["w"]
    )
