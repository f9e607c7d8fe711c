"""Property: whatever body a client sends, the gateway never answers 5xx, and every refusal is
OpenAI's error shape {error: {message, type, param, code}}.

Bodies are valid requests, mutated: first by a table (every value of each body replaced in turn
by each kind of junk: integers past 64 bits, NaN, huge floats, lone surrogates, nulls, nested
junk; every field deleted; a field added to every object), then by hypothesis, which combines
mutations at random and also cuts the JSON text short or flips a byte. One gateway (the real app on uvicorn over loopback, in front of
the simulator at time scale 0) serves every example from a thread of its own, so that the
examples, which are synchronous, can be sent with a plain blocking HTTP client.
"""

from __future__ import annotations

import asyncio
import copy
import http.client
import json
import math
import re
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from gateway_support import MESSAGES
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from quant_support import QUANT_TOKEN, quant_config_text
from test_service_hostile import guarded

from lyra import Lyra
from lyra.service import create_app
from lyra.simulator import Simulator, SimulatorOptions
from support import engine_env

EXAMPLES = 60  # per route: enough to find a 5xx class, small enough for make test
SETTINGS = settings(max_examples=EXAMPLES, deadline=None, derandomize=True, database=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])
HEADERS = {"Authorization": f"Bearer {QUANT_TOKEN}", "Content-Type": "application/json"}

CHAT: dict[str, Any] = {
    "model": "tier:fast", "messages": [*MESSAGES, {"role": "assistant", "content": [{"type": "text", "text": "ok"}]}],
    "max_tokens": 16, "temperature": 0.2, "seed": 7, "stream": False, "n": 1, "stop": ["\n"], "user": "u1",
    "response_format": {"type": "json_schema", "json_schema": {"name": "s", "schema": {"type": "object"}}},
    "provider": {"order": ["openai"], "allow_fallbacks": True},
}
CONSENSUS: dict[str, Any] = {"messages": MESSAGES, "panel": "quick", "notional": 1000.0, "cascade": False}
BARS = [{"time": f"2025-01-{day:02d}", "open": 10.0, "high": 11.0, "low": 9.0, "close": 10.5, "volume": 1000}
        for day in range(1, 4)]
DECIDE: dict[str, Any] = {"symbol": "X", "bars": BARS, "proposed_notional": 5000.0, "news": ["a headline"]}


class Served:
    """The gateway and its simulator on an event loop in a thread; `port` once they serve."""

    def __init__(self, tmp_path: Path) -> None:
        self.tmp_path = tmp_path
        self.port = 0
        self.ready = threading.Event()
        self.loop = asyncio.new_event_loop()
        self.stop: asyncio.Event | None = None
        self.failure: BaseException | None = None
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        try:
            self.loop.run_until_complete(self._serve())
        except BaseException as exc:  # reported by the fixture, not lost in the thread
            self.failure = exc
            self.ready.set()

    async def _serve(self) -> None:
        self.stop = asyncio.Event()
        path = self.tmp_path / "lyra.toml"
        path.write_text(fuzz_config_text())
        async with Simulator(options=SimulatorOptions(time_scale=0.0, generation_lag_s=0.0)) as sim:
            environ = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{self.tmp_path / 'ledger.db'}"}
            async with guarded(create_app(Lyra.from_config(path, environ=environ))) as url:
                self.port = int(url.rsplit(":", 1)[1].split("/")[0])
                self.ready.set()
                await self.stop.wait()

    def close(self) -> None:
        if self.stop is not None:
            self.loop.call_soon_threadsafe(self.stop.set)
        self.thread.join(60)


@pytest.fixture(scope="module")
def port(tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    served = Served(tmp_path_factory.mktemp("fuzz"))
    served.thread.start()
    assert served.ready.wait(120), "the gateway did not start"
    if served.failure is not None:
        raise served.failure
    try:
        yield served.port
    finally:
        served.close()


def fuzz_config_text() -> str:
    """The quant gateway's config, with room for every example.

    The property is about the answer's shape, not about budgets: dollar and token caps high enough
    that hundreds of examples (a timed-out attempt is booked at its worst case, and a mutated
    `max_tokens` makes that large) never exhaust a key, and timeouts long enough that a loaded
    machine does not turn a valid base into a timeout. The quant client's section is the last, so the rate limit
    appended is its own.
    """
    text = quant_config_text(quant_usd=1000.0)
    text = re.sub(r"daily_tokens = [\d_]+", "daily_tokens = 1_000_000_000_000", text)
    text = re.sub(r"daily_usd = [\d_.]+", "daily_usd = 1_000_000", text)
    text = re.sub(r"timeout_s = [\d.]+", "timeout_s = 60", text)
    return text + "requests_per_min = 1000000\n"


def test_the_unmutated_bodies_are_served(port: int) -> None:
    """The bases the fuzz mutates are valid, so a mutation is what makes a request fail."""
    for path, body in (("/v1/chat/completions", CHAT), ("/v1/consensus", CONSENSUS), ("/v1/decide", DECIDE)):
        status, answer = post(port, path, json.dumps(body).encode())
        assert status == 200, (path, answer[:500])


def post(port: int, path: str, raw: bytes) -> tuple[int, bytes]:
    connection = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        connection.request("POST", path, body=raw, headers=HEADERS)
        response = connection.getresponse()
        return response.status, response.read()
    finally:
        connection.close()


def assert_never_5xx_and_error_shaped(status: int, answer: bytes, raw: bytes) -> None:
    assert status < 500, (status, answer[:500], raw[:500])
    if status == 200:
        return
    payload = json.loads(answer)
    assert set(payload) == {"error"}, payload
    error = payload["error"]
    assert {"message", "type", "param", "code"} <= set(error), error  # a budget refusal adds its numbers
    assert isinstance(error["message"], str) and error["message"] and isinstance(error["type"], str)
    assert error["param"] is None or isinstance(error["param"], str)
    assert error["code"] is None or isinstance(error["code"], str)


# --- what a mutation puts in place of a value ---

_SURROGATES = st.text(st.characters(categories=["Cs"]), min_size=1, max_size=3)
_SCALARS = st.one_of(
    st.integers(min_value=2**64, max_value=2**200), st.integers(max_value=-(2**63) - 1, min_value=-(2**200)),
    st.integers(min_value=-(2**63), max_value=2**64 - 1), st.sampled_from([0, -1, 1, 2**63 - 1, 2**63, 2**64 - 1]),
    st.floats(allow_nan=True, allow_infinity=True), st.sampled_from([1e308, -1e308, 5e-324, -0.0]),
    st.text(max_size=40), _SURROGATES, st.sampled_from(["", "x" * 70_000, "tier:fast", "user", "json_schema"]),
    st.none(), st.booleans(),
)
JUNK = st.recursive(_SCALARS, lambda inner: st.one_of(
    st.lists(inner, max_size=4), st.dictionaries(st.one_of(st.text(max_size=8), _SURROGATES), inner, max_size=4)),
    max_leaves=12)


def like(value: Any) -> st.SearchStrategy[Any]:
    """A value of the same JSON type as `value`, mostly, at its edges: so a mutation often gets past
    the type checks and into the engine, where an odd but well-typed value does its damage."""
    if isinstance(value, bool):
        return st.booleans()
    if isinstance(value, int):
        return st.one_of(st.integers(), st.integers(min_value=-(2**63), max_value=2**64 - 1),
                         st.sampled_from([0, -1, 2**31, 2**63 - 1, 2**64 - 1, 2**64, -(2**63) - 1]))
    if isinstance(value, float):
        return st.one_of(st.floats(allow_nan=True, allow_infinity=True), st.floats(-10, 1e6))
    if isinstance(value, str):
        return st.one_of(st.text(max_size=30), _SURROGATES, st.sampled_from(
            ["", " ", "x" * 70_000, value * 3, "9999-12-31", "0001-01-01", "2262-04-12", "1e400", "NaN", "-inf"]))
    if isinstance(value, list):
        return st.lists(JUNK, max_size=3) if not value else st.lists(st.just(value[0]), min_size=0, max_size=40)
    return JUNK


# One kind of junk per row: what replaces a value (the table's rows).
JUNK_TABLE: dict[str, Any] = {
    "an integer past 64 bits": 2**64, "a negative integer past 64 bits": -(2**63) - 1, "a 30-digit integer": 10**30,
    "the largest uint64": 2**64 - 1, "the smallest int64": -(2**63), "zero": 0, "minus one": -1,
    "a huge float": 1e308, "the smallest float": 5e-324, "NaN": math.nan, "Infinity": math.inf,
    "-Infinity": -math.inf, "a string": "x", "an empty string": "", "a 70 kB string": "x" * 70_000,
    "a lone surrogate": "\ud800", "a far-future date": "9999-12-31", "null": None, "true": True,
    "an empty list": [], "an empty object": {}, "nested junk": {"a": [1, {"b": [None, 2**64, "\udfff"]}]},
}


def table_mutations(base: dict[str, Any]) -> Iterator[tuple[str, bytes]]:
    """Each single mutation of `base`: a description and the body's bytes."""
    for path in _slots(base):
        for name, junk in JUNK_TABLE.items():
            body = copy.deepcopy(base)
            _parent(body, path)[path[-1]] = copy.deepcopy(junk)
            yield f"{_shown(path)} = {name}", json.dumps(body).encode()
        body = copy.deepcopy(base)
        del _parent(body, path)[path[-1]]
        yield f"del {_shown(path)}", json.dumps(body).encode()
    for path in [(), *_slots(base)]:
        body = copy.deepcopy(base)
        target = _parent(body, (*path, None))
        if isinstance(target, dict):
            target["extra"] = 2**64
            yield f"{_shown(path) or 'body'}.extra = 2**64", json.dumps(body).encode()


def _parent(body: Any, path: tuple[Any, ...]) -> Any:
    for key in path[:-1]:
        body = body[key]
    return body


def _shown(path: tuple[Any, ...]) -> str:
    return "".join(f"[{key}]" if isinstance(key, int) else f".{key}" for key in path).lstrip(".")


def _slots(value: Any, path: tuple[Any, ...] = ()) -> Iterator[tuple[Any, ...]]:
    """The path of every value inside `value` (not the root itself)."""
    children = value.items() if isinstance(value, dict) else enumerate(value) if isinstance(value, list) else ()
    for key, child in children:
        yield (*path, key)
        yield from _slots(child, (*path, key))


def _mutate(body: dict[str, Any], data: st.DataObject) -> None:
    slots = list(_slots(body))
    path = data.draw(st.sampled_from(slots))
    parent = _parent(body, path)
    action = data.draw(st.sampled_from(["replace", "replace", "delete", "add"]))
    if action == "replace":
        parent[path[-1]] = data.draw(st.one_of(like(parent[path[-1]]), like(parent[path[-1]]), JUNK))
    elif action == "delete":
        del parent[path[-1]]
    elif isinstance(parent, dict):
        parent[data.draw(st.one_of(st.text(max_size=12), _SURROGATES))] = data.draw(JUNK)
    else:
        parent.insert(data.draw(st.integers(0, len(parent))), data.draw(JUNK))


def mutated(base: dict[str, Any], data: st.DataObject) -> bytes:
    body = copy.deepcopy(base)
    for _ in range(data.draw(st.integers(1, 3))):
        if not list(_slots(body)):
            break
        _mutate(body, data)
    # stdlib json writes what orjson will not (NaN, Infinity, huge integers, lone surrogate escapes).
    raw = json.dumps(body).encode()
    damage = data.draw(st.sampled_from(["none"] * 12 + ["cut", "flip", "wrap"]))
    if damage == "cut":
        raw = raw[:data.draw(st.integers(0, len(raw) - 1))]
    elif damage == "flip":
        at = data.draw(st.integers(0, len(raw) - 1))
        raw = raw[:at] + bytes([data.draw(st.integers(0, 255))]) + raw[at + 1:]
    elif damage == "wrap":
        raw = data.draw(st.sampled_from([b"[", b"{\"a\":", b"\"", b"\xef\xbb\xbf"])) + raw
    return raw


@pytest.mark.parametrize(("path", "base"), [
    ("/v1/chat/completions", CHAT), ("/v1/consensus", CONSENSUS), ("/v1/decide", DECIDE)])
def test_no_single_mutation_of_a_valid_body_is_a_5xx(port: int, path: str, base: dict[str, Any]) -> None:
    failures = []
    for described, raw in table_mutations(base):
        try:
            assert_never_5xx_and_error_shaped(*post(port, path, raw), raw)
        except AssertionError as exc:
            failures.append(f"{described}: {str(exc)[:300]}")
    assert not failures, "\n".join(failures)


@SETTINGS
@given(data=st.data())
def test_a_mutated_chat_body_is_never_a_5xx(port: int, data: st.DataObject) -> None:
    raw = mutated(CHAT, data)
    assert_never_5xx_and_error_shaped(*post(port, "/v1/chat/completions", raw), raw)


@SETTINGS
@given(data=st.data())
def test_a_mutated_consensus_body_is_never_a_5xx(port: int, data: st.DataObject) -> None:
    raw = mutated(CONSENSUS, data)
    assert_never_5xx_and_error_shaped(*post(port, "/v1/consensus", raw), raw)


@SETTINGS
@given(data=st.data())
def test_a_mutated_decide_body_is_never_a_5xx(port: int, data: st.DataObject) -> None:
    raw = mutated(DECIDE, data)
    assert_never_5xx_and_error_shaped(*post(port, "/v1/decide", raw), raw)
