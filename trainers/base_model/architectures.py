"""The decoder families a base model can be built in: one set of sizes, each family's own config.

The families differ where continual-learning code could trip over them: Qwen2 has biases on its
query, key and value projections; Mistral attends within a sliding window; Gemma scales its
embeddings by sqrt(hidden size), uses a GeLU MLP, centres its norms at 1 and ties its output head
to the embeddings. Module names (`model.layers.N.self_attn.q_proj`, ...) happen to match across
them; the methods must not rely on it (they find layers and heads through `transformers`' own
accessors), and the architecture test tier checks every method on every family.
"""

from typing import Any, Protocol

from transformers import (
    GemmaConfig,
    LlamaConfig,
    MistralConfig,
    PretrainedConfig,
    PreTrainedTokenizerBase,
    Qwen2Config,
)

__all__ = ["ARCHITECTURES", "MISTRAL_SLIDING_WINDOW", "ModelShape", "model_config"]

ARCHITECTURES = ("llama", "qwen2", "mistral", "gemma")

# Shorter than most training rows of the tests (15-40 tokens), so the window really cuts what a
# position attends to; Mistral 7B's 4096 would never show up in a tiny model.
MISTRAL_SLIDING_WINDOW = 16


class ModelShape(Protocol):
    """The sizes `model_config` reads (a `trainers.base_model.build.Preset`)."""

    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    num_kv_heads: int | None
    head_dim: int | None


def model_config(
    architecture: str, shape: ModelShape, tokenizer: PreTrainedTokenizerBase
) -> PretrainedConfig:
    """A randomly initialisable config of `architecture` with `shape`'s sizes and `tokenizer`'s ids.

    Args:
        architecture: One of `ARCHITECTURES`.
        shape: Widths, depth and attention heads.
        tokenizer: The vocabulary (its length) and its special token ids.

    Raises:
        ValueError: Unknown architecture.
    """
    common: dict[str, Any] = {
        "vocab_size": len(tokenizer),
        "hidden_size": shape.hidden_size,
        "intermediate_size": shape.intermediate_size,
        "num_hidden_layers": shape.num_layers,
        "num_attention_heads": shape.num_heads,
        "num_key_value_heads": shape.num_kv_heads or shape.num_heads,
        "head_dim": shape.head_dim or shape.hidden_size // shape.num_heads,
        "max_position_embeddings": 1024,
        "bos_token_id": tokenizer.bos_token_id,
        "eos_token_id": tokenizer.eos_token_id,
        "pad_token_id": tokenizer.pad_token_id,
    }
    if architecture == "llama":
        return LlamaConfig(**common, tie_word_embeddings=False)
    if architecture == "qwen2":
        return Qwen2Config(**common, tie_word_embeddings=False)
    if architecture == "mistral":
        return MistralConfig(**common, sliding_window=MISTRAL_SLIDING_WINDOW, tie_word_embeddings=False)
    if architecture == "gemma":
        # Gemma's own defaults: a GeLU MLP, scaled embeddings and a tied output head.
        return GemmaConfig(**common, tie_word_embeddings=True)
    raise ValueError(f"unknown architecture {architecture!r}; known: {', '.join(ARCHITECTURES)}")
