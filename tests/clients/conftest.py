"""A real gateway per test module, shared by that module's tests."""

from __future__ import annotations

from collections.abc import Iterator

import pytest

from clients.served import GatewayThread, Served


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Served]:
    folder = tmp_path_factory.mktemp("gateway")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("XDG_DATA_HOME", str(folder / "data"))  # the gateway's files stay in this folder
        patch.delenv("OPENROUTER_API_KEY", raising=False)
        patch.delenv("LYRA_LEDGER_URL", raising=False)
        patch.delenv("LYRA_CONFIG", raising=False)
        gateway = GatewayThread(folder)
        yield gateway.start()
        gateway.stop()
