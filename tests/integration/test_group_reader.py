"""A technician of the dockagent group looks, as themselves, and can do nothing else.

The station is laid out by scripts/install (DESTDIR) and its data directory handed to a service
user, who enrols and imports a camera through the installed wrapper. Then a member of the
service user's group, through the same wrapper: status, queue, devices, ledger, report and
verify exit 0 and show the camera's files, and the reads leave the data directory as it was;
the staged copies, their sidecars and the private key stay closed to them (PermissionError);
commands that change custody are refused with the way to run them. The database is read both
ways a member meets it: from a checked copy when no writer has it open, and in place while one
does (its -wal and -shm then exist, 0640 like it).

The users are numeric ids given by setpriv(1): nothing is added to the machine's user database.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

from scripts.simulator.cameras import CameraSpec, write_camera
from tests.integration.test_install import _install, _source

REPO = Path(__file__).resolve().parents[2]
SERVICE = 61901  # the service user, and its group
MEMBER = 61902  # a technician in that group
SPEC = CameraSpec(serial="CAMGRP01", days=1, files_per_day=3, file_size=16 * 1024, large_files=0)

pytestmark = pytest.mark.skipif(os.geteuid() != 0, reason="needs root to switch users")


@dataclass
class Installed:
    base: Path
    data: Path
    wrapper: Path
    camera: Path
    files: int

    def run(self, uid: int, *args: str) -> subprocess.CompletedProcess[str]:
        """The installed wrapper run by uid (in the service user's group when it is MEMBER)."""
        groups = ["--clear-groups"] if uid == SERVICE else [f"--groups={SERVICE}"]
        gid = SERVICE if uid == SERVICE else uid
        env = {
            "PATH": os.environ["PATH"],
            "DOCKAGENT_DATA_DIR": str(self.data),
            "DOCKAGENT_CONFIG": str(self.base / "config.toml"),
            "HOME": str(self.base),
        }
        return subprocess.run(
            [
                "setpriv",
                f"--reuid={uid}",
                f"--regid={gid}",
                *groups,
                "sh",
                str(self.wrapper),
                *args,
            ],
            env=env,
            capture_output=True,
            text=True,
            timeout=120,
            check=False,
        )

    def ok(self, uid: int, *args: str) -> str:
        proc = self.run(uid, *args)
        assert proc.returncode == 0, (args, proc.stdout + proc.stderr)
        return proc.stdout


def _interpreter() -> str:
    """A command line, for the launcher, that runs this checkout's agent as any user: this
    interpreter, or where the other users cannot reach it (one kept below root's home), the
    system's of the same version with this one's packages."""
    purelib = sysconfig.get_paths()["purelib"]
    version = f"{sys.version_info.major}.{sys.version_info.minor}"
    for python, path in ((sys.executable, str(REPO)), ("/usr/bin/python3", f"{REPO}:{purelib}")):
        line = f"PYTHONPATH={path} exec {python}"
        probe = subprocess.run(
            ["setpriv", f"--reuid={MEMBER}", f"--regid={MEMBER}", "--clear-groups", "sh", "-c",
             f"{line} -c 'import sys, agent.cli.main; print(sys.version)'"],
            capture_output=True, text=True, check=False, timeout=60,
        )  # fmt: skip
        if probe.returncode == 0 and probe.stdout.startswith(version):
            return line
    pytest.skip("no interpreter with the agent's packages that other users may run")


def _tree(root: Path) -> dict[str, tuple[int, int, int]]:
    """Every path below root: (mode, size, mtime_ns)."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        out[str(path.relative_to(root))] = (st.st_mode, st.st_size, st.st_mtime_ns)
    return out


@pytest.fixture(scope="module")
def station(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Installed]:
    tmp = tmp_path_factory.mktemp("group")
    root = tmp / "root"
    _install(_source(tmp), root)
    # Outside pytest's private temporary directories, where the other users can reach it.
    base = Path(tempfile.mkdtemp(prefix="dockagent-group-", dir="/var/tmp"))
    try:
        os.chmod(base, 0o755)  # noqa: S103 - the station's users must reach what is inside
        data = base / "dockagent"
        shutil.copytree(root / "var/lib/dockagent", data)  # modes as the install made them
        # The station's own configuration is the one it runs under here, not the install's.
        (data / "station-config").write_text(f"{(base / 'config.toml').resolve()}\n")
        (data / "station-config").chmod(0o600)
        for path in [data, *data.rglob("*")]:
            os.chown(path, SERVICE, SERVICE)
        config = base / "config.toml"
        shutil.copy2(root / "etc/dockagent/config.toml", config)
        os.chown(config, 0, SERVICE)  # root:dockagent 0640, as installed
        # The installed wrapper, running this checkout's agent in place of /opt/dockagent's.
        launcher = base / "agent"
        launcher.write_text(f'#!/bin/sh\n{_interpreter()} -m agent.cli.main "$@"\n')
        launcher.chmod(0o755)
        wrapper = base / "wrapper"
        text = (root / "usr/local/bin/dockagent").read_text()
        assert "program=/opt/dockagent/bin/dockagent\n" in text
        wrapper.write_text(text.replace("/opt/dockagent/bin/dockagent", str(launcher)))
        camera = base / "cam"
        manifest = write_camera(SPEC, camera)
        installed = Installed(base, data, wrapper, camera, len(manifest.entries))
        installed.ok(SERVICE, "devices", "enroll", SPEC.serial, "--officer", "B-7")
        imported = json.loads(installed.ok(SERVICE, "import", str(camera), "--json"))
        assert imported["files_sealed"] == installed.files
        yield installed
    finally:
        shutil.rmtree(base, ignore_errors=True)


def _looks(station: Installed) -> None:
    """Every command that only looks, as the member: exit 0, with the camera's files."""
    status = json.loads(station.ok(MEMBER, "status", "--json"))
    assert status["files"] == station.files
    assert status["chain_length"] == station.files + 1  # the files and the enrolment
    assert [s["device_serial"] for s in status["sessions"]] == [SPEC.serial]
    queue = json.loads(station.ok(MEMBER, "queue", "--json"))["files"]
    assert len(queue) == station.files
    assert SPEC.serial in station.ok(MEMBER, "devices", "enrolled")
    assert "没有记录仪入位" in station.ok(MEMBER, "devices")  # the installed station speaks Chinese
    ledger = station.ok(MEMBER, "ledger", "--json")
    assert SPEC.serial in ledger and "B-7" in ledger
    station.ok(MEMBER, "report", "compliance")
    verify = station.ok(MEMBER, "verify")
    assert f"verify OK: {station.files} files, 0 bytes re-hashed" in verify
    assert "staged files were not re-hashed" in verify
    assert "sudo dockagent verify" in verify
    assert json.loads(station.ok(MEMBER, "verify", "--json"))["evidence_checked"] is False


def test_a_member_of_the_group_reads_without_changing_anything(station: Installed) -> None:
    # No writer has the database open: no -wal, no -shm; the member cannot create them.
    assert not Path(f"{station.data}/dockagent.db-wal").exists()
    before = _tree(station.data)
    _looks(station)
    assert _tree(station.data) == before


def test_a_member_reads_in_place_while_a_writer_holds_the_database(station: Installed) -> None:
    holder = subprocess.Popen(
        ["setpriv", f"--reuid={SERVICE}", f"--regid={SERVICE}", "--clear-groups",
         sys.executable, "-c",
         "import sqlite3, sys\n"
         f"c = sqlite3.connect({str(station.data / 'dockagent.db')!r})\n"
         "c.execute('SELECT count(*) FROM files').fetchone()\n"
         "print('open', flush=True)\n"
         "sys.stdin.read()\n"],
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
    )  # fmt: skip
    try:
        assert holder.stdout is not None and holder.stdout.readline() == "open\n"
        for suffix in ("-wal", "-shm"):
            side = Path(f"{station.data}/dockagent.db{suffix}")
            assert side.stat().st_mode & 0o777 == 0o640, suffix
        _looks(station)
    finally:
        assert holder.stdin is not None and holder.stdout is not None
        holder.stdin.close()
        holder.wait(timeout=30)
        holder.stdout.close()
    # The writer closed last, as a writer does: nothing of the member's reads is left.
    assert not Path(f"{station.data}/dockagent.db-wal").exists()


def test_doctor_checks_the_key_and_the_database_for_a_member(station: Installed) -> None:
    # Other checks depend on this machine (units not installed here); these two on the station.
    proc = station.run(MEMBER, "doctor", "--json")
    checks = {c["check"]: c for c in json.loads(proc.stdout)["checks"]}
    assert checks["key"]["status"] == "green", checks["key"]
    assert "mode 0600" in checks["key"]["detail"]
    assert checks["database"]["status"] == "green", checks["database"]


def test_evidence_and_the_private_key_stay_closed_to_the_group(station: Installed) -> None:
    staged = sorted((station.data / "staging" / SPEC.serial).iterdir())
    copy = next(p for p in staged if p.suffix.lower() == ".mp4")
    sidecar = copy.with_name(copy.name + ".custody.json")
    assert sidecar.exists()
    audit = next((station.data / "staging/_chain").glob("*.audit.json"))
    probe = (
        "import sys\n"
        "for path in sys.argv[1:]:\n"
        "    try:\n"
        "        open(path, 'rb').close()\n"
        "        print('read', path)\n"
        "    except PermissionError:\n"
        "        print('denied', path)\n"
    )
    closed = [copy, sidecar, audit, station.data / "station.key", copy.parent]
    readable = [
        station.data / "station.pub",
        station.data / "dockagent.db",
        station.data / "staging/_chain/head.json",
    ]
    proc = subprocess.run(
        ["setpriv", f"--reuid={MEMBER}", f"--regid={MEMBER}", f"--groups={SERVICE}",
         sys.executable, "-c", probe, *map(str, closed + readable)],
        capture_output=True, text=True, check=True, timeout=60,
    )  # fmt: skip
    assert proc.stdout.splitlines() == [f"denied {p}" for p in closed] + [
        f"read {p}" for p in readable
    ]
    assert (station.data / "staging").stat().st_mode & 0o777 == 0o710
    assert copy.parent.stat().st_mode & 0o777 == 0o700
    assert {copy.stat().st_mode & 0o777, sidecar.stat().st_mode & 0o777} == {0o600}


@pytest.mark.parametrize(
    "command",
    [
        ["import", "CAM"],
        ["sync"],
        ["retry", "--all"],
        ["assign", SPEC.serial, "--officer", "B-9"],
        ["devices", "enroll", "CAMGRP02", "--officer", "B-9"],
        ["rebuild"],
        ["run"],
    ],
)
def test_custody_commands_are_refused_for_the_group(station: Installed, command: list[str]) -> None:
    args = [str(station.camera) if a == "CAM" else a for a in command]
    before = _tree(station.data)
    proc = station.run(MEMBER, *args)
    assert proc.returncode == 77, proc.stdout + proc.stderr
    assert "changes custody" in proc.stderr
    assert f"sudo dockagent {' '.join(args)}" in proc.stderr
    assert _tree(station.data) == before


def test_the_agent_itself_changes_nothing_for_a_member(station: Installed) -> None:
    # Past the wrapper, straight to the agent: the data directory refuses the writes.
    before = _tree(station.data)
    proc = subprocess.run(
        ["setpriv", f"--reuid={MEMBER}", f"--regid={MEMBER}", f"--groups={SERVICE}",
         str(station.base / "agent"), "import", str(station.camera)],
        env={"PATH": os.environ["PATH"], "DOCKAGENT_DATA_DIR": str(station.data),
             "DOCKAGENT_CONFIG": str(station.base / "config.toml")},
        capture_output=True, text=True, timeout=120, check=False,
    )  # fmt: skip
    assert proc.returncode != 0
    assert "ermission denied" in proc.stderr
    assert _tree(station.data) == before
