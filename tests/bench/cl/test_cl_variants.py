"""Every variant the benchmark names is a config its method accepts: a typo fails here, not an hour in."""

import pytest

from bench.cl.report import CONTINUAL, MAIN, REPLAY
from bench.cl.variants import VARIANTS
from trainers.contracts.methods import Method


@pytest.mark.parametrize(
    "name", [name for name, variant in VARIANTS.items() if variant.method != "multitask"]
)
def test_each_variant_resolves_to_its_methods_config(name: str) -> None:
    variant = VARIANTS[name]
    config = Method.resolve(variant.method, variant.config).config
    assert all(getattr(config, field) == value for field, value in variant.config.items())


def test_the_report_names_only_variants_that_exist() -> None:
    assert set(MAIN) | set(CONTINUAL) | set(REPLAY) <= set(VARIANTS)
