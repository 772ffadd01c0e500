"""The overlap policy: what to do with an occurrence whose fire time has come while an
earlier execution of its task is still running.

- ``allow`` fires it (executions of one task may run side by side: the default);
- ``skip`` records it as ``skipped`` and never fires it;
- ``buffer_one`` keeps it waiting (``queued``) until the running one ends, then fires
  it; while one already waits, a further one is skipped (at most one waits).

The decision is taken when the occurrence is cleared to fire (``engine.overlap``), under
its task's row lock, from two facts the database holds: whether another execution of
the task is *running* (it has begun and has not ended: a retry's backoff included) and
whether another one is *waiting*. Pure: the engine reads the facts and writes the
decision.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

from taskhub.core.statuses import OverlapPolicy


class Decision(StrEnum):
    FIRE = "fire"
    SKIP = "skip"
    WAIT = "wait"


@dataclass(frozen=True)
class TaskState:
    """What the task has besides the occurrence being decided: another execution that
    has begun and not ended (``running``), another one waiting (``waiting``)."""

    running: bool = False
    waiting: bool = False


def decide(policy: OverlapPolicy, state: TaskState) -> Decision:
    """Fire, skip or wait, for one occurrence whose fire time has come.

    ``buffer_one`` with one waiting skips even when nothing runs: the waiting one has
    been released and goes first (it is about to run), and the buffer holds one.
    """
    if policy is OverlapPolicy.ALLOW:
        return Decision.FIRE
    if policy is OverlapPolicy.SKIP:
        return Decision.SKIP if state.running else Decision.FIRE
    if state.waiting:
        return Decision.SKIP
    return Decision.WAIT if state.running else Decision.FIRE


def after(state: TaskState, decision: Decision) -> TaskState:
    """The task's state once ``decision`` is carried out for one of its occurrences."""
    if decision is Decision.FIRE:
        return TaskState(running=True, waiting=state.waiting)
    if decision is Decision.WAIT:
        return TaskState(running=state.running, waiting=True)
    return state


def decide_in_order(
    policy: OverlapPolicy, state: TaskState, count: int
) -> tuple[list[Decision], TaskState]:
    """The decisions for ``count`` occurrences of one task cleared together, in
    occurrence order (each sees what the ones before it did), and the state after."""
    decisions: list[Decision] = []
    for _ in range(count):
        decision = decide(policy, state)
        decisions.append(decision)
        state = after(state, decision)
    return decisions, state
