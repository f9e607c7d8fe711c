"""Gateway fixtures: a real uvicorn server on a free loopback port in front of the simulator."""

from __future__ import annotations

import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

import openai
import psycopg
import pytest
from gateway_support import DESK_TOKEN, gateway_config_text, running
from psycopg import sql
from sqlalchemy.engine import make_url

from lyra import Lyra
from lyra.service import create_app
from lyra.simulator import Simulator
from support import engine_env, service_missing


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


@pytest.fixture
def postgres_url() -> Iterator[str]:
    """A postgresql:// URL whose connections use a fresh schema, dropped after the test."""
    base = os.environ.get("LYRA_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    libpq = make_url(base).set(drivername="postgresql").render_as_string(hide_password=False)
    try:
        admin = psycopg.connect(libpq, autocommit=True, connect_timeout=3)
    except psycopg.Error as exc:
        shown = make_url(base).render_as_string(hide_password=True)
        service_missing(f"Postgres at {shown} is not reachable (set LYRA_TEST_POSTGRES_URL): {exc}")
    schema = f"lyra_test_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    with admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            yield make_url(base).update_query_dict({"options": f"-csearch_path={schema}"}).render_as_string(
                hide_password=False)
        finally:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))
