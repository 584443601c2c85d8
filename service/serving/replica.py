"""One OpenAI-compatible backend server (vLLM, or the native backend) and its adapter endpoints.

vLLM's runtime LoRA endpoints answer plain text on success and a JSON error otherwise; a duplicate
load is a 400 and an unknown unload a 404 (docs/serving.md, what the tier relies on). Only the
serving tier calls them: clients never reach a replica directly. Every request carries the
replicas' key (`vllm_api_key`) as a bearer token, which vLLM's `--api-key` (`VLLM_API_KEY`)
demands on its `/v1` routes, the adapter routes included (docs/security.md says what else a
replica answers without it).
"""

from dataclasses import dataclass, field

import aiohttp
import httpx

WARM_UP = {"prompt": "Hello", "max_tokens": 1, "temperature": 0.0}


class ReplicaError(Exception):
    """A replica refused or failed an adapter operation."""


@dataclass(eq=False)
class Replica:
    """A backend at `url` serving `base_model`; `ready` once it holds every desired adapter."""

    url: str
    base_model: str
    backend: str = "vllm"
    api_key: str | None = field(default=None, repr=False)
    ready: bool = False
    client: httpx.AsyncClient = field(init=False, repr=False)
    _relay: aiohttp.ClientSession | None = field(default=None, init=False, repr=False)

    def __post_init__(self) -> None:
        # Generous read timeout: a streamed completion may run for minutes.
        limits = httpx.Limits(max_connections=256, max_keepalive_connections=64)
        self.client = httpx.AsyncClient(
            base_url=self.url, headers=self._auth(), timeout=httpx.Timeout(600, connect=5), limits=limits
        )

    async def send_completion(self, path: str, payload: bytes) -> aiohttp.ClientResponse:
        """POST a client's completion request; the caller reads, then releases or closes, the answer.

        The gateway's hot path uses aiohttp rather than `client`: its C parser and leaner
        connection pool spend less CPU per relayed request than httpx.
        """
        if self._relay is None:  # made on first use: an aiohttp session belongs to a running loop
            self._relay = aiohttp.ClientSession(
                connector=aiohttp.TCPConnector(limit=256),
                timeout=aiohttp.ClientTimeout(sock_connect=5, sock_read=600),
                headers=self._auth(),
            )
        headers = {"content-type": "application/json"}
        return await self._relay.post(self.url.rstrip("/") + path, data=payload, headers=headers)

    async def alive(self) -> bool:
        """Whether the server answers its health route."""
        try:
            return (await self.client.get("/health", timeout=5)).status_code == 200
        except httpx.HTTPError:
            return False

    async def loaded(self) -> set[str]:
        """Names of the adapters the server holds now (models with a parent)."""
        response = await self.client.get("/v1/models", timeout=10)
        response.raise_for_status()
        return {model["id"] for model in response.json()["data"] if model.get("parent")}

    async def served_base(self) -> str:
        """The id of the base model (the model without a parent)."""
        response = await self.client.get("/v1/models", timeout=10)
        response.raise_for_status()
        return next(model["id"] for model in response.json()["data"] if not model.get("parent"))

    async def load(self, name: str, path: str) -> None:
        """Load an adapter under its immutable name; loading a name already held is a no-op."""
        response = await self.client.post(
            "/v1/load_lora_adapter", json={"lora_name": name, "lora_path": path}
        )
        if response.status_code == 400 and "already" in response.text:
            return
        if response.status_code != 200:
            raise ReplicaError(f"{self.url} could not load {name} from {path}: {response.text[:300]}")

    async def unload(self, name: str) -> None:
        """Unload an adapter; one that is not loaded is already gone."""
        response = await self.client.post("/v1/unload_lora_adapter", json={"lora_name": name})
        if response.status_code not in (200, 404):
            raise ReplicaError(f"{self.url} could not unload {name}: {response.text[:300]}")

    async def warm_up(self, name: str) -> None:
        """One short completion on the adapter: it answered before any client is sent to it."""
        response = await self.client.post("/v1/completions", json={"model": name, **WARM_UP}, timeout=120)
        if response.status_code != 200:
            raise ReplicaError(f"{self.url} failed the warm-up of {name}: {response.text[:300]}")

    async def close(self) -> None:
        await self.client.aclose()
        if self._relay is not None:
            await self._relay.close()

    def _auth(self) -> dict[str, str]:
        return {"authorization": f"Bearer {self.api_key}"} if self.api_key else {}
