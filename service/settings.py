"""Service settings: every field can come from a `NEUROPLAST_<FIELD>` environment variable."""

from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict

# The project's vLLM is the CPU build (the `cpu` extra). On a 2-core CPU without bfloat16
# instructions its requests ran 5-6x slower in bfloat16, vLLM's own pick for a float32 checkpoint,
# than in float32 (docs/serving.md, "Precision"); the models served here are small, so float32.
VLLM_DEFAULT_ARGS = ("--dtype", "float32", "--max-loras", "4", "--max-cpu-loras", "8")
VLLM_DEFAULT_MAX_LORA_RANK = 16


class Settings(BaseSettings):
    """Settings of the API and the workers. Paths are derived from `data_dir` unless set."""

    model_config = SettingsConfigDict(env_prefix="NEUROPLAST_", extra="ignore")

    data_dir: Path = Field(Path(".neuroplast"), description="Root of the database, files and store.")
    database_url: str | None = Field(None, description="SQLAlchemy URL; SQLite in data_dir if unset.")
    store_dir: Path | None = Field(None, description="Artifact store root; data_dir/store if unset.")
    store_url: str | None = Field(
        None, description="Artifact store: a folder or an fsspec URL (s3://bucket/prefix); beats store_dir."
    )
    store_endpoint_url: str | None = Field(
        None, description="Endpoint of an S3-compatible store (MinIO, Ceph, R2); AWS S3 if unset."
    )
    store_options: dict[str, Any] = Field(
        default_factory=dict, description="Extra fsspec options of a remote store, e.g. key, secret."
    )
    store_cache_bytes: int = Field(
        20 * 2**30, description="Per cache folder: versions from a remote store evicted (LRU) above this."
    )
    host: str = "127.0.0.1"
    port: int = 8000
    max_upload_bytes: int = Field(100 * 2**20, description="Largest accepted training file.")
    max_row_bytes: int = Field(1 * 2**20, description="Longest accepted JSONL line.")
    max_upload_rows: int = Field(1_000_000, description="Most rows in one training file.")
    max_request_bytes: int = Field(
        2 * 2**20, description="Largest request body, file uploads aside (they have max_upload_bytes)."
    )
    model_roots: list[Path] = Field(
        default_factory=list,
        description="Folders a local base_model may lie under, besides data_dir (where it always may).",
    )
    hub_models: list[str] = Field(
        default_factory=list,
        description="Hub ids a lineage may name as base_model (its workers download them); empty: "
        "none, and trainers and evaluators run offline.",
    )
    # Per-tenant quotas: each answers 429 `quota_exceeded` naming itself (service/services/quotas.py).
    max_active_jobs: int = Field(8, ge=1, description="Per tenant: jobs not yet finished at once.")
    max_active_health_checks: int = Field(4, ge=1, description="Per tenant: health checks not yet finished.")
    max_files: int = Field(1000, ge=1, description="Per tenant: training files kept.")
    max_file_bytes: int = Field(10 * 2**30, ge=1, description="Per tenant: bytes of training files kept.")
    max_lineages: int = Field(100, ge=1, description="Per tenant: lineages.")
    max_schedules: int = Field(20, ge=1, description="Per tenant: health-check schedules.")
    max_webhook_endpoints: int = Field(10, ge=1, description="Per tenant: webhook endpoints.")
    # Per-job limits: a job over one is refused with a 400 naming the field at fault.
    max_job_processes: int = Field(
        8, ge=1, description="Most trainer processes one job may ask for (its `processes`)."
    )
    max_job_steps: int = Field(
        100_000, ge=1, description="Most optimizer steps of one job (max_steps, or n_epochs over the file)."
    )
    job_timeout_seconds: float = Field(
        24 * 3600.0, gt=0, description="A job still training after this long fails with `job_timeout`."
    )
    gateway_requests_per_second: float = Field(50.0, description="Per tenant: sustained gateway rate.")
    gateway_burst: int = Field(100, description="Per tenant: gateway requests allowed in one burst.")
    gateway_max_tokens: int = Field(
        4096, ge=1, description="Largest max_tokens (max_completion_tokens) of one completion request."
    )
    gateway_max_choices: int = Field(8, ge=1, description="Largest n (best_of) of one completion request.")
    webhook_delivery: bool = Field(True, description="The API process delivers webhook events.")
    webhook_poll_seconds: float = Field(1.0, description="How often the deliverer looks for due deliveries.")
    webhook_timeout_seconds: float = Field(10.0, description="How long a receiver may take to answer.")
    webhook_max_attempts: int = Field(8, description="Attempts of one delivery before it fails for good.")
    webhook_backoff_seconds: float = Field(
        5.0, description="Wait before the first retry; each later retry waits four times longer."
    )
    webhook_private_networks: bool = Field(
        False, description="Allow webhook URLs on loopback, private and link-local addresses."
    )
    lease_seconds: float = Field(30.0, description="A worker's claim on a job expires after this.")
    heartbeat_seconds: float = Field(5.0, description="How often a worker renews its lease.")
    poll_seconds: float = Field(1.0, description="How often an idle worker looks for work.")
    schedule_poll_seconds: float = Field(10.0, description="How often the control plane queues due checks.")
    max_attempts: int = Field(3, description="Claims of one job before it fails for good.")
    checkpoint_every: int = Field(50, description="Trainer checkpoint interval in steps.")
    trainer_processes: int = Field(
        1, ge=1, description="Trainer processes of a job that does not ask (one per GPU on GPU workers)."
    )
    trainer_threads: int | None = Field(
        None,
        ge=1,
        description="CPU threads per trainer and evaluator process (OMP_NUM_THREADS); unset: torch's own.",
    )
    trainer_precision: Literal["auto", "float32", "bfloat16"] = Field(
        "auto",
        description="Compute precision of training: auto is bfloat16 on GPUs and CPUs with native "
        "bfloat16 (AVX512-BF16, AMX), float32 elsewhere.",
    )
    embedded_worker: bool = Field(True, description="`neuroplast serve` runs one worker in-process.")
    worker_id: str | None = Field(None, description="Name a worker claims jobs under.")
    serving: bool = Field(True, description="`neuroplast serve` runs the serving tier (gateway + vLLM).")
    evaluate_through_serving: bool = Field(
        True,
        description="Workers ask the gateway for the versions they score (`<lineage>@<N>`, as users are "
        "served them) when they know its URL (`gateway_url`); `neuroplast serve` with serving on points "
        "its embedded worker at itself.",
    )
    gateway_url: str | None = Field(
        None,
        description="The gateway's base URL (e.g. http://api:8000), for workers that evaluate through it.",
    )
    vllm_urls: list[str] = Field(
        default_factory=list, description="External vLLM replicas; empty: the supervisor starts vLLM."
    )
    vllm_python: Path | None = Field(
        None, description="Python that has vLLM installed; .venv-vllm/bin/python or this one if unset."
    )
    vllm_args: list[str] = Field(
        default_factory=lambda: list(VLLM_DEFAULT_ARGS),
        description="Extra arguments of supervised vLLM servers (besides model, host, port, --enable-lora, "
        "--max-lora-rank).",
    )
    vllm_max_lora_rank: int = Field(
        VLLM_DEFAULT_MAX_LORA_RANK,
        ge=1,
        description="The replicas' --max-lora-rank: a lineage served by vLLM may not ask for a larger r "
        "(supervised replicas are started with it; set it to what external ones run with).",
    )
    vllm_start_seconds: float = Field(300.0, description="How long a supervised vLLM may take to start.")
    native_backend_methods: list[str] = Field(
        default_factory=lambda: ["titans", "trc"],
        description="Methods whose lineages the native transformers backend serves instead of vLLM.",
    )
    reconcile_seconds: float = Field(1.0, description="How often the reconciler compares desired and loaded.")
    drain_seconds: float = Field(120.0, description="Longest wait for in-flight requests before an unload.")
    vllm_api_key: str | None = Field(
        None,
        description="Key of the serving replicas: sent to each as a bearer token, and supervised ones "
        "demand it (unset: each supervised replica gets a random key of its own).",
    )
    report_link_secret: str | None = Field(
        None,
        description="Signs the short-lived links to report pages (POST /v1/reports/{id}/link); unset: a "
        "random secret kept in data_dir. API processes that share a database need the same one.",
    )
    native_max_seconds: float = Field(
        60.0, gt=0, description="Longest generation of one request in the native backend; it stops there."
    )
    pin_idle_seconds: float = Field(
        600.0, gt=0, description="A pinned version (<lineage>@N) no request used for this long is unloaded."
    )
    server_idle_seconds: float = Field(
        600.0, ge=0, description="A supervised server that no served version needs is stopped after this."
    )
    server_restart_seconds: float = Field(
        2.0, gt=0, description="Wait before restarting a supervised server that exited; doubles each time."
    )
    server_restart_max_seconds: float = Field(
        300.0, gt=0, description="Longest wait before a restart; a server up this long resets the wait."
    )
    metrics_token: str | None = Field(
        None, description="Bearer token that may read GET /metrics (platform keys always may)."
    )
    log_format: Literal["text", "json"] = Field("text", description="json: one JSON object per log line.")
    log_level: str = Field("INFO", description="Level of the service's own loggers.")

    @cached_property
    def resolved_database_url(self) -> str:
        """The database URL, defaulting to a SQLite file in `data_dir`."""
        return self.database_url or f"sqlite:///{self.data_dir.resolve() / 'neuroplast.db'}"

    @cached_property
    def base_model_roots(self) -> list[Path]:
        """Resolved folders a local base model may lie under: data_dir and `model_roots`."""
        return [self.data_dir.resolve(), *(root.expanduser().resolve() for root in self.model_roots)]

    @cached_property
    def files_dir(self) -> Path:
        """Where uploaded training files are kept."""
        return self.data_dir.resolve() / "files"

    @cached_property
    def artifact_dir(self) -> Path:
        """Root of the artifact store: `{store}/{tenant}/{lineage}/v{N}/`."""
        return (self.store_dir or self.data_dir / "store").resolve()

    @cached_property
    def logs_dir(self) -> Path:
        """Trainer logs, one `{job_id}.log` per job, kept after the job ends."""
        return self.data_dir.resolve() / "logs"

    @cached_property
    def cache_dir(self) -> Path:
        """Tokenized-dataset cache shared by trainer processes."""
        return self.data_dir.resolve() / "cache"
