"""Is a served greedy answer the reference model's greedy answer, near-ties allowed?

A random tiny model's next-token log-probabilities are nearly flat: the top two often differ by
less than 0.01. vLLM's CPU kernels, the native backend's batched decoding and transformers on
another CPU round differently by about that much (0.002 to 0.01 measured), so where two tokens
nearly tie each may pick the other and the rest of the text then differs honestly. An exact string
comparison fails on such a tie (CI saw `adistunaornorn` against `adistunistunorn`, a tie of 0.0055).

`NearGreedy.admits(text)` asks instead whether `text` is a path the reference can take when it
picks the likeliest token or one within `TIE` of it at each step: a wrong adapter, a dropped
version or another model still fails, a tie no longer does.
"""

from pathlib import Path
from typing import Any

__all__ = ["TIE", "NearGreedy"]

TIE = 0.03  # nats: three times the largest backend difference measured on one token


class NearGreedy:
    """The reference: a causal LM and its tokenizer continuing `prompt` by `n_tokens` tokens.

    As `InProcessRunner.complete` and `min_tokens` at a server: exactly `n_tokens` tokens, never the
    end of sequence, special tokens left out of the text and a trailing cut character dropped.
    """

    def __init__(self, model: Any, tokenizer: Any, prompt: str, n_tokens: int, tie: float = TIE) -> None:
        self.model, self.tokenizer = model.eval(), tokenizer
        self.prompt, self.n_tokens, self.tie = prompt, n_tokens, tie

    @classmethod
    def peft(cls, base: Path, adapter: Path, prompt: str, n_tokens: int) -> "NearGreedy":
        """Base + a PEFT adapter folder, in transformers."""
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(base), adapter)
        return cls(model, AutoTokenizer.from_pretrained(base), prompt, n_tokens)

    def admits(self, text: str) -> bool:
        """Whether some near-greedy path of the reference decodes to `text`."""
        import torch

        prompt = self.tokenizer(self.prompt, return_tensors="pt").input_ids[0].tolist()
        with torch.no_grad():
            return self._search(prompt, [], text)

    def _search(self, prompt: list[int], new: list[int], text: str) -> bool:
        import torch

        if len(new) == self.n_tokens:
            return self._decode(new) == text
        logits = self.model(input_ids=torch.tensor([prompt + new])).logits[0, -1].float()
        log_probs = torch.log_softmax(logits, dim=-1)
        if self.tokenizer.eos_token_id is not None:
            log_probs[self.tokenizer.eos_token_id] = -torch.inf
        near = torch.nonzero(log_probs >= log_probs.max() - self.tie).flatten()
        for token in sorted(near.tolist(), key=lambda t: -float(log_probs[t])):
            if text.startswith(self._decode([*new, token])) and self._search(prompt, [*new, token], text):
                return True
        return False

    def _decode(self, tokens: list[int]) -> str:
        return str(self.tokenizer.decode(tokens, skip_special_tokens=True)).rstrip("\ufffd")
