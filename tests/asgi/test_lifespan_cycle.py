"""LifespanCycle: the (phase, message type) table, checked pair by pair."""

from __future__ import annotations

from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from bascule.asgi.lifespan import LifespanCycle, Phase
from bascule.errors import AppMessageError

STARTUP_COMPLETE = "lifespan.startup.complete"
STARTUP_FAILED = "lifespan.startup.failed"
SHUTDOWN_COMPLETE = "lifespan.shutdown.complete"
SHUTDOWN_FAILED = "lifespan.shutdown.failed"
APP_TYPES = [STARTUP_COMPLETE, STARTUP_FAILED, SHUTDOWN_COMPLETE, SHUTDOWN_FAILED]

#: Written out here, not read from the module, so the test checks the table.
LEGAL: dict[tuple[Phase, str], Phase] = {
    (Phase.STARTING, STARTUP_COMPLETE): Phase.STARTED,
    (Phase.STARTING, STARTUP_FAILED): Phase.START_FAILED,
    (Phase.STOPPING, SHUTDOWN_COMPLETE): Phase.STOPPED,
    (Phase.STOPPING, SHUTDOWN_FAILED): Phase.STOP_FAILED,
}


def cycle_in(phase: Phase) -> LifespanCycle:
    cycle = LifespanCycle()
    cycle.phase = phase
    return cycle


def test_starts_in_starting() -> None:
    cycle = LifespanCycle()
    assert cycle.phase is Phase.STARTING
    assert cycle.message == ""


@pytest.mark.parametrize(("pair", "new"), LEGAL.items(), ids=[f"{p.name}+{t}" for p, t in LEGAL])
def test_every_legal_pair_moves_to_its_phase(pair: tuple[Phase, str], new: Phase) -> None:
    phase, mtype = pair
    cycle = cycle_in(phase)
    assert cycle.on_message({"type": mtype}) is new
    assert cycle.phase is new


@pytest.mark.parametrize(
    ("phase", "mtype"),
    [
        (Phase.STARTING, SHUTDOWN_COMPLETE),
        (Phase.STARTING, SHUTDOWN_FAILED),
        (Phase.STARTED, STARTUP_COMPLETE),
        (Phase.STARTED, SHUTDOWN_COMPLETE),
        (Phase.STOPPING, STARTUP_COMPLETE),
        (Phase.STOPPED, SHUTDOWN_COMPLETE),
        (Phase.START_FAILED, STARTUP_COMPLETE),
        (Phase.STOP_FAILED, SHUTDOWN_FAILED),
        (Phase.STARTING, "lifespan.startup"),
        (Phase.STARTING, "http.response.start"),
    ],
)
def test_illegal_pairs_raise_and_keep_the_phase(phase: Phase, mtype: str) -> None:
    cycle = cycle_in(phase)
    with pytest.raises(AppMessageError) as info:
        cycle.on_message({"type": mtype})
    assert repr(mtype) in str(info.value)
    assert phase.value in str(info.value)
    assert cycle.phase is phase


message_types = st.one_of(
    st.sampled_from([*APP_TYPES, "lifespan.startup", "lifespan.shutdown", "http.request", ""]),
    st.text(max_size=30),
)


@settings(deadline=None, database=None)
@given(st.sampled_from(list(Phase)), message_types)
def test_any_pair_not_in_the_table_raises(phase: Phase, mtype: str) -> None:
    cycle = cycle_in(phase)
    if (phase, mtype) in LEGAL:
        assert cycle.on_message({"type": mtype}) is LEGAL[phase, mtype]
    else:
        with pytest.raises(AppMessageError):
            cycle.on_message({"type": mtype})
        assert cycle.phase is phase


@settings(deadline=None, database=None)
@given(
    st.sampled_from(list(Phase)),
    st.one_of(
        st.none(),
        st.integers(),
        st.text(),
        st.lists(st.just(STARTUP_COMPLETE)),
        st.fixed_dictionaries({"type": st.one_of(st.none(), st.integers(), st.binary())}),
        st.fixed_dictionaries({"kind": st.sampled_from(APP_TYPES)}),
    ),
)
def test_non_messages_raise_in_every_phase(phase: Phase, message: Any) -> None:
    cycle = cycle_in(phase)
    with pytest.raises(AppMessageError):
        cycle.on_message(message)
    assert cycle.phase is phase


def test_full_happy_path() -> None:
    cycle = LifespanCycle()
    assert cycle.on_message({"type": STARTUP_COMPLETE}) is Phase.STARTED
    cycle.begin_shutdown()
    assert cycle.phase is Phase.STOPPING
    assert cycle.on_message({"type": SHUTDOWN_COMPLETE}) is Phase.STOPPED
    assert cycle.message == ""


@pytest.mark.parametrize("phase", [p for p in Phase if p is not Phase.STARTED])
def test_shutdown_can_only_begin_once_started(phase: Phase) -> None:
    cycle = cycle_in(phase)
    with pytest.raises(AppMessageError, match=phase.value):
        cycle.begin_shutdown()
    assert cycle.phase is phase


@pytest.mark.parametrize(
    ("phase", "mtype"), [(Phase.STARTING, STARTUP_FAILED), (Phase.STOPPING, SHUTDOWN_FAILED)]
)
def test_failure_message_is_kept(phase: Phase, mtype: str) -> None:
    cycle = cycle_in(phase)
    cycle.on_message({"type": mtype, "message": "database unreachable"})
    assert cycle.message == "database unreachable"


def test_failure_without_message_keeps_empty_text() -> None:
    cycle = LifespanCycle()
    cycle.on_message({"type": STARTUP_FAILED})
    assert cycle.message == ""


def test_non_str_failure_message_is_kept_as_its_repr() -> None:
    cycle = LifespanCycle()
    cycle.on_message({"type": STARTUP_FAILED, "message": ["boom", 1]})
    assert cycle.message == "['boom', 1]"


def test_complete_ignores_a_message_field() -> None:
    cycle = LifespanCycle()
    cycle.on_message({"type": STARTUP_COMPLETE, "message": "ignored"})
    assert cycle.message == ""
