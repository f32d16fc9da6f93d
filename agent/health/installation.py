"""The doctor's rules for the installation: units, udev rules, mount helper, the service.

Facts in (which files were found, their text, what systemd says), a Finding out, as in
agent.health.station. Unit text is read the way systemd reads it: a time span as systemd.time(7)
says, later drop-ins overriding the unit (systemd.unit(5)). Pure: reads no file, runs nothing.
"""

from __future__ import annotations

import re
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

from agent.core.i18n import N_
from agent.core.model import WipePolicy
from agent.health.station import GREEN, RED, YELLOW, Finding

# Details with values in them (see agent.health.station).
NOT_INSTALLED = N_("not installed below {root}: {missing}")
INSTALLED = N_("units, udev rules and mount helper below {root}")
NOT_THIS_SYSTEM = N_("not checked: --root {root} is not this system")
SERVICE_STATE = N_("{name} is {state}")
SERVICE_STATE_SAYING = N_("{name} is {state}: {status}")

_SPAN_UNITS = {"": 1, "s": 1, "sec": 1, "m": 60, "min": 60, "h": 3600, "hr": 3600, "ms": 0.001}


def unit_seconds(text: str, key: str) -> float | None:
    """A plain time span of a unit file (systemd.time(7)): 60, 60s, 2min, 1min 30s."""
    value = None
    for line in text.splitlines():
        match = re.match(rf"^\s*{key}\s*=\s*(.+?)\s*$", line)
        if match:
            value = match.group(1)
    # Anything else ("infinity", a typo) is not a span this check can compare: no verdict,
    # rather than reading it as 0 s and calling the stop timeout too short.
    if value is None or not re.fullmatch(r"(?:\d+(?:\.\d+)?\s*[a-z]*\s*)+", value):
        return None
    total = 0.0
    for number, unit in re.findall(r"(\d+(?:\.\d+)?)\s*([a-z]*)", value):
        if unit not in _SPAN_UNITS:
            return None
        total += float(number) * _SPAN_UNITS[unit]
    return total


def mount_access(texts: Iterable[str]) -> str:
    """DOCKAGENT_MOUNT_ACCESS of the mount unit's texts, unit first then its drop-ins in order
    (the last one wins); "ro" when none sets it, as the mount helper defaults."""
    access = "ro"
    for text in texts:
        for found in re.findall(r"DOCKAGENT_MOUNT_ACCESS=(\w+)", text):
            access = found
    return access


@dataclass(frozen=True)
class Installed:
    """The installed units, udev rules and mount helper found below `root` (None: missing),
    with the texts of the service unit, the rules and the mount unit (then its drop-ins)."""

    root: Path
    found: dict[str, Path | None]
    service_text: str = ""
    rules_text: str = ""
    mount_texts: Sequence[str] = ()


@dataclass(frozen=True)
class Wanted:
    """What the configuration asks of the installation: these udev rules, a stop timeout
    above the drain deadline, and read-write camera mounts unless nothing is wiped."""

    config_source: object
    rules_text: str
    drain_deadline_s: float
    wipe_policy: WipePolicy


def install(facts: Installed, wanted: Wanted | None, rules_name: str) -> Finding:
    """Everything installed; and, with a valid configuration, installed to match it."""
    missing = [name for name, path in facts.found.items() if path is None]
    if missing:
        return Finding(
            "install",
            RED,
            NOT_INSTALLED.format(root=facts.root, missing=", ".join(missing)),
            N_("run scripts/install (as root), then systemctl daemon-reload"),
        )
    notes: list[str] = []
    fixes: list[str] = []
    if wanted is not None:
        rules_path = facts.found[rules_name]
        if facts.rules_text != wanted.rules_text:
            notes.append(f"{rules_path} does not match the configured camera profiles")
            fixes.append(
                f"scripts/gen-udev-rules --config {wanted.config_source} "
                f"--output {rules_path} && udevadm control --reload"
            )
        stop = unit_seconds(facts.service_text, "TimeoutStopSec")
        if stop is not None and stop <= wanted.drain_deadline_s:
            notes.append(
                f"TimeoutStopSec={stop:g}s is not above drain_deadline_s "
                f"({wanted.drain_deadline_s}s): systemd cuts the drain short"
            )
            fixes.append(N_("raise TimeoutStopSec in a drop-in (systemctl edit dockagent)"))
        if mount_access(facts.mount_texts) == "ro" and wanted.wipe_policy is not WipePolicy.NEVER:
            notes.append(
                f"cameras are mounted read-only but wipe_policy is "
                f"{wanted.wipe_policy.value}: nothing will be wiped"
            )
            fixes.append(
                N_(
                    "set DOCKAGENT_MOUNT_ACCESS=rw in a drop-in for dockagent-mount@.service, "
                    'or wipe_policy = "never"'
                )
            )
    if notes:
        return Finding("install", YELLOW, "; ".join(notes), "; ".join(fixes))
    return Finding("install", GREEN, INSTALLED.format(root=facts.root))


@dataclass(frozen=True)
class Service:
    """The service as systemd reports it. `this_system`: the installation looked at is this
    machine's own (--root /); `systemd`: systemd is the init system (sd_booted(3))."""

    name: str
    root: Path
    this_system: bool
    systemd: bool
    state: str = ""
    status_text: str = ""


def service(facts: Service) -> Finding:
    """Active is green; starting or stopping yellow; anything else red."""
    if not facts.this_system:
        return Finding("service", YELLOW, NOT_THIS_SYSTEM.format(root=facts.root))
    if not facts.systemd:
        return Finding(
            "service",
            YELLOW,
            N_("systemd is not running here: service state unknown"),
            N_("run dockagent doctor on the station itself"),
        )
    state = facts.state or "unknown"
    detail = (
        SERVICE_STATE_SAYING.format(name=facts.name, state=state, status=facts.status_text)
        if facts.status_text
        else SERVICE_STATE.format(name=facts.name, state=state)
    )
    if state == "active":
        return Finding("service", GREEN, detail)
    if state in ("activating", "reloading", "deactivating"):
        return Finding("service", YELLOW, detail, N_("wait a moment and check again"))
    return Finding(
        "service",
        RED,
        detail,
        N_("systemctl enable --now dockagent; why it stopped: journalctl -u dockagent -b"),
    )
