"""`dockagent screen`: serve the bay status page for the station's own display.

A process of its own (systemd/dockagent-screen.service), never the daemon's: it reads the store
read-only at every look and writes nothing. The address is [screen] bind and port (loopback by
default, since the page needs no login), --bind/--port for a one-off; the language is
[station] language, else the locale's.
"""

from __future__ import annotations

import argparse
import os

from agent.cli import context
from agent.core import i18n, log

_log = log.get(__name__)


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("screen", help="serve the read-only bay status page (kiosk display)")
    p.add_argument("--bind", help="address to listen on (default: [screen] bind)")
    p.add_argument("--port", type=int, help="port to listen on (default: [screen] port)")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    import uvicorn  # noqa: PLC0415 - the web stack only in the process that serves the page

    from agent.screen import app  # noqa: PLC0415 - likewise (starlette)

    cfg = context.load_config(args.config, args.log_level)
    language = i18n.language_of(cfg.station.language, os.environ)
    host = args.bind or cfg.screen.bind
    port = args.port if args.port is not None else cfg.screen.port
    _log.info("screen.started", bind=host, port=port, language=language)
    uvicorn.run(
        app.build(cfg, language),
        host=host,
        port=port,
        log_level="warning",
        access_log=False,
        server_header=False,
        proxy_headers=False,
    )
    _log.info("screen.stopped")
    return 0
