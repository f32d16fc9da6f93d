"""The operator in audit records: the kernel's login uid, never the environment."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from agent.core.operator import UNSET, current_operator, login_uid


def _loginuid(tmp_path: Path, text: str) -> Path:
    path = tmp_path / "loginuid"
    path.write_text(text)
    return path


def test_the_login_user_behind_another_account_is_named(tmp_path: Path) -> None:
    # A technician (login uid 65534) who ran the command as root, e.g. with sudo.
    assert current_operator(_loginuid(tmp_path, "65534"), real_uid=0) == "nobody (as root)"


def test_the_login_user_acting_as_themself_is_named_once(tmp_path: Path) -> None:
    assert current_operator(_loginuid(tmp_path, "65534"), real_uid=65534) == "nobody"


@pytest.mark.parametrize("text", [str(UNSET), "", "-1", "abc", "1000000000000000000000"])
def test_an_unset_or_unreadable_login_uid_falls_back_to_the_real_user(
    tmp_path: Path, text: str
) -> None:
    assert current_operator(_loginuid(tmp_path, text), real_uid=0) == "root"


def test_a_missing_login_uid_falls_back_to_the_real_user(tmp_path: Path) -> None:
    assert login_uid(tmp_path / "absent") is None
    assert current_operator(tmp_path / "absent", real_uid=65534) == "nobody"


def test_sudo_user_in_the_environment_is_not_believed(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("SUDO_USER", "mallory")
    monkeypatch.setenv("LOGNAME", "mallory")
    monkeypatch.setenv("USER", "mallory")
    who = current_operator(_loginuid(tmp_path, str(UNSET)))
    assert "mallory" not in who
    assert who == pwd.getpwuid(os.getuid()).pw_name


def test_a_uid_without_an_account_is_named_by_number(tmp_path: Path) -> None:
    assert current_operator(_loginuid(tmp_path, "3999999"), real_uid=0) == "uid:3999999 (as root)"
