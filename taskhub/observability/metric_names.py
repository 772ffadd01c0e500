"""The name of every metric family taskhub exports, written once.

Dashboards, alerts and scrape configurations (``deploy/grafana``, ``deploy/prometheus``)
name these families, so a name here never changes. Counters are stored and exposed with
Prometheus's ``_total`` suffix, histograms as ``_bucket``, ``_sum`` and ``_count``
samples; the suffixes are added where samples are written or read.
"""

from __future__ import annotations

from typing import Final

# Gauges computed from the database at each scrape.
DATABASE_UP: Final = "taskhub_database_up"
TASKS: Final = "taskhub_tasks"
TASKS_PAUSED: Final = "taskhub_tasks_paused"
EXECUTIONS: Final = "taskhub_executions"
DUE_BACKLOG: Final = "taskhub_due_backlog"
OLDEST_DUE_AGE_SECONDS: Final = "taskhub_oldest_due_age_seconds"
DEAD_LETTERS: Final = "taskhub_dead_letters"

# Families kept in ``metric_counters``, counted in the transaction of the counted work.
TICKS: Final = "taskhub_ticks"
TICK_DURATION_SECONDS: Final = "taskhub_tick_duration_seconds"
#: The gauge each tick sets when it ends: metrics show a stalled beat, the staging loop
#: claims only while it is recent, and ``taskhub health`` and ``stats`` read it.
LAST_TICK: Final = "taskhub_last_tick_timestamp_seconds"
OCCURRENCES_CLAIMED: Final = "taskhub_occurrences_claimed"
OCCURRENCES_WITHDRAWN: Final = "taskhub_occurrences_withdrawn"
EXECUTIONS_REDISPATCHED: Final = "taskhub_executions_redispatched"
ATTEMPTS: Final = "taskhub_attempts"
RETRIES_SCHEDULED: Final = "taskhub_retries_scheduled"
EXECUTIONS_FINISHED: Final = "taskhub_executions_finished"
FIRE_LAG_SECONDS: Final = "taskhub_fire_lag_seconds"
TARGET_LATENCY_SECONDS: Final = "taskhub_target_latency_seconds"
FLOW_CONTROL_WAITS: Final = "taskhub_flow_control_waits"
FLOW_CONTROL_WAIT_SECONDS: Final = "taskhub_flow_control_wait_seconds"
#: Rows removed by history retention's prune pass, by kind (execution, dead_letter, attempt).
HISTORY_REMOVED: Final = "taskhub_history_removed"
#: Tries of notification messages, by how each ended (``sent``, ``retrying``, ``failed``).
NOTIFICATION_TRIES: Final = "taskhub_notification_tries"

# Each live process's figures, from its heartbeat.
PROCESS_RESIDENT_MEMORY_BYTES: Final = "taskhub_process_resident_memory_bytes"
PROCESS_TRIGGERS_IN_FLIGHT: Final = "taskhub_process_triggers_in_flight"
DB_POOL_SIZE: Final = "taskhub_db_pool_size"
DB_POOL_CHECKED_OUT: Final = "taskhub_db_pool_checked_out"
DB_QUERIES: Final = "taskhub_db_queries"
DB_QUERY_SECONDS: Final = "taskhub_db_query_seconds"

# The serving API replica's own requests, kept in its memory.
API_REQUESTS: Final = "taskhub_api_requests"
API_REQUEST_DURATION_SECONDS: Final = "taskhub_api_request_duration_seconds"
