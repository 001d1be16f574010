"""The arithmetic of bench/cachesim.py: what it reads from callgrind and what it reports."""

from __future__ import annotations

import importlib.util
import sys
from pathlib import Path
from types import ModuleType

import pytest

BENCH = Path(__file__).resolve().parent.parent / "bench"


@pytest.fixture(scope="module")
def cachesim() -> ModuleType:
    sys.path.insert(0, str(BENCH))  # it imports its sibling cpu_per_request, as when run
    try:
        spec = importlib.util.spec_from_file_location("cachesim", BENCH / "cachesim.py")
        assert spec is not None
        assert spec.loader is not None
        module = importlib.util.module_from_spec(spec)
        spec.loader.exec_module(module)
        return module
    finally:
        sys.path.remove(str(BENCH))


# What valgrind 3.19 prints at the exit of `valgrind --tool=callgrind --cache-sim=yes
# --branch-sim=yes`: one total per event, in the order of EVENTS.
CALLGRIND_EXIT = """\
==7622== Events    : Ir Dr Dw I1mr D1mr D1mw ILmr DLmr DLmw Bc Bcm Bi Bim
==7622== Collected : 891287372 258552223 151156641 18860957 10072007 2921592 26650 68854 \
252250 132239674 9233854 20375519 7548236
==7622==
==7622== I   refs:      891,287,372
"""


def test_collected_reads_every_event_in_order(cachesim: ModuleType) -> None:
    totals = cachesim.collected(CALLGRIND_EXIT)
    assert len(totals) == len(cachesim.EVENTS) == 13
    assert dict(zip(cachesim.EVENTS, totals, strict=True))["I1mr"] == 18860957
    assert totals[-1] == 7548236


def test_collected_without_totals_says_so(cachesim: ModuleType) -> None:
    with pytest.raises(RuntimeError, match="no totals"):
        cachesim.collected("valgrind: command not found")


def test_per_request_cancels_the_start_up(cachesim: ModuleType) -> None:
    start_up = [1000 * (i + 1) for i in range(13)]
    cost = [40, 10, 8, 3, 2, 1, 0, 0, 0, 7, 1, 2, 1]
    small = [s + 4000 * c for s, c in zip(start_up, cost, strict=True)]
    large = [s + 20000 * c for s, c in zip(start_up, cost, strict=True)]
    counts = cachesim.per_request(small, large, 16000)
    assert counts == dict(zip(cachesim.EVENTS, map(float, cost), strict=True))


def test_per_request_refuses_counts_of_another_run(cachesim: ModuleType) -> None:
    with pytest.raises(ValueError, match="expected 13 counts"):
        cachesim.per_request([1] * 13, [2], 1)


def test_cycle_estimate_weighs_misses_as_kcachegrind_does(cachesim: ModuleType) -> None:
    counts = dict.fromkeys(cachesim.EVENTS, 0.0)
    counts["Ir"] = 1000.0
    assert cachesim.cycle_estimate(counts) == 1000.0
    counts.update(I1mr=1.0, D1mr=2.0, D1mw=3.0, Bcm=4.0, Bim=5.0)  # 10 cycles each
    assert cachesim.cycle_estimate(counts) == 1000.0 + 10 * 15
    counts.update(ILmr=1.0, DLmr=1.0, DLmw=1.0)  # 100 cycles each
    assert cachesim.cycle_estimate(counts) == 1000.0 + 10 * 15 + 100 * 3
    counts.update(Dr=99.0, Dw=99.0, Bc=99.0, Bi=99.0)  # accesses and branches that hit
    assert cachesim.cycle_estimate(counts) == 1000.0 + 10 * 15 + 100 * 3


def test_load_command_is_http1_by_default_and_h2c_with_h2(cachesim: ModuleType) -> None:
    url = "http://127.0.0.1:8000/"
    http1 = cachesim.load_command(4000, url)
    assert http1 == ["h2load", "--h1", "-n", "4000", "-c", "64", "-m", "1", url]
    h2c = cachesim.load_command(4000, url, h2=True)
    assert "--h1" not in h2c
    assert h2c == ["h2load", "-n", "4000", "-c", "16", "-m", "10", url]


def test_targets_carry_bascule_options_after_commas(cachesim: ModuleType) -> None:
    assert cachesim.split_target("compiled") == ("compiled", [])
    assert cachesim.split_target("/tmp/x/src,--no-eager-tasks,--http2") == (
        "/tmp/x/src",
        ["--no-eager-tasks", "--http2"],
    )
    with pytest.raises(ValueError, match="options after a comma are bascule's"):
        cachesim.split_target("uvicorn,--no-eager-tasks")
