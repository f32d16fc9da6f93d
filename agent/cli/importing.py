"""`dockagent import PATH`: take a mounted camera volume (or a directory like one) into custody.

When a USB device holds PATH (agent.devices.backing), its USB serial must be the serial
DEVICE.INF names, as the daemon requires of every dock; a mismatch is refused and recorded as a
refusal before any evidence is read. A directory, or an image on a loop device, has no USB
identity: it is imported on the technician's word, and the output and the session say so.
A camera whose profile names its SCSI device record first among its identity sources is asked
for that record (reads only: agent.runtime.scsi_identity), which then names the camera instead
of DEVICE.INF, or falls back to DEVICE.INF or refuses as that module says.

Under the station's own configuration only (or root's --foreign-config); an import by hand that
wiped files is signed into the chain as `camera.imported` (agent.custody.audit).
"""

from __future__ import annotations

import argparse
import dataclasses
import sys
from contextlib import AbstractContextManager, nullcontext

from agent.camera import profile
from agent.cli import context, progressbar
from agent.cli.devices import enroll, record_refusal
from agent.cli.output import emit_json
from agent.core.errors import EXIT_INCOMPLETE, CameraRefused
from agent.core.model import DeviceInfo, ImportSummary, display_name
from agent.devices.backing import backing_of
from agent.ingest import policy
from agent.ingest.session import Importer
from agent.runtime import scsi_identity, unlock
from agent.sync.stamping import stamp_once


def add(sub: argparse._SubParsersAction[argparse.ArgumentParser]) -> None:
    p = sub.add_parser("import", help="import a mounted camera volume as a dock session")
    p.add_argument("path", help="mount point of the camera (or a directory laid out like one)")
    p.add_argument("--profile", default="generic", help="camera profile (default: generic)")
    p.add_argument("--json", action="store_true", help="print a machine-readable summary")
    p.add_argument(
        "--enroll",
        action="store_true",
        help="enroll the camera's serial on the spot (an audited technician action)",
    )
    p.set_defaults(func=run)


def _audit_import(ctx: context.Context, path: str, summary: ImportSummary) -> None:
    """An import by hand that wiped files from the camera: a technician action that cannot be
    undone, signed with the operator, the configuration and what it did (each file it sealed
    is signed by its own record already; the daemon's docks are not technician actions)."""
    wiped = int(str(summary.wipe.get("wiped", 0)))
    if not wiped:
        return
    context.sign_custody_action(
        ctx,
        "camera.imported",
        {
            "path": display_name(path),
            "device_serial": summary.device_serial,
            "session_id": summary.session_id,
            "sealed": summary.files_sealed,
            "wipe": str(summary.wipe.get("state", "")),
            "wiped": wiped,
        },
    )


def _bars(importer: Importer, shown: bool) -> AbstractContextManager[None]:
    """Progress bars for the camera and each file, on a terminal only (agent.cli.progressbar)."""
    if shown and progressbar.wanted():
        return progressbar.bars(importer.progress)
    return nullcontext()


def run(args: argparse.Namespace) -> int:
    cfg, station = context.custody_config(args)
    prof = profile.load(args.profile, cfg.devices.profile_dir)
    with context.writer(cfg) as ctx:
        context.note_foreign(ctx, station, "import")
        behind = backing_of(args.path)
        usb = behind.usb

        def check(info: DeviceInfo) -> None:
            # The daemon's check of the hardware against DEVICE.INF, where there is hardware;
            # before --enroll, so a mismatched volume cannot enrol the serial it claims.
            admission = policy.admit_backing(usb, info.serial)
            if not admission.allowed:
                raise CameraRefused(path=args.path, problem=admission.reason)
            if args.enroll and info.serial not in ctx.store.enrolled():
                enroll(ctx, info.serial, info.officer_id)
            # The daemon's allow-list, applied to DEVICE.INF's serial.
            admission = policy.admit_import(
                info.serial, ctx.store.enrolled(), cfg.devices.require_enrollment
            )
            if not admission.allowed:
                raise CameraRefused(path=args.path, problem=admission.reason)

        identity = (
            f"USB serial {usb.serial} matches DEVICE.INF" if usb is not None else behind.describe()
        )
        shown = f"path={display_name(args.path)}" + (
            f" {display_name(usb.describe())}" if usb is not None else ""
        )
        importer = Importer(cfg, ctx.store, ctx.sealer, prof)
        try:
            found = scsi_identity.for_import(
                prof,
                usb,
                args.path,
                unlock.opener_for(cfg.devices.scsi_relay),
                unlock.identity_check(
                    usb.serial if usb is not None else "",
                    prof,
                    ctx.store.enrolled(),
                    False,
                    args.path,
                ),
            )
            with _bars(importer, not args.json):
                summary = importer.import_volume(
                    args.path,
                    check=check,
                    usb_serial=usb.serial if usb is not None else "",
                    identity_check=found.check or identity,
                    known=found.known,
                    unlock=found.record,
                )
        except CameraRefused as exc:
            record_refusal(ctx, "import", shown, exc)
            raise
        _audit_import(ctx, args.path, summary)
        # The session ended: its records get a time-stamp token now, or the daemon catches up.
        stamped = stamp_once(cfg, ctx.store)
    data = dataclasses.asdict(summary)
    data["tsa_token_seq"] = stamped
    data["complete"] = summary.complete
    data["usb_identity"] = usb.serial if usb is not None else None
    data["identity_check"] = importer.identity_check
    if args.json:
        emit_json(data)
    else:
        _print_summary(summary, prof, importer, usb is None, identity, stamped)
    return 0 if summary.complete else EXIT_INCOMPLETE


def _print_summary(
    summary: ImportSummary,
    prof: profile.Profile,
    importer: Importer,
    no_usb: bool,
    identity: str,
    stamped: int | None,
) -> None:
    """The import's result as lines for a technician."""
    out = sys.stdout
    if no_usb:
        said_by = "DEVICE.INF" if prof.identity == ("file",) else "its identity"
        out.write(f"{identity}: {said_by} taken on the technician's word\n")
    if importer.binding.detail:
        out.write(f"{importer.binding.detail}\n")
    if stamped is not None:
        out.write(f"time-stamp token over custody record {stamped} kept\n")
    out.write(
        f"camera {summary.device_serial} (officer {summary.officer_id or '-'}), "
        f"session {summary.session_id}: {summary.files_found} files found, "
        f"{summary.files_sealed} sealed now, {summary.files_already_held} already held, "
        f"{summary.bytes_copied} bytes copied\n"
    )
    if summary.files_found and not summary.files_sealed and not summary.problems:
        out.write("nothing new: every file of this camera is already in custody\n")
    for problem in summary.problems:
        out.write(f"NOT SEALED  {problem['file']}: {problem['reason']}\n")
    for entry in summary.ignored:
        out.write(f"IGNORED     {entry['file']}: {entry['reason']}\n")
    wipe = summary.wipe
    detail = wipe.get("reason") or f"{wipe.get('wiped', 0)} files wiped"
    out.write(f"wipe: {wipe.get('state')} ({detail})\n")
