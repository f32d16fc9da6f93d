"""The udev device source: USB block devices, as udev reports them, turned into DeviceEvents.

The only module of the agent that imports pyudev. It reports what the hardware says about itself
(ids, serial, file system, USB interfaces) and the port it is plugged into as capped strings,
never interpreted; it decides nothing about whether a device is allowed (agent.ingest.policy
does) and never opens, mounts or reads one. block_identity() answers the same for the block
device behind a mounted path (`dockagent import PATH`, through agent.devices.backing).
Order at start (STYLE.md): monitor first, then enumerate, then poll; duplicates dropped.
"""

from __future__ import annotations

import errno
import os
import queue
import re
import select
import threading
from typing import Any

import pyudev

from agent.core import log
from agent.core.errors import ConfigError
from agent.core.model import display_name
from agent.devices.events import Action, DeviceEvent, DeviceIdentity

_log = log.get(__name__)

NAME = "udev"

# Every value comes from the device (or from udev rules fed by it). A longer value is cut and
# marked with U+2026, which no real id, serial or interface code contains: a cut value can never
# equal an allowed one. 256 keeps the full ID_USB_INTERFACES of the most interfaces Linux
# accepts (USB_MAXINTERFACES = 32, 7 characters each).
MAX_VALUE_CHARS = 256
TRUNCATED_MARK = "\u2026"

# An interface whose class could not be read is reported as this, which is no class code.
UNREADABLE_CODE = "??"

# What udev's path_id builtin writes into ID_PATH: bus names, addresses and port numbers
# joined by "-", ":" and "." (udev's src/udev/udev-builtin-path_id.c). Anything else (a
# control character, a space, a cut value) is not a port path, and is reported as none.
PORT_PATH = re.compile(r"[A-Za-z0-9][A-Za-z0-9:._+-]{0,199}")

_LOG_EVENT = {
    Action.PRESENT: "device.enumerated",
    Action.INSERTED: "device.inserted",
    Action.REMOVED: "device.removed",
}

# Most a stop() waits for the polling thread; it wakes at once through a pipe.
_JOIN_SECONDS = 5.0
# After a failing monitor read, wait this long before reading again (no busy loop).
_MONITOR_RETRY_SECONDS = 1.0


def cap(value: str) -> str:
    if len(value) <= MAX_VALUE_CHARS:
        return value
    return value[: MAX_VALUE_CHARS - 1] + TRUNCATED_MARK


def _text(raw: object) -> str:
    if raw is None:
        return ""
    if isinstance(raw, bytes):
        return cap(raw.decode("utf-8", "surrogateescape"))
    return cap(str(raw))


def _property(device: Any, name: str) -> str:
    """A udev property as given, or "" when the device does not have it."""
    try:
        return _text(device.properties.get(name))
    except UnicodeDecodeError:
        # pyudev decodes strictly and a device can report bytes that are not UTF-8; keep them
        # (as surrogate escapes, shown as \xNN by display_name) through pyudev's own binding.
        raw = device._libudev.udev_device_get_property_value(device, name.encode())
        return _text(raw)


def _attribute(device: Any, name: str) -> str:
    """A sysfs attribute as the kernel gives it (pyudev returns bytes), or ""."""
    return _text(device.attributes.get(name))


def _first(devices: list[Any], names: tuple[str, ...]) -> str:
    for device in devices:
        for name in names:
            value = _property(device, name)
            if value:
                return value
    return ""


def _interface_codes(raw: str) -> list[str]:
    return [code for code in raw.split(":") if code]


def _port_path(device: Any, chain: list[Any]) -> str:
    """The volume's ID_PATH (its disk's when a rule did not copy it onto the partition) when
    it has path_id's form, else "" (logged: something other than path_id wrote it)."""
    value = _first(chain, ("ID_PATH",))
    if not value or PORT_PATH.fullmatch(value):
        return value
    _log.warning(
        "device.port_path_invalid",
        source=NAME,
        device_key=display_name(_text(device.sys_path)),
        port_path=display_name(value),
    )
    return ""


def _usb_interfaces(devices: list[Any], usb_device: Any | None) -> str:
    """Every interface any view reports, as ":cccsss:...:" in the ID_USB_INTERFACES format.

    udev's property is a snapshot computed by rules that a minimal station may lack; the
    kernel's usb_interface children are always there. Policy refuses a device if any view shows
    a non-storage interface, so the union is taken, never a choice between them.
    """
    codes: list[str] = []
    for device in devices:
        codes += _interface_codes(_property(device, "ID_USB_INTERFACES"))
    if usb_device is not None:
        for child in usb_device.children:
            if child.subsystem != "usb" or child.device_type != "usb_interface":
                continue
            parts = (
                _attribute(child, "bInterfaceClass") or UNREADABLE_CODE,
                _attribute(child, "bInterfaceSubClass") or UNREADABLE_CODE,
                _attribute(child, "bInterfaceProtocol") or UNREADABLE_CODE,
            )
            codes.append("".join(parts))
    unique = list(dict.fromkeys(codes))
    return cap(":" + ":".join(unique) + ":") if unique else ""


def describe(device: Any) -> tuple[DeviceIdentity, dict[str, str]] | None:
    """The identity of a block device on the USB bus that may hold a volume, else None.

    Reported: a disk or partition with a file system (any ID_FS_TYPE, so an encrypted or swap
    volume is seen and refused too), and a whole disk with neither file system nor partition
    table (a stick with an unknown layout is still seen, so policy can refuse it visibly). A
    disk with a partition table speaks through its partitions; a partition with nothing
    recognizable on it (an extended-partition container) is not a volume.
    """
    if device.subsystem != "block":
        return None
    usb_device = device.find_parent("usb", "usb_device")
    if usb_device is None and _property(device, "ID_BUS") != "usb":
        return None
    devtype = _text(device.device_type)
    fs_type = _property(device, "ID_FS_TYPE")
    has_fs = bool(fs_type) or _property(device, "ID_FS_USAGE") == "filesystem"
    if devtype == "disk":
        if not has_fs and _property(device, "ID_PART_TABLE_TYPE"):
            return None
    elif devtype != "partition" or not has_fs:
        return None
    return _identity(device, usb_device, devtype, fs_type)


def _identity(
    device: Any, usb_device: Any | None, devtype: str, fs_type: str
) -> tuple[DeviceIdentity, dict[str, str]]:
    """The ids, serial, file system and port of a block device on the USB bus."""
    # udev rules copy the disk's ids onto its partitions; fall back along the chain when a
    # rule is missing. ID_USB_* (systemd >= 252) are the USB device's own ids even behind a
    # USB-SATA bridge, where ID_SERIAL_SHORT may be the disk's serial instead.
    chain = [device]
    disk = device.find_parent("block", "disk") if devtype == "partition" else None
    if disk is not None:
        chain.append(disk)
    if usb_device is not None:
        chain.append(usb_device)
    usb_attrs = usb_device if usb_device is not None else device
    identity = DeviceIdentity(
        key=str(device.sys_path),  # exact: it is the key, and the kernel names it
        vendor_id=_first(chain, ("ID_USB_VENDOR_ID", "ID_VENDOR_ID"))
        or _attribute(usb_attrs, "idVendor"),
        model_id=_first(chain, ("ID_USB_MODEL_ID", "ID_MODEL_ID"))
        or _attribute(usb_attrs, "idProduct"),
        serial=_first(chain, ("ID_USB_SERIAL_SHORT", "ID_SERIAL_SHORT"))
        or _attribute(usb_attrs, "serial"),
        fs_type=fs_type,
        fs_label=_property(device, "ID_FS_LABEL"),
        devnode=_property(device, "DEVNAME") or _text(device.device_node),
        usb_interfaces=_usb_interfaces(chain, usb_device),
        port_path=_port_path(device, chain),
    )
    extra = {"devtype": devtype, "fs_usage": _property(device, "ID_FS_USAGE")}
    if usb_device is not None:
        extra["usb_device"] = _text(usb_device.sys_path)
    return identity, extra


def block_identity(devnum: int) -> DeviceIdentity | None:
    """What udev says about the block device numbered `devnum` (major:minor, a file system's
    st_dev) when it is on the USB bus; None when udev knows no block device by that number or
    it is not on the USB bus (a loop device, an internal disk).

    Unlike describe(), any block device on the USB bus answers, whatever its file system looks
    like to udev: this is asked about a volume already mounted, to learn whose it is.
    Raises ConfigError when udev cannot be asked at all.
    """
    try:
        context = pyudev.Context()
        device = pyudev.Devices.from_device_number(context, "block", devnum)
    except pyudev.DeviceNotFoundError:
        return None
    except (ImportError, OSError) as exc:
        raise ConfigError(where="udev", problem=f"udev cannot be asked ({exc})") from exc
    usb_device = device.find_parent("usb", "usb_device")
    if usb_device is None and _property(device, "ID_BUS") != "usb":
        return None
    devtype = _text(device.device_type)
    return _identity(device, usb_device, devtype, _property(device, "ID_FS_TYPE"))[0]


class UdevSource:
    """Block devices on the USB bus: `present` at start, then `inserted` and `removed`."""

    name = NAME

    def __init__(self) -> None:
        self._events: queue.Queue[DeviceEvent] | None = None
        self._context: Any = None
        self._monitor: Any = None
        self._known: dict[str, tuple[DeviceIdentity, dict[str, str]]] = {}
        self._stopping = threading.Event()
        self._wake_r = -1
        self._wake_w = -1
        self._thread: threading.Thread | None = None

    def start(self, events: queue.Queue[DeviceEvent]) -> None:
        """Open the monitor, report what is plugged in now, then watch in a thread."""
        if self._thread is not None:
            raise RuntimeError("UdevSource.start() called twice")
        self._events = events
        try:
            self._context = pyudev.Context()
            monitor = pyudev.Monitor.from_netlink(self._context, source="udev")
            monitor.filter_by("block")
            # Listening before enumerating: a device plugged in between the two is then seen
            # by both and reported once (by key), instead of by neither.
            monitor.start()
        except (ImportError, OSError) as exc:
            raise ConfigError(
                where="device source udev",
                problem=f"udev is not usable here ({exc}); use the mountwatch source",
            ) from exc
        self._monitor = monitor
        for identity, extra in self._enumerate():
            if identity.key not in self._known:
                self._known[identity.key] = (identity, extra)
                self._emit(Action.PRESENT, identity, extra)
        self._wake_r, self._wake_w = os.pipe()
        self._thread = threading.Thread(target=self._run, name="udev-source", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop watching; returns at once (the thread wakes through a pipe)."""
        self._stopping.set()
        if self._wake_w >= 0:
            os.write(self._wake_w, b"x")
        thread = self._thread
        if thread is not None:
            thread.join(_JOIN_SECONDS)
            if thread.is_alive():
                _log.warning("device.source_stop_timed_out", source=NAME)
                return
        for fd in (self._wake_r, self._wake_w):
            if fd >= 0:
                os.close(fd)
        self._wake_r = self._wake_w = -1
        self._monitor = None

    def _enumerate(self) -> list[tuple[DeviceIdentity, dict[str, str]]]:
        """Every wanted device plugged in now (a test overrides this to race a plug-in)."""
        found = []
        for device in self._context.list_devices(subsystem="block"):
            described = self._describe(device)
            if described is not None:
                found.append(described)
        return found

    def _describe(self, device: Any) -> tuple[DeviceIdentity, dict[str, str]] | None:
        try:
            return describe(device)
        except (pyudev.DeviceNotFoundError, OSError, ValueError) as exc:
            # Gone while being read, or unreadable: its remove event (if any) is dropped too.
            _log.warning(
                "device.skipped",
                source=NAME,
                device_key=display_name(_text(device.sys_path)),
                error=display_name(str(exc)),
            )
            return None

    def _run(self) -> None:
        while not self._stopping.is_set():
            try:
                ready, _, _ = select.select([self._monitor, self._wake_r], [], [])
            except OSError as exc:
                self._monitor_failed(exc)
                continue
            if self._wake_r in ready:
                return
            self._drain()

    def _drain(self) -> None:
        while not self._stopping.is_set():
            try:
                device = self._monitor.poll(timeout=0)
            except OSError as exc:
                self._monitor_failed(exc)
                return
            if device is None:
                return
            self._handle(_text(device.action), device)

    def _monitor_failed(self, exc: OSError) -> None:
        # ENOBUFS: the kernel dropped events because we were slow; others: the socket is in
        # trouble. Either way events may be lost, so compare the known set with sysfs.
        _log.warning(
            "device.monitor_failed",
            source=NAME,
            error=errno.errorcode.get(exc.errno or 0, str(exc)),
        )
        if exc.errno != errno.ENOBUFS:
            self._stopping.wait(_MONITOR_RETRY_SECONDS)
        if not self._stopping.is_set():
            self._resync()

    def _resync(self) -> None:
        current = {identity.key: (identity, extra) for identity, extra in self._enumerate()}
        for key in [k for k in self._known if k not in current]:
            self._emit(Action.REMOVED, *self._known.pop(key))
        for key, (identity, extra) in current.items():
            if key not in self._known:
                self._known[key] = (identity, extra)
                self._emit(Action.INSERTED, identity, extra)

    def _handle(self, action: str, device: Any) -> None:
        key = str(device.sys_path)
        if action == "remove":
            known = self._known.pop(key, None)
            if known is not None:
                self._emit(Action.REMOVED, *known)
            return
        if action not in ("add", "change"):
            return
        if key in self._known:
            if action == "change" and self._medium_appeared(key, device):
                return
            # Enumerated at start and announced again by an event queued meanwhile, or a
            # `change` of a device already reported: once is enough.
            _log.debug("device.duplicate_dropped", source=NAME, device_key=display_name(key))
            return
        described = self._describe(device)
        if described is None:
            return
        self._known[key] = described
        self._emit(Action.INSERTED, *described)

    def _medium_appeared(self, key: str, device: Any) -> bool:
        """A disk reported without a file system now shows one (a `change` uevent: a camera
        that opens as a disk only after vendor commands, agent.runtime.unlock, with no partition
        table): reported again as inserted, with its file system. True when it was."""
        if self._known[key][0].fs_type:
            return False
        described = self._describe(device)
        if described is None or not described[0].fs_type:
            return False
        self._known[key] = described
        self._emit(Action.INSERTED, *described)
        return True

    def _emit(self, action: Action, identity: DeviceIdentity, extra: dict[str, str]) -> None:
        if self._events is None:
            raise RuntimeError("UdevSource used before start()")
        self._events.put(DeviceEvent(action, identity, NAME, extra))
        _log.info(
            _LOG_EVENT[action],
            source=NAME,
            device=display_name(identity.describe()),
            device_serial=display_name(identity.serial),
            device_key=display_name(identity.key),
        )
