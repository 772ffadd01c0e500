"""What each fault-injection scenario measured, collected for one summary table.

``tests/e2e/test_faults.py`` appends one :class:`ScenarioResult` per scenario (before
asserting, so a failing scenario is in the table too); ``tests/e2e/conftest.py``
prints the table at the end of the run and the module fixture writes it as JSON.
"""

from __future__ import annotations

import json
import uuid
from collections import Counter
from collections.abc import Sequence
from dataclasses import asdict, dataclass
from datetime import datetime
from pathlib import Path

from sqlalchemy.engine import RowMapping

from tests.support.engine import TERMINAL


@dataclass(frozen=True)
class ScenarioResult:
    scenario: str
    #: occurrences that fell due (computed by the test from the schedules it created)
    due: int
    #: executions recorded with a terminal status
    executed: int
    #: requests the target received
    received: int
    #: deliveries beyond one per recorded attempt (same key, same attempt number)
    repeated: int
    #: the most ``repeated`` may be: 0 unless a process holding requests was killed,
    #: then the requests it had sent (the test asserts it)
    repeat_bound: int
    #: due occurrences without a terminal execution
    lost: int
    #: executions beyond one per occurrence
    doubled: int
    #: from the moment the fault was healed to the last due occurrence's terminal record
    recovery_s: float
    #: what "healed" means in this scenario
    healed: str


RESULTS: list[ScenarioResult] = []
JSON_PATH: list[Path] = []


def markdown_table(results: list[ScenarioResult]) -> str:
    lines = [
        "| scenario | due | executed | received | repeated deliveries (bound) | lost | doubled"
        " | recovery s |",
        "| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: |",
    ]
    for r in results:
        lines.append(
            f"| {r.scenario} | {r.due} | {r.executed} | {r.received} "
            f"| {r.repeated} (≤ {r.repeat_bound}) | {r.lost} | {r.doubled} | {r.recovery_s:.1f} |"
        )
    return "\n".join(lines)


def write_json(results: list[ScenarioResult], path: Path) -> None:
    path.write_text(json.dumps([asdict(r) for r in results], indent=2) + "\n")


def tally(
    scenario: str,
    rows: Sequence[RowMapping],
    due: set[tuple[uuid.UUID, datetime]],
    received: int,
    healed_at: datetime,
    healed: str,
    repeat_bound: int,
    recovery_bound_s: float,
) -> ScenarioResult:
    """Count a scenario's executions (``rows``) against what fell due and what the target
    ``received``, record the row in the table (before asserting, so a failing scenario is
    in it too), then assert what every scenario must hold: nothing lost or doubled, no
    execution for an occurrence that was not due, recovery and repeats within bounds."""
    per_occurrence = Counter((r["task_id"], r["scheduled_for"]) for r in rows)
    terminal = [r for r in rows if r["status"] in TERMINAL]
    lost = sorted(due - {(r["task_id"], r["scheduled_for"]) for r in terminal})
    doubled = sum(n - 1 for n in per_occurrence.values() if n > 1)
    finished = max((r["finished_at"] for r in terminal), default=healed_at)
    result = ScenarioResult(
        scenario=scenario,
        due=len(due),
        executed=len(terminal),
        received=received,
        repeated=received - sum(r["attempts"] for r in terminal),
        repeat_bound=repeat_bound,
        lost=len(lost),
        doubled=doubled,
        recovery_s=round(max(0.0, (finished - healed_at).total_seconds()), 1),
        healed=healed,
    )
    RESULTS.append(result)
    print(f"\n{scenario}: {result}")
    assert not lost, f"occurrences lost: {lost[:5]}"
    assert doubled == 0, [o for o, n in per_occurrence.items() if n > 1][:5]
    assert set(per_occurrence) == due, "an execution for an occurrence that was not due"
    assert result.recovery_s < recovery_bound_s
    return result
