"""The udev source under umockdev: what is plugged in at start, then uevents, each reported once.

The four devices admission must tell apart: an allowed enrolled camera, an unknown
vendor/product, a known model with an unenrolled serial, and a known id + serial that also
presents a HID keyboard. The device descriptions are tests/support/umockdev/*.umockdev; the
plan below says when each is plugged in. One run of the real UdevSource (in its own process,
under umockdev-wrapper) serves every test of this module.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from agent.camera import profile
from agent.devices.events import DeviceIdentity
from agent.devices.udev import MAX_VALUE_CHARS, TRUNCATED_MARK
from agent.ingest import policy
from tests.support.umockdev_run import UdevRun, run_udev_source, umockdev_missing

# Values a device can report and a text .umockdev file cannot carry (written into sysfs raw).
HOSTILE_LABEL = b"EVIL\x1b[2J\xe2\x80\xaeGPJ.exe"  # terminal escape, right-to-left override
HOSTILE_SERIAL = b"\xff\xfe" + b"S" * 300  # not UTF-8, and too long
# Not what udev's path_id writes: a space, a terminal escape, a right-to-left override.
HOSTILE_PORT = b"pci-0000:00:14.0-usb-0:2 \x1b[2J\xe2\x80\xae"

PLAN: dict[str, Any] = {
    "present": [
        "allowed-camera",  # 2b0e:0a01 CAM0001, mass storage only, vfat partition
        {
            "name": "unknown-stick",  # 0781:5583, exfat partition
            "raw": {
                "sdb1": {
                    "ID_FS_LABEL": HOSTILE_LABEL.hex(),
                    "ID_SERIAL_SHORT": HOSTILE_SERIAL.hex(),
                    "ID_PATH": HOSTILE_PORT.hex(),
                }
            },
        },
        "internal-disk",  # virtio, not USB: never reported
    ],
    # Plugged in after the monitor opened and before the source enumerated: seen by both.
    "during_start": ["unenrolled-camera"],  # 2b0e:0a01 CAM9999
    "steps": [
        {"uevent": "add", "device": "allowed-camera"},  # announced again: not a new device
        {"plug": "badusb-camera"},  # 2b0e:0a01 CAM0001 + HID keyboard interface
        {"unplug": "unknown-stick"},
        {"plug": "blank-stick"},  # no partition table, no file system, no udev interface list
        {"plug": "unknown-stick"},  # the same sysfs path again: a new insertion
    ],
    "expect_events": 7,
}


def port(n: int) -> str:
    """ID_PATH of the station's USB port n (the descriptions plug each device into its own)."""
    return f"pci-0000:00:14.0-usb-0:{n}:1.0-scsi-0:0:0:0"


CAMERA = {
    "vendor_id": "2b0e",
    "model_id": "0a01",
    "serial": "CAM0001",
    "fs_type": "vfat",
    "fs_label": "BODYCAM",
    "usb_interfaces": ":080650:",
    "mountpoint": "",
    "port_path": port(1),
}
STICK = {
    "vendor_id": "0781",
    "model_id": "5583",
    "serial": "4C530001230101115011",
    "fs_type": "exfat",
    "fs_label": "USBSTICK",
    "usb_interfaces": ":080650:",
    "mountpoint": "",
    "port_path": port(2),
}
HOSTILE_STICK = {
    **STICK,
    "serial": "\udcff\udcfe" + "S" * (MAX_VALUE_CHARS - 3) + TRUNCATED_MARK,
    "fs_label": "EVIL\x1b[2J\u202eGPJ.exe",
    "port_path": "",  # not a port path: none rather than a hostile one
}
UNENROLLED = {**CAMERA, "serial": "CAM9999", "port_path": port(3)}
BADUSB = {**CAMERA, "usb_interfaces": ":080650:030101:", "port_path": port(4)}
BLANK = {
    "vendor_id": "090c",
    "model_id": "1000",
    # ID_USB_SERIAL_SHORT: ID_SERIAL_SHORT is a bridged disk's own serial (AA00000000011)
    "serial": "0123456789AB",
    "fs_type": "",
    "fs_label": "",
    # no ID_USB_INTERFACES anywhere: taken from the kernel's usb_interface attributes
    "usb_interfaces": ":080650:",
    "mountpoint": "",
    "port_path": port(5),
}


@pytest.fixture(scope="module")
def udev(tmp_path_factory: pytest.TempPathFactory) -> UdevRun:
    missing = umockdev_missing()
    if missing:
        pytest.fail(
            "the udev source is tested under umockdev, but: "
            + "; ".join(missing)
            + ". scripts/bootstrap --test installs umockdev, gir1.2-umockdev-1.0 and python3-gi "
            "(as root; CI does).",
            pytrace=False,
        )
    return run_udev_source(PLAN, tmp_path_factory.mktemp("umockdev"))


# The block device of each description that holds its volume.
VOLUMES = {
    "allowed-camera": "sda1",
    "unknown-stick": "sdb1",
    "unenrolled-camera": "sdc1",
    "badusb-camera": "sdd1",
    "blank-stick": "sde",
}


def syspath(udev: UdevRun, name: str, block: str) -> str:
    (path,) = [p for p in udev.devices[name] if p.endswith("/" + block)]
    return path


def volume(udev: UdevRun, name: str) -> str:
    return syspath(udev, name, VOLUMES[name])


def expected(udev: UdevRun, name: str, fields: dict[str, str]) -> dict[str, str]:
    key = volume(udev, name)
    return {**fields, "key": key, "devnode": "/dev/" + Path(key).name}


def actions(udev: UdevRun) -> list[tuple[str, str]]:
    return [(e["action"], e["identity"]["key"]) for e in udev.events]


def test_present_devices_are_listed_once_each_with_their_identity(udev: UdevRun) -> None:
    present = [e for e in udev.events if e["action"] == "present"]
    # All of them before anything plugged in later, each once.
    assert [e["action"] for e in udev.events[: len(present)]] == ["present"] * len(present)
    by_key = {e["identity"]["key"]: e["identity"] for e in present}
    assert len(by_key) == len(present) == 3, actions(udev)
    assert by_key == {
        volume(udev, "allowed-camera"): expected(udev, "allowed-camera", CAMERA),
        volume(udev, "unknown-stick"): expected(udev, "unknown-stick", HOSTILE_STICK),
        volume(udev, "unenrolled-camera"): expected(udev, "unenrolled-camera", UNENROLLED),
    }
    assert all(e["source"] == "udev" for e in udev.events)
    camera = next(e for e in present if e["identity"]["serial"] == "CAM0001")
    assert camera["extra"] == {
        "devtype": "partition",
        "fs_usage": "filesystem",
        "usb_device": udev.devices["allowed-camera"][0],
    }


def test_a_device_plugged_in_while_the_source_starts_is_reported_once(udev: UdevRun) -> None:
    key = volume(udev, "unenrolled-camera")
    assert actions(udev).count(("present", key)) == 1
    assert [a for a, k in actions(udev) if k == key] == ["present"]
    # Its `add` reached the monitor (opened before enumerating) and was dropped as known.
    dropped = [line["device_key"] for line in udev.logged("device.duplicate_dropped")]
    assert key in dropped
    # So was the second announcement of the camera present from the start.
    assert volume(udev, "allowed-camera") in dropped


def test_uevents_during_the_run_arrive_as_inserted_and_removed(udev: UdevRun) -> None:
    later = udev.events[3:]
    assert [(e["action"], e["identity"]) for e in later] == [
        ("inserted", expected(udev, "badusb-camera", BADUSB)),
        # A removal reports the device as it was reported when it came.
        ("removed", expected(udev, "unknown-stick", HOSTILE_STICK)),
        ("inserted", expected(udev, "blank-stick", BLANK)),
        ("inserted", expected(udev, "unknown-stick", STICK)),
    ]
    assert later[2]["extra"]["devtype"] == "disk"


def test_nothing_is_reported_twice_or_for_other_devices(udev: UdevRun) -> None:
    assert len(udev.events) == PLAN["expect_events"]
    alive: set[str] = set()
    for action, key in actions(udev):
        if action == "removed":
            assert key in alive, f"removed without being reported: {key}"
            alive.remove(key)
        else:
            assert key not in alive, f"reported twice: {key}"
            alive.add(key)
    keys = {key for _, key in actions(udev)}
    assert keys == {volume(udev, name) for name in VOLUMES}
    # Disks with a partition table speak through their partitions, a partition without a file
    # system (sdb2, an extended-partition container) is no volume, and vda is not on USB.
    assert not keys & {
        syspath(udev, "allowed-camera", "sda"),
        syspath(udev, "unknown-stick", "sdb"),
        syspath(udev, "unknown-stick", "sdb2"),
        *udev.devices["internal-disk"],
    }


def test_identities_carry_what_policy_needs(udev: UdevRun) -> None:
    badusb = next(e["identity"] for e in udev.events if e["identity"]["key"].endswith("/sdd1"))
    codes = badusb["usb_interfaces"].strip(":").split(":")
    assert [c[:2] for c in codes] == ["08", "03"]  # mass storage + HID: refused by policy
    assert (badusb["vendor_id"], badusb["model_id"], badusb["serial"]) == (
        "2b0e",
        "0a01",
        "CAM0001",
    )


def test_only_the_allowed_enrolled_camera_is_admitted(udev: UdevRun) -> None:
    generic = profile.load("generic")
    verdicts = {}
    for event in udev.events:
        if event["action"] == "removed":
            continue
        identity = DeviceIdentity(**event["identity"])
        admission = policy.admit_device(identity, [generic], {"CAM0001": None}, True)
        verdicts[identity.key, event["action"]] = admission.allowed
    assert verdicts == {
        (volume(udev, "allowed-camera"), "present"): True,
        (volume(udev, "unknown-stick"), "present"): False,  # unknown vendor/product
        (volume(udev, "unenrolled-camera"), "present"): False,  # CAM9999 not enrolled
        (volume(udev, "badusb-camera"), "inserted"): False,  # also a keyboard
        (volume(udev, "blank-stick"), "inserted"): False,  # unknown vendor/product
        (volume(udev, "unknown-stick"), "inserted"): False,
    }


def test_hostile_values_are_kept_capped_and_escaped_in_the_log(udev: UdevRun) -> None:
    key = volume(udev, "unknown-stick")
    (line,) = [x for x in udev.logged("device.enumerated") if x["device_key"] == key]
    assert line["device_serial"] == "\\xff\\xfe" + "S" * (MAX_VALUE_CHARS - 3) + TRUNCATED_MARK
    assert "label=EVIL\\u001b[2J\\u202eGPJ.exe" in line["device"]
    (invalid,) = udev.logged("device.port_path_invalid")
    assert invalid["device_key"] == key
    assert invalid["port_path"] == "pci-0000:00:14.0-usb-0:2 \\u001b[2J\\u202e"
    for entry in udev.log:
        assert "unparsed" not in entry, entry
        for value in entry.values():
            text = str(value)
            assert not any(ch in text for ch in "\x1b\u202e"), entry
            assert not any(0xDC80 <= ord(ch) <= 0xDCFF for ch in text), entry


def test_each_event_is_logged_and_stop_returns_promptly(udev: UdevRun) -> None:
    assert len(udev.logged("device.enumerated")) == 3
    assert len(udev.logged("device.inserted")) == 3
    assert len(udev.logged("device.removed")) == 1
    assert 0 <= udev.stop_seconds < 1.0
