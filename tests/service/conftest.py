"""Gateway fixtures: a real uvicorn server on a free loopback port in front of the simulator."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import openai
import psycopg
import pytest
import redis
from gateway_support import DESK_TOKEN, gateway_config_text, running
from psycopg import sql
from sqlalchemy.engine import make_url

from lyra import Lyra
from lyra.service import create_app
from lyra.simulator import Simulator
from support import engine_env


@pytest.fixture
def gateway_config(tmp_path: Path) -> Callable[..., Path]:
    def make(text: str | None = None) -> Path:
        path = tmp_path / "lyra.toml"
        path.write_text(text if text is not None else gateway_config_text())
        return path

    return make


@pytest.fixture
async def gateway(sim: Simulator, gateway_config: Callable[..., Path], tmp_path: Path) -> AsyncIterator[str]:
    """The base URL (…/v1) of a gateway on uvicorn whose engine talks to the simulator."""
    environ = engine_env(sim) | {"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"}
    lyra = Lyra.from_config(gateway_config(), environ=environ)
    async with running(create_app(lyra)) as url:
        yield url


@pytest.fixture
async def desk(gateway: str) -> AsyncIterator[openai.AsyncOpenAI]:
    async with openai.AsyncOpenAI(api_key=DESK_TOKEN, base_url=gateway, max_retries=0) as client:
        yield client


# --- Redis and Postgres for the multi-process tests (the pattern of tests/state and tests/ledger) ---

DEFAULT_REDIS_URL = "redis://127.0.0.1:6379/0"
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _service_missing(reason: str) -> None:
    """Skip, or fail when CI says the service must be there (LYRA_REQUIRE_SERVICES=1)."""
    if os.environ.get("LYRA_REQUIRE_SERVICES") == "1":
        pytest.fail(f"{reason} (LYRA_REQUIRE_SERVICES=1, so this fails instead of skipping)", pytrace=False)
    pytest.skip(reason)


@pytest.fixture
def redis_url() -> str:
    """LYRA_TEST_REDIS_URL (default redis://127.0.0.1:6379/0), once it answers PING."""
    url = os.environ.get("LYRA_TEST_REDIS_URL", DEFAULT_REDIS_URL)
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        _service_missing(f"Redis is not reachable at {url} (set LYRA_TEST_REDIS_URL): {exc}")
    return url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test alone; its keys are deleted afterwards."""
    prefix = f"lyra-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    client = redis.Redis.from_url(redis_url)
    try:
        keys = list(client.scan_iter(match=f"{prefix}*", count=1000))
        if keys:
            client.delete(*keys)
    finally:
        client.close()


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A postgresql:// URL whose connections use a fresh schema, dropped after the test."""
    base = os.environ.get("LYRA_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    libpq = make_url(base).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        admin = psycopg.connect(libpq, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        shown = make_url(base).render_as_string(hide_password=True)
        _service_missing(f"Postgres at {shown} is not reachable (set LYRA_TEST_POSTGRES_URL): {exc}")
    schema = f"lyra_test_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            yield make_url(base).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
                hide_password=False)
        finally:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
