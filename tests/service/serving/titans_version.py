"""Titans versions made on the fly for serving tests: memory branches with open gates, so each
changes the output and reads its memory."""

import json
from dataclasses import asdict
from pathlib import Path


def make_titans_version(base: Path, out: Path, seed: int) -> Path:
    """Write a version folder (`manifest.json`, `adapter/`, `memory/`) of a titans lineage on `base`."""
    import torch
    from transformers import AutoModelForCausalLM

    from trainers.methods.titans.config import TitansConfig
    from trainers.methods.titans.method import TitansMethod

    torch.manual_seed(seed)
    config = TitansConfig(heads=2, head_dim=16, chunk_size=4)
    method = TitansMethod(config)
    model = method.prepare_model(AutoModelForCausalLM.from_pretrained(base), parent_dir=None)
    with torch.no_grad():
        for branch in model.branches.values():
            branch.gate.fill_(0.5)
            branch.out.weight.normal_(0, 0.5)
    method.export_adapter(model, out / "adapter")
    (out / "memory").mkdir(parents=True)
    method.save_memory(out / "memory")
    (out / "manifest.json").write_text(json.dumps({"method": "titans", "config": asdict(config)}))
    return out
