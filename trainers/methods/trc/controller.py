"""The online replay controller of TRC² (docs/methods.md, trc): a PI loop on measured forgetting.

After each continual evaluation with forgetting F (earlier jobs' accuracy lost since the job
started), with error e = F - F* and integral I (clipped to +-INTEGRAL_MAX):

    replay_ratio        = clip(rho_0 + k_p e + k_i I, 0, rho_max)
    distill_weight      = clip(lambda_0 exp(kappa e), 0, lambda_max)
    consolidation_rate  = clip(lambda_c0 (1 - kappa' e), 0, 1)

Rising forgetting means more replay, stronger distillation and slower consolidation (the
stable column absorbs less of plastic columns that are overwriting earlier jobs). Torch-free.
"""

import math
from dataclasses import asdict, dataclass

from trainers.methods.trc.config import TrcConfig

__all__ = ["ControllerState", "ReplayController"]

INTEGRAL_MAX = 1.0  # anti-windup bound on the summed error (the design's I_max)


@dataclass
class ControllerState:
    """What the controller sets, and its integral.

    Attributes:
        replay_ratio: Replayed rows per batch, as a share of the batch size.
        distill_weight: Weight of the distillation loss on replayed rows.
        consolidation_rate: Share of the plastic columns the stable column absorbs at the next boundary.
        integral: Sum of the errors so far, clipped.
    """

    replay_ratio: float
    distill_weight: float
    consolidation_rate: float
    integral: float = 0.0


class ReplayController:
    """Sets replay ratio, distillation weight and consolidation rate from measured forgetting.

    Args:
        config: The method's config: starting values, bounds, target and gains; with
            `controller=False` the values never move.
    """

    def __init__(self, config: TrcConfig) -> None:
        self.config = config
        self.state = ControllerState(config.replay_ratio, config.distill_weight, config.consolidation_rate)

    def update(self, forgetting: float) -> ControllerState:
        """React to one measurement of forgetting (in [-1, 1]); returns the new settings."""
        if not self.config.controller:
            return self.state
        c = self.config
        error = forgetting - c.forgetting_target
        integral = _clip(self.state.integral + error, -INTEGRAL_MAX, INTEGRAL_MAX)
        self.state = ControllerState(
            replay_ratio=_clip(
                c.replay_ratio + c.gain_p * error + c.gain_i * integral, 0.0, c.replay_ratio_max
            ),
            distill_weight=_clip(
                c.distill_weight * math.exp(c.distill_gain * error), 0.0, c.distill_weight_max
            ),
            consolidation_rate=_clip(c.consolidation_rate * (1 - c.consolidation_gain * error), 0.0, 1.0),
            integral=integral,
        )
        return self.state

    def to_dict(self) -> dict[str, float]:
        """The state, as JSON values."""
        return asdict(self.state)

    def load_dict(self, state: dict[str, float]) -> None:
        """Restore what `to_dict` returned."""
        self.state = ControllerState(**state)


def _clip(value: float, low: float, high: float) -> float:
    return min(high, max(low, value))
