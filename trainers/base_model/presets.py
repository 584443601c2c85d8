"""The sizes of the base models the project builds itself (`trainers.base_model.build`). Torch-free,
so the CLI checks `--preset` without importing torch."""

from dataclasses import dataclass

__all__ = ["PRESETS", "Preset"]


@dataclass(frozen=True)
class Preset:
    """Size of a base model and how long it is pretrained.

    Attributes:
        vocab_size: Tokenizer vocabulary, special and byte tokens included.
        hidden_size: Width of the residual stream.
        intermediate_size: Width of each MLP.
        num_layers: Decoder layers.
        num_heads: Attention (query) heads.
        documents: Corpus documents generated for the tokenizer and pretraining.
        conversations: Chat conversations added to pretraining (rendered by the chat template).
        pretrain_steps: Optimizer steps of pretraining; 0 leaves the model at random init.
        batch_size: Sequences per pretraining step.
        seq_len: Tokens per pretraining sequence (documents are packed).
        learning_rate: Peak pretraining learning rate (cosine decay to a tenth of it).
        num_kv_heads: Key-value heads; fewer than `num_heads` is grouped-query attention.
            None: one per query head.
        head_dim: Width of each head; None: `hidden_size / num_heads`.
    """

    vocab_size: int
    hidden_size: int
    intermediate_size: int
    num_layers: int
    num_heads: int
    documents: int
    conversations: int
    pretrain_steps: int
    batch_size: int = 16
    seq_len: int = 128
    learning_rate: float = 3e-3
    num_kv_heads: int | None = None
    head_dim: int | None = None


PRESETS = {
    "tiny": Preset(
        vocab_size=512,
        hidden_size=64,
        intermediate_size=128,
        num_layers=2,
        num_heads=4,
        documents=4000,
        conversations=0,
        pretrain_steps=0,
    ),
    # ~3.3M parameters; ~0.3 s per pretraining step on 2 CPU cores.
    "small": Preset(
        vocab_size=1024,
        hidden_size=256,
        intermediate_size=576,
        num_layers=4,
        num_heads=4,
        documents=30000,
        conversations=4000,
        pretrain_steps=300,
    ),
}
