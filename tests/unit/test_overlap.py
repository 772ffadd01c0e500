"""The overlap decision (``core.overlap``): its table, and properties of a task's life
under each policy, played as a sequence of occurrences falling due and executions ending."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from taskhub.core.overlap import Decision, TaskState, after, decide, decide_in_order
from taskhub.core.statuses import ExecutionStatus, OverlapPolicy

A, S, B = OverlapPolicy.ALLOW, OverlapPolicy.SKIP, OverlapPolicy.BUFFER_ONE
FIRE, SKIP, WAIT = Decision.FIRE, Decision.SKIP, Decision.WAIT


@pytest.mark.parametrize(
    ("policy", "running", "waiting", "expected"),
    [
        (A, False, False, FIRE),
        (A, True, False, FIRE),
        (A, True, True, FIRE),
        (A, False, True, FIRE),
        (S, False, False, FIRE),
        (S, True, False, SKIP),
        (S, True, True, SKIP),
        (S, False, True, FIRE),  # a waiting one left by an earlier policy changes nothing
        (B, False, False, FIRE),
        (B, True, False, WAIT),
        (B, True, True, SKIP),
        (B, False, True, SKIP),  # the released waiting one goes first; the buffer is full
    ],
)
def test_decision_table(
    policy: OverlapPolicy, running: bool, waiting: bool, expected: Decision
) -> None:
    assert decide(policy, TaskState(running=running, waiting=waiting)) is expected


def test_skipped_is_a_terminal_status() -> None:
    assert ExecutionStatus.SKIPPED.value == "skipped"
    assert ExecutionStatus.SKIPPED.is_terminal


def test_decisions_in_one_clearance_see_each_other() -> None:
    assert decide_in_order(S, TaskState(), 3) == ([FIRE, SKIP, SKIP], TaskState(running=True))
    assert decide_in_order(B, TaskState(), 3) == (
        [FIRE, WAIT, SKIP],
        TaskState(running=True, waiting=True),
    )
    assert decide_in_order(A, TaskState(running=True), 2) == ([FIRE, FIRE], TaskState(True))


policies = st.sampled_from(list(OverlapPolicy))
states = st.builds(TaskState, st.booleans(), st.booleans())


@given(policies, states)
def test_with_nothing_running_or_waiting_everything_fires(
    policy: OverlapPolicy, state: TaskState
) -> None:
    if not state.running and not state.waiting:
        assert decide(policy, state) is FIRE


@given(states)
def test_allow_always_fires(state: TaskState) -> None:
    assert decide(A, state) is FIRE


@given(policies, states)
def test_only_buffer_one_waits_and_never_beside_another(
    policy: OverlapPolicy, state: TaskState
) -> None:
    if decide(policy, state) is WAIT:
        assert policy is B and state.running and not state.waiting


@given(policies, states)
def test_a_guarded_policy_never_fires_beside_a_running_one(
    policy: OverlapPolicy, state: TaskState
) -> None:
    if policy is not A and state.running:
        assert decide(policy, state) is not FIRE


# A task's life: each step is an occurrence falling due ("due") or its running execution
# ending ("end"). The engine releases a waiting one when nothing runs; its clearance then
# decides again (and, nothing running, fires it).
steps = st.lists(st.sampled_from(["due", "end"]), max_size=60)


def _play(policy: OverlapPolicy, events: list[str]) -> dict[str, int]:
    running = 0  # executions running side by side
    waiting = 0
    seen = {"fired": 0, "skipped": 0, "waited": 0, "max_running": 0, "max_waiting": 0}
    for event in events:
        if event == "end" and running:
            running -= 1
            if running == 0 and waiting:  # released: cleared again
                state = TaskState(running=False, waiting=False)
                assert decide(policy, state) is FIRE
                waiting, running = 0, 1
                seen["fired"] += 1
        elif event == "due":
            decision = decide(policy, TaskState(running=running > 0, waiting=waiting > 0))
            if decision is FIRE:
                running += 1
                seen["fired"] += 1
            elif decision is WAIT:
                waiting += 1
                seen["waited"] += 1
            else:
                seen["skipped"] += 1
        seen["max_running"] = max(seen["max_running"], running)
        seen["max_waiting"] = max(seen["max_waiting"], waiting)
    seen["waiting_at_end"] = waiting
    return seen


@given(steps)
def test_a_life_under_skip(events: list[str]) -> None:
    seen = _play(S, events)
    assert seen["max_running"] <= 1
    assert seen["max_waiting"] == 0
    assert seen["fired"] + seen["skipped"] == events.count("due")


@given(steps)
def test_a_life_under_buffer_one(events: list[str]) -> None:
    seen = _play(B, events)
    assert seen["max_running"] <= 1
    assert seen["max_waiting"] <= 1
    # Every occurrence is fired, skipped or (at most one, at the end) still waiting.
    assert seen["fired"] + seen["skipped"] + seen["waiting_at_end"] == events.count("due")
    # Nothing is skipped while the buffer has room.
    assert seen["skipped"] <= max(0, events.count("due") - 2)


@given(steps)
def test_a_life_under_allow_fires_everything(events: list[str]) -> None:
    seen = _play(A, events)
    assert seen["fired"] == events.count("due")
    assert seen["skipped"] == seen["waited"] == 0


@given(policies, states)
def test_after_records_what_was_done(policy: OverlapPolicy, state: TaskState) -> None:
    decision = decide(policy, state)
    new = after(state, decision)
    assert new.running == (state.running or decision is FIRE)
    assert new.waiting == (state.waiting or decision is WAIT)
