"""Run one command inside a umockdev testbed holding the devices of a description.

`umockdev-wrapper /usr/bin/python3 -I run_in.py DESCRIPTION -- COMMAND...` (the system
interpreter: python3-gi is a Debian package for it). The command inherits the testbed
(UMOCKDEV_DIR) and the preload (LD_PRELOAD), so libudev in it sees only the description's
devices, and a stat(2) of a testbed /dev node answers with the number in its `dev` attribute.
Its output is passed through and its exit status is this driver's. Only the standard library
and gi here.
"""

from __future__ import annotations

import os
import subprocess
import sys
import warnings
from pathlib import Path

warnings.filterwarnings(
    "ignore", message=r"DynamicImporter\.exec_module\(\) not found", category=ImportWarning
)
import gi  # noqa: E402 - after the filter above

gi.require_version("UMockdev", "1.0")
from gi.repository import UMockdev  # noqa: E402 - gi needs the version chosen first


def main() -> None:
    if "umockdev-preload" not in os.environ.get("LD_PRELOAD", ""):
        sys.exit("run_in.py: not running under umockdev-wrapper")
    description, separator, *command = sys.argv[1:]
    if separator != "--" or not command:
        sys.exit("usage: run_in.py DESCRIPTION -- COMMAND...")
    testbed = UMockdev.Testbed.new()
    if not testbed.add_from_string(Path(description).read_text("utf-8")):
        sys.exit(f"run_in.py: umockdev could not load {description}")
    env = dict(os.environ, UMOCKDEV_DIR=testbed.get_root_dir())
    sys.exit(subprocess.run(command, env=env, check=False).returncode)


if __name__ == "__main__":
    main()
