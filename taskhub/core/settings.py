"""Every setting taskhub reads, from the environment, each with a default.

One frozen object, built once per process by :func:`load`; tests build their own with
:func:`load` over a dict instead of mutating ``os.environ``.
"""

from __future__ import annotations

import base64
import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path
from typing import TypeVar, cast

from taskhub.core import limits
from taskhub.core.addresses import AddressPolicy, Network, PortRange, parse_networks, parse_ports
from taskhub.core.host_limits import HostLimit, parse_host_limits
from taskhub.core.named_urls import NamedURLs, parse_named_urls
from taskhub.core.retention import VACUUM_MODES, VacuumMode
from taskhub.core.smtp import parse_smtp_url

#: What a numeric setting is read as: a float or an int.
N = TypeVar("N", int, float)


class SettingsError(ValueError):
    """A setting has a value taskhub cannot use; the message names the variable."""


@dataclass(frozen=True)
class TenantQuotas:
    """Every tenant's limits unless ``taskhub tenant limits set`` gives it its own; sized
    for a shared deployment (README, "Quotas")."""

    #: Tasks a tenant holds (every status): a create beyond it is refused (409).
    max_tasks: int = 10_000
    #: The shortest time between two fires of a schedule (interval, or a cron's gaps).
    min_interval_seconds: int = 60
    #: Run-now and redrive calls per clock minute through the API; 0: no limit.
    runs_per_minute: int = 60
    #: API requests per clock second; 0: no limit.
    requests_per_second: int = 50


@dataclass(frozen=True)
class LaunchSettings:
    """How ``taskhub run ROLE`` starts each process role (``taskhub.worker.roles``)."""

    #: ``-P`` of the trigger workers (TASKHUB_TRIGGER_POOL): threads, see docs/decisions.
    trigger_pool: str = "threads"
    #: ``-c`` of the trigger workers: messages in flight per process.
    trigger_concurrency: int = 128
    #: ``-P`` of the discovery/state workers (TASKHUB_STATE_POOL).
    state_pool: str = "threads"
    #: ``-c`` of the discovery/state workers.
    state_concurrency: int = 4
    #: ``-c`` of the all-queues worker (``taskhub dev``); its pool is threads.
    worker_concurrency: int = 16
    #: Where Flower listens (TASKHUB_FLOWER_ADDRESS, TASKHUB_FLOWER_PORT).
    flower_address: str = "127.0.0.1"
    flower_port: int = 5555


@dataclass(frozen=True)
class RetentionSettings:
    """How long history is kept and how the prune pass removes what is older
    (docs/operations/retention.md)."""

    #: Days an ended (succeeded or failed) execution and its attempts are kept, unless its
    #: task sets ``retention_days`` (TASKHUB_EXECUTION_RETENTION_DAYS); 0: for ever. A
    #: number: a fraction of a day keeps them that much shorter (0.25: six hours).
    execution_days: float = 30
    #: Days a dead letter is kept, whatever its task's ``retention_days``
    #: (TASKHUB_DEAD_LETTER_RETENTION_DAYS); 0: for ever. A number, as the above.
    dead_letter_days: float = 90
    #: Executions removed per transaction (TASKHUB_PRUNE_BATCH_SIZE).
    batch_size: int = 5000
    #: How often beat sends a prune pass, and the most one pass started by beat runs
    #: before it leaves the rest to the next (TASKHUB_PRUNE_INTERVAL_SECONDS).
    interval_s: float = 60.0
    #: The pause between two batches, so the write path always gets its turn
    #: (TASKHUB_PRUNE_PAUSE_SECONDS).
    pause_s: float = 0.1
    #: Whether a pass that removed rows on PostgreSQL then vacuums the tables it removed
    #: them from (TASKHUB_PRUNE_VACUUM): ``auto`` those the server's autovacuum will not
    #: visit, ``always``, ``never`` (``taskhub.core.retention.tables_to_vacuum``).
    vacuum: VacuumMode = "auto"


#: The longest a retention setting may be (ten years), as a task's ``retention_days``.
MAX_RETENTION_SETTING_DAYS = limits.MAX_RETENTION_DAYS


#: The most a min_interval_seconds limit may be: a schedule's gaps are judged up to a day.
MAX_MIN_INTERVAL_S = 86_400
#: The most any other limit may be (they are stored as 32-bit integers).
MAX_QUOTA = 1_000_000_000
#: Each tenant limit's lowest and highest value, as a setting or a tenant's own (a
#: lowest of 0 means 0 is allowed: no limit).
QUOTA_BOUNDS: dict[str, tuple[int, int]] = {
    "max_tasks": (1, MAX_QUOTA),
    "min_interval_seconds": (1, MAX_MIN_INTERVAL_S),
    "runs_per_minute": (0, MAX_QUOTA),
    "requests_per_second": (0, MAX_QUOTA),
}


@dataclass(frozen=True)
class Settings:
    database_url: str
    broker_url: str
    result_backend: str
    data_dir: Path
    allow_private_targets: bool
    tick_seconds: float
    claim_batch_size: int
    chunk_size: int
    triggers_per_message: int
    max_message_bytes: int
    dispatch_lease_s: float
    misfire_grace_s: float
    misfire_fire_each_max: int
    max_in_flight_per_process: int
    max_slow_in_flight_per_process: int
    slow_after_s: float
    connect_timeout_s: float
    max_response_bytes: int
    retry_after_cap_s: float
    result_expires_s: int
    sqs_queue_url_prefix: str | None
    sqs_region: str | None
    sqs_visibility_timeout_s: int
    sqs_wait_time_s: int
    log_format: str
    log_level: str
    #: Fernet keys, comma-separated in TASKHUB_ENCRYPTION_KEYS: the first seals, all
    #: unseal. Empty: a key generated once into ``data_dir`` (``taskhub dev``).
    encryption_keys: tuple[str, ...] = ()
    #: Header names (lower case) whose values are credentials, beyond the built-in ones.
    secret_headers: frozenset[str] = frozenset()
    #: Blocked networks that tasks may call anyway (e.g. an internal service's subnet).
    allowed_target_networks: tuple[Network, ...] = ()
    #: The ports tasks may call (inclusive ranges); empty: any port.
    allowed_target_ports: tuple[PortRange, ...] = ()
    #: Per target host: (host, limit) pairs from TASKHUB_HOST_LIMITS.
    host_limits: tuple[tuple[str, HostLimit], ...] = ()
    #: The Redis that shares flow-control budgets between processes; None: per process.
    flow_control_url: str | None = None
    #: How long a request may wait for its host's slot before it is handed back to the
    #: database as ``throttled`` (sent again later, same attempt number).
    flow_control_max_wait_s: float = 2.0
    #: How far ahead of its send time a request is published (the trigger worker holds
    #: it until then): claiming and delivery happen before the due time.
    publish_lead_s: float = 5.0
    #: How often the staging loop sends what has come due (second precision); 0: off.
    stage_interval_s: float = 1.0
    #: How long a console sign-in lasts (TASKHUB_CONSOLE_SESSION_HOURS).
    console_session_hours: float = 12.0
    #: How long an API process trusts a key it checked, with its tenant's request rate,
    #: before it reads them again (TASKHUB_API_KEY_CACHE_SECONDS): a revoked key is
    #: refused, and a changed rate applies, within this long. 0: every request reads them.
    api_key_cache_s: float = 5.0
    #: Per-tenant limits, unless a tenant has its own (``taskhub tenant limits set``).
    tenant_quotas: TenantQuotas = TenantQuotas()
    #: The most of a trigger process's fast lane one host or one tenant may hold with
    #: attempts that cannot move on to the slow lane, in percent (``lane_shares``).
    fast_lane_share_percent: float = 10.0
    #: The most of a trigger process's slow lane one host or one tenant may hold, in percent.
    slow_lane_share_percent: float = 50.0
    #: A process whose heartbeat is this much older is dead: the sends it started go
    #: out again without waiting for their lease. 0: only the lease sends them again.
    worker_dead_after_s: float = 30.0
    #: The launch profiles (``taskhub run ROLE``): each worker role's pool (``-P``) and
    #: threads or children (``-c``), and where Flower listens.
    launch: LaunchSettings = LaunchSettings()
    #: The brokers a Celery target may name (``target.celery.broker``), by name; tenants
    #: see only the names (TASKHUB_CELERY_BROKERS; by default ``default``: taskhub's own).
    celery_brokers: NamedURLs = field(default_factory=NamedURLs)
    #: The result backends of tracked Celery targets, named as their brokers
    #: (TASKHUB_CELERY_RESULT_BACKENDS; by default ``default``: taskhub's own).
    celery_result_backends: NamedURLs = field(default_factory=NamedURLs)
    #: The most occurrences one backfill may fire (TASKHUB_BACKFILL_MAX_OCCURRENCES): a
    #: longer range is refused, naming ``end``, so one call never writes an unbounded burst.
    backfill_max_occurrences: int = 1000
    #: History retention: how long executions and dead letters are kept, how they are pruned.
    retention: RetentionSettings = RetentionSettings()
    #: The mail server of email notification channels (TASKHUB_SMTP_URL); None: email
    #: channels cannot be created.
    smtp_url: str | None = None
    #: The sender address of notification emails (TASKHUB_SMTP_FROM).
    smtp_from: str = "taskhub@localhost"

    # Cached: both are read for every request a trigger worker sends.
    @cached_property
    def host_limit_map(self) -> dict[str, HostLimit]:
        return dict(self.host_limits)

    @cached_property
    def address_policy(self) -> AddressPolicy:
        return AddressPolicy(
            self.allow_private_targets, self.allowed_target_networks, self.allowed_target_ports
        )

    @property
    def is_embedded_broker(self) -> bool:
        return self.broker_url.startswith("filesystem://")

    @property
    def is_sqs_broker(self) -> bool:
        return self.broker_url.startswith("sqs://")


def _get(env: Mapping[str, str], name: str, default: str) -> str:
    value = env.get(name, "").strip()
    return value or default


def _optional(env: Mapping[str, str], name: str) -> str | None:
    return env.get(name, "").strip() or None


def _number(
    env: Mapping[str, str], name: str, default: float, minimum: float, maximum: float = math.inf
) -> float:
    raw, value = _converted(env, name, str(default), float, "a number")
    if not math.isfinite(value):
        raise SettingsError(f"{name} must be a finite number, got {raw!r}")
    _check_bounds(name, raw, value, minimum, maximum, "g")
    return value


def _integer(
    env: Mapping[str, str], name: str, default: int, minimum: int, maximum: int | None = None
) -> int:
    raw, value = _converted(env, name, str(default), int, "an integer")
    _check_bounds(name, raw, value, minimum, math.inf if maximum is None else maximum, "")
    return value


def _converted(
    env: Mapping[str, str], name: str, default: str, convert: Callable[[str], N], kind: str
) -> tuple[str, N]:
    """The setting as given and as ``convert`` reads it; one that does not read is
    refused as not ``kind``."""
    raw = _get(env, name, default)
    try:
        return raw, convert(raw)
    except ValueError:
        raise SettingsError(f"{name} must be {kind}, got {raw!r}") from None


def _check_bounds(
    name: str, raw: str, value: float, minimum: float, maximum: float, spec: str
) -> None:
    """Refuse ``value`` outside ``[minimum, maximum]``, the bounds shown with the format
    ``spec`` (a number's ``g``, an integer's digits): both kinds say it alike."""
    if value < minimum:
        raise SettingsError(f"{name} must be at least {minimum:{spec}}, got {raw!r}")
    if value > maximum:
        raise SettingsError(f"{name} must be at most {maximum:{spec}}, got {raw!r}")


def _choice(
    env: Mapping[str, str], name: str, default: str, allowed: tuple[str, ...], upper: bool = False
) -> str:
    raw = _get(env, name, default)
    value = raw.upper() if upper else raw.lower()
    if value not in allowed:
        raise SettingsError(f"{name} must be one of {', '.join(allowed)}, got {raw!r}")
    return value


def _flag(env: Mapping[str, str], name: str) -> bool:
    raw = _get(env, name, "0").lower()
    if raw in ("1", "true", "yes", "on"):
        return True
    if raw in ("0", "false", "no", "off"):
        return False
    raise SettingsError(f"{name} must be 1 or 0, got {raw!r}")


def _list(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    return tuple(item.strip() for item in _get(env, name, "").split(",") if item.strip())


def _encryption_keys(env: Mapping[str, str], name: str) -> tuple[str, ...]:
    """Fernet keys: urlsafe base64 of 32 bytes each. Checked here so that a process with a
    mistyped key refuses to start, instead of failing at its first secret."""
    keys = _list(env, name)
    for position, key in enumerate(keys, start=1):
        try:
            raw = base64.urlsafe_b64decode(key.encode("ascii"))
        except (ValueError, UnicodeError):
            raw = b""
        if len(raw) != 32:
            raise SettingsError(
                f"{name}: key {position} is not a Fernet key (32 bytes, urlsafe base64); make "
                "one with: python -c 'from cryptography.fernet import Fernet; "
                "print(Fernet.generate_key().decode())'"
            )
    return keys


def _networks(env: Mapping[str, str], name: str) -> tuple[Network, ...]:
    try:
        return parse_networks(_get(env, name, ""))
    except ValueError as error:
        raise SettingsError(f"{name}: {error}") from None


def _ports(env: Mapping[str, str], name: str) -> tuple[PortRange, ...]:
    try:
        return parse_ports(_get(env, name, ""))
    except ValueError as error:
        raise SettingsError(f"{name}: {error}") from None


def _host_limits(env: Mapping[str, str], name: str) -> tuple[tuple[str, HostLimit], ...]:
    try:
        return tuple(parse_host_limits(_get(env, name, "")).items())
    except ValueError as error:
        raise SettingsError(f"{name}: {error}") from None


def _named_urls(env: Mapping[str, str], name: str, default: str) -> NamedURLs:
    """``name=url, ...``; unset: one, named ``default`` (the name a Celery target takes
    when it names none), at the URL ``default``."""
    raw = env.get(name, "").strip()
    if not raw:
        return NamedURLs({limits.DEFAULT_CELERY_BROKER: default})
    try:
        return parse_named_urls(raw)
    except ValueError as error:
        raise SettingsError(f"{name}: {error}") from None


def _stage_interval(env: Mapping[str, str], name: str) -> float:
    """0 switches the staging loop off; otherwise at least 0.2 s."""
    value = _number(env, name, 1, minimum=0)
    if 0 < value < 0.2:
        raise SettingsError(f"{name} must be 0 (off) or at least 0.2, got {value:g}")
    return value


def tenant_quotas(env: Mapping[str, str]) -> TenantQuotas:
    """The TASKHUB_TENANT_* settings: every tenant's limits unless it has its own."""
    default = TenantQuotas()
    return TenantQuotas(
        max_tasks=_integer(
            env, "TASKHUB_TENANT_MAX_TASKS", default.max_tasks, *QUOTA_BOUNDS["max_tasks"]
        ),
        min_interval_seconds=_integer(
            env,
            "TASKHUB_TENANT_MIN_INTERVAL_SECONDS",
            default.min_interval_seconds,
            *QUOTA_BOUNDS["min_interval_seconds"],
        ),
        runs_per_minute=_integer(
            env,
            "TASKHUB_TENANT_RUNS_PER_MINUTE",
            default.runs_per_minute,
            *QUOTA_BOUNDS["runs_per_minute"],
        ),
        requests_per_second=_integer(
            env,
            "TASKHUB_TENANT_REQUESTS_PER_SECOND",
            default.requests_per_second,
            *QUOTA_BOUNDS["requests_per_second"],
        ),
    )


def launch_settings(env: Mapping[str, str]) -> LaunchSettings:
    """The TASKHUB_*_POOL, *_CONCURRENCY and TASKHUB_FLOWER_* settings."""
    default = LaunchSettings()
    return LaunchSettings(
        trigger_pool=_get(env, "TASKHUB_TRIGGER_POOL", default.trigger_pool),
        trigger_concurrency=_integer(
            env, "TASKHUB_TRIGGER_CONCURRENCY", default.trigger_concurrency, minimum=1
        ),
        state_pool=_get(env, "TASKHUB_STATE_POOL", default.state_pool),
        state_concurrency=_integer(
            env, "TASKHUB_STATE_CONCURRENCY", default.state_concurrency, minimum=1
        ),
        worker_concurrency=_integer(
            env, "TASKHUB_WORKER_CONCURRENCY", default.worker_concurrency, minimum=1
        ),
        flower_address=_get(env, "TASKHUB_FLOWER_ADDRESS", default.flower_address),
        flower_port=_integer(env, "TASKHUB_FLOWER_PORT", default.flower_port, 1, 65535),
    )


#: The smallest dead-after: two heartbeat intervals (``heartbeat.INTERVAL_S``, 10 s), so a
#: live process that misses one write is never taken for dead.
MIN_WORKER_DEAD_AFTER_S = 20.0


def retention_settings(env: Mapping[str, str]) -> RetentionSettings:
    default = RetentionSettings()
    return RetentionSettings(
        execution_days=_number(
            env,
            "TASKHUB_EXECUTION_RETENTION_DAYS",
            default.execution_days,
            0,
            MAX_RETENTION_SETTING_DAYS,
        ),
        dead_letter_days=_number(
            env,
            "TASKHUB_DEAD_LETTER_RETENTION_DAYS",
            default.dead_letter_days,
            0,
            MAX_RETENTION_SETTING_DAYS,
        ),
        batch_size=_integer(env, "TASKHUB_PRUNE_BATCH_SIZE", default.batch_size, 1, 100_000),
        interval_s=_number(env, "TASKHUB_PRUNE_INTERVAL_SECONDS", default.interval_s, 1, 24 * 3600),
        pause_s=_number(env, "TASKHUB_PRUNE_PAUSE_SECONDS", default.pause_s, 0, 60),
        vacuum=cast(VacuumMode, _choice(env, "TASKHUB_PRUNE_VACUUM", default.vacuum, VACUUM_MODES)),
    )


def _worker_dead_after(env: Mapping[str, str], name: str) -> float:
    """0 switches dead-worker detection off; otherwise at least two heartbeat intervals."""
    value = _number(env, name, 30, minimum=0)
    if 0 < value < MIN_WORKER_DEAD_AFTER_S:
        raise SettingsError(
            f"{name} must be 0 (off) or at least {MIN_WORKER_DEAD_AFTER_S:g}, got {value:g}"
        )
    return value


def derived_flow_control_url(broker_url: str, result_backend: str) -> str | None:
    """The fleet's Redis if there is one (the broker, or on SQS the result backend)."""
    for url in (broker_url, result_backend):
        if url.startswith(("redis://", "rediss://")):
            return url
    return None


def derived_result_backend(broker_url: str, data_dir: Path) -> str:
    """Pick a result backend that supports chords for the broker in use.

    Redis has a native chord counter, so it backs itself. The embedded broker gets the
    filesystem backend (chords are joined by ``celery.chord_unlock`` polling, which is
    fine for the small chords taskhub sends). SQS has no result store of its own and a
    file store is not shared between hosts, so with SQS one must be given (``load``
    refuses to start without it).
    """
    if broker_url.startswith(("redis://", "rediss://")):
        return broker_url
    return f"file://{(data_dir / 'results').resolve()}"


#: The highest TASKHUB_BACKFILL_MAX_OCCURRENCES: one backfill is one transaction.
MAX_BACKFILL_OCCURRENCES = 100_000


def load(env: Mapping[str, str] | None = None) -> Settings:
    env = os.environ if env is None else env
    data_dir = Path(_get(env, "TASKHUB_DATA_DIR", ".taskhub"))
    broker_url = _get(env, "TASKHUB_BROKER_URL", "filesystem://")
    if broker_url.startswith("sqs://") and not _optional(env, "TASKHUB_RESULT_BACKEND"):
        raise SettingsError(
            "TASKHUB_RESULT_BACKEND must be set with an SQS broker: chords need a result "
            "backend every worker shares, e.g. redis://your-elasticache:6379/0"
        )
    result_backend = _get(
        env, "TASKHUB_RESULT_BACKEND", derived_result_backend(broker_url, data_dir)
    )
    return Settings(
        database_url=_get(env, "TASKHUB_DATABASE_URL", "sqlite:///taskhub.db"),
        broker_url=broker_url,
        result_backend=result_backend,
        data_dir=data_dir,
        allow_private_targets=_flag(env, "TASKHUB_ALLOW_PRIVATE_TARGETS"),
        tick_seconds=_number(env, "TASKHUB_TICK_SECONDS", 60, minimum=0.5),
        claim_batch_size=_integer(env, "TASKHUB_CLAIM_BATCH_SIZE", 1000, minimum=1),
        chunk_size=_integer(env, "TASKHUB_CHUNK_SIZE", 1000, minimum=1),
        triggers_per_message=_integer(env, "TASKHUB_TRIGGERS_PER_MESSAGE", 250, minimum=1),
        max_message_bytes=_integer(env, "TASKHUB_MAX_MESSAGE_BYTES", 192 * 1024, minimum=16384),
        dispatch_lease_s=_number(env, "TASKHUB_DISPATCH_LEASE_SECONDS", 120, minimum=1),
        misfire_grace_s=_number(env, "TASKHUB_MISFIRE_GRACE_SECONDS", 3600, minimum=0),
        misfire_fire_each_max=_integer(env, "TASKHUB_MISFIRE_FIRE_EACH_MAX", 100, minimum=1),
        max_in_flight_per_process=_integer(env, "TASKHUB_MAX_IN_FLIGHT", 200, minimum=1),
        max_slow_in_flight_per_process=_integer(env, "TASKHUB_MAX_SLOW_IN_FLIGHT", 2000, minimum=0),
        slow_after_s=_number(env, "TASKHUB_SLOW_AFTER_SECONDS", 0.25, minimum=0.01),
        connect_timeout_s=_number(env, "TASKHUB_CONNECT_TIMEOUT_SECONDS", 5, minimum=0.1),
        max_response_bytes=_integer(env, "TASKHUB_MAX_RESPONSE_BYTES", 65536, minimum=0),
        retry_after_cap_s=_number(env, "TASKHUB_RETRY_AFTER_CAP_SECONDS", 3600, minimum=0),
        result_expires_s=_integer(env, "TASKHUB_RESULT_EXPIRES_SECONDS", 3600, minimum=60),
        sqs_queue_url_prefix=_optional(env, "TASKHUB_SQS_QUEUE_URL_PREFIX"),
        sqs_region=_optional(env, "TASKHUB_SQS_REGION"),
        sqs_visibility_timeout_s=_integer(
            env, "TASKHUB_SQS_VISIBILITY_TIMEOUT_SECONDS", 900, minimum=1
        ),
        sqs_wait_time_s=_integer(env, "TASKHUB_SQS_WAIT_TIME_SECONDS", 2, 0, 20),
        log_format=_choice(env, "TASKHUB_LOG_FORMAT", "text", ("text", "json")),
        log_level=_choice(
            env, "TASKHUB_LOG_LEVEL", "INFO", ("DEBUG", "INFO", "WARNING", "ERROR"), upper=True
        ),
        encryption_keys=_encryption_keys(env, "TASKHUB_ENCRYPTION_KEYS"),
        secret_headers=frozenset(h.lower() for h in _list(env, "TASKHUB_SECRET_HEADERS")),
        allowed_target_networks=_networks(env, "TASKHUB_ALLOWED_TARGET_NETWORKS"),
        allowed_target_ports=_ports(env, "TASKHUB_ALLOWED_TARGET_PORTS"),
        host_limits=_host_limits(env, "TASKHUB_HOST_LIMITS"),
        flow_control_url=_optional(env, "TASKHUB_FLOW_CONTROL_URL")
        or derived_flow_control_url(broker_url, result_backend),
        flow_control_max_wait_s=_number(env, "TASKHUB_FLOW_CONTROL_MAX_WAIT_SECONDS", 2, minimum=0),
        stage_interval_s=_stage_interval(env, "TASKHUB_STAGE_INTERVAL_SECONDS"),
        publish_lead_s=_number(env, "TASKHUB_PUBLISH_LEAD_SECONDS", 5, 0, 30),
        console_session_hours=_number(env, "TASKHUB_CONSOLE_SESSION_HOURS", 12, 0.01, 24 * 30),
        api_key_cache_s=_number(env, "TASKHUB_API_KEY_CACHE_SECONDS", 5, 0, 300),
        tenant_quotas=tenant_quotas(env),
        fast_lane_share_percent=_number(env, "TASKHUB_FAST_LANE_SHARE_PERCENT", 10, 1, 100),
        slow_lane_share_percent=_number(env, "TASKHUB_SLOW_LANE_SHARE_PERCENT", 50, 1, 100),
        worker_dead_after_s=_worker_dead_after(env, "TASKHUB_WORKER_DEAD_AFTER_SECONDS"),
        launch=launch_settings(env),
        celery_brokers=_named_urls(env, "TASKHUB_CELERY_BROKERS", broker_url),
        celery_result_backends=_named_urls(env, "TASKHUB_CELERY_RESULT_BACKENDS", result_backend),
        backfill_max_occurrences=_integer(
            env, "TASKHUB_BACKFILL_MAX_OCCURRENCES", 1000, 1, MAX_BACKFILL_OCCURRENCES
        ),
        retention=retention_settings(env),
        smtp_url=_smtp_url(env, "TASKHUB_SMTP_URL"),
        smtp_from=_get(env, "TASKHUB_SMTP_FROM", "taskhub@localhost"),
    )


def _smtp_url(env: Mapping[str, str], name: str) -> str | None:
    """Checked here, so a mistyped URL stops the process, not its first email."""
    raw = _optional(env, name)
    if raw is None:
        return None
    try:
        parse_smtp_url(raw)
    except ValueError as error:
        raise SettingsError(f"{name} {error}") from None
    return raw
