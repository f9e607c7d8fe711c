"""Shared fixtures: a simulator on loopback and engines wired to it with known test keys."""

from __future__ import annotations

import logging
import os
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from pathlib import Path

# Loaded here, at a shallow stack: hypothesis's pytest plugin imports it late in a run that has no
# property tests, deep in pytest's hooks, where CPython 3.11's compiler fails a recursion check.
import hypothesis  # noqa: F401
import pytest
import redis
from sqlalchemy.engine import make_url

from lyra import Lyra
from lyra.simulator import Simulator, SimulatorOptions
from support import delete_prefix, engine_env, fast_config_text, service_missing


@pytest.fixture(autouse=True)
def _private_data_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Keep ledgers and state files of every test out of the user's data folder."""
    monkeypatch.setenv("XDG_DATA_HOME", str(tmp_path / "data"))
    monkeypatch.delenv("OPENROUTER_API_KEY", raising=False)
    monkeypatch.delenv("LYRA_LEDGER_URL", raising=False)
    monkeypatch.delenv("LYRA_CONFIG", raising=False)  # each test names its config, or gets the example


@pytest.fixture(autouse=True)
def _lyra_logger_restored() -> Iterator[None]:
    """Undo what a CLI run in-process does to the `lyra` logger (its handler on a captured stderr
    that pytest closes afterwards, its level, no propagation), so that no test sees another's."""
    logger = logging.getLogger("lyra")
    handlers, level, propagate, disabled = logger.handlers[:], logger.level, logger.propagate, logger.disabled
    yield
    logger.handlers[:] = handlers
    logger.setLevel(level)  # also clears the cached levels of the lyra.* loggers
    logger.propagate, logger.disabled = propagate, disabled


@pytest.fixture
async def sim() -> AsyncIterator[Simulator]:
    async with Simulator(options=SimulatorOptions(time_scale=0.0, generation_lag_s=0.0)) as simulator:
        yield simulator


@pytest.fixture
def config_path(tmp_path: Path) -> Callable[..., Path]:
    def make(**replacements: str) -> Path:
        path = tmp_path / "lyra.toml"
        path.write_text(fast_config_text(**replacements))
        return path

    return make


@pytest.fixture
async def lyra(sim: Simulator, config_path: Callable[..., Path]) -> AsyncIterator[Lyra]:
    async with Lyra.from_config(config_path(), environ=engine_env(sim)) as engine:
        yield engine


# Postgres comes from LYRA_TEST_POSTGRES_URL; when it cannot be reached its tests skip and say why
# (with LYRA_REQUIRE_SERVICES=1 they fail instead). Each test gets its own schema, selected
# through the connection's search_path, and dropped afterwards.
DEFAULT_POSTGRES_URL = "postgresql://postgres@127.0.0.1:5432/test"


def _libpq_url(url: str) -> str:
    """The URL without a SQLAlchemy driver suffix, as psycopg wants it."""
    parsed = make_url(url)
    return parsed.set(drivername="postgresql").render_as_string(hide_password=False)


@pytest.fixture(scope="session")
def _postgres_server() -> str | None:
    """The base URL if the server answers, else the reason it does not (checked once per run)."""
    url = os.environ.get("LYRA_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    shown = make_url(url).render_as_string(hide_password=True)
    try:
        import psycopg
    except ImportError:
        return "psycopg is not installed: pip install -e '.[postgres]'"
    try:
        with psycopg.connect(_libpq_url(url), connect_timeout=3) as conn:
            conn.execute("SELECT 1")
    except psycopg.Error as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        return f"Postgres at {shown} is not reachable (set LYRA_TEST_POSTGRES_URL): {first}"
    return None


@pytest.fixture
def postgres_url(_postgres_server: str | None) -> Iterator[str]:
    """A postgresql:// URL whose connections use a fresh schema, dropped after the test."""
    if _postgres_server is not None:
        service_missing(_postgres_server)
    import psycopg
    from psycopg import sql

    base = os.environ.get("LYRA_TEST_POSTGRES_URL", DEFAULT_POSTGRES_URL)
    schema = f"lyra_test_{os.getpid()}_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(_libpq_url(base), autocommit=True) as admin:
        admin.execute(sql.SQL("CREATE SCHEMA {}").format(sql.Identifier(schema)))
        try:
            url = make_url(base).update_query_dict({"options": f"-csearch_path={schema}"})
            yield url.render_as_string(hide_password=False)
        finally:
            admin.execute(sql.SQL("DROP SCHEMA {} CASCADE").format(sql.Identifier(schema)))


@pytest.fixture(scope="session")
def redis_url() -> str:
    """LYRA_TEST_REDIS_URL (default redis://127.0.0.1:6379/0), once it answers PING."""
    url = os.environ.get("LYRA_TEST_REDIS_URL", "redis://127.0.0.1:6379/0")
    try:
        client = redis.Redis.from_url(url, socket_connect_timeout=1, socket_timeout=2)
        try:
            client.ping()
        finally:
            client.close()
    except (redis.RedisError, OSError, ValueError) as exc:
        service_missing(f"Redis is not reachable at {url} (set LYRA_TEST_REDIS_URL): {exc}")
    return url


@pytest.fixture
def redis_prefix(redis_url: str) -> Iterator[str]:
    """A key prefix of this test alone; its keys are deleted afterwards."""
    prefix = f"lyra-test:{uuid.uuid4().hex[:12]}:"
    yield prefix
    delete_prefix(redis_url, prefix)
