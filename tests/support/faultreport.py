"""What each fault-injection scenario measured, collected for one summary table.

``tests/e2e/test_faults.py`` appends one :class:`ScenarioResult` per scenario (before
asserting, so a failing scenario is in the table too); ``tests/e2e/conftest.py``
prints the table at the end of the run and the module fixture writes it as JSON.
"""

from __future__ import annotations

import json
from dataclasses import asdict, dataclass
from pathlib import Path


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
