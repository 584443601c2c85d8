"""A job with a validation file: loss and token accuracy on rows it never trains on, in its metrics
and checkpoints as OpenAI shows them; the sums they come from match Hugging Face's loss."""

from pathlib import Path

import pytest
import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from tests.trainers.conftest import TrainerRun, run_trainer, write_spec
from trainers.data import IGNORE_INDEX, Collator, load_training_data
from trainers.validation import Scores, token_sums

STEPS = 12  # metrics at steps 1, 10 and 12; checkpoints at 6 and 12


def test_token_sums_give_hugging_faces_loss_and_the_top_prediction_share(tiny_base: Path) -> None:
    model = AutoModelForCausalLM.from_pretrained(tiny_base).eval()
    torch.manual_seed(0)
    input_ids = torch.randint(3, 100, (2, 9))  # (batch, seq)
    labels = input_ids.clone()
    labels[0, :4] = IGNORE_INDEX  # a prompt
    labels[1, 7:] = IGNORE_INDEX  # padding
    with torch.no_grad():
        outputs = model(input_ids=input_ids, labels=labels)
    scores = Scores.from_sums(token_sums(outputs.logits, labels))

    assert scores.loss == pytest.approx(outputs.loss.item(), rel=1e-5)
    predicted = outputs.logits[:, :-1].argmax(-1)  # (batch, seq - 1)
    targets = labels[:, 1:]
    counted = targets != IGNORE_INDEX
    assert scores.accuracy == (predicted[counted] == targets[counted]).float().mean().item()


@pytest.mark.slow
class TestAJobWithAValidationFile:
    @pytest.fixture(scope="class")
    def run(
        self,
        tmp_path_factory: pytest.TempPathFactory,
        tiny_base: Path,
        facts_file: Path,
        second_facts_file: Path,
    ) -> tuple[TrainerRun, Path]:
        output_dir = tmp_path_factory.mktemp("validated") / "v1.partial"
        spec = write_spec(
            output_dir,
            tiny_base,
            facts_file,
            max_steps=STEPS,
            checkpoint_every=6,
            validation_file=second_facts_file,
        )
        run = run_trainer(spec)
        assert run.returncode == 0, run.stderr
        return run, output_dir

    def test_every_metrics_line_scores_a_validation_batch(self, run: tuple[TrainerRun, Path]) -> None:
        metrics = run[0].of_type("metrics")
        assert [m["step"] for m in metrics] == [1, 10, 12]
        for m in metrics:
            assert m["valid_loss"] > 0 and 0 <= m["valid_mean_token_accuracy"] <= 1
            assert 0 <= m["train_mean_token_accuracy"] <= 1
        assert metrics[-1]["train_mean_token_accuracy"] > metrics[0]["train_mean_token_accuracy"]

    def test_checkpoints_carry_openais_metrics_and_the_last_the_full_validation(
        self, run: tuple[TrainerRun, Path]
    ) -> None:
        first, last = run[0].of_type("checkpoint")
        metrics = run[0].of_type("metrics")
        assert first["valid_loss"] == metrics[0]["valid_loss"]  # the last reported by step 6
        assert first["full_valid_loss"] is None and first["full_valid_mean_token_accuracy"] is None
        assert last["valid_loss"] == metrics[-1]["valid_loss"]
        assert last["full_valid_loss"] > 0 and 0 <= last["full_valid_mean_token_accuracy"] <= 1

    def test_the_full_validation_is_the_published_versions_loss_on_the_whole_file(
        self, run: tuple[TrainerRun, Path], tiny_base: Path, second_facts_file: Path
    ) -> None:
        last = run[0].of_type("checkpoint")[-1]
        tokenizer = AutoTokenizer.from_pretrained(tiny_base)
        model = PeftModel.from_pretrained(
            AutoModelForCausalLM.from_pretrained(tiny_base), run[1] / "adapter"
        ).eval()
        rows = load_training_data(
            second_facts_file, "other-sha", tokenizer, 256, run[1].parent / "cache2"
        ).rows
        batch = Collator(tokenizer.pad_token_id or tokenizer.eos_token_id)(
            [rows[i] for i in range(len(rows))]
        )
        with torch.no_grad():
            logits = model(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).logits
        expected = Scores.from_sums(token_sums(logits, batch["labels"]))

        assert last["full_valid_loss"] == pytest.approx(expected.loss, rel=1e-3)
        # Batches padded otherwise may break a near-tie of the top prediction the other way.
        tokens = (batch["labels"][:, 1:] != IGNORE_INDEX).sum().item()
        assert last["full_valid_mean_token_accuracy"] == pytest.approx(expected.accuracy, abs=2 / tokens)
