"""`python -m trainers.native_server --model BASE --port P`: the native backend as its own process."""

import argparse
import os

import uvicorn

from trainers.native_server.app import create_app
from trainers.native_server.engine import MAX_BATCH, MAX_SECONDS, MAX_TOKENS, NativeModel


def main() -> None:
    parser = argparse.ArgumentParser(description="Neuroplast's native (transformers + peft) backend.")
    parser.add_argument("--model", required=True)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--max-tokens", type=int, default=MAX_TOKENS, help="largest max_tokens of a request")
    parser.add_argument("--max-seconds", type=float, default=MAX_SECONDS, help="longest generation")
    parser.add_argument("--max-batch", type=int, default=MAX_BATCH, help="most rows decoded together")
    args = parser.parse_args()
    native = NativeModel(args.model, args.max_tokens, args.max_seconds, max_batch=args.max_batch)
    app = create_app(native, os.environ.get("VLLM_API_KEY") or None)
    uvicorn.run(app, host=args.host, port=args.port, log_level="warning")


if __name__ == "__main__":
    main()
