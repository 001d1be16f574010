"""The atheris targets in fuzz/ stay runnable: each one's ``test_one_input``
passes on its seeds and on random bytes, without atheris (CI runs the real
fuzzer briefly with ``scripts/fuzz --seconds 10``)."""

from __future__ import annotations

import importlib
from collections.abc import Callable
from pathlib import Path

import pytest
from hypothesis import given
from hypothesis import strategies as st

from tests.fuzz.strategies import FUZZ_EACH

ROOT = Path(__file__).resolve().parents[2]
TARGETS = sorted(p.stem for p in (ROOT / "fuzz").glob("[a-z]*.py"))


def target(name: str) -> Callable[[bytes], None]:
    module = importlib.import_module(f"fuzz.{name}")
    one_input: Callable[[bytes], None] = module.test_one_input
    return one_input


def test_every_protocol_has_a_target() -> None:
    assert {"http1", "http2", "websocket"} <= set(TARGETS)


@pytest.mark.parametrize("name", TARGETS)
def test_target_passes_its_seeds(name: str) -> None:
    seeds = sorted((ROOT / "fuzz" / "seeds" / name).iterdir())
    assert seeds, f"fuzz/seeds/{name} is empty"
    one_input = target(name)
    for seed in seeds:
        one_input(seed.read_bytes())


@pytest.mark.parametrize("name", TARGETS)
@FUZZ_EACH
@given(data=st.binary(max_size=400))
def test_target_survives_random_bytes(name: str, data: bytes) -> None:
    target(name)(data)


# Crashes the fuzzers found, kept as regression inputs (see docs/fuzzing.md).
FOUND = ROOT / "tests" / "fuzz" / "found"


def test_http1_declined_upgrade_crash() -> None:
    target("http1")((FOUND / "http1-declined-upgrade").read_bytes())


@pytest.mark.parametrize(
    "name", ["http2-answer-after-stream-closed", "http2-answer-after-client-goaway"]
)
def test_http2_answer_on_a_stream_closed_in_the_same_read(name: str) -> None:
    target("http2")((FOUND / name).read_bytes())
