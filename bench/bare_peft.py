"""The baseline a service job is measured against: a bare peft training script, no service.

    python -m bench.bare_peft --base MODEL_DIR --data FILE.jsonl --steps 200 [--precision auto]
        [--targets attention] [--gradient-checkpointing]

Same work as a `lora` job with default config: LoRA r=16, alpha=32 on every linear layer, AdamW
at 2e-3 with 3% linear warm-up then linear decay, clipping at 1.0, batch 8, loss on completions
(or assistant turns), in the precision the loop would choose (`trainers/precision.py`). Rows
are tokenized with the loop's own `render_row`, so both train on the same tokens; everything
timed is transformers, peft and torch alone. Prints one JSON line: the final loss and the
training tokens/s after the first step (which warms up). `--targets attention` (LoRA on the
attention projections only) and `--gradient-checkpointing` are the alternatives the real-model
benchmark weighs before the loop's defaults.
"""

import argparse
import json
import random
import time

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, get_linear_schedule_with_warmup

from trainers.data import render_row
from trainers.precision import base_dtype, compute_dtype, device_type

ATTENTION = ["q_proj", "k_proj", "v_proj", "o_proj"]


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    parser.add_argument("--precision", default="float32", choices=["auto", "float32", "bfloat16"])
    parser.add_argument("--targets", default="all-linear", choices=["all-linear", "attention"])
    parser.add_argument("--gradient-checkpointing", action="store_true")
    args = parser.parse_args()

    torch.manual_seed(0)
    compute = compute_dtype(args.precision)
    tokenizer = AutoTokenizer.from_pretrained(args.base)
    model = AutoModelForCausalLM.from_pretrained(args.base, dtype=base_dtype(compute))
    if args.gradient_checkpointing:
        model.gradient_checkpointing_enable()
        model.enable_input_require_grads()  # the frozen embeddings' output must carry a gradient
    targets = ATTENTION if args.targets == "attention" else "all-linear"
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules=targets))
    with open(args.data) as lines:
        rows = [render_row(json.loads(line), tokenizer, 256) for line in lines if line.strip()]
    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else tokenizer.eos_token_id
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=2e-3, weight_decay=0.0)
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.03 * args.steps), args.steps)
    model.train()
    order: list[int] = []
    tokens, started = 0, 0.0
    for step in range(args.steps):
        if step == 1:
            started = time.perf_counter()  # step 0 warms up, as the loop's step 1 does
        if len(order) < args.batch_size:
            order += random.Random(step).sample(range(len(rows)), len(rows))
        batch_rows = [rows[i] for i in order[: args.batch_size]]
        del order[: args.batch_size]
        with torch.autocast(device_type(), dtype=compute, enabled=compute != torch.float32):
            loss = model(**_collate(batch_rows, pad)).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
        tokens += sum(row["length"] for row in batch_rows) if step >= 1 else 0
    seconds = time.perf_counter() - started
    model.save_pretrained("/tmp/bench-bare-peft-adapter")
    result = {
        "final_loss": loss.item(),
        "precision": str(compute).removeprefix("torch."),
        "tokens_per_s": tokens / seconds,
        "step_s": seconds / (args.steps - 1),
    }
    print(json.dumps(result))


def _collate(rows: list[dict], pad: int) -> dict[str, torch.Tensor]:  # type: ignore[type-arg]
    width = max(row["length"] for row in rows)
    ids = torch.full((len(rows), width), pad)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, row in enumerate(rows):
        ids[i, : row["length"]] = torch.tensor(row["input_ids"])
        labels[i, : row["length"]] = torch.tensor(row["labels"])
        mask[i, : row["length"]] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


if __name__ == "__main__":
    main()
