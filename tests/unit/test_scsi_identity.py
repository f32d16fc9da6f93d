"""Which identity `dockagent import` takes for a camera whose profile lists its SCSI device
record first: the order of its identity sources, and what happens without a record to read."""

from __future__ import annotations

from types import SimpleNamespace
from typing import Any

import pytest

from agent.camera import profile
from agent.core.errors import CameraRefused
from agent.runtime import scsi_identity
from agent.runtime.unlock import direct


def _profile(order: tuple[str, ...], transport: str = "ums-unlock") -> Any:
    # Profile format 2 lists the identity sources; a stand-in with that one field.
    return SimpleNamespace(name="jl", transport=transport, identity=order, unlock=None)


def _never(_record: object) -> None:
    raise AssertionError("no record may be read here")


def test_identity_order_follows_the_profile_then_its_transport() -> None:
    assert scsi_identity.identity_order(profile.load("generic")) == ("file",)
    assert scsi_identity.identity_order(_profile(())) == ("scsi",)
    assert scsi_identity.identity_order(_profile((), "ums")) == ("file",)
    assert scsi_identity.identity_order(_profile(("scsi", "file"))) == ("scsi", "file")


def test_without_a_usb_device_the_next_listed_source_is_device_inf() -> None:
    found = scsi_identity.for_import(_profile(("scsi", "file")), None, "/cam", direct, _never)
    assert found.known is None and found.record == ""
    assert found.check == (
        "no SCSI device record (the volume is on no USB device); identity from DEVICE.INF, "
        "the next source profile jl lists"
    )


@pytest.mark.parametrize(
    ("order", "why"),
    [(("scsi",), "(only)"), (("scsi", "names"), "(next lists 'names', which import cannot read)")],
)
def test_without_a_usb_device_and_no_file_source_the_import_is_refused(
    order: tuple[str, ...], why: str
) -> None:
    with pytest.raises(CameraRefused) as refused:
        scsi_identity.for_import(_profile(order), None, "/cam", direct, _never)
    assert f"SCSI device record {why}, and the volume is on no USB device" in refused.value.message


def test_a_profile_that_lists_the_file_first_reads_no_record() -> None:
    found = scsi_identity.for_import(_profile(("file", "scsi")), None, "/cam", direct, _never)
    assert found == scsi_identity.ImportIdentity()
