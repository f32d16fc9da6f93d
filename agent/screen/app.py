"""The screen's web application (Starlette): GET / is the page, GET /state what it shows now.

Every request opens the store read-only (Store.open_read_only: `mode=ro`, nothing written),
reads, and closes it, so the screen never holds the database between two looks and never
blocks the daemon. A store that cannot be read is an alarm on the page, not an error page.
Only GET and HEAD are served; answers are never cached and carry a strict CSP.
"""

from __future__ import annotations

from collections.abc import Callable
from datetime import datetime
from functools import partial

from starlette.applications import Starlette
from starlette.concurrency import run_in_threadpool
from starlette.requests import Request
from starlette.responses import Response
from starlette.routing import Route

from agent.core import i18n, wallclock
from agent.core.config import Config
from agent.core.errors import AgentError, StoreMissing
from agent.screen import page, times, view
from agent.store import DatabaseError, Store, readonly

_HEADERS = {
    "Cache-Control": "no-store",
    "Content-Security-Policy": page.CSP,
    "X-Content-Type-Options": "nosniff",
    "Referrer-Policy": "no-referrer",
}


def _look(config: Config, _: view.Words, now: Callable[[], datetime]) -> bytes:
    ctx = view.Context(
        config=config,
        words=_,
        zone=times.station_zone(config.station.timezone),
        now=now(),
        disk_free=view.disk_free(config.data_path),
        daemon_running=readonly.writer_present(config.db_path),
    )
    try:
        store = Store.open_read_only(config.data_path)
    except StoreMissing:
        if not (config.data_path / Store.MARKER).exists():
            return view.as_json(view.state(None, ctx))  # a new station: nothing taken in yet
        return view.as_json(view.state(None, ctx, _("The station's database is missing")))
    except (AgentError, DatabaseError) as exc:
        problem = _("The station's database cannot be read: {problem}").format(
            problem=type(exc).__name__
        )
        return view.as_json(view.state(None, ctx, problem))
    try:
        return view.as_json(view.state(store, ctx))
    finally:
        store.close()


def build(config: Config, language: str, now: Callable[[], datetime] = wallclock.now) -> Starlette:
    words = i18n.translations(language).gettext
    document = page.Page(language, config.screen.refresh_s).render(words)

    async def index(_request: Request) -> Response:
        return Response(document, media_type="text/html; charset=utf-8", headers=_HEADERS)

    async def state(_request: Request) -> Response:
        body = await run_in_threadpool(partial(_look, config, words, now))
        return Response(body, media_type="application/json", headers=_HEADERS)

    return Starlette(routes=[Route("/", index), Route("/state", state)])
