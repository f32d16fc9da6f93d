"""What the screen shows, worked out from the store: one tile per bay, the alarms, the clock.

Every word is the station's language's (gettext, agent.core.i18n) and every time is in the
station's zone, with the zone named; the page only places what this hands it. Values that came
from a camera or a USB device are escaped (display_name) and the page sets them as text, never
as markup. No file names, hashes or server addresses are handed out. Writes nothing.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any
from zoneinfo import ZoneInfo

from agent.core.config import Config
from agent.core.model import CUSTODY_STATES, FileState, SessionOutcome, display_name
from agent.core.wallclock import iso
from agent.screen import times
from agent.store import DockProgress, HealthRow, SessionRow, Store

Words = Callable[[str], str]
_MB = 1_000_000
_UNFINISHED = (FileState.DISCOVERED.value, FileState.COPYING.value)
_UPLOAD_PENDING = (FileState.SEALED.value, FileState.UPLOADING.value)
# Longest text of a hostile origin shown on a tile (a refusal reason, a readiness reason).
_MAX_TEXT = 160


@dataclass(frozen=True)
class Bay:
    label: str
    port: str  # udev ID_PATH, or a prefix of it


def bays_of(config: Config) -> tuple[Bay, ...]:
    return tuple(Bay(*entry.split("=", 1)) for entry in config.screen.bays)


def bay_of(bays: tuple[Bay, ...], port_path: str) -> Bay | None:
    """The configured bay of a port: its ID_PATH, or one it begins (up to a separator)."""
    for bay in bays:
        if port_path == bay.port or port_path.startswith((bay.port + ":", bay.port + "-")):
            return bay
    return None


@dataclass
class Tile:
    bay: str
    state: str  # empty | copying | sealing | uploading | confirmed | stopped (the page's class)
    serial: str = ""
    officer: str = ""
    activity: str = ""
    detail: str = ""
    percent: int | None = None
    wipe: str = ""
    verdict: str = ""
    verdict_class: str = ""  # ready | warning | not-ready | "" (not judged yet)
    reasons: list[str] = field(default_factory=list)
    docked: str = ""


@dataclass(frozen=True)
class Context:
    """What a view is built with besides the store: words, zone, now, the data disk."""

    config: Config
    words: Words
    zone: ZoneInfo
    now: datetime
    disk_free: tuple[int, int] | None  # (free bytes, total bytes) of the data directory
    # Whether the daemon has the database open (agent.store.readonly.writer_present).
    daemon_running: bool = True


def _text(value: str) -> str:
    return display_name(value[:_MAX_TEXT])


def _mb(n: int) -> str:
    return f"{n / _MB:,.1f} MB"


def _duration(seconds: float, _: Words) -> str:
    seconds = max(0, int(seconds))
    if seconds < 60:
        return _("{n} s").format(n=seconds)
    if seconds < 3600:
        return _("{m} min {s} s").format(m=seconds // 60, s=seconds % 60)
    return _("{h} h {m} min").format(h=seconds // 3600, m=seconds % 3600 // 60)


def _copying(progress: DockProgress, session: SessionRow, ctx: Context, tile: Tile) -> None:
    _ = ctx.words
    total = sum(progress.sizes.values())
    left = sum(progress.sizes.get(s, 0) for s in _UNFINISHED)
    done = total - left
    tile.state, tile.activity = "copying", _("Copying")
    tile.percent = int(100 * done / total) if total else 0
    parts = [_("{done} of {total}").format(done=_mb(done), total=_mb(total))]
    docked = times.parse_utc(session.docked_at)
    elapsed = (ctx.now - docked).total_seconds() if docked else 0.0
    if done > 0 and elapsed > 0:
        rate = done / elapsed
        parts.append(_("{rate}/s").format(rate=_mb(int(rate))))
        parts.append(_("{left} left").format(left=_duration(left / rate, _)))
    tile.detail = " · ".join(parts)


def _uploading(progress: DockProgress, ctx: Context, tile: Tile) -> None:
    _ = ctx.words
    held = sum(n for s, n in progress.files.items() if s in CUSTODY_STATES)
    confirmed = progress.files.get(FileState.CONFIRMED.value, 0)
    total = sum(progress.sizes.get(s, 0) for s in (*_UPLOAD_PENDING, FileState.CONFIRMED.value))
    sent = progress.sizes.get(FileState.CONFIRMED.value, 0) + progress.uploaded
    tile.state, tile.activity = "uploading", _("Uploading")
    # Offsets count the staged copy's bytes, a little more than the camera's where it is
    # encrypted: never past 100 %.
    tile.percent = min(100, int(100 * sent / total)) if total else 0
    tile.detail = _("{confirmed} of {files} files confirmed").format(
        confirmed=confirmed, files=held
    )


def _activity(progress: DockProgress, session: SessionRow, ctx: Context, tile: Tile) -> None:
    _ = ctx.words
    files = progress.files
    unfinished = sum(files.get(s, 0) for s in _UNFINISHED)
    if session.outcome == SessionOutcome.RUNNING and unfinished:
        _copying(progress, session, ctx, tile)
    elif session.outcome == SessionOutcome.RUNNING:
        tile.state, tile.activity = "sealing", _("Sealing")
        tile.detail = _("{n} files copied").format(n=sum(files.values()))
    elif session.outcome not in (SessionOutcome.COMPLETE, SessionOutcome.REBUILT):
        tile.state, tile.activity = "stopped", _("Stopped")
        tile.detail = _("{n} problems: see dockagent queue").format(n=session.problems)
    elif any(files.get(s, 0) for s in _UPLOAD_PENDING):
        _uploading(progress, ctx, tile)
    else:
        tile.state, tile.activity = "confirmed", _("Confirmed")
        tile.detail = _("{n} files confirmed by the sink").format(
            n=files.get(FileState.CONFIRMED.value, 0)
        )
        tile.percent = 100


def _wipe(session: SessionRow, progress: DockProgress, _: Words) -> str:
    words = {
        "wiped": _("Wiped"),
        "partly wiped": _("Partly wiped"),
        "not wiped": _("Not wiped"),
    }
    state = words.get(session.wipe_state, "")
    if not state:
        return ""
    if session.wipe_state != "not wiped":
        state += " " + _("({n} files)").format(n=progress.wiped)
    if not session.wipe_detail:
        return state
    return _("{label}: {text}").format(label=state, text=_text(session.wipe_detail))


def _readiness(health: HealthRow | None, tile: Tile, _: Words) -> None:
    verdicts = {
        "ready": (_("Ready to issue"), "ready"),
        "warning": (_("Ready, with warnings"), "warning"),
        "not ready": (_("Not ready"), "not-ready"),
    }
    if health is None or health.readiness not in verdicts:
        tile.verdict, tile.verdict_class = _("Not judged yet"), ""
        return
    tile.verdict, tile.verdict_class = verdicts[health.readiness]
    areas = {
        "battery": _("Battery"),
        "storage": _("Storage"),
        "clock": _("Clock"),
        "faults": _("Faults"),
        "officer": _("Officer"),
    }
    try:
        reasons = health.reasons()
    except ValueError:
        reasons = []
    for reason in reasons:
        if not isinstance(reason, dict) or reason.get("severity") == "info":
            continue
        area = str(reason.get("area", ""))
        tile.reasons.append(
            _("{label}: {text}").format(
                label=areas.get(area, _text(area)), text=_text(str(reason.get("text", "")))
            )
        )


def _officer(store: Store, session: SessionRow, health: HealthRow | None) -> str:
    """The officer the camera is issued to (as its health record resolved it, handovers
    included, else the camera's own badge), by name and badge when the unit's roster names
    them, so that the officer at the dock sees their own name."""
    badge = (health.officer if health is not None and health.officer else "") or (
        session.officer_id
    )
    if not badge:
        return "-"
    known = store.officer(badge)
    if known is None or not known.name:
        return _text(badge)
    return f"{_text(known.name)} ({_text(badge)})"


def _tile(store: Store, session: SessionRow, label: str, ctx: Context) -> Tile:
    tile = Tile(bay=label, state="", serial=_text(session.device_serial))
    health = store.health(session.id)
    tile.officer = _officer(store, session, health)
    progress = store.dock_progress(session.id)
    _activity(progress, session, ctx, tile)
    tile.wipe = _wipe(session, progress, ctx.words)
    _readiness(health, tile, ctx.words)
    docked = times.parse_utc(session.docked_at)
    tile.docked = times.clock(docked, ctx.zone) if docked else ""
    return tile


def tiles(store: Store | None, ctx: Context) -> list[Tile]:
    """Every configured bay in order (empty or not), then cameras docked in ports no bay names
    (every bay empty when there is no store to read)."""
    _ = ctx.words
    bays = bays_of(ctx.config)
    docked: dict[str, SessionRow] = {}
    others: list[SessionRow] = []
    # The newest session of each port: a camera taken in again keeps its bay.
    for session in store.docked_sessions() if store is not None else ():
        bay = bay_of(bays, session.port_path)
        if bay is None:
            others.append(session)
        else:
            docked[bay.label] = session
    out = [
        _tile(store, docked[bay.label], bay.label, ctx)
        if store is not None and bay.label in docked
        else Tile(bay=bay.label, state="empty", activity=_("Empty"))
        for bay in bays
    ]
    if store is not None:
        out += [_tile(store, s, _port_label(s.port_path, ctx.words), ctx) for s in others]
    return out


def _port_label(port_path: str, _: Words) -> str:
    """A port no bay names: its USB part ("usb-0:2:1.0"), or "?" when the source had none."""
    if not port_path:
        return "?"
    usb = [part for part in port_path.split("-") if ":" in part]
    return _text(port_path if not usb else "usb-" + "-".join(usb[1:2] or usb[:1]))


def alarms(store: Store, ctx: Context) -> list[str]:
    _ = ctx.words
    out: list[str] = []
    if not ctx.daemon_running:
        out.append(_("The station's service is not running: cameras are not taken in"))
    if ctx.disk_free is not None:
        free, total = ctx.disk_free
        low = free < ctx.config.storage.reserve_bytes or (
            total > 0 and 100 * free < ctx.config.screen.disk_low_pct * total
        )
        if low:
            out.append(_("Station disk low: {free} free").format(free=_mb(free)))
    trouble = store.upload_trouble()
    if trouble is not None:
        since = times.parse_utc(trouble.since)
        out.append(
            _("Central server unreachable: {n} files waiting (last try {at})").format(
                n=trouble.waiting, at=times.clock(since, ctx.zone) if since else "-"
            )
        )
    recent = ctx.now - timedelta(minutes=ctx.config.screen.refusals_shown_min)
    for refusal in store.refusals_since(iso(recent)):
        at = times.parse_utc(refusal.at)
        if at is None:
            continue
        out.append(
            _("Device refused at {at}: {reason}").format(
                at=times.clock(at, ctx.zone), reason=_text(refusal.reason)
            )
        )
    return out


def disk_free(path: Path) -> tuple[int, int] | None:
    """Free and total bytes of the file system holding path (statvfs(2)); None if unknown."""
    try:
        st = os.statvfs(path)
    except OSError:
        return None
    return st.f_bavail * st.f_frsize, st.f_blocks * st.f_frsize


def state(store: Store | None, ctx: Context, problem: str = "") -> dict[str, Any]:
    """The whole screen as JSON-ready data: the clock, the alarms, the tiles."""
    _ = ctx.words
    shown = alarms(store, ctx) if store is not None else []
    if problem:
        shown.insert(0, problem)
    return {
        "clock": times.clock(ctx.now, ctx.zone),
        "date": ctx.now.astimezone(ctx.zone).strftime("%Y-%m-%d"),
        "zone": times.zone_label(ctx.zone, _),
        "alarms": shown,
        "tiles": [vars(t) for t in tiles(store, ctx)],
    }


def as_json(data: dict[str, Any]) -> bytes:
    return json.dumps(data, ensure_ascii=False, separators=(",", ":")).encode()
