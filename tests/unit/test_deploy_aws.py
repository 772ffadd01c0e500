"""The AWS deployment files cannot be deployed from here; check what can be checked: the
CloudFormation template passes cfn-lint, and its queues are the ones taskhub consumes."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path
from typing import Any

import yaml

from taskhub.core import settings
from taskhub.core.limits import MAX_TIMEOUT_S
from taskhub.worker.celery_app import celery_config, sqs_queue_name
from taskhub.worker.queues import DISCOVERY_QUEUE, STATE_QUEUE, TRIGGER_QUEUE

ROOT = Path(__file__).resolve().parents[2]
TEMPLATE = ROOT / "deploy" / "aws" / "queues.yaml"


class _CloudFormationLoader(yaml.SafeLoader):
    """Reads ``!Ref``, ``!Sub`` and friends as plain values."""


def _tag(loader: yaml.SafeLoader, _suffix: str, node: yaml.Node) -> Any:
    if isinstance(node, yaml.ScalarNode):
        return loader.construct_scalar(node)
    if isinstance(node, yaml.SequenceNode):
        return loader.construct_sequence(node)
    return loader.construct_mapping(node)  # type: ignore[arg-type]


_CloudFormationLoader.add_multi_constructor("!", _tag)


def test_the_template_passes_cfn_lint() -> None:
    cfn_lint = Path(sys.executable).parent / "cfn-lint"
    result = subprocess.run([str(cfn_lint), str(TEMPLATE)], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def test_the_template_makes_every_queue_taskhub_consumes_with_a_dead_letter_queue() -> None:
    template = yaml.load(TEMPLATE.read_text(), Loader=_CloudFormationLoader)
    queues = {
        resource["Properties"]["QueueName"].replace("${Prefix}", ""): resource["Properties"]
        for resource in template["Resources"].values()
        if resource["Type"] == "AWS::SQS::Queue"
    }
    for queue in (DISCOVERY_QUEUE, TRIGGER_QUEUE, STATE_QUEUE):
        name = sqs_queue_name(queue)
        assert "RedrivePolicy" in queues[name], name
        assert f"{name}-dlq" in queues
        assert "FifoQueue" not in queues[name]


def test_the_sqs_profile_uses_the_predefined_queues_without_events_or_remote_control() -> None:
    env = {
        "TASKHUB_BROKER_URL": "sqs://",
        "TASKHUB_RESULT_BACKEND": "redis://cache:6379/0",
        "TASKHUB_SQS_QUEUE_URL_PREFIX": "https://sqs.eu-west-1.amazonaws.com/123456789012/prod-",
        "TASKHUB_SQS_REGION": "eu-west-1",
    }
    config = celery_config(settings.load(env))
    options = config["broker_transport_options"]
    assert options["predefined_queues"]["taskhub-triggers"] == {
        "url": "https://sqs.eu-west-1.amazonaws.com/123456789012/prod-taskhub-triggers"
    }
    assert set(options["predefined_queues"]) == {
        "taskhub-discovery",
        "taskhub-triggers",
        "taskhub-state",
    }
    assert options["region"] == "eu-west-1"
    assert options["visibility_timeout"] == 900
    assert 0 <= options["wait_time_seconds"] <= 20
    assert config["worker_enable_remote_control"] is False
    assert config["worker_send_task_events"] is False
    assert config["task_send_sent_event"] is False
    assert config["task_acks_late"] is True and config["worker_prefetch_multiplier"] == 1


def test_the_visibility_timeout_outlasts_the_longest_attempt() -> None:
    config = celery_config(
        settings.load(
            {"TASKHUB_BROKER_URL": "sqs://", "TASKHUB_RESULT_BACKEND": "redis://x:6379/0"}
        )
    )
    assert config["broker_transport_options"]["visibility_timeout"] > MAX_TIMEOUT_S


def test_the_dashboard_and_scrape_config_name_only_metrics_taskhub_exports() -> None:
    import json
    import re

    from taskhub.observability import counters
    from taskhub.observability.metrics import PROCESS_FAMILIES

    exported = {
        *counters.FAMILIES,
        *PROCESS_FAMILIES,
        "taskhub_database_up",
        "taskhub_tasks",
        "taskhub_tasks_paused",
        "taskhub_executions",
        "taskhub_due_backlog",
        "taskhub_oldest_due_age_seconds",
        "taskhub_dead_letters",
    }
    dashboard = json.loads((ROOT / "deploy" / "grafana" / "taskhub.json").read_text())
    expressions = [t["expr"] for panel in dashboard["panels"] for t in panel["targets"]]

    def family(sample: str) -> str:
        stripped = re.sub(r"_(total|bucket|sum|count)$", "", sample)
        return stripped if stripped in exported else sample

    named = {
        family(name) for expr in expressions for name in re.findall(r"\btaskhub_[a-z_]+", expr)
    }
    assert named and named <= exported, named - exported
    # The KPIs the system this replaces asked for each have a panel.
    for kpi in (
        "taskhub_occurrences_claimed",
        "taskhub_attempts",
        "taskhub_fire_lag_seconds",
        "taskhub_due_backlog",
        "taskhub_db_query_seconds",
        "taskhub_db_pool_checked_out",
        "taskhub_process_resident_memory_bytes",
        "taskhub_flow_control_waits",
    ):
        assert kpi in named, kpi
    scrape = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    [job] = scrape["scrape_configs"]
    assert job["metrics_path"] == "/metrics"
