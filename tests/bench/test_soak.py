"""The soak (bench/soak.py), shortened: a hostile tenant does not stop two others."""

from pathlib import Path

import pytest

from bench.soak import SoakConfig, run_soak

pytestmark = pytest.mark.slow  # a real service training real (tiny) models


def test_two_tenants_finish_everything_beside_a_hostile_one(
    tmp_path: Path, tiny_base: Path, nan_base: Path
) -> None:
    config = SoakConfig(good_jobs=1, hostile_jobs=10, max_active_jobs=2, steps=3, timeout_s=600)

    result = run_soak(tmp_path, tiny_base, nan_base, config)

    assert result.problems == []
    assert result.hostile_jobs == {"failed": 2} and result.hostile_errors == {"training_failed": 2}
    assert result.hostile_refused[429] == 8  # the jobs over the quota
    assert result.hostile_refused[400] == 2  # the two unusable webhook URLs
    assert result.hostile_refused[413] == 2  # the 101 MiB upload, the 3 MiB body
    assert result.hostile_refused[503] == 1  # the completion: serving is off in the soak
