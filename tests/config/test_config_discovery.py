"""Which configuration is used: --config, then $LYRA_CONFIG, then ./lyra.toml, then the shipped example."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from lyra import Lyra
from lyra.config import example_config_text, find_config, load_config

LYRA = str(Path(sys.executable).with_name("lyra"))


def write(path: Path, session: str) -> Path:
    """A config told apart from the others by its trading session (and so by the plan's length)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(example_config_text().replace('session_utc = "00:00-24:00"', f'session_utc = "{session}"'))
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    return {
        "local": write(tmp_path / "work" / "lyra.toml", "00:00-01:00"),
        "env": write(tmp_path / "elsewhere" / "from-env.toml", "00:00-02:00"),
        "given": write(tmp_path / "given.toml", "22:00-06:00"),
    }


def test_find_config_follows_the_order(files: dict[str, Path], tmp_path: Path) -> None:
    work = files["local"].parent
    env = {"LYRA_CONFIG": str(files["env"])}
    given = find_config(files["given"], environ=env, cwd=work)
    assert (given.path, given.reason) == (files["given"], "given with --config")
    from_env = find_config(None, environ=env, cwd=work)
    assert (from_env.path, from_env.reason) == (files["env"], "from LYRA_CONFIG")
    local = find_config(None, environ={}, cwd=work)
    assert (local.path, local.reason) == (files["local"], "found in the current folder")
    assert local.describe() == f"config: {files['local']} (found in the current folder)"
    example = find_config(None, environ={"LYRA_CONFIG": "  "}, cwd=tmp_path)  # blank: not set
    assert example.path is None and example.source == "lyra.example.toml"
    assert example.describe().startswith("config: lyra.example.toml (the shipped example")


def test_load_config_and_the_engine_use_the_same_order(
    files: dict[str, Path], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(files["local"].parent)
    monkeypatch.delenv("LYRA_CONFIG", raising=False)
    assert load_config().source == str(files["local"])
    assert Lyra.from_config().config.source == str(files["local"])
    monkeypatch.setenv("LYRA_CONFIG", str(files["env"]))
    assert load_config().source == str(files["env"])
    assert load_config(environ={}).source == str(files["local"])  # `environ` replaces os.environ
    assert load_config(files["given"]).source == str(files["given"])


def test_a_missing_file_named_by_lyra_config_says_where_it_came_from(tmp_path: Path) -> None:
    from lyra.errors import ConfigError

    with pytest.raises(ConfigError, match=r"nope\.toml: no such file \(from LYRA_CONFIG\)"):
        load_config(environ={"LYRA_CONFIG": str(tmp_path / "nope.toml")})


def run_plan(cwd: Path, *args: str, env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    environ = {k: v for k, v in os.environ.items() if k != "LYRA_CONFIG"} | (env or {})
    return subprocess.run([LYRA, "plan", "--json", "--no-history", *args], capture_output=True, text=True,
                          timeout=120, cwd=cwd, env=environ)


def test_the_command_names_its_file_on_stderr_and_keeps_stdout_json(
    files: dict[str, Path], tmp_path: Path
) -> None:
    work = files["local"].parent
    cases = [
        (run_plan(work), f"config: {files['local']} (found in the current folder)", 3600),
        (run_plan(work, env={"LYRA_CONFIG": str(files["env"])}), f"config: {files['env']} (from LYRA_CONFIG)",
         7200),
        (run_plan(work, "--config", str(files["given"]), env={"LYRA_CONFIG": str(files["env"])}),
         f"config: {files['given']} (given with --config)", 8 * 3600),  # overnight: 22:00-06:00
        (run_plan(tmp_path), "config: lyra.example.toml (the shipped example; no --config, LYRA_CONFIG or "
                             "./lyra.toml)", 86400),
    ]
    for done, line, session_s in cases:
        assert done.returncode == 0, done.stderr
        assert done.stderr.splitlines()[0] == line
        assert json.loads(done.stdout)["session_s"] == session_s
