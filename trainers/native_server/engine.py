"""The native backend's model: a base with named adapters and versions, and the batcher in front of it.

Requests become rows (one per prompt and choice) in a queue. One scheduler thread takes the oldest
row, waits `WINDOW_SECONDS` for company when the backend was idle (requests that arrive while a
batch runs simply wait for the next one), and decodes together every waiting row that can share
its batch: the same model and, for a version that carries a memory, the same chunk alignment
(`trainers/native_server/memory.py`), at most one row per session and `max_batch` rows in all.
Each batch runs to its end (dynamic batching; docs/serving.md says why not continuous batching).
"""

import json
import queue
import secrets
import threading
import time
from collections import OrderedDict, defaultdict
from concurrent.futures import Future
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import torch
from peft import PeftModel
from transformers import AutoModelForCausalLM, AutoTokenizer

from trainers.contracts.methods import version_loader
from trainers.native_server.decoding import Batch, Row, Sampling, decode_batch
from trainers.native_server.memory import RowMemory, batch_key
from trainers.servable import StatefulVersion, load_version, version_method

__all__ = ["MAX_SECONDS", "MAX_TOKENS", "NativeModel", "Request", "has_own_loader", "tenant_of"]

# Session memories kept per tenant, least recently used dropped first. A titans session with the
# default config holds about 1 MB of memory per attached layer (docs/serving.md).
MAX_SESSIONS = 64
# The gateway's own defaults (gateway_max_tokens; native_max_seconds in service/settings.py).
MAX_TOKENS, MAX_SECONDS = 4096, 60.0
# Rows decoded together, and how long an idle backend waits for a first request's company
# (measured in docs/benchmarks.md, native serving).
MAX_BATCH, WINDOW_SECONDS = 16, 0.01

Sessions = OrderedDict[tuple[str, str], Any]  # (model, session id) -> memory, least recent first


@dataclass
class Request:
    """One completion request: its rows (prompts times choices) and where its answer goes."""

    model: str
    rows: list[Row]
    session: str | None = None
    done: Future[list[Row]] = field(default_factory=Future)
    left: int = 0  # rows not yet decoded


@dataclass
class _Waiting:
    request: Request
    row: Row


class NativeModel:
    """A base model with any number of named LoRA adapters and of separately loaded versions.

    Args:
        base: The base model's folder or hub id.
        max_tokens: Largest `max_tokens` of one request.
        max_seconds: Longest generation of one batch.
        window: Seconds an idle backend waits for more requests before it starts a batch.
        max_batch: Most rows decoded together (1: one request at a time).
    """

    def __init__(
        self,
        base: str,
        max_tokens: int = MAX_TOKENS,
        max_seconds: float = MAX_SECONDS,
        window: float = WINDOW_SECONDS,
        max_batch: int = MAX_BATCH,
    ) -> None:
        self.base = base
        self.max_tokens, self.max_seconds, self.window = max_tokens, max_seconds, window
        self.max_batch = max_batch
        self.tokenizer = AutoTokenizer.from_pretrained(base)
        self.model: Any = AutoModelForCausalLM.from_pretrained(base).eval()
        self.adapters: dict[str, str] = {}
        self.versions: dict[str, Any] = {}  # by name: versions with a loader of their own
        self.chunk_sizes: dict[str, int] = {}  # by name: a stateful version's memory chunk
        self.sessions: defaultdict[str, Sessions] = defaultdict(OrderedDict)  # by tenant
        self.lock = threading.Lock()  # one batch, load or unload at a time
        self.batch_sizes: list[int] = []  # rows of each batch so far (for tests and benchmarks)
        self.eos = _eos_ids(self.tokenizer, self.model)
        self.pad = next(
            t for t in (self.tokenizer.pad_token_id, self.tokenizer.eos_token_id, 0) if t is not None
        )
        self._queue: queue.Queue[_Waiting] = queue.Queue()
        threading.Thread(target=self._serve, name="native-batcher", daemon=True).start()

    def load(self, name: str, path: str) -> None:
        version_dir = Path(path).parent
        with self.lock:
            if has_own_loader(version_dir):
                self.versions[name] = load_version(self.base, version_dir)
                config = json.loads((version_dir / "manifest.json").read_text()).get("config", {})
                self.chunk_sizes[name] = int(config.get("chunk_size") or 1 << 30)  # unknown: exact lengths
            elif isinstance(self.model, PeftModel):
                self.model.load_adapter(path, adapter_name=name)
            else:
                self.model = PeftModel.from_pretrained(self.model, path, adapter_name=name).eval()
            self.adapters[name] = path

    def unload(self, name: str) -> None:
        with self.lock:
            if name in self.versions:
                del self.versions[name]
                sessions = self.sessions[tenant_of(name)]
                for key in [key for key in sessions if key[0] == name]:
                    del sessions[key]
            else:
                self.model.delete_adapter(name)
            del self.adapters[name]

    def keeps_sessions(self, model: str) -> bool:
        """Whether `model` carries a memory from one request to the next of a session."""
        return isinstance(self.versions.get(model), StatefulVersion)

    def submit(
        self, model: str, prompts: list[list[int]], sampling: Sampling, n: int = 1, session: str | None = None
    ) -> Future[list[Row]]:
        """Queue a request; its future holds the rows, prompt by prompt and choice by choice."""
        rows = []
        for prompt in prompts:
            for choice in range(n):
                generator = None
                if sampling.temperature > 0:
                    seed = secrets.randbits(63) if sampling.seed is None else sampling.seed + choice
                    generator = torch.Generator().manual_seed(seed % 2**63)
                rows.append(Row(prompt, sampling, generator))
        request = Request(model, rows, session, left=len(rows))
        if not rows:
            request.done.set_result([])
        for row in rows:
            self._queue.put(_Waiting(request, row))
        return request.done

    def complete(self, model: str, prompt: str, sampling: Sampling, session: str | None = None) -> Row:
        """One prompt's one choice, waited for (a convenience for tests and tools)."""
        ids = self.tokenizer(prompt).input_ids
        return self.submit(model, [ids], sampling, session=session).result()[0]

    def _serve(self) -> None:
        """The scheduler thread: form batches from the queue and decode them, one at a time."""
        waiting: list[_Waiting] = []
        while True:
            if not waiting:
                waiting.append(self._queue.get())
                time.sleep(self.window)  # an idle backend waits a moment for concurrent requests
            while not self._queue.empty():
                waiting.append(self._queue.get())
            batch = self._take_batch(waiting)
            with self.lock:
                self._run(batch)

    def _take_batch(self, waiting: list[_Waiting]) -> list[_Waiting]:
        """The oldest row and every waiting row that may share its batch, removed from `waiting`."""
        first = waiting[0]
        group = self._group(first)
        batch, sessions = [], set()
        for item in list(waiting):
            session = (item.request.model, item.request.session) if item.request.session else None
            if session in sessions:
                continue  # a session's requests run one after the other, each from the last one's memory
            if session is not None:
                sessions.add(session)
            if len(batch) < self.max_batch and (item is first or self._group(item) == group):
                batch.append(item)
                waiting.remove(item)
        return batch

    def _group(self, item: _Waiting) -> tuple[Any, ...]:
        """What rows must share to be decoded together (see the module docstring)."""
        model = item.request.model
        if not self.keeps_sessions(model):
            return (model,)
        state = self._session_memory(item.request)
        return (model, *batch_key(state, len(item.row.prompt), self.chunk_sizes[model]))

    def _session_memory(self, request: Request) -> Any:
        if request.session is None:
            return None
        return self.sessions[tenant_of(request.model)].get((request.model, request.session))

    def _run(self, batch: list[_Waiting]) -> None:
        """Decode one batch and hand every finished request its rows (or its failure)."""
        model, rows = batch[0].request.model, [item.row for item in batch]
        try:
            if model != self.base and model not in self.adapters:
                raise KeyError(f"The model `{model}` does not exist.")  # unloaded while it waited
            for item in batch:
                item.row.memory = self._session_memory(item.request)
            self.batch_sizes.append(len(rows))
            with torch.no_grad():
                self._decode(model, rows)
        except Exception as error:
            for item in batch:
                if not item.request.done.done():
                    item.request.done.set_exception(error)
            return
        for item in batch:
            request = item.request
            if request.session is not None:
                self._keep_session(request, item.row.memory_after)
            request.left -= 1
            if request.left == 0 and not request.done.done():
                request.done.set_result(request.rows)

    def _decode(self, model: str, rows: list[Row]) -> None:
        args = (rows, self.tokenizer, self.eos, self.pad, self.max_seconds)
        if model in self.versions:
            version = self.versions[model]
            use_cache = bool(getattr(getattr(version, "config", None), "use_cache", True))
            memory = RowMemory(version) if isinstance(version, StatefulVersion) else None
            decode_batch(Batch(version, use_cache, memory), *args)
        elif model == self.base and isinstance(self.model, PeftModel):
            with self.model.disable_adapter():
                decode_batch(Batch(self.model, True), *args)
        else:
            if isinstance(self.model, PeftModel):
                self.model.set_adapter(model)
            decode_batch(Batch(self.model, True), *args)

    def _keep_session(self, request: Request, memory: Any) -> None:
        sessions = self.sessions[tenant_of(request.model)]
        key = (request.model, str(request.session))
        sessions[key] = memory
        sessions.move_to_end(key)
        while len(sessions) > MAX_SESSIONS:
            sessions.popitem(last=False)


def _eos_ids(tokenizer: Any, model: Any) -> set[int]:
    """Tokens that end an answer: the tokenizer's end of sequence and the generation config's."""
    configured = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = set(configured if isinstance(configured, list) else [configured])
    return {t for t in ids | {tokenizer.eos_token_id} if t is not None}


def has_own_loader(version_dir: Path) -> bool:
    """Whether the version in `version_dir` is loaded by its method's loader, not as a PEFT adapter."""
    manifest = version_dir / "manifest.json"
    return manifest.exists() and version_loader(version_method(version_dir)) is not None


def tenant_of(name: str) -> str:
    """The tenant of a version loaded under `<tenant>/<lineage>@<N>` (service/serving/tier.py)."""
    return name.partition("/")[0]
