"""Audit records name the login user behind sudo, read from the kernel, not from SUDO_USER.

The command runs in a process whose login uid is set as pam_loginuid sets it at login (root may
write /proc/self/loginuid; children inherit it), with SUDO_USER forged in its environment.
"""

from __future__ import annotations

import json
import os
import subprocess

import pytest

from tests.conftest import Station
from tests.support.cli import run_cli
from tests.support.evidence import rows

CONFIG = 'station_id = "T"\n[devices]\nrequire_enrollment = true\n'
NOBODY = 65534


def _loginuid_settable() -> bool:
    if os.geteuid() != 0:
        return False
    proc = subprocess.run(
        ["sh", "-c", f"echo {NOBODY} > /proc/self/loginuid"], capture_output=True, check=False
    )
    return proc.returncode == 0


@pytest.mark.skipif(not _loginuid_settable(), reason="needs root that may set the login uid")
def test_enrolment_is_audited_under_the_login_user_not_sudo_user(station: Station) -> None:
    station.configure(CONFIG)
    proc = run_cli(
        ["devices", "enroll", "CAMOP1", "--officer", "100234"],
        env=station.env(SUDO_USER="mallory"),
        log=station.cli_log,
        timeout=120,
        prefix=["sh", "-c", f'echo {NOBODY} > /proc/self/loginuid && exec "$@"', "login"],
    )
    assert proc.returncode == 0, proc.stderr
    audits = [
        json.loads(r["body"])
        for r in rows(station.data_dir, "SELECT body FROM records WHERE kind='audit'")
    ]
    assert [(a["action"], a["operator"]) for a in audits] == [
        ("device.enrolled", "nobody (as root)")
    ]
