"""The shipped systemd units and udev rules, checked by systemd's own tools.

`systemd-analyze verify` accepts the units (run against copies whose /opt/dockagent paths point
at stub programs, since verify insists the programs exist); `systemd-analyze security
--offline=yes` scores the service at 2.0 or lower and the mount unit at 5.0 or lower; the service
has what running unattended needs (watchdog, restart, hardening); the verify timer runs
`verify --incremental` daily, catching up a missed day, sandboxed and without network; the shipped udev rules are exactly what the profiles generate, and
no profile can write others; the mount helper mounts only mass-storage-only FAT/exFAT volumes
with a sane serial, read-only unless told otherwise, nosuid, nodev, noexec, never fsck'ed.
"""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from agent.camera import profile
from agent.core import config
from agent.core.errors import ConfigError
from agent.devices import rules
from tests.support.umockdev_sg import relay_command, write_profile

REPO = Path(__file__).resolve().parents[2]
UNITS = REPO / "systemd"
UNIT_FILES = ("dockagent.service", "dockagent-mount@.service", "dockagent-scsi.socket",
              "dockagent-scsi@.service", "dockagent-screen.service", "dockagent-verify.service",
              "dockagent-verify.timer")  # fmt: skip


def _tool(name: str) -> str:
    path = shutil.which(name) or shutil.which(name, path="/usr/bin:/bin:/usr/sbin:/sbin")
    if path is None:
        pytest.fail(
            f"{name} is missing: install the Debian package `systemd` (scripts/bootstrap --test "
            "does); these checks must run, never be skipped",
            pytrace=False,
        )
    return path


def _exposure(name: str, where: Path, most: float) -> float:
    """`systemd-analyze security --offline=yes` of one unit file in `where`: its overall
    exposure, and the tool's own verdict against `most` (--threshold, in tenths)."""
    proc = subprocess.run(
        [_tool("systemd-analyze"), "security", "--offline=yes", f"--threshold={round(most * 10)}",
         "--no-pager", name],
        cwd=where,
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    match = re.search(rf"Overall exposure level for {re.escape(name)}: (\d+\.\d+)", proc.stdout)
    assert match, proc.stdout + proc.stderr
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return float(match.group(1))


def _unit(text: str) -> dict[str, list[str]]:
    """Directives of a unit file (systemd.syntax(7)), every value of repeated keys kept."""
    out: dict[str, list[str]] = {}
    for raw in text.splitlines():
        line = raw.strip()
        if not line or line.startswith(("#", ";", "[")):
            continue
        key, _, value = line.partition("=")
        out.setdefault(key.strip(), []).append(value.strip())
    return out


def test_systemd_analyze_verify_accepts_both_units(tmp_path: Path) -> None:
    analyze = _tool("systemd-analyze")
    prefix = tmp_path / "opt" / "dockagent"
    (prefix / "bin").mkdir(parents=True)
    (prefix / "libexec").mkdir()
    for name in ("dockagent", "python"):  # the agent, and the relay's interpreter
        stub = prefix / "bin" / name
        stub.write_text("#!/bin/sh\nexit 0\n")
        stub.chmod(0o755)
    shutil.copy(UNITS / "dockagent-mount", prefix / "libexec" / "dockagent-mount")
    units = tmp_path / "units"
    units.mkdir()
    for name in UNIT_FILES:
        text = (UNITS / name).read_text().replace("/opt/dockagent", str(prefix))
        (units / name).write_text(text)
    # verify a template through one of its instances, as udev (the mount) and the socket's
    # Accept=yes (the relay: dockagent-scsi@<n>-<pid>-<uid>.service) would start it
    shutil.copy(units / "dockagent-mount@.service", units / "dockagent-mount@sdb1.service")
    shutil.copy(units / "dockagent-scsi@.service", units / "dockagent-scsi@0-1-0.service")
    proc = subprocess.run(
        [analyze, "verify", "--man=no", "dockagent.service", "dockagent-mount@sdb1.service",
         "dockagent-scsi.socket", "dockagent-scsi@0-1-0.service", "dockagent-screen.service",
         "dockagent-verify.service", "dockagent-verify.timer"],
        cwd=units,
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    problems = [
        line
        for line in proc.stderr.splitlines()
        # The container running the tests may refuse systemd-analyze a few probes of PID 1.
        if line.strip() and "PID 1" not in line and "PR_SET_MM" not in line
    ]
    assert problems == []


def test_service_security_exposure_is_at_most_2_0() -> None:
    assert _exposure("dockagent.service", UNITS, 2.0) <= 2.0


def test_screen_unit_security_exposure_is_at_most_2_0_and_it_reads_only() -> None:
    assert _exposure("dockagent-screen.service", UNITS, 2.0) <= 2.0
    unit = _unit((UNITS / "dockagent-screen.service").read_text())
    # Its own process, no capability, the whole system read-only and nothing writable given.
    assert unit["ExecStart"][0].endswith(" screen")
    assert unit["CapabilityBoundingSet"] == [""]
    assert unit["ProtectSystem"] == ["strict"]
    assert not {"ReadWritePaths", "StateDirectory", "RuntimeDirectory"} & set(unit)
    assert unit["IPAddressDeny"] == ["any"] and unit["IPAddressAllow"] == ["localhost"]


def test_verify_timer_runs_an_incremental_verify_daily_at_exposure_at_most_2_0() -> None:
    assert _exposure("dockagent-verify.service", UNITS, 2.0) <= 2.0
    unit = _unit((UNITS / "dockagent-verify.service").read_text())
    assert unit["ExecStart"] == [
        "/opt/dockagent/bin/dockagent --config /etc/dockagent/config.toml verify --incremental"
    ]
    for key, value in {
        "Type": ["oneshot"],
        "User": ["dockagent"],
        "Group": ["dockagent"],
        "CapabilityBoundingSet": [""],
        "AmbientCapabilities": [""],
        "NoNewPrivileges": ["yes"],
        "ProtectSystem": ["strict"],
        # Only the data directory is writable: verify records its head in the database.
        "ReadWritePaths": ["/var/lib/dockagent"],
        "PrivateNetwork": ["yes"],
        "RestrictAddressFamilies": ["AF_UNIX"],
        "Nice": ["10"],
        "IOSchedulingClass": ["idle"],
        "UMask": ["0077"],
        "LimitCORE": ["0"],
    }.items():
        assert unit.get(key) == value, key
    # A problem found must fail the unit (exit 4), never be hidden from `systemctl --failed`.
    assert "SuccessExitStatus" not in unit
    assert not any(cmd.startswith("-") for cmd in unit["ExecStart"])
    assert "~@privileged @resources" in unit["SystemCallFilter"]
    timer = _unit((UNITS / "dockagent-verify.timer").read_text())
    for key, value in {
        "OnCalendar": ["daily"],
        "Persistent": ["true"],
        "RandomizedDelaySec": ["1h"],
        "AccuracySec": ["1h"],
        "WantedBy": ["timers.target"],
    }.items():
        assert timer.get(key) == value, key
    assert "Unit" not in timer  # it starts the service of its own name


def test_mount_unit_security_exposure_is_at_most_5_0(tmp_path: Path) -> None:
    # Scored through an instance, as udev starts it.
    shutil.copy(UNITS / "dockagent-mount@.service", tmp_path / "dockagent-mount@sdb1.service")
    assert _exposure("dockagent-mount@sdb1.service", tmp_path, 5.0) <= 5.0


def test_scsi_relay_unit_security_exposure_is_at_most_2_0(tmp_path: Path) -> None:
    shutil.copy(UNITS / "dockagent-scsi@.service", tmp_path / "dockagent-scsi@0-1-0.service")
    assert _exposure("dockagent-scsi@0-1-0.service", tmp_path, 2.0) <= 2.0


def test_only_the_scsi_relay_holds_a_capability_and_only_sg_nodes() -> None:
    # The vendor opcodes need CAP_SYS_RAWIO (scsi_cmd_allowed()); the agent never holds it.
    relay = _unit((UNITS / "dockagent-scsi@.service").read_text())
    for key, value in {
        "CapabilityBoundingSet": ["CAP_SYS_RAWIO"],
        "AmbientCapabilities": [""],
        "NoNewPrivileges": ["yes"],
        "ProtectSystem": ["strict"],
        "PrivateNetwork": ["yes"],
        "RestrictAddressFamilies": ["AF_UNIX"],
        "DevicePolicy": ["closed"],
        "DeviceAllow": ["char-sg rw"],
        "StandardInput": ["socket"],
        "StandardOutput": ["socket"],
    }.items():
        assert relay.get(key) == value, key
    assert "PrivateDevices" not in relay  # the camera's node must be visible to be opened
    assert relay["ExecStart"] == [
        "/opt/dockagent/bin/python -I -m agent.devices.scsi_relay "
        "--config /etc/dockagent/config.toml"
    ]
    assert "~@privileged @resources @mount" in relay["SystemCallFilter"]
    # The tests start the relay with this command line, the installed interpreter aside.
    stand_in = relay_command(Path("/etc/dockagent/config.toml"))
    assert relay["ExecStart"][0].split()[1:] == stand_in[1:]
    socket = _unit((UNITS / "dockagent-scsi.socket").read_text())
    assert socket["ListenStream"] == [config.DevicesConfig().scsi_relay]
    assert socket["Accept"] == ["yes"]
    assert (socket["SocketUser"], socket["SocketMode"]) == (["dockagent"], ["0600"])
    agent = _unit((UNITS / "dockagent.service").read_text())
    assert agent["CapabilityBoundingSet"] == [""] and agent["PrivateDevices"] == ["yes"]
    assert "dockagent-scsi.socket" in agent["Wants"][0].split()
    assert "AF_UNIX" in agent["RestrictAddressFamilies"][0].split()


def test_mount_unit_holds_no_capability_and_a_read_only_system() -> None:
    unit = _unit((UNITS / "dockagent-mount@.service").read_text())
    for key, value in {
        "CapabilityBoundingSet": [""],
        "AmbientCapabilities": [""],
        "NoNewPrivileges": ["yes"],
        "ProtectSystem": ["strict"],
        "PrivateNetwork": ["yes"],
        "RestrictAddressFamilies": ["AF_UNIX"],
        "DevicePolicy": ["closed"],
    }.items():
        assert unit.get(key) == value, key
    assert "ReadWritePaths" not in unit
    assert "~@privileged @mount" in unit["SystemCallFilter"]


def test_service_unit_has_what_running_unattended_needs() -> None:
    unit = _unit((UNITS / "dockagent.service").read_text())
    expected = {
        "Type": ["notify"],
        "NotifyAccess": ["main"],
        "Restart": ["on-failure"],
        "RestartPreventExitStatus": ["65 78"],
        "StateDirectory": ["dockagent"],
        "UMask": ["0077"],
        "LimitCORE": ["0"],
        "User": ["dockagent"],
        "CapabilityBoundingSet": [""],
        "AmbientCapabilities": [""],
        "NoNewPrivileges": ["yes"],
        "ProtectSystem": ["strict"],
        "PrivateDevices": ["yes"],
    }
    for key, value in expected.items():
        assert unit.get(key) == value, key
    assert int(unit["WatchdogSec"][0]) >= 30
    # The drain may use its whole deadline, and stopping each device source up to 5 s more.
    stop = int(unit["TimeoutStopSec"][0])
    assert stop > config.DevicesConfig().drain_deadline_s + 2 * 5
    # Its own mounts are the mount unit's job: the service may never mount anything.
    assert "~@privileged @resources" in unit["SystemCallFilter"]
    assert unit["ExecStart"] == [
        "/opt/dockagent/bin/dockagent --config /etc/dockagent/config.toml run"
    ]


def test_mount_unit_runs_the_helper_bound_to_the_device() -> None:
    unit = _unit((UNITS / "dockagent-mount@.service").read_text())
    assert unit["BindsTo"] == ["dev-%i.device"]
    assert unit["ExecStart"] == ["/opt/dockagent/libexec/dockagent-mount start %I"]
    assert unit["Environment"] == ["DOCKAGENT_MOUNT_ACCESS=ro"]


def test_shipped_udev_rules_are_the_generated_ones() -> None:
    shipped = (UNITS / rules.RULES_NAME).read_text()
    # The default configuration's profiles: a fresh install is what `doctor` expects of it.
    names = config.DevicesConfig().profiles
    assert "generic" in names
    assert shipped == rules.generate(profile.load_all(tuple(names))), (
        "systemd/99-dockagent.rules is stale: run scripts/gen-udev-rules > "
        "systemd/99-dockagent.rules"
    )
    script = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen-udev-rules")],
        capture_output=True,
        text=True,
        check=True,
    )
    assert script.stdout == shipped
    # Only the allowed ids, and only block devices with a file system on the USB bus.
    matching = [line for line in shipped.splitlines() if line and not line.startswith("#")]
    ids = {usb for name in names for usb in profile.load(name).usb_ids}
    assert len(matching) == len(ids)
    for line in matching:
        assert 'ENV{ID_USB_INTERFACES}==":08????:"' in line  # mass storage and nothing else
        assert 'SUBSYSTEM=="block"' in line
        assert 'ENV{ID_FS_USAGE}=="filesystem"' in line
        assert 'ENV{ID_BUS}=="usb"' in line
        assert 'TAG+="systemd"' in line
        assert 'ENV{SYSTEMD_WANTS}+="dockagent-mount@%k.service"' in line
        vendor = re.search(r'ENV\{ID_VENDOR_ID\}=="([0-9a-f]{4})"', line)
        product = re.search(r'ENV\{ID_MODEL_ID\}=="([0-9a-f]{4})"', line)
        assert vendor and product
        assert f"{vendor.group(1)}:{product.group(1)}" in ids


def test_a_new_profile_regenerates_its_rule_and_a_bad_id_is_refused(tmp_path: Path) -> None:
    generic = (REPO / "agent" / "camera" / "profiles" / "generic.toml").read_text()
    (tmp_path / "acme.toml").write_text(
        generic.replace('name = "generic"', 'name = "acme"').replace(
            'usb_ids = ["2b0e:0a01"]', 'usb_ids = ["1d6b:0104", "1D6B:0105"]'
        )
    )
    text = rules.generate(profile.load_all(("generic", "acme"), str(tmp_path)))
    assert "# profile acme" in text
    assert 'ENV{ID_VENDOR_ID}=="1d6b", ENV{ID_MODEL_ID}=="0105"' in text
    assert 'ENV{ID_VENDOR_ID}=="2b0e", ENV{ID_MODEL_ID}=="0a01"' in text
    (tmp_path / "evil.toml").write_text(
        generic.replace('name = "generic"', 'name = "evil"').replace(
            'usb_ids = ["2b0e:0a01"]', 'usb_ids = ["2b0e:0a01\\", RUN+=\\"/bin/sh"]'
        )
    )
    with pytest.raises(ConfigError, match="not vendor:product"):
        rules.generate(profile.load_all(("evil",), str(tmp_path)))


def test_a_profile_name_cannot_write_rules(tmp_path: Path) -> None:
    generic = (REPO / "agent" / "camera" / "profiles" / "generic.toml").read_text()
    injected = 'name = "acme\\nACTION==\\"add\\", RUN+=\\"/bin/sh -c id\\""'
    (tmp_path / "acme.toml").write_text(generic.replace('name = "generic"', injected))
    loaded = profile.load_all(("acme",), str(tmp_path))
    assert "\n" in loaded[0].name  # the file names itself with a newline
    with pytest.raises(ConfigError, match="is not 1-64 of a-z 0-9"):
        rules.generate(loaded)
    script = subprocess.run(
        [sys.executable, str(REPO / "scripts" / "gen-udev-rules"), "--config",
         str(_config_with(tmp_path, "acme"))],
        capture_output=True,
        text=True,
        check=False,
    )  # fmt: skip
    assert script.returncode == 78, script.stdout + script.stderr
    assert "is not 1-64 of a-z 0-9" in script.stderr
    assert "RUN+=" not in script.stdout


def _config_with(tmp_path: Path, name: str) -> Path:
    path = tmp_path / "config.toml"
    path.write_text(
        f'data_dir = "{tmp_path}/data"\n'
        f'[devices]\nprofiles = ["{name}"]\nprofile_dir = "{tmp_path}"\n'
    )
    return path


# ---- the mount helper, with udevadm / systemd-mount / findmnt / id stubbed --------------------


MASS_STORAGE = "ID_USB_INTERFACES=:080650:"


def _helper(
    tmp_path: Path,
    properties: str,
    *,
    mounted: bool = False,
    access: str | None = "ro",
    action: str = "start",
) -> tuple[subprocess.CompletedProcess[str], list[str]]:
    """Run the helper with stand-ins that record their arguments; udevadm answers `properties`
    (a mass-storage-only interface list added unless they name one)."""
    if "ID_USB_INTERFACES=" not in properties:
        properties += "\n" + MASS_STORAGE
    stubs = tmp_path / "bin"
    stubs.mkdir(exist_ok=True)
    calls = tmp_path / "calls"
    scripts = {
        "udevadm": f'printf "%s\\n" "$@" > {tmp_path}/udevadm-calls\n'
        f"cat <<'EOF'\n{properties}\nEOF\n",
        "systemd-mount": f'printf "%s\\n" "$@" > {calls}\n',
        "findmnt": "exit 0\n" if mounted else "exit 1\n",
        "id": 'case "$1" in -u) echo 997;; -g) echo 996;; esac\n',
    }
    for name, body in scripts.items():
        (stubs / name).write_text("#!/bin/sh\n" + body)
        (stubs / name).chmod(0o755)
    env = {
        "PATH": f"{stubs}:{os.environ['PATH']}",
        "DOCKAGENT_MOUNT_ROOT": str(tmp_path / "media"),
        # A locale where [A-Z] may match more than ASCII must not widen the serial check.
        "LC_ALL": "en_US.UTF-8",
    }
    if access is not None:
        env["DOCKAGENT_MOUNT_ACCESS"] = access
    proc = subprocess.run(
        ["/bin/sh", str(UNITS / "dockagent-mount"), action, "sdb1"],
        env=env,
        capture_output=True,
        text=True,
        check=False,
    )
    return proc, calls.read_text().splitlines() if calls.exists() else []


def test_mount_helper_mounts_by_usb_serial_read_only(tmp_path: Path) -> None:
    proc, args = _helper(
        tmp_path,
        "DEVNAME=/dev/sdb1\nID_SERIAL_SHORT=OTHER\nID_USB_SERIAL_SHORT=CAM-0042\nID_FS_TYPE=vfat",
    )
    assert proc.returncode == 0, proc.stderr
    assert (tmp_path / "udevadm-calls").read_text().splitlines() == [
        "info",
        "--query=property",
        "--name=/dev/sdb1",
    ]
    assert args == [
        "--collect",
        "--fsck=no",
        "--type=vfat",
        "--options=ro,nosuid,nodev,noexec,noatime,uid=997,gid=996,fmask=0177,dmask=0077",
        "/dev/sdb1",
        f"{tmp_path}/media/CAM-0042",
    ]


def test_mount_helper_can_mount_writable_for_wiping(tmp_path: Path) -> None:
    proc, args = _helper(tmp_path, "ID_SERIAL_SHORT=CAM1\nID_FS_TYPE=exfat", access="rw")
    assert proc.returncode == 0, proc.stderr
    assert args[3].startswith("--options=rw,nosuid,nodev,noexec,noatime,")
    assert "--fsck=no" in args  # writable or not, the camera is never checked or repaired


def test_mount_helper_mounts_read_only_without_being_told(tmp_path: Path) -> None:
    proc, args = _helper(tmp_path, "ID_SERIAL_SHORT=CAM1\nID_FS_TYPE=exfat", access=None)
    assert proc.returncode == 0, proc.stderr
    assert args[:3] == ["--collect", "--fsck=no", "--type=exfat"]
    assert args[3].startswith("--options=ro,nosuid,nodev,noexec,noatime,")


def test_mount_helper_stop_unmounts_the_device(tmp_path: Path) -> None:
    proc, args = _helper(tmp_path, "", action="stop")
    assert proc.returncode == 0, proc.stderr
    assert args == ["--umount", "/dev/sdb1"]


@pytest.mark.parametrize(
    ("properties", "mounted", "access", "reason"),
    [
        ("ID_SERIAL_SHORT=../../etc\nID_FS_TYPE=vfat", False, "ro", "no usable USB serial"),
        ("ID_SERIAL_SHORT=\nID_FS_TYPE=vfat", False, "ro", "no usable USB serial"),
        (f"ID_SERIAL_SHORT={'A' * 33}\nID_FS_TYPE=vfat", False, "ro", "longer than 32"),
        ("ID_SERIAL_SHORT=CAM1\nID_FS_TYPE=ext4", False, "ro", "is not FAT or exFAT"),
        ("ID_SERIAL_SHORT=CAM1\nID_FS_TYPE=vfat", True, "ro", "already mounted"),
        ("ID_SERIAL_SHORT=CAM1\nID_FS_TYPE=vfat", False, "exec", "must be ro or rw"),
        # A camera's ids with a keyboard beside the storage: what the agent refuses, root does
        # not mount either.
        (
            "ID_SERIAL_SHORT=CAM1\nID_FS_TYPE=vfat\nID_USB_INTERFACES=:080650:030101:",
            False,
            "ro",
            "other than mass storage (030101)",
        ),
        (
            "ID_SERIAL_SHORT=CAM1\nID_FS_TYPE=vfat\nID_USB_INTERFACES=:030101:080650:",
            False,
            "ro",
            "other than mass storage (030101)",
        ),
        ("ID_SERIAL_SHORT=CAM1\nID_FS_TYPE=vfat\nID_USB_INTERFACES=", False, "ro", "no USB"),
        # Forged serials: what the serial pattern ([A-Za-z0-9-]{1,32}) does not allow.
        ("ID_SERIAL_SHORT=CAM\u00e91\nID_FS_TYPE=vfat", False, "ro", "no usable USB serial"),
        ("ID_SERIAL_SHORT=\uff23\uff21\uff2d1\nID_FS_TYPE=vfat", False, "ro", "no usable"),
        ("ID_SERIAL_SHORT=CAM 1\nID_FS_TYPE=vfat", False, "ro", "no usable USB serial"),
        ("ID_SERIAL_SHORT=CAM1;id\nID_FS_TYPE=vfat", False, "ro", "no usable USB serial"),
        ("ID_SERIAL_SHORT=CAM_1\nID_FS_TYPE=vfat", False, "ro", "no usable USB serial"),
        ("ID_USB_SERIAL_SHORT=*\nID_FS_TYPE=vfat", False, "ro", "no usable USB serial"),
    ],
)
def test_mount_helper_refuses(
    tmp_path: Path, properties: str, mounted: bool, access: str, reason: str
) -> None:
    proc, args = _helper(tmp_path, properties, mounted=mounted, access=access)
    assert proc.returncode == 2
    assert reason in proc.stderr
    assert args == []  # systemd-mount never ran


def test_a_camera_opened_by_vendor_commands_has_the_mount_rule_for_its_disk(
    tmp_path: Path,
) -> None:
    name = write_profile(tmp_path, "jl-test", {"dialect": "jl-dv16"})
    text = rules.generate(profile.load_all((name,), str(tmp_path)))
    assert 'ENV{ID_VENDOR_ID}=="1f3a", ENV{ID_MODEL_ID}=="5016"' in text
    assert "# opened by vendor SCSI commands (jl-dv16) through dockagent-scsi.socket" in text
    write_profile(tmp_path, "jl-evil", {"dialect": 'jl\nRUN+="/bin/sh"'})
    with pytest.raises(ConfigError, match="is not a name"):
        rules.generate(profile.load_all(("jl-evil",), str(tmp_path)))
