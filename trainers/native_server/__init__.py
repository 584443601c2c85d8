"""The native backend: transformers + peft behind vLLM's routes, for methods vLLM cannot run.

Run as its own process (`python -m trainers.native_server --model BASE --port P`); the control
plane never imports this package, since it imports torch. It speaks the subset of vLLM's API the
serving tier uses: `/health`, `/v1/models`, `/v1/load_lora_adapter`, `/v1/unload_lora_adapter`,
`/v1/completions` and `/v1/chat/completions` (streaming included), with vLLM's bodies: log-probabilities
(prompt ones with `echo`), `n`, `stop`, `seed`, `usage` (`openai.py`). Concurrent requests are decoded
in batches (`engine.py`, `decoding.py`); a streamed answer is decoded whole, then sent token by token,
so it comes wholly from the adapter it started on. Since every tenant shares those batches, the
backend bounds them itself, whatever sits in front of it: `max_tokens` above `--max-tokens` is a 400,
and a batch stops after `--max-seconds` (finish_reason `length`). Given `VLLM_API_KEY` (as vLLM
reads it), the `/v1` routes answer only requests that carry it.

A version is loaded from the `adapter/` folder the tier names. A plain PEFT adapter joins the
shared multi-adapter `PeftModel`; a version whose method names its own loader in
`trainers.contracts.methods` (`titans`, `trc`) is loaded by `trainers.servable.load_version` as a
model of its own. A version that carries a memory across calls (`trainers.servable.StatefulVersion`)
reads every request from a fresh memory, or, when the body names a `session_id`, from the memory the
previous request of that session left (kept for each tenant's `MAX_SESSIONS` most recent sessions, so
one tenant's sessions never push out another's); inside a batch each row keeps its own (`memory.py`).
"""

from trainers.native_server.app import create_app
from trainers.native_server.decoding import Row, Sampling, token_texts
from trainers.native_server.engine import NativeModel

__all__ = ["NativeModel", "Row", "Sampling", "create_app", "token_texts"]
