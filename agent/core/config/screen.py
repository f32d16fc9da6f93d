"""[station] and [screen], declared once: the station's language and time zone, and the bay
status screen (`dockagent screen`) that shows them.

Nothing here reads a file, opens a socket or translates anything (agent.core.i18n does).
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from typing import ClassVar

from agent.core.config import checks
from agent.core.config.spec import key

LANGUAGES = ("en", "zh_CN")
# A bay: "LABEL=ID_PATH". The label is shown as it is (letters, digits, a few marks: it is a
# number painted on the rack); the path is udev's ID_PATH (path_id's alphabet).
_BAY = re.compile(r"^[\w .#-]{1,16}=[A-Za-z0-9:._+-]{1,200}$")
_HOST = re.compile(r"^[A-Za-z0-9.:-]{1,253}$")


def _language(value: str) -> str | None:
    return None if not value or value in LANGUAGES else f"must be one of {', '.join(LANGUAGES)}"


def _bays(value: tuple[str, ...]) -> str | None:
    bad = [bay for bay in value if not _BAY.match(bay)]
    if bad:
        return f"{bad[0][:60]!r} is not LABEL=ID_PATH"
    labels = [bay.partition("=")[0] for bay in value]
    twice = sorted({label for label in labels if labels.count(label) > 1})
    return f"bay {twice[0]!r} is given twice" if twice else None


def _host(value: str) -> str | None:
    return None if _HOST.match(value) else "must be an IP address or a host name"


@dataclass(frozen=True)
class StationConfig:
    DOC: ClassVar[str] = """
        The station's language and time zone: what the bay status screen and the technician's
        commands speak, and the zone their times are shown (and `--since` is read) in.
        """

    language: str = key(
        "",
        """
        en | zh_CN: the bay screen and the CLI's text for people (status, devices, ledger,
        report, doctor; CSV headers). Empty: from the locale ($LC_ALL, $LC_MESSAGES, $LANG),
        else en. A station is shipped speaking Chinese.
        """,
        checks=(_language,),
        shipped="zh_CN",
    )
    timezone: str = key(
        "",
        """
        Time zone of the times shown, e.g. "Asia/Shanghai" (Beijing time), and of a `--since`
        without a zone. Empty: the system's.
        """,
        checks=(checks.time_zone,),
    )


@dataclass(frozen=True)
class ScreenConfig:
    DOC: ClassVar[str] = """
        The bay status screen (`dockagent screen`, systemd/dockagent-screen.service): a
        read-only page for the station's own display, one tile per bay. It opens the database
        read-only and shows no evidence and no secret; it needs no login, so it listens on
        loopback unless told otherwise.
        """

    bind: str = key("127.0.0.1", "Address the page is served on.", checks=(_host,))
    port: int = key(8470, low=1, high=65535)
    bays: tuple[str, ...] = key(
        (),
        """
        The rack's bays, in the order shown: "LABEL=ID_PATH", the label painted on the bay and
        the udev ID_PATH of its USB port (`udevadm info -q property /dev/sdX | grep ID_PATH`),
        e.g. "1=pci-0000:00:14.0-usb-0:1:1.0-scsi-0:0:0:0". A camera docked in a port not
        listed gets a tile of its own, named by its port.
        """,
        checks=(_bays,),
    )
    refresh_s: int = key(1, "How often the page asks for news (seconds, {range}).", low=1, high=60)
    disk_low_pct: int = key(
        10,
        """
        Alarm when the station's data disk has less than this share free (%), or less than
        [storage] reserve_bytes.
        """,
        percent=True,
    )
    refusals_shown_min: int = key(
        30, "A refused device stays in the alarms for this many minutes.", low=1
    )
