"""The one training loop every method shares: accelerate + DeepSpeed ZeRO-2.

Started by `python -m trainers.run --spec spec.json` as a single process (it then makes itself
rank 0 of 1), or by a launcher (`accelerate launch`, `deepspeed`, `torchrun`) for several
processes; each process takes its share of every batch. On a machine without a GPU DeepSpeed
runs on its CPU accelerator with the gloo backend.
"""

import json
import os
import socket
import sys
import time
import types
from collections.abc import Callable
from dataclasses import asdict
from datetime import UTC, datetime
from functools import partial
from typing import Any

import torch
from accelerate import Accelerator
from accelerate.utils import DeepSpeedPlugin, InitProcessGroupKwargs, set_seed
from transformers import AutoModelForCausalLM, AutoTokenizer

from eval.continual import STABILITY_FILE, ContinualEvaluator
from eval.metrics import StabilityTracker
from trainers.checkpoint import TrainState, latest_checkpoint, load_checkpoint, save_checkpoint
from trainers.contracts.job import JobSpec
from trainers.contracts.methods import load_method, version_loader
from trainers.data import BatchOrder, Collator, TrainingData, load_training_data
from trainers.interface import ContinualMethod
from trainers.precision import base_dtype, compute_dtype, device_type
from trainers.preference import (
    PairCollator,
    PreferenceLoss,
    add_reference_logps,
    load_preference_data,
    pair_sums,
)
from trainers.progress import Progress
from trainers.trackers import Trackers
from trainers.validation import Scores, Validation, batch_token_sums, token_sums

__all__ = ["METRICS_EVERY", "run_job"]

METRICS_EVERY = 10  # steps between metrics lines (plus the first and the last step)


def run_job(spec: JobSpec, progress: Progress) -> None:
    """Train one version: from the parent (or base) model to `adapter/`, `memory/`, manifest.

    Resumes from the newest checkpoint in `spec.output_dir/checkpoints/` when there is one.

    Args:
        spec: The job.
        progress: Where protocol lines go.
    """
    started_at = time.monotonic()
    _default_to_single_process()
    _stand_in_for_deepspeed_muon()
    config = spec.method.config
    method: ContinualMethod = load_method(spec.method.type)(config)
    hyperparameters = spec.hyperparameters
    set_seed(spec.seed)

    compute = compute_dtype(spec.precision)
    tokenizer = AutoTokenizer.from_pretrained(spec.base_model)
    base_model = AutoModelForCausalLM.from_pretrained(spec.base_model, dtype=base_dtype(compute))
    model = method.prepare_model(base_model, spec.parent_dir)
    if spec.objective.type == "dpo":
        data = load_preference_data(spec.training_file, tokenizer, config.max_seq_len, spec.held_out_rows)
    else:
        data = load_training_data(
            spec.training_file,
            spec.training_file_sha256,
            tokenizer,
            config.max_seq_len,
            spec.cache_dir,
            held_out_rows=spec.held_out_rows,
        )
    if data.dropped:
        progress.message(
            f"{data.dropped} training rows left out: nothing to learn in their first "
            f"{config.max_seq_len} tokens (max_seq_len).",
            level="warn",
        )
    if len(data.rows) == 0:
        raise ValueError("no training row has a token to learn from")
    validation_data = None
    if spec.validation_file is not None and spec.validation_file_sha256 is not None:
        if spec.objective.type == "dpo":
            validation_data = load_preference_data(spec.validation_file, tokenizer, config.max_seq_len)
        else:
            validation_data = load_training_data(
                spec.validation_file,
                spec.validation_file_sha256,
                tokenizer,
                config.max_seq_len,
                spec.cache_dir,
            )
        if len(validation_data.rows) == 0:
            raise ValueError("no validation row has a token to score")
    method.start_job(spec.job_id, data.rows, spec.seed)
    order = BatchOrder(len(data.rows), hyperparameters.batch_size, spec.seed)
    total_steps = hyperparameters.total_steps(len(data.rows))

    accelerator = Accelerator(
        deepspeed_plugin=DeepSpeedPlugin(hf_ds_config=_deepspeed_config(hyperparameters.batch_size, config)),
        # The scheduler counts optimizer steps of the whole (global) batch, once per step.
        step_scheduler_with_optimizer=False,
        # Without a GPU, accelerate counts DeepSpeed's processes (ranks, main process, barriers)
        # only when told the backend; otherwise every process believes it is rank 0 of 1.
        kwargs_handlers=[] if torch.cuda.is_available() else [InitProcessGroupKwargs(backend="gloo")],
    )
    optimizer = torch.optim.AdamW(
        [p for p in model.parameters() if p.requires_grad],
        lr=config.learning_rate * hyperparameters.learning_rate_multiplier,
        weight_decay=config.weight_decay,
    )
    schedule = partial(
        _warmup_then_linear_decay, warmup=round(config.warmup_ratio * total_steps), total=total_steps
    )
    scheduler = torch.optim.lr_scheduler.LambdaLR(optimizer, schedule)
    engine, optimizer, scheduler = accelerator.prepare(model, optimizer, scheduler)
    preference = None
    if spec.objective.type == "dpo" and spec.objective.beta is not None:
        # log pi_ref of every pair under the model as loaded from the parent: before any step,
        # and before a resume restores a checkpoint's weights (trainers/preference.py).
        pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
        pairs = PairCollator(Collator(pad))
        data = add_reference_logps(data, model, pairs, hyperparameters.batch_size, compute)
        if validation_data is not None:
            validation_data = add_reference_logps(
                validation_data, model, pairs, hyperparameters.batch_size, compute
            )
        preference = PreferenceLoss(
            spec.objective.beta, sums=torch.zeros(3, dtype=torch.float64, device=accelerator.device)
        )

    checkpoints_dir = spec.output_dir / "checkpoints"
    state = TrainState()
    if (checkpoint := latest_checkpoint(checkpoints_dir)) is not None:
        state = load_checkpoint(accelerator, method, checkpoint)
    progress.started(
        total_steps=total_steps,
        examples=len(data.rows),
        resumed_from_step=state.step,
        processes=accelerator.num_processes,
        backend=torch.distributed.get_backend(),
        precision=str(compute).removeprefix("torch."),
    )
    trackers = None
    if spec.integrations and accelerator.is_main_process:
        run_config = {
            "lineage": spec.lineage,
            "version": spec.version,
            "method": spec.method.type,
            "objective": spec.objective.type,
            "seed": spec.seed,
            **asdict(hyperparameters),
        }
        trackers = Trackers(spec.integrations, spec.job_id, run_config, spec.output_dir)
    evaluator = None
    if spec.continual_eval:
        tracker = StabilityTracker.load(spec.parent_dir / STABILITY_FILE) if spec.parent_dir else None
        # A plain PEFT version's model is a transformers model: its key-value cache may carry
        # the probes' common start (the chat template's system prompt).
        plain = version_loader(spec.method.type) is None
        evaluator = ContinualEvaluator(spec.continual_eval, tokenizer, tracker=tracker, shared_prefix=plain)
    if evaluator is not None and not evaluator.active:
        evaluator = None  # the lineage's first job: nothing earlier to forget
    if evaluator is not None and state.step == 0:
        _evaluate(evaluator, method, model, 0, progress, compute)

    collate = Collator(
        tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    )
    batches: Callable[[list[dict[str, Any]]], dict[str, torch.Tensor]] = collate
    if preference is not None:
        batches = PairCollator(collate)  # each pair's two sides, then any replayed rows
    validation = None
    if validation_data is not None:
        # a dpo job's validation pairs are scored per pair (`pair_sums`), a supervised job's rows per token
        sums = partial(pair_sums, beta=preference.beta) if preference is not None else batch_token_sums
        validation = Validation(
            validation_data.rows, hyperparameters.batch_size, spec.seed, batches, accelerator, compute, sums
        )
    engine.train()
    losses: list[float] = []
    train_sums = torch.zeros(
        3, dtype=torch.float64, device=accelerator.device
    )  # token_sums since the last report
    for step in range(state.step, total_steps):
        rows = [data.rows[i] for i in order.batch(step)]
        rows += method.replay_rows(step, len(rows))
        mine = rows[accelerator.process_index :: accelerator.num_processes]
        batch = {name: tensor.to(accelerator.device) for name, tensor in batches(mine).items()}
        with torch.autocast(device_type(), dtype=compute, enabled=compute != torch.float32):
            outputs = engine(
                input_ids=batch["input_ids"],
                attention_mask=batch["attention_mask"],
                labels=batch["labels"],
                output_hidden_states=True,  # references to activations kept for backward anyway
            )
            if preference is not None:  # the objective's loss, which the method adds its terms to
                outputs.loss = preference(outputs.logits, batch)
            loss = method.training_loss(engine, batch, outputs)
        if not torch.isfinite(loss):
            # NaN or inf never reaches an event, a checkpoint or a version (docs/jobs.md).
            raise FloatingPointError(
                f"the training loss is {loss.item()} at step {step + 1}: training diverged (or the "
                "model computes non-finite values); lower the learning rate (learning_rate_multiplier "
                "or the method's learning_rate)"
            )
        accelerator.backward(loss)  # under DeepSpeed this also steps the optimizer
        optimizer.step()
        learning_rate = scheduler.get_last_lr()[0]
        scheduler.step()
        optimizer.zero_grad()
        train_sums += token_sums(outputs.logits.detach(), batch["labels"])
        method.after_optimizer_step(model, step + 1)
        if evaluator is not None and evaluator.due(step + 1, total_steps):
            _evaluate(evaluator, method, model, step + 1, progress, compute)

        state.step = step + 1
        state.trained_tokens += sum(row["length"] + row.get("non_preferred_length", 0) for row in rows)
        state.replayed_tokens += sum(row["length"] for row in rows if row.get("replayed"))
        losses.append(accelerator.reduce(loss.detach(), "mean").item())
        if state.step == 1 or state.step % METRICS_EVERY == 0 or state.step == total_steps:
            state.train_loss, losses = sum(losses) / len(losses), []
            trained = Scores.from_sums(accelerator.reduce(train_sums, "sum"))
            state.train_mean_token_accuracy, train_sums = trained.accuracy, torch.zeros_like(train_sums)
            if validation is not None:
                _validate(validation, engine, state, final=state.step == total_steps)
            reported = {
                "train_loss": state.train_loss,
                "learning_rate": learning_rate,
                "trained_tokens": state.trained_tokens,
                "elapsed_s": time.monotonic() - started_at,
                "train_mean_token_accuracy": state.train_mean_token_accuracy,
                "valid_loss": state.valid_loss,
                "valid_mean_token_accuracy": state.valid_mean_token_accuracy,
                **(
                    preference.rewards(accelerator.reduce(preference.sums, "sum"))
                    if preference is not None
                    else {}
                ),
            }
            progress.metrics(step=state.step, total_steps=total_steps, **reported)
            if trackers is not None:
                trackers.log(reported, state.step)
        if state.step % spec.checkpoint_every == 0 or state.step == total_steps:
            path = save_checkpoint(accelerator, method, state, checkpoints_dir)
            progress.checkpoint(
                state.step, str(path.relative_to(spec.output_dir)), **state.checkpoint_metrics()
            )

    if accelerator.is_main_process:
        seconds = time.monotonic() - started_at
        _publish(spec, method, model, data, state, seconds, accelerator.num_processes)
        if evaluator is not None:  # the next version's job goes on with it
            evaluator.tracker.save(spec.output_dir / STABILITY_FILE)
    if trackers is not None:
        trackers.close()
    accelerator.wait_for_everyone()
    accelerator.end_training()
    progress.completed(steps=state.step, train_loss=state.train_loss, trained_tokens=state.trained_tokens)


def _evaluate(
    evaluator: ContinualEvaluator,
    method: ContinualMethod,
    model: torch.nn.Module,
    step: int,
    progress: Progress,
    compute: torch.dtype,
) -> None:
    """Score earlier jobs' probes now, in the job's compute precision; the method may react (every
    process does both, identically)."""
    started = time.monotonic()
    with torch.autocast(device_type(), dtype=compute, enabled=compute != torch.float32):
        evaluation = evaluator.evaluate(model, step)
    settings = method.after_evaluation(step, evaluation)
    progress.evaluation(evaluation, settings, seconds=time.monotonic() - started)


def _validate(validation: Validation, engine: torch.nn.Module, state: TrainState, final: bool) -> None:
    """Score the validation batch of this step (and, at the last step, the whole validation file)
    into `state`; every process does its share."""
    engine.eval()
    scores = validation.batch_scores(engine, state.step)
    state.valid_loss, state.valid_mean_token_accuracy = scores.loss, scores.accuracy
    if final:
        full = validation.full_scores(engine)
        state.full_valid_loss, state.full_valid_mean_token_accuracy = full.loss, full.accuracy
    engine.train()


def _default_to_single_process() -> None:
    """Without a launcher, this process is rank 0 of 1 with a local rendezvous."""
    os.environ.setdefault("RANK", "0")
    os.environ.setdefault("WORLD_SIZE", "1")
    os.environ.setdefault("LOCAL_RANK", "0")
    os.environ.setdefault("MASTER_ADDR", "127.0.0.1")
    if "MASTER_PORT" not in os.environ:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            os.environ["MASTER_PORT"] = str(probe.getsockname()[1])


def _stand_in_for_deepspeed_muon() -> None:
    """Replace DeepSpeed's Muon optimizer modules, which we never use, by stand-ins.

    DeepSpeed's ZeRO code imports them for `isinstance(optimizer, MuonWithAuxAdam)` checks and
    for Muon parameter groups, but importing them runs `torch.compile` decorators that load
    inductor: 1.1-1.4 s of every job on 2 CPU cores. With our AdamW those checks are False and
    there is no Muon group, for the stand-ins as for the real modules.
    """
    muon_optimizer = types.ModuleType("deepspeed.runtime.zero.muon.muon_optimizer")
    muon_optimizer.MuonWithAuxAdam = type("MuonWithAuxAdam", (), {})
    original_muon = types.ModuleType("deepspeed.runtime.zero.muon.original_muon")
    original_muon.muon_update = None  # only called for Muon parameter groups
    for module in (muon_optimizer, original_muon):
        sys.modules.setdefault(module.__name__, module)


def _deepspeed_config(batch_size: int, config: Any) -> dict[str, Any]:
    world_size = int(os.environ["WORLD_SIZE"])
    return {
        "train_micro_batch_size_per_gpu": -(-batch_size // world_size),  # ceil
        "gradient_accumulation_steps": 1,
        "gradient_clipping": config.max_grad_norm,
        "zero_optimization": {"stage": 2},
        # Our AdamW is torch's, over the trainable parameters only; ZeRO-2 shards its state.
        "zero_allow_untested_optimizer": True,
        "steps_per_print": 2**31 - 1,
    }


def _warmup_then_linear_decay(step: int, warmup: int, total: int) -> float:
    """Learning-rate factor: linear from ~0 to 1 over `warmup` steps, then linear to 0."""
    if step < warmup:
        return (step + 1) / (warmup + 1)
    return max(0.0, (total - step) / max(1, total - warmup))


def _publish(
    spec: JobSpec,
    method: ContinualMethod,
    model: torch.nn.Module,
    data: TrainingData,
    state: TrainState,
    seconds: float,
    processes: int,
) -> None:
    """Write the artifact: `adapter/`, `memory/`, then `manifest.json` last."""
    method.export_adapter(model, spec.output_dir / "adapter")
    memory_dir = spec.output_dir / "memory"
    memory_dir.mkdir(exist_ok=True)
    method.save_memory(memory_dir)
    manifest = {
        "job_id": spec.job_id,
        "tenant": spec.tenant,
        "lineage": spec.lineage,
        "version": spec.version,
        "parent_version": spec.parent_version,
        "method": spec.method.type,
        "config": asdict(method.config),
        "base_model": spec.base_model,
        "data": {
            "training_file_sha256": spec.training_file_sha256,
            "examples": len(data.rows),
            "dropped_rows": data.dropped,
        },
        "hyperparameters": asdict(spec.hyperparameters),
        "objective": spec.objective.to_json(),
        "seed": spec.seed,
        "processes": processes,
        "metrics": {
            "steps": state.step,
            "train_loss": state.train_loss,
            "trained_tokens": state.trained_tokens,
            "replayed_tokens": state.replayed_tokens,
            "seconds": round(seconds, 1),
        },
        "created_at": datetime.now(UTC).isoformat(timespec="seconds"),
    }
    (spec.output_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
