"""`lyra models --refresh`: the live listing is cached, and a model only OpenRouter lists becomes usable."""

from __future__ import annotations

import asyncio
import dataclasses
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from lyra.catalog.models import load_catalog
from lyra.cli.commands import app
from lyra.paths import listing_cache_path
from lyra.simulator import Simulator
from support import engine_env

EXTRA = "acme/quant-reasoner-7b"


@pytest.fixture
def listing_server() -> Iterator[Simulator]:
    """A simulator on its own thread whose /models lists one model the curated catalogue lacks."""
    curated = list(load_catalog(listing=False))
    served = next(m for m in curated if not m.retired)
    extra = dataclasses.replace(served, id=EXTRA, tier="fast", prompt_per_m=Decimal("0.07"),
                                completion_per_m=Decimal("0.28"))
    sim = Simulator(catalog=type(load_catalog(listing=False))([*curated, extra]))
    loop = asyncio.new_event_loop()
    ready = threading.Event()

    def serve() -> None:
        asyncio.set_event_loop(loop)
        loop.run_until_complete(sim.start())
        ready.set()
        loop.run_forever()

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    assert ready.wait(30)
    yield sim
    asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(30)
    loop.call_soon_threadsafe(loop.stop)
    thread.join(30)


def test_refresh_caches_the_listing_and_prices_models_beyond_the_catalogue(listing_server: Simulator) -> None:
    assert load_catalog().find(EXTRA) is None
    result = CliRunner().invoke(app, ["models", "--refresh"], env=engine_env(listing_server))
    assert result.exit_code == 0, result.output
    assert "1 beyond the curated catalogue" in result.output and str(listing_cache_path()) in result.output
    found = load_catalog().find(EXTRA)
    assert found is not None
    assert (found.prompt_per_m, found.completion_per_m) == (Decimal("0.07"), Decimal("0.28"))
    # Curated entries keep their own figures; the listing only adds ids.
    assert len(load_catalog()) == len(load_catalog(listing=False)) + 1


def test_refresh_without_a_key_says_it_needs_one() -> None:
    result = CliRunner().invoke(app, ["models", "--refresh"], env={"LYRA_CONFIG": ""})
    assert result.exit_code != 0
    assert "needs a key" in result.output and "Traceback" not in result.output
    assert not listing_cache_path().exists()


def test_a_damaged_cache_is_named_and_set_aside() -> None:
    listing_cache_path().write_text("{not json")
    result = CliRunner().invoke(app, ["models"])
    assert result.exit_code == 0, result.output  # the curated catalogue still serves
    [warning] = [line for line in result.output.splitlines() if line.startswith("lyra: ")]
    assert "models.json" in warning and "not JSON" in warning and "Traceback" not in result.output
