"""`lyra models --refresh`: the live listing is cached, and a model only OpenRouter lists becomes usable."""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import threading
from collections.abc import Iterator
from decimal import Decimal

import pytest
from typer.testing import CliRunner

from lyra.catalog.models import Catalog, load_catalog, model_from_listing
from lyra.cli.commands import app
from lyra.config import load_config
from lyra.paths import listing_cache_path
from lyra.simulator import Simulator
from support import engine_env

EXTRA = "acme/quant-reasoner-7b"


@contextlib.contextmanager
def serving(catalog: Catalog) -> Iterator[Simulator]:
    """A simulator on its own thread whose /models lists `catalog`."""
    sim = Simulator(catalog=catalog)
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
    try:
        yield sim
    finally:
        asyncio.run_coroutine_threadsafe(sim.stop(), loop).result(30)
        loop.call_soon_threadsafe(loop.stop)
        thread.join(30)


@pytest.fixture
def listing_server() -> Iterator[Simulator]:
    """A simulator whose /models lists one model the curated catalogue lacks."""
    curated = list(load_catalog(listing=False))
    served = next(m for m in curated if not m.retired)
    extra = dataclasses.replace(served, id=EXTRA, tier="fast", prompt_per_m=Decimal("0.07"),
                                completion_per_m=Decimal("0.28"))
    with serving(Catalog([*curated, extra])) as sim:
        yield sim


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


def test_check_warns_of_a_configured_model_that_openrouter_says_will_expire() -> None:
    """OpenRouter's /models lists `expiration_date` (2026: z-ai/glm-4.5 on 2026-12-31); a configured
    model with one is named, with its date, and the check still passes: it is live until then."""
    configured = sorted(load_config().settings.model_ids())[0]
    curated = [dataclasses.replace(m, expiration_date="2026-12-31") if m.id == configured else m
               for m in load_catalog(listing=False)]
    with serving(Catalog(curated)) as sim:
        result = CliRunner().invoke(app, ["models", "--check"], env=engine_env(sim))
    assert result.exit_code == 0, result.output
    [line] = [line for line in result.output.splitlines() if line.startswith("expires ")]
    assert line.startswith(f"expires {configured} on 2026-12-31")
    assert "every configured model id is live" in result.output


def test_a_listing_entrys_expiration_date_is_kept_and_a_non_date_dropped() -> None:
    entry = {"id": "z-ai/glm-4.5", "context_length": 131072, "expiration_date": "2026-12-31",
             "pricing": {"prompt": "0.0000006", "completion": "0.0000022"}}
    found = model_from_listing(entry)
    assert found is not None and found.expiration_date == "2026-12-31"
    undated = model_from_listing(entry | {"expiration_date": "soon"})
    assert undated is not None and undated.expiration_date is None
