"""Start-up with a database that cannot be reached: exit 2 and one `error:` line, for every command.

Nothing listens on 127.0.0.1 port 1, so a connection there is refused at once.
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from lyra import Lyra
from lyra.config import example_config_text
from lyra.errors import LedgerUnavailable, StateUnavailable

LYRA = str(Path(sys.executable).with_name("lyra"))
PASSWORD = "Pangolin-Pw-5150"
DEAD_POSTGRES = f"postgresql://lyra:{PASSWORD}@127.0.0.1:1/lyra"
DEAD_REDIS = f"redis://:{PASSWORD}@127.0.0.1:1/0"


def redis_config(folder: Path) -> Path:
    path = folder / "lyra.toml"
    text = example_config_text()
    assert '[state]\nbackend = "sqlite"' in text
    path.write_text(text.replace('[state]\nbackend = "sqlite"', '[state]\nbackend = "redis"', 1))
    return path


def run_lyra(cwd: Path, *args: str, env: dict[str, str]) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items()
               if k not in ("LYRA_CONFIG", "LYRA_LEDGER_URL", "LYRA_REDIS_URL")} | env
    return subprocess.run([LYRA, *args], capture_output=True, text=True, timeout=120, cwd=cwd, env=environ)


def assert_one_error_line(done: subprocess.CompletedProcess[str], *expected: str) -> str:
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr and PASSWORD not in done.stderr + done.stdout
    lines = done.stderr.splitlines()
    assert lines[0].startswith("config: ")
    errors = [line for line in lines if line.startswith("error: ")]
    assert len(errors) == 1, done.stderr
    # Besides the config line and the error, only Lyra's own log lines (the simulator notice).
    assert all(line.startswith(("config: ", "error: ", "lyra: ")) for line in lines), done.stderr
    for part in expected:
        assert part in errors[0]
    return errors[0]


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["serve", "--port", "0", "--workers", "2"],
                                     ["usage"], ["budget", "--json"]])
def test_an_unreachable_postgres_ledger_is_one_line(tmp_path: Path, command: list[str]) -> None:
    done = run_lyra(tmp_path, *command, env={"LYRA_LEDGER_URL": DEAD_POSTGRES})
    assert_one_error_line(done, "postgresql", "lyra:***@127.0.0.1:1/lyra", "(LYRA_LEDGER_URL)",
                          "fix LYRA_LEDGER_URL")
    assert done.stdout == ""


@pytest.mark.parametrize("command", [["serve", "--port", "0"], ["budget"]])
def test_an_unreachable_redis_state_is_one_line(tmp_path: Path, command: list[str]) -> None:
    config = redis_config(tmp_path)
    done = run_lyra(tmp_path, *command, "--config", str(config), env={"LYRA_REDIS_URL": DEAD_REDIS})
    assert_one_error_line(done, "cannot be reached", "redis://:***@127.0.0.1:1/0", "LYRA_REDIS_URL",
                          f'[state] backend = "redis" in {config}', "start Redis or fix LYRA_REDIS_URL")


def test_a_bad_config_stops_serve_before_any_worker(tmp_path: Path) -> None:
    config = tmp_path / "lyra.toml"
    config.write_text(example_config_text().replace("timeout_s = 8", "timeout_s = true", 1))
    done = run_lyra(tmp_path, "serve", "--port", "0", "--workers", "2", env={})
    line = assert_one_error_line(done, "tiers.premium.timeout_s: expected a number")
    assert line.startswith(f"error: {config}: ")
    assert done.stderr.splitlines()[0] == f"config: {config} (found in the current folder)"


async def test_the_engine_names_the_unreachable_ledger_and_masks_its_password(tmp_path: Path) -> None:
    with pytest.raises(LedgerUnavailable) as info:
        async with Lyra.from_config(environ={"LYRA_LEDGER_URL": DEAD_POSTGRES}):
            pass
    message = str(info.value)
    assert "lyra:***@127.0.0.1:1/lyra (LYRA_LEDGER_URL) cannot be reached" in message
    assert PASSWORD not in message and "\n" not in message


async def test_check_stores_opens_and_closes_the_stores(tmp_path: Path) -> None:
    config = redis_config(tmp_path)
    lyra = Lyra.from_config(config, environ={"LYRA_REDIS_URL": DEAD_REDIS,
                                             "LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"})
    with pytest.raises(StateUnavailable, match="cannot be reached"):
        await lyra.check_stores()
    assert lyra.state is None and lyra.ledger is None  # closed again
    healthy = Lyra.from_config(environ={"LYRA_LEDGER_URL": f"sqlite:///{tmp_path / 'ledger.db'}"})
    await healthy.check_stores()
    assert (tmp_path / "ledger.db").exists() and healthy.ledger is None and healthy.state is None


@pytest.mark.parametrize(("value", "expected"), [
    ("inf", "must be a finite number more than 0"), ("nan", "must be a finite number more than 0"),
    ("1e308", "must be at most 1,000,000,000"),
])
def test_token_new_refuses_caps_the_config_would_refuse(tmp_path: Path, value: str, expected: str) -> None:
    done = run_lyra(tmp_path, "token", "new", "desk", "--daily-usd", value, env={})
    assert done.returncode == 2 and done.stdout == ""
    assert done.stderr.startswith(f"error: --daily-usd: {expected}") and done.stderr.count("\n") == 1


async def test_serve_hands_its_workers_the_file_it_found(tmp_path: Path) -> None:
    """Started with no --config in a folder holding lyra.toml, both workers serve that file's client."""
    import asyncio
    import hashlib
    import socket

    import aiohttp

    from support import fast_config_text

    token = "lyra-found-" + "Zz9" * 14
    (tmp_path / "lyra.toml").write_text(fast_config_text() + (
        f'\n[clients.found]\ntoken_sha256 = "{hashlib.sha256(token.encode()).hexdigest()}"\ndaily_usd = 5\n'))
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("LYRA_", "OPENROUTER_"))}
    proc = await asyncio.create_subprocess_exec(
        LYRA, "serve", "--port", str(port), "--workers", "2", cwd=tmp_path, env=environ,
        stdout=asyncio.subprocess.DEVNULL, stderr=asyncio.subprocess.PIPE)
    statuses: list[int] = []
    try:
        async with aiohttp.ClientSession() as session:
            for _ in range(1200):  # a generous wait for a loaded machine; the outcome is what counts
                if proc.returncode is not None:
                    break
                try:
                    async with session.get(f"http://127.0.0.1:{port}/v1/models",
                                           headers={"Authorization": f"Bearer {token}"}) as response:
                        statuses.append(response.status)
                        if statuses.count(200) >= 4:
                            break
                except aiohttp.ClientError:
                    pass
                await asyncio.sleep(0.05)
    finally:
        if proc.returncode is None:
            proc.terminate()
        _, err = await asyncio.wait_for(proc.communicate(), 60)
    stderr = err.decode()
    assert stderr.splitlines()[0] == f"config: {tmp_path / 'lyra.toml'} (found in the current folder)"
    assert statuses.count(200) >= 4 and 401 not in statuses, stderr[-2000:]
