"""`lyra serve`: the OpenAI-compatible gateway on uvicorn, with one or several worker processes."""

from __future__ import annotations

import asyncio
import os
import shutil
import sys
import tempfile
from typing import Annotated, Any

import typer

from lyra.catalog.models import load_catalog
from lyra.cli.common import ConfigOption, fail, use_config
from lyra.config import load_config
from lyra.engine import Lyra
from lyra.errors import LyraError

_LOOPBACK = ("127.0.0.1", "::1", "localhost")
_MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


def register(app: typer.Typer) -> None:
    """Add the `serve` command to the `lyra` command line."""
    app.command("serve")(serve)


def serve(
    config: ConfigOption = None,
    host: Annotated[str, typer.Option(help="Address to bind (loopback unless you mean otherwise)")] = (
        "127.0.0.1"),
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8080,
    workers: Annotated[int, typer.Option(min=1, help="Worker processes; they share one budget through "
                                                      "the sqlite (default) or redis state")] = 1,
    access_log: Annotated[bool, typer.Option(help="One JSON line per request on stderr")] = False,
    graceful_timeout: Annotated[int, typer.Option(help="Seconds to drain requests on shutdown")] = 30,
    header_timeout: Annotated[float, typer.Option(
        min=0.001, help="Seconds a client has to send a request's headers, else it is cut off")] = 10.0,
    body_timeout: Annotated[float, typer.Option(
        min=0.001, help="Seconds a client has to send a request's body; then it gets 408")] = 30.0,
    max_connections: Annotated[int, typer.Option(
        min=1, help="Open connections per worker past which a request gets 503 with Retry-After")] = 1000,
) -> None:
    """Serve the OpenAI-compatible gateway until SIGTERM or Ctrl-C (requests in flight finish)."""
    import uvicorn

    from lyra.service.app import ACCESS_LOG_ENV, BODY_TIMEOUT_ENV, CONFIG_ENV
    from lyra.service.protocol import HEADER_TIMEOUT_ENV, GuardedHttpProtocol

    try:  # fail here with one line rather than in every worker with a traceback
        choice = use_config(config)
        catalog = load_catalog()
        loaded = load_config(choice, catalog=catalog)
        asyncio.run(Lyra(loaded, catalog=catalog).check_stores())
    except LyraError as exc:
        raise fail(exc) from None
    settings = loaded.settings
    if workers > 1 and settings.state.backend == "memory":
        typer.echo(f"error: [state] backend = \"memory\" keeps a budget per process, so {workers} workers "
                   "would each spend the whole cap; use \"sqlite\" (the default) or \"redis\"", err=True)
        raise typer.Exit(2)
    if not settings.clients:
        typer.echo("warning: no [clients.*] in the config, so every request gets 401; "
                   "`lyra token new NAME` makes one", err=True)
    if host not in _LOOPBACK:
        typer.echo(f"warning: listening on {host}, beyond this machine", err=True)
    os.environ[CONFIG_ENV] = str(choice.path.resolve()) if choice.path else ""  # the workers' file
    os.environ[ACCESS_LOG_ENV] = "1" if access_log else "0"
    os.environ[HEADER_TIMEOUT_ENV] = repr(header_timeout)
    os.environ[BODY_TIMEOUT_ENV] = repr(body_timeout)
    metrics_dir = _share_metrics(workers)
    typer.echo(f"Lyra gateway on http://{host}:{port}/v1 ({workers} worker{'s' * (workers > 1)})", err=True)
    try:
        uvicorn.run("lyra.service.app:app_from_env", factory=True, host=host, port=port, workers=workers,
                    access_log=False, log_config=log_config(verbose=access_log), lifespan="on",
                    timeout_graceful_shutdown=graceful_timeout, server_header=False,
                    http=GuardedHttpProtocol, ws="none", limit_concurrency=max_connections)
    finally:
        if metrics_dir is not None:
            shutil.rmtree(metrics_dir, ignore_errors=True)


def _share_metrics(workers: int) -> str | None:
    """With several workers, let prometheus_client merge their counters through a temporary folder."""
    if workers == 1 or os.environ.get(_MULTIPROC_ENV):
        return None
    folder = tempfile.mkdtemp(prefix="lyra-metrics-")
    os.environ[_MULTIPROC_ENV] = folder
    return folder


def log_config(*, verbose: bool) -> dict[str, Any]:
    """Logging for every worker: lyra and uvicorn to stderr, masked; access lines bare JSON."""
    stderr = {"class": "logging.StreamHandler", "stream": "ext://sys.stderr", "filters": ["mask"]}
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"mask": {"()": "lyra.log.SecretMaskFilter"}},
        "formatters": {"plain": {"format": "%(asctime)s %(levelname)s %(name)s: %(message)s"},
                       "line": {"format": "%(message)s"}},
        "handlers": {"stderr": {**stderr, "formatter": "plain"}, "access": {**stderr, "formatter": "line"}},
        "loggers": {
            "uvicorn": {"handlers": ["stderr"], "level": "INFO", "propagate": False},
            "lyra": {"handlers": ["stderr"], "level": "INFO" if verbose else "WARNING", "propagate": False},
            "lyra.service.access": {"handlers": ["access"], "level": "INFO", "propagate": False},
        },
    }


if __name__ == "__main__":  # `python -m lyra.cli.serve ...`, the same command outside the `lyra` group
    typer.run(serve)
    sys.exit(0)
