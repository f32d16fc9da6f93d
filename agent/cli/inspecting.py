"""`dockagent status` and `dockagent queue`: what the store holds, as a query; no daemon needed."""

from __future__ import annotations

import argparse
import sys
from typing import Any

from agent.cli import context
from agent.cli.output import canonical, emit_json, table
from agent.cli.words import _, pgettext, size, states, value, when, zone
from agent.core.config import Config
from agent.core.config import station as station_config
from agent.core.model import FileState
from agent.health import clock
from agent.reporting.readiness import readiness_by_camera
from agent.reporting.times import parse_since
from agent.store import FileRow, Store
from agent.sync import stamping


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("status", help="counts per state, per camera and of the recent docks")
    p.add_argument("--json", action="store_true")
    p.add_argument(
        "--limit",
        type=_count,
        default=DEFAULT_SESSIONS,
        help=f"show this many of the latest dock sessions (default {DEFAULT_SESSIONS})",
    )
    p.add_argument("--since", help="only dock sessions docked from this date/time (station-local)")
    p.set_defaults(func=run_status)
    q = sub.add_parser("queue", help="files not yet confirmed, with state and reason")
    q.add_argument("--json", action="store_true")
    q.add_argument("--state", choices=[s.value for s in FileState], help="only this state")
    q.set_defaults(func=run_queue)


# Dock sessions `status` lists unless told otherwise: a station's history is not a screenful.
DEFAULT_SESSIONS = 20


def _count(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"not a number: {text!r}") from None
    if value < 0:
        raise argparse.ArgumentTypeError(f"not a count: {text!r}")
    return value


def _by_camera(store: Store) -> dict[str, dict[str, Any]]:
    out: dict[str, dict[str, Any]] = {}
    for count in store.state_counts_by_camera():
        entry = out.setdefault(count.key, {"states": {}, "files": 0, "bytes": 0})
        entry["states"][count.state] = count.files
        entry["files"] += count.files
        entry["bytes"] += count.bytes
    return out


def status_data(store: Store, limit: int = DEFAULT_SESSIONS, since: str = "") -> dict[str, Any]:
    """The counts, and the latest `limit` dock sessions (from `since`, station UTC text)."""
    counts = store.state_counts()
    recent = store.recent_sessions(limit, since)
    states = store.sessions_state_counts(s.id for s in recent)
    sessions = []
    for s in recent:
        sessions.append(
            {
                k: getattr(s, k)
                for k in (
                    "id",
                    "device_serial",
                    "officer_id",
                    "docked_at",
                    "ended_at",
                    "outcome",
                    "files_found",
                    "files_new",
                    "files_sealed",
                    "bytes_copied",
                    "problems",
                    "wipe_state",
                    "wipe_detail",
                )
            }
        )
        sessions[-1]["states"] = states.get(s.id, {})
    return {
        "states": {state.value: counts.get(state.value, 0) for state in FileState},
        "files": sum(counts.values()),
        "cameras": _by_camera(store),
        "sessions": sessions,
        "chain_length": (store.chain_head() or (0, ""))[0],
        # The station clock (adjtimex(2)) and each camera's readiness at its last dock.
        "station_clock": clock.station_clock().read().as_dict(),
        "readiness": readiness_by_camera(store),
    }


def _status_document(data: dict[str, Any]) -> dict[str, Any]:
    """status --json: the sessions and readiness rows under README "JSON output" names."""
    return {
        **data,
        "sessions": [
            canonical(s, id="session_id", ended_at="undocked_at") for s in data["sessions"]
        ],
        "readiness": [canonical(r) for r in data["readiness"]],
    }


def run_status(args: argparse.Namespace) -> int:
    cfg = context.load_config(args.config, args.log_level)
    since = parse_since(args.since, zone()) if args.since else ""
    with context.reader(cfg) as store:
        data = status_data(store, args.limit, since)
        # Trusted time: what the RFC 3161 tokens cover, and what waits for one since when.
        data["trusted_time"] = stamping.state(cfg, store)
        if cfg.sync.sinks:  # several sinks: what waits for each, and what each holds
            data["sinks"] = _sinks_status(cfg, store.sinks_pending())
    if args.json:
        emit_json(_status_document(data))
        return 0
    out = sys.stdout
    out.write(_("station clock: {clock}").format(clock=data["station_clock"]["description"]))
    out.write("\n" + _("times shown in {zone}").format(zone=zone().key) + "\n")
    out.write(
        _("files: {files}   custody records: {records}").format(
            files=data["files"], records=data["chain_length"]
        )
        + "\n"
    )
    trusted = stamping.describe_state(data["trusted_time"])
    out.write(_("trusted time: {state}").format(state=trusted) + "\n")
    out.write(states({k: v for k, v in data["states"].items() if v}) + "\n\n")
    for name, sink in data.get("sinks", {}).items():
        out.write(
            _("sink {name} ({endpoint}): waiting={waiting} held={held}").format(
                name=name, endpoint=sink["endpoint"], waiting=sink["waiting"], held=sink["held"]
            )
            + (" (held_when)" if sink["required"] else "")
            + "\n"
        )
    out.write(
        table(
            [
                (
                    serial,
                    c["files"],
                    size(c["bytes"]),
                    states(c["states"]),
                )
                for serial, c in data["cameras"].items()
            ],
            [_("camera"), _("files"), _("size"), _("states")],
        )
        + "\n\n"
    )
    shown = _("the latest {limit}").format(limit=args.limit) + (
        _(" docked from {since}").format(since=when(since)) if args.since else ""
    )
    out.write(_("dock sessions ({shown}; see --limit and --since):").format(shown=shown) + "\n")
    out.write(
        table(
            [
                (
                    s["id"],
                    s["device_serial"],
                    s["officer_id"] or "-",
                    when(s["docked_at"]),
                    value(s["outcome"]),
                    s["files_found"],
                    s["files_sealed"],
                    s["problems"],
                    value(s["wipe_state"]),
                )
                for s in data["sessions"]
            ],
            [
                _("session"),
                _("camera"),
                _("officer"),
                _("docked"),
                _("outcome"),
                _("found"),
                _("sealed"),
                _("problems"),
                _("wipe"),
            ],
        )
        + "\n"
    )
    if data["readiness"]:
        out.write("\n" + _("readiness at the last dock:") + "\n")
        for r in data["readiness"]:
            reasons = "; ".join(r["reasons"])
            out.write(
                f"  {r['camera']}: {value(r['readiness'])}"
                + (f" ({reasons})" if reasons else "")
                + "\n"
            )
    return 0


def _sinks_status(cfg: Config, pending: dict[str, dict[str, int]]) -> dict[str, Any]:
    required = station_config.required_names(cfg)
    return {
        d.name: {
            "endpoint": d.identity.endpoint,
            "waiting": pending.get(d.name, {}).get("waiting", 0),
            "held": pending.get(d.name, {}).get("held", 0),
            "required": required is None or d.name in required,
        }
        for d in station_config.destinations(cfg)
    }


def _upload_progress(r: FileRow) -> dict[str, object]:
    """Upload columns (migration 0003_uploads); their defaults on a database not yet migrated."""
    # Offsets count the bytes sent: the ciphertext's where the copy is encrypted.
    offset, size = r.upload_offset, r.staged_size
    percent = round(100 * offset / size, 1) if size else 0.0
    text = "-"
    if r.state is FileState.UPLOADING or (offset and r.state is not FileState.CONFIRMED):
        text = f"{percent:g}% of {size}"
    if r.state is FileState.SEALED and r.next_attempt_at:
        text = f"{text if offset else 'retry'} after {r.next_attempt_at}"
    # Bytes sent of the bytes to send: all of them once confirmed, else the offset the sink
    # acknowledged (kept to resume).
    done = size if r.state is FileState.CONFIRMED else min(offset, size)
    return {
        "upload": text,
        "upload_offset": offset,
        "upload_percent": percent,
        "upload_done": done,
        "upload_total": size,
        "upload_attempts": r.upload_attempts,
        "next_attempt_at": r.next_attempt_at,
        "last_error": r.last_error,
    }


def queue_item(r: FileRow, copying: dict[int, tuple[int, int]] | None = None) -> dict[str, object]:
    """One file as `dockagent queue` shows it (and prints it with --json); `copying`: the bytes
    done and total of the files being copied now (agent.store.progress)."""
    copy_done, copy_total = (copying or {}).get(r.id, (0, r.size))
    return {
        "file_id": r.id,
        "camera": r.device_serial,
        "name": r.camera_name,
        "state": r.state.value,
        "reason": r.reason,
        "size": r.size,
        "sha256": r.sha256,
        "attempts": r.attempts,
        "important": r.important,
        "wiped": bool(r.wiped_at),
        **_upload_progress(r),
        "copy_done": copy_done if r.state is FileState.COPYING else None,
        "copy_total": copy_total if r.state is FileState.COPYING else None,
    }


def _sink_uploads(
    standing: dict[str, str], offsets: dict[str, int], item: dict[str, object]
) -> dict[str, dict[str, object]]:
    """Each sink's upload of one file: its state, the bytes it acknowledged and the bytes to
    send (the staged copy's: the ciphertext's where the copy is sealed), all once it confirmed."""
    total = int(str(item["upload_total"]))
    return {
        name: {
            "state": state,
            "upload_done": total if state == "confirmed" else min(offsets.get(name, 0), total),
            "upload_total": total,
        }
        for name, state in standing.items()
    }


def _state(item: dict[str, object]) -> str:
    """The state, with how far its copy is while it is being copied."""
    done, total = item["copy_done"], item["copy_total"]
    if isinstance(done, int) and isinstance(total, int) and total:
        return f"{value(item['state'])} {100 * done // total}%"
    return value(item["state"])


def run_queue(args: argparse.Namespace) -> int:
    cfg = context.load_config(args.config, args.log_level)
    with context.reader(cfg) as store:
        if args.state:
            rows = store.files_in_state(FileState(args.state))
        else:
            rows = store.files_not_in_state(FileState.CONFIRMED)
        per_file = store.sinks_of_files(r.id for r in rows) if cfg.sync.sinks else {}
        offsets = store.sink_offsets_of_files(r.id for r in rows) if cfg.sync.sinks else {}
        copying = store.copying_progress()
    items = [queue_item(r, copying) for r in rows]
    if cfg.sync.sinks:  # each file's standing with each sink ("-": not tried yet)
        names = [d.name for d in station_config.destinations(cfg)]
        for item in items:
            of_file = per_file.get(int(str(item["file_id"])), {})
            standing = {name: of_file.get(name, "-") for name in names}
            item["sinks"] = standing
            item["sink_uploads"] = _sink_uploads(
                standing, offsets.get(int(str(item["file_id"])), {}), item
            )
            item["upload"] = " ".join(f"{k}={v}" for k, v in standing.items())
    if args.json:
        emit_json({"files": [canonical(i) for i in items]})
        return 0
    sys.stdout.write(
        table(
            [
                (
                    i["file_id"],
                    i["camera"],
                    _state(i),
                    size(int(str(i["size"]))),
                    i["upload"],
                    i["name"],
                    i["reason"],
                )
                for i in items
            ],
            [
                _("id"),
                _("camera"),
                _("state"),
                _("size"),
                _("upload"),
                pgettext("a file's", "name"),
                _("reason"),
            ],
        )
        + "\n"
    )
    return 0
