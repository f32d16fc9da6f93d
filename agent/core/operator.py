"""Who is acting: the person behind a technician command, for the signed audit trail.

The kernel's login uid (/proc/self/loginuid) names the user who logged in; pam_loginuid sets it
once per login and sudo, su and runuser keep it, which is how auditd attributes root's actions
(auid). Without one (no PAM login: a service, a container) the real uid stands. Nothing here
reads the environment: SUDO_USER and the like are set by whoever starts the process.
"""

from __future__ import annotations

import os
import pwd
from pathlib import Path

LOGINUID = Path("/proc/self/loginuid")
# (uid_t)-1: no login uid was ever set for this process (audit_getloginuid(3)).
UNSET = 4294967295


def login_uid(path: Path = LOGINUID) -> int | None:
    """The login uid, or None when it is unset, unreadable or not a number."""
    try:
        with path.open("rb") as f:
            text = f.read(16).strip()
    except OSError:
        return None
    if not text.isdigit():
        return None
    uid = int(text)
    return None if uid >= UNSET else uid


def user_name(uid: int) -> str:
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid:{uid}"


def current_operator(loginuid: Path = LOGINUID, real_uid: int | None = None) -> str:
    """The login user; with the account the command runs as when that is another one (sudo,
    the installed command's switch to the service user): `alice (as root)`."""
    real = os.getuid() if real_uid is None else real_uid
    login = login_uid(loginuid)
    if login is None or login == real:
        return user_name(real)
    return f"{user_name(login)} (as {user_name(real)})"
