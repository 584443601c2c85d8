"""The torch side: the processes the control plane starts, and what they run.

- `run.py`: the trainer (one process per fine-tuning job; one shared loop, `loop.py`, and one
  folder per method under `methods/`);
- `evaluate.py`: the evaluator (scores versions with `eval`'s probes and health panel);
- `native_server/`: the native serving backend, for methods vLLM cannot serve.

`contracts/` is the torch-free part every side imports: what crosses a process boundary.
"""
