"""Every registered method on each architecture family: two jobs as trainer processes, then served.

The bases are random and tiny (hidden 64, 2 layers) but keep what sets each family apart
(`trainers/base_model/architectures.py`: Qwen2's attention biases, Mistral's sliding window,
Gemma's scaled and tied embeddings and GeLU MLP), with grouped-query attention and heads wider
than hidden / heads (4 query and 2 key-value heads of 32 on a hidden size of 64, as Gemma 7B's
16 heads of 256 on 3072), so no method can lean on one family's names or head layout.
"""

import dataclasses
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM

from tests.trainers.conftest import TrainerRun, run_trainer, write_spec
from trainers.base_model.architectures import ARCHITECTURES
from trainers.base_model.build import PRESETS, build_base
from trainers.contracts.methods import Method, available_methods
from trainers.servable import load_version

pytestmark = pytest.mark.slow

SHAPE = dataclasses.replace(PRESETS["tiny"], num_kv_heads=2, head_dim=32)
STEPS = 4
CASES = [(architecture, method) for architecture in ARCHITECTURES for method in available_methods()]
IDS = torch.tensor([[1, 40, 41, 42, 43]])  # (batch, seq)
NEW_TOKENS = 4


@dataclasses.dataclass
class Lineage:
    """A lineage's two jobs: their trainer runs and version folders (no second when the first failed)."""

    runs: list[TrainerRun]
    versions: list[Path]


@pytest.fixture(scope="module")
def bases(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    """One random base per architecture, with the project's tokenizer."""
    return {
        architecture: build_base(
            tmp_path_factory.mktemp(f"base-{architecture}"),
            preset=SHAPE,
            architecture=architecture,
            log=lambda line: None,
        )
        for architecture in ARCHITECTURES
    }


@pytest.fixture(scope="module")
def lineages(
    tmp_path_factory: pytest.TempPathFactory,
    bases: dict[str, Path],
    facts_file: Path,
    second_facts_file: Path,
) -> dict[tuple[str, str], Lineage]:
    """Per architecture and method, a first job and a second one continuing from its version.

    Trainer processes spend most of their few seconds importing, so two lineages train at once,
    one core each: the 40 jobs take half the time they would one after the other.
    """
    root = tmp_path_factory.mktemp("lineages")

    def train(case: tuple[str, str]) -> Lineage:
        architecture, method = case
        lineage = Lineage([], [])
        parent = None
        for number, data in ((1, facts_file), (2, second_facts_file)):
            version = root / architecture / method / f"v{number}"
            spec = write_spec(
                version,
                bases[architecture],
                data,
                parent_dir=parent,
                max_steps=STEPS,
                checkpoint_every=STEPS,
                method=Method.resolve(method, {"r": 4}),
            )
            run = run_trainer(spec)
            lineage.runs.append(run)
            if run.returncode != 0:
                return lineage
            lineage.versions.append(version)
            parent = version
        return lineage

    with pytest.MonkeyPatch.context() as patch, ThreadPoolExecutor(max_workers=2) as pool:
        patch.setenv("OMP_NUM_THREADS", "1")
        return dict(zip(CASES, pool.map(train, CASES), strict=True))


@pytest.mark.parametrize(("architecture", "method"), CASES)
def test_method_trains_continues_and_serves(
    architecture: str,
    method: str,
    bases: dict[str, Path],
    lineages: dict[tuple[str, str], Lineage],
) -> None:
    lineage = lineages[architecture, method]
    for run in lineage.runs:
        assert run.returncode == 0, run.stderr[-3000:]
        assert run.lines[-1]["type"] == "completed"
    assert len(lineage.versions) == 2

    base = bases[architecture]
    with torch.no_grad():
        expected = AutoModelForCausalLM.from_pretrained(base).eval()(IDS).logits
        answers = []
        for version in lineage.versions:
            # What serving and evaluation load: the method's own loader, or the PEFT adapter.
            served = load_version(AutoModelForCausalLM.from_pretrained(base), version)
            logits = served(input_ids=IDS).logits
            assert torch.isfinite(logits).all()
            assert not torch.allclose(logits, expected, atol=1e-4)
            generated = served.generate(
                IDS, max_new_tokens=NEW_TOKENS, min_new_tokens=NEW_TOKENS, do_sample=False, pad_token_id=0
            )
            assert generated.shape == (1, IDS.shape[1] + NEW_TOKENS)
            answers.append(logits)
            # What vLLM loads, when the version has it (trc's is an approximation of the version).
            if (version / "adapter" / "adapter_config.json").exists():
                adapted = PeftModel.from_pretrained(
                    AutoModelForCausalLM.from_pretrained(base), version / "adapter"
                )
                assert not torch.allclose(adapted.eval()(IDS).logits, expected, atol=1e-4)
    # The second job taught its version something the first did not know.
    assert not torch.allclose(answers[1], answers[0], atol=1e-4)
