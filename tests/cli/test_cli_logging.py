"""The CLI's log handler writes to the stderr of the moment, never to one a finished command closed."""

from __future__ import annotations

import io
import logging
import sys

import pytest
from typer.testing import CliRunner

from lyra.cli.commands import app


def test_a_warning_after_an_earlier_command_reaches_the_current_stderr(
        monkeypatch: pytest.MonkeyPatch) -> None:
    assert CliRunner().invoke(app, ["budget", "--json"]).exit_code in (0, 1, 2)  # installs the handler
    now = io.StringIO()
    monkeypatch.setattr(sys, "stderr", now)
    logging.getLogger("lyra.test").warning("after the first command")
    assert now.getvalue() == "lyra: after the first command\n"  # not "--- Logging error ---"
