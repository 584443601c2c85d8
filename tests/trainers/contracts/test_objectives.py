"""A job's training objective (OpenAI's job `method`): its values, spec.json, which methods train it."""

import pytest

from tests.trainers.contracts.test_job import SPEC
from trainers.contracts.job import JobSpec, SpecError
from trainers.contracts.methods import available_methods, objective_problem
from trainers.contracts.objectives import Objective


def test_a_spec_without_an_objective_is_supervised() -> None:
    assert JobSpec.from_dict(SPEC).objective == Objective("supervised")


def test_a_dpo_spec_reads_back_its_beta() -> None:
    spec = JobSpec.from_dict({**SPEC, "objective": {"type": "dpo", "beta": 0.25}})
    assert spec.objective == Objective("dpo", 0.25)
    assert JobSpec.from_dict(spec.to_json()) == spec


@pytest.mark.parametrize(
    ("objective", "message"),
    [
        ({"type": "rlhf"}, "objective.type must be one of supervised, dpo"),
        ({"type": "dpo", "beta": 0}, "objective.beta must be a number above 0"),
        ({"type": "dpo", "beta": 11}, "at most 10"),
        ({"type": "dpo"}, "objective.beta must be a number"),
        ({"type": "supervised", "beta": 0.1}, "beta is for dpo only"),
        ({"type": "dpo", "beta": 0.1, "gamma": 1}, 'objective must be an object with "type" and "beta"'),
    ],
)
def test_a_bad_objective_is_refused(objective: dict, message: str) -> None:
    with pytest.raises(SpecError, match=message):
        JobSpec.from_dict({**SPEC, "objective": objective})


def test_every_method_but_trc_and_ewc_trains_dpo_jobs() -> None:
    assert all(objective_problem(name, "supervised") is None for name in available_methods())
    refusing = {name for name in available_methods() if objective_problem(name, "dpo")}
    assert refusing == {"ewc", "trc"}
    assert "non-preferred outputs" in (objective_problem("trc", "dpo") or "")
    assert "Fisher" in (objective_problem("ewc", "dpo") or "")


def test_a_spec_of_a_dpo_job_on_trc_is_refused() -> None:
    """The control plane refuses such a job; a spec written by hand is refused before any model loads."""
    trc = {**SPEC, "method": {"type": "trc"}, "objective": {"type": "dpo", "beta": 0.1}}
    with pytest.raises(SpecError, match="a trc lineage cannot train a dpo job: trc writes"):
        JobSpec.from_dict(trc)
