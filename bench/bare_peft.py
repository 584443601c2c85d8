"""The baseline a service job is measured against: a bare peft training script, no service.

    python -m bench.bare_peft --base MODEL_DIR --data FILE.jsonl --steps 200

Same work as a `lora` job with default config: LoRA r=16, alpha=32 on every linear layer, AdamW
at 2e-3 with 3% linear warm-up then linear decay, clipping at 1.0, batch 8, loss on completions.
The benchmark times the whole process, imports and model loading included, as it times the
service job from submission to `succeeded`.
"""

import argparse
import json
import random

import torch
from peft import LoraConfig, get_peft_model
from transformers import AutoModelForCausalLM, AutoTokenizer, get_linear_schedule_with_warmup


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--base", required=True)
    parser.add_argument("--data", required=True)
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=8)
    args = parser.parse_args()

    torch.manual_seed(0)
    tokenizer = AutoTokenizer.from_pretrained(args.base)
    model = AutoModelForCausalLM.from_pretrained(args.base, dtype=torch.float32)
    model = get_peft_model(model, LoraConfig(r=16, lora_alpha=32, target_modules="all-linear"))
    with open(args.data) as lines:
        rows = [_encode(tokenizer, json.loads(line)) for line in lines if line.strip()]
    trainable = [p for p in model.parameters() if p.requires_grad]
    optimizer = torch.optim.AdamW(trainable, lr=2e-3, weight_decay=0.0)
    schedule = get_linear_schedule_with_warmup(optimizer, int(0.03 * args.steps), args.steps)
    model.train()
    order: list[int] = []
    for step in range(args.steps):
        if len(order) < args.batch_size:
            order += random.Random(step).sample(range(len(rows)), len(rows))
        batch = _collate([rows[i] for i in order[: args.batch_size]], tokenizer.pad_token_id)
        del order[: args.batch_size]
        loss = model(**batch).loss
        loss.backward()
        torch.nn.utils.clip_grad_norm_(trainable, 1.0)
        optimizer.step()
        schedule.step()
        optimizer.zero_grad()
    model.save_pretrained("/tmp/bench-bare-peft-adapter")
    print(json.dumps({"final_loss": loss.item()}))


def _encode(tokenizer, row: dict) -> tuple[list[int], list[int]]:  # type: ignore[no-untyped-def]
    prompt = tokenizer(row["prompt"], add_special_tokens=False)["input_ids"]
    completion = tokenizer(row["completion"], add_special_tokens=False)["input_ids"] + [
        tokenizer.eos_token_id
    ]
    return prompt + completion, [-100] * len(prompt) + completion


def _collate(rows: list[tuple[list[int], list[int]]], pad: int) -> dict[str, torch.Tensor]:
    width = max(len(ids) for ids, _ in rows)
    ids = torch.full((len(rows), width), pad)
    labels = torch.full((len(rows), width), -100)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    for i, (row_ids, row_labels) in enumerate(rows):
        ids[i, : len(row_ids)] = torch.tensor(row_ids)
        labels[i, : len(row_labels)] = torch.tensor(row_labels)
        mask[i, : len(row_ids)] = 1
    return {"input_ids": ids, "attention_mask": mask, "labels": labels}


if __name__ == "__main__":
    main()
