"""The PI replay controller: replay up when forgetting rises, down when it falls, within bounds."""

import math

import pytest

from trainers.methods.trc.config import TrcConfig
from trainers.methods.trc.controller import INTEGRAL_MAX, ReplayController


def test_replay_and_distillation_rise_with_forgetting_and_fall_when_it_falls() -> None:
    controller = ReplayController(TrcConfig())
    start = controller.state
    rising = [controller.update(f) for f in (0.1, 0.2, 0.3)]
    ratios = [start.replay_ratio] + [s.replay_ratio for s in rising]
    assert ratios == sorted(ratios) and ratios[-1] > ratios[0]
    assert rising[-1].distill_weight > start.distill_weight
    assert rising[-1].consolidation_rate < start.consolidation_rate  # slower consolidation
    falling = [controller.update(f) for f in (0.1, 0.0, -0.1)]
    ratios = [rising[-1].replay_ratio] + [s.replay_ratio for s in falling]
    assert ratios == sorted(ratios, reverse=True) and ratios[-1] < ratios[0]
    assert falling[-1].distill_weight < rising[-1].distill_weight
    assert falling[-1].consolidation_rate > rising[-1].consolidation_rate


def test_one_update_follows_the_pi_law() -> None:
    config = TrcConfig(forgetting_target=0.05, gain_p=2.0, gain_i=0.2, replay_ratio=0.25)
    controller = ReplayController(config)
    controller.update(0.15)  # e = 0.1, I = 0.1
    second = controller.update(0.25)  # e = 0.2, I = 0.3
    assert second.integral == pytest.approx(0.3)
    assert second.replay_ratio == pytest.approx(0.25 + 2.0 * 0.2 + 0.2 * 0.3)
    assert second.distill_weight == pytest.approx(0.5 * math.exp(2.0 * 0.2))
    assert second.consolidation_rate == pytest.approx(0.5 * (1 - 2.0 * 0.2))


def test_settings_stay_within_bounds_and_the_integral_does_not_wind_up() -> None:
    config = TrcConfig()
    controller = ReplayController(config)
    for _ in range(50):
        state = controller.update(1.0)
    assert state.replay_ratio == config.replay_ratio_max
    assert state.distill_weight == config.distill_weight_max
    assert state.consolidation_rate == 0.0
    assert state.integral == INTEGRAL_MAX
    for _ in range(50):
        state = controller.update(-1.0)
    assert state.replay_ratio == 0.0 and state.integral == -INTEGRAL_MAX
    assert state.consolidation_rate == 1.0


def test_without_the_controller_nothing_moves_and_state_round_trips() -> None:
    fixed = ReplayController(TrcConfig(controller=False))
    assert fixed.update(0.9) == fixed.state
    assert fixed.state.replay_ratio == TrcConfig().replay_ratio
    controller = ReplayController(TrcConfig())
    controller.update(0.3)
    copy = ReplayController(TrcConfig())
    copy.load_dict(controller.to_dict())
    assert copy.state == controller.state
