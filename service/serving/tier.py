"""The serving tier: which adapter each alias serves, the reconciler that repairs replicas, hot swap.

The database holds the desired state (each lineage's `promoted_version`, written by workers and by
the promote and rollback endpoints); this object holds what the gateway serves: `aliases` maps
`(tenant, lineage)` to the version it answers with. A swap loads the new version under its own
immutable name on every replica, warms it up, flips the alias (one dict write on the event loop, so
a request resolves to one version for its whole life), waits for the old version's in-flight
requests and only then unloads it. The reconciler runs the same swap for every lineage whose alias
differs from the database, and reloads what a restarted replica lost. See docs/serving.md.

Replicas load adapters from local folders: the tier fetches each version from the artifact store
into this machine's cache (`ArtifactStore.fetch`, a no-op for a local store) and names that copy.

What one tenant can make the tier hold is bounded: a pinned version (`<lineage>@N`) is unloaded
once no request used it for `pin_idle_seconds`, and a supervised server that no served version
needs any more is stopped after `server_idle_seconds`. Client-facing errors never name a
replica's URL or a base model's path (the log does).
"""

import asyncio
import contextlib
import itertools
import logging
import time
from collections import Counter, defaultdict
from dataclasses import dataclass
from pathlib import Path

import httpx
from sqlalchemy import select

from service.db import Database
from service.errors import ApiError
from service.models import Job, Lineage, Tenant, Version
from service.observability.metrics import ServingMetrics
from service.services.model_names import ModelName, parse_model_name, version_name
from service.serving.replica import Replica, ReplicaError
from service.serving.supervisor import Supervisor
from service.settings import Settings
from service.storage.store import ArtifactStore
from trainers.contracts.statuses import VersionStatus

log = logging.getLogger(__name__)

RETRY_SECONDS = "5"  # `retry-after` of a 503: about what a reconcile pass or an adapter load takes

GroupKey = tuple[str, str]  # (backend, base model)


@dataclass(frozen=True)
class Served:
    """One servable version: whose it is, where it is stored and which backend runs it."""

    tenant: str
    lineage: str
    version: int
    location: str
    base_model: str
    backend: str

    @property
    def name(self) -> str:
        """The immutable adapter name on every replica."""
        return adapter_name(self.tenant, self.lineage, self.version)

    @property
    def group(self) -> GroupKey:
        return (self.backend, self.base_model)


def adapter_name(tenant: str, lineage: str, version: int) -> str:
    """`<tenant>/<lineage>@<N>`: never reused for other weights (why: docs/serving.md)."""
    return f"{tenant}/{lineage}@{version}"


class ServingTier:
    """Replicas grouped by (backend, base model), the alias table and the reconciler loop."""

    def __init__(self, settings: Settings, database: Database) -> None:
        self.settings = settings
        self.database = database
        self.store = ArtifactStore.from_settings(settings, cache="serving")
        self.supervisors: dict[GroupKey, Supervisor] = {}
        self.external = [Replica(url, "", api_key=settings.vllm_api_key) for url in settings.vllm_urls]
        self.aliases: dict[tuple[str, str], Served] = {}
        self.pinned: dict[str, Served] = {}
        self._names: dict[tuple[str, str, int], str] = {}  # versions' names, suffix included
        self.desired: dict[tuple[str, str], Served] = {}
        self.inflight: Counter[str] = Counter()
        self.last_used: dict[str, float] = {}  # by version name: when a request last started or ended
        self._unneeded_since: dict[GroupKey, float] = {}
        self.swaps = 0
        self.metrics = ServingMetrics()
        self._name_locks: defaultdict[str, asyncio.Lock] = defaultdict(asyncio.Lock)
        self._lineage_locks: defaultdict[tuple[str, str], asyncio.Lock] = defaultdict(asyncio.Lock)
        self._round_robin = itertools.count()
        self._tasks: list[asyncio.Task[None]] = []
        self._wake = asyncio.Event()

    async def start(self) -> None:
        """Start the reconciler loop (and, lazily, one supervised server per base model)."""
        self._tasks.append(asyncio.create_task(self._reconcile_forever(), name="reconciler"))

    async def stop(self) -> None:
        """Cancel the loops and stop every supervised server."""
        for task in self._tasks:
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        await asyncio.gather(*(supervisor.close() for supervisor in self.supervisors.values()))
        for replica in self.external:
            await replica.close()

    def replicas(self, group: GroupKey | None = None) -> list[Replica]:
        """Every replica, or those of one group."""
        supervised = [supervisor.replica for supervisor in self.supervisors.values()]
        every = supervised + [replica for replica in self.external if replica.base_model]
        return [
            replica for replica in every if group is None or (replica.backend, replica.base_model) == group
        ]

    def ready(self) -> tuple[bool, str]:
        """Whether every desired alias is served by a ready replica, and why not."""
        for key, served in self.desired.items():
            if key not in self.aliases:
                return False, f"{served.name} is not loaded yet"
            if not any(replica.ready for replica in self.replicas(served.group)):
                return False, f"no ready replica serves {served.base_model}"
        return True, "ok"

    def nudge(self) -> None:
        """Run the reconciler now instead of at its next tick."""
        self._wake.set()

    # Routing -------------------------------------------------------------------------------------

    async def route(self, tenant: str, model: str) -> tuple[Replica, Served]:
        """The replica and version a request for `model` goes to; counts it as in flight.

        The caller must call `release(served)` once the response is finished.
        """
        name = parse_model_name(model)
        if name is None:
            raise ApiError(404, f"The model '{model}' does not exist.", param="model", code="model_not_found")
        if name.number is not None:
            if name.suffix is not None:
                await self._check_name(tenant, name, model)
            served = await self._pin(tenant, name.lineage, name.number)
        else:
            found = self.aliases.get((tenant, name.lineage))
            if found is None:
                raise self._unserved(tenant, name.lineage, model)
            served = found
        ready = [replica for replica in self.replicas(served.group) if replica.ready]
        if not ready:
            raise unavailable(f"No serving replica is ready for '{model}'.")
        self.inflight[served.name] += 1  # same loop step as the alias read: the drain sees it
        self.last_used[served.name] = time.monotonic()
        return ready[next(self._round_robin) % len(ready)], served

    def release(self, served: Served) -> None:
        """A request on `served` finished."""
        self.inflight[served.name] -= 1
        self.last_used[served.name] = time.monotonic()

    def _unserved(self, tenant: str, lineage: str, model: str) -> ApiError:
        if (tenant, lineage) in self.desired:
            return unavailable(f"The model '{model}' is being loaded.")
        return ApiError(404, f"The model '{model}' does not exist.", param="model", code="model_not_found")

    async def _check_name(self, tenant: str, name: ModelName, model: str) -> None:
        """404 unless `model` is the name of its version, suffix included (docs/jobs.md)."""
        assert name.number is not None
        key = (tenant, name.lineage, name.number)
        if key not in self._names:  # a version's name never changes: asked once it exists
            found = await asyncio.to_thread(self._version_name, *key)
            if found is not None:
                self._names[key] = found
        if self._names.get(key) != model:
            raise ApiError(404, f"The model '{model}' does not exist.", param="model", code="model_not_found")

    def _version_name(self, tenant: str, lineage: str, number: int) -> str | None:
        query = (
            select(Job.suffix)
            .join(Version, Version.job_id == Job.id)
            .join(Lineage, Lineage.pk == Version.lineage_pk)
            .join(Tenant, Tenant.pk == Lineage.tenant_pk)
            .where(Tenant.name == tenant, Lineage.name == lineage, Version.number == number)
        )
        with self.database.session() as session:
            found = session.execute(query).first()
        return None if found is None else version_name(lineage, number, found.suffix)

    async def _pin(self, tenant: str, lineage: str, number: int) -> Served:
        name = adapter_name(tenant, lineage, number)
        for served in (*self.aliases.values(), *self.pinned.values()):
            if served.name == name:
                return served
        found = await asyncio.to_thread(self._lookup, tenant, lineage, number)
        if found is None:
            raise ApiError(
                404, f"The model '{lineage}@{number}' does not exist.", param="model", code="model_not_found"
            )
        if isinstance(found, ApiError):
            raise found
        self._ensure_group(found.group)
        try:
            await self._load_everywhere(found)
        except (ReplicaError, httpx.HTTPError) as error:  # a replica starting, full, or down
            log.warning("could not load pinned version %s: %s", name, error)
            raise unavailable(f"The model '{lineage}@{number}' could not be loaded yet.") from error
        self.pinned[name] = found
        self.last_used[name] = time.monotonic()
        return found

    def _release_idle_pins(self) -> None:
        """Unload pinned versions no request used for `pin_idle_seconds` and none is using now."""
        idle_since = time.monotonic() - self.settings.pin_idle_seconds
        for name, served in list(self.pinned.items()):
            if self.inflight[name] == 0 and self.last_used.get(name, 0.0) <= idle_since:
                # Same loop step as the in-flight check: a later request pins it (and loads it) anew.
                del self.pinned[name]
                log.info("%s unpinned after %s s unused", name, self.settings.pin_idle_seconds)
                self._tasks.append(asyncio.create_task(self._drain_and_unload(served)))

    # Swaps ---------------------------------------------------------------------------------------

    async def sync_lineage(self, tenant: str, lineage: str) -> Served | None:
        """Make the alias of one lineage serve its promoted version now; returns what it serves.

        When no replica can take the version yet (a vLLM still starting), the alias stays and the
        reconciler completes the swap later.
        """
        desired = await asyncio.to_thread(self._desired)
        self.desired = desired
        served = desired.get((tenant, lineage))
        if served is None:
            return self.aliases.get((tenant, lineage))
        try:
            await self._swap(served)
        except (ReplicaError, ApiError, httpx.HTTPError) as error:  # e.g. vLLM still starting
            self.metrics.swap_failures.inc()
            log.info("%s not swapped in yet, the reconciler retries: %s", served.name, error)
        return self.aliases.get((tenant, lineage))

    async def _swap(self, served: Served) -> None:
        key = (served.tenant, served.lineage)
        async with self._lineage_locks[key]:
            old = self.aliases.get(key)
            if old == served:
                return
            self._ensure_group(served.group)
            started = time.perf_counter()
            for replica in await self._load_everywhere(served):
                await replica.warm_up(served.name)
            self.aliases[key] = served  # the flip
            self.swaps += 1
            self.metrics.swaps.observe(time.perf_counter() - started)
            log.info("%s/%s now serves version %s", served.tenant, served.lineage, served.version)
        if old is not None and old.name != served.name:
            self._tasks = [task for task in self._tasks if not task.done()]
            self._tasks.append(asyncio.create_task(self._drain_and_unload(old)))

    async def _load_everywhere(self, served: Served) -> list[Replica]:
        """Load `served` on every ready replica of its group (the reconciler restores the others)."""
        replicas = [replica for replica in self.replicas(served.group) if replica.ready]
        if not replicas:
            raise ReplicaError(f"no serving replica is ready for {served.base_model}")
        async with self._name_locks[served.name]:
            for replica in replicas:
                if served.name not in await replica.loaded():
                    await self._load(replica, served)
        return replicas

    async def _drain_and_unload(self, old: Served) -> None:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.settings.drain_seconds
        while self.inflight[old.name] > 0 and loop.time() < deadline:
            await asyncio.sleep(0.01)
        async with self._name_locks[old.name]:
            if old.name in self._keep():
                return  # promoted again (or pinned) while it drained
            for replica in self.replicas(old.group):
                await replica.unload(old.name)
            self.inflight.pop(old.name, None)
            self.last_used.pop(old.name, None)
            self.metrics.forget(old.name)

    def _keep(self) -> set[str]:
        served = (*self.aliases.values(), *self.desired.values(), *self.pinned.values())
        return {item.name for item in served}

    # Reconciler ----------------------------------------------------------------------------------

    async def _reconcile_forever(self) -> None:
        while True:
            try:
                await self.reconcile()
            except Exception:  # a replica or database hiccup: log it and try again next tick
                log.exception("reconcile failed")
            self._wake.clear()
            with contextlib.suppress(TimeoutError):
                await asyncio.wait_for(self._wake.wait(), self.settings.reconcile_seconds)

    async def reconcile(self) -> None:
        """One pass: discover replicas, restore lost adapters, swap changed aliases, mark readiness."""
        self.desired = await asyncio.to_thread(self._desired)
        for served in self.desired.values():
            self._ensure_group(served.group)
        self._tasks = [task for task in self._tasks if not task.done()]
        self._release_idle_pins()
        self._stop_unneeded_servers()
        for replica in self.external:
            if not replica.base_model and await replica.alive():
                replica.base_model = await replica.served_base()
        for replica in self.replicas():
            await self._restore(replica)
        for served in list(self.desired.values()):
            if not any(replica.ready for replica in self.replicas(served.group)):
                continue  # still starting; /readyz says so
            try:
                await self._swap(served)
            except (ReplicaError, ApiError, httpx.HTTPError) as error:
                self.metrics.swap_failures.inc()
                log.warning("could not swap in %s: %s", served.name, error)

    async def _restore(self, replica: Replica) -> None:
        if not await replica.alive():
            replica.ready = False
            return
        wanted = [
            served
            for served in (*self.aliases.values(), *self.pinned.values())
            if (replica.backend, replica.base_model) == served.group
        ]
        loaded = await replica.loaded()
        for served in wanted:
            if served.name not in loaded:
                async with self._name_locks[served.name]:
                    await self._load(replica, served)
        replica.ready = True

    async def _load(self, replica: Replica, served: Served) -> None:
        """Load `served` on `replica` from this machine's copy of the version."""
        in_use = [item.location for item in (*self.aliases.values(), *self.pinned.values())]
        try:
            folder = await asyncio.to_thread(self._local_copy, served.location, in_use)
        except OSError as error:  # the store unreachable, say: retried like a replica's refusal
            raise ReplicaError(f"could not fetch {served.name} from {served.location}: {error}") from error
        await replica.load(served.name, str(folder / "adapter"))

    def _local_copy(self, location: str, in_use: list[str]) -> Path:
        """The version's folder here, downloaded into the serving cache if it is remote."""
        keep = [self.store.local_version(other) for other in in_use]
        return self.store.fetch(location, keep=keep)[0]

    def _ensure_group(self, group: GroupKey) -> None:
        backend, base_model = group
        if self.settings.vllm_urls and backend == "vllm":
            return  # external replicas: discovered from their /v1/models
        if group not in self.supervisors:
            supervisor = Supervisor(self.settings, base_model, backend)
            self.supervisors[group] = supervisor
            supervisor.start()

    def _stop_unneeded_servers(self) -> None:
        """Stop each supervised server that no served version needed for `server_idle_seconds`
        (the wait spares a base model whose last version is being swapped or pinned again)."""
        served = (*self.desired.values(), *self.aliases.values(), *self.pinned.values())
        needed, now = {item.group for item in served}, time.monotonic()
        for group in list(self.supervisors):
            if group in needed:
                self._unneeded_since.pop(group, None)
            elif now - self._unneeded_since.setdefault(group, now) >= self.settings.server_idle_seconds:
                del self._unneeded_since[group]
                log.info("stopping the %s server of %s: no served version needs it", *group)
                self._tasks.append(asyncio.create_task(self.supervisors.pop(group).close()))

    # Database reads (in a worker thread, one short transaction each) -----------------------------

    def _desired(self) -> dict[tuple[str, str], Served]:
        query = (
            select(Tenant.name, Lineage, Version)
            .join(Tenant, Tenant.pk == Lineage.tenant_pk)
            .join(Version, (Version.lineage_pk == Lineage.pk) & (Version.number == Lineage.promoted_version))
        )
        with self.database.session() as session:
            rows = session.execute(query).all()
        return {
            (tenant, lineage.name): self._served(tenant, lineage, version)
            for tenant, lineage, version in rows
        }

    def _lookup(self, tenant: str, lineage_name: str, number: int) -> Served | ApiError | None:
        """The version to serve; the refusal when the health gate rejected it; None if it does not exist."""
        query = (
            select(Lineage, Version)
            .join(Tenant, Tenant.pk == Lineage.tenant_pk)
            .join(Version, Version.lineage_pk == Lineage.pk)
            .where(Tenant.name == tenant, Lineage.name == lineage_name, Version.number == number)
        )
        with self.database.session() as session:
            row = session.execute(query).first()
        if row is None:
            return None
        if row[1].status == VersionStatus.REJECTED:  # a forced promotion is the one way to serve it
            return ApiError(
                409,
                f"The model '{lineage_name}@{number}' was rejected by the health gate "
                f"({row[1].report_id}); promote it with force to serve it anyway.",
                param="model",
                code="version_rejected",
            )
        return self._served(tenant, row[0], row[1])

    def _served(self, tenant: str, lineage: Lineage, version: Version) -> Served:
        backend = "native" if lineage.method_type in self.settings.native_backend_methods else "vllm"
        return Served(tenant, lineage.name, version.number, version.path, lineage.base_model, backend)


def unavailable(message: str) -> ApiError:
    """A 503 a client may retry shortly."""
    return ApiError(503, message, param="model", code="not_ready", headers={"retry-after": RETRY_SECONDS})
