"""Who is acting: the operating-system user behind a technician command (for the audit trail).

Under sudo the invoking user is named too, so `root` never hides who ran a command.
"""

from __future__ import annotations

import os
import pwd


def current_operator() -> str:
    try:
        user = pwd.getpwuid(os.getuid()).pw_name
    except KeyError:
        user = f"uid:{os.getuid()}"
    sudo_user = os.environ.get("SUDO_USER", "")
    return f"{user} (via sudo from {sudo_user})" if sudo_user and sudo_user != user else user
