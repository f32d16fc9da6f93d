"""scripts/install in a throwaway root (DESTDIR): exactly the documented files, idempotent.

The install lays out the tree README "Running as a service" documents, with the modes it
promises; run again it changes nothing (content, mode, owner, mtime of every file) and keeps an
edited configuration; the installed program passes `doctor --root` for units and rules; and
scripts/uninstall removes the program but never the evidence directory or the configuration.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import stat
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]

# README "Running as a service" (and the header of scripts/install): everything outside the
# virtual environment, exactly.
DOCUMENTED = {
    "etc/dockagent/": 0o750,
    "etc/dockagent/config.toml": 0o640,
    "etc/dockagent/profiles/": 0o755,
    "media/dockagent/": 0o755,
    "opt/dockagent/README.md": 0o644,
    "opt/dockagent/libexec/dockagent-mount": 0o755,
    "usr/local/bin/dockagent": 0o755,
    "usr/local/lib/systemd/system/dockagent-mount@.service": 0o644,
    "usr/local/lib/systemd/system/dockagent.service": 0o644,
    "usr/local/lib/systemd/system/dockagent-scsi.socket": 0o644,
    "usr/local/lib/systemd/system/dockagent-scsi@.service": 0o644,
    "usr/local/lib/systemd/system/dockagent-screen.service": 0o644,
    "usr/local/lib/systemd/system/dockagent-verify.service": 0o644,
    "usr/local/lib/systemd/system/dockagent-verify.timer": 0o644,
    "usr/local/lib/udev/rules.d/99-dockagent.rules": 0o644,
    "usr/local/share/man/man1/dockagent.1": 0o644,
    "usr/local/share/bash-completion/completions/dockagent": 0o644,
    "usr/local/share/zsh/site-functions/_dockagent": 0o644,
    "var/lib/dockagent/": 0o750,
    "var/lib/dockagent/station.key": 0o600,
    "var/lib/dockagent/station.pub": 0o644,
    "var/lib/dockagent/station-config": 0o600,
}
UNITS = ("dockagent.service", "dockagent-mount@.service", "dockagent-scsi.socket",
         "dockagent-scsi@.service", "dockagent-screen.service", "dockagent-verify.service",
         "dockagent-verify.timer")  # fmt: skip
PARENTS = {"etc/", "media/", "opt/", "usr/", "usr/local/", "usr/local/bin/", "usr/local/lib/",
           "usr/local/lib/systemd/", "usr/local/lib/systemd/system/", "usr/local/lib/udev/",
           "usr/local/lib/udev/rules.d/", "var/", "var/lib/", "opt/dockagent/",
           "opt/dockagent/libexec/", "usr/local/share/", "usr/local/share/man/",
           "usr/local/share/man/man1/", "usr/local/share/bash-completion/",
           "usr/local/share/bash-completion/completions/", "usr/local/share/zsh/",
           "usr/local/share/zsh/site-functions/"}  # fmt: skip


def _source(tmp: Path) -> Path:
    """A snapshot of what the install reads, so concurrent edits of the checkout cannot race."""
    src = tmp / "src"
    src.mkdir()
    for name in ("pyproject.toml", "README.md", "config.example.toml"):
        shutil.copy(REPO / name, src / name)
    ignore = shutil.ignore_patterns("__pycache__", "*.pyc")
    for name in ("agent", "systemd", "scripts"):
        shutil.copytree(REPO / name, src / name, ignore=ignore)
    return src


def _install(src: Path, root: Path, *args: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("DOCKAGENT_")}
    env.update(DESTDIR=str(root), PYTHON=sys.executable)
    proc = subprocess.run(
        ["bash", str(src / "scripts" / "install"), *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )
    assert proc.returncode == 0, proc.stdout + proc.stderr
    return proc


def _tree(root: Path) -> dict[str, tuple[int, int, int, str]]:
    """Every path below root: (mode, owner, mtime_ns, sha256 of a file's content)."""
    out = {}
    for path in sorted(root.rglob("*")):
        st = path.lstat()
        rel = path.relative_to(root).as_posix() + ("/" if stat.S_ISDIR(st.st_mode) else "")
        digest = ""
        if stat.S_ISREG(st.st_mode):
            digest = hashlib.sha256(path.read_bytes()).hexdigest()
        mtime = 0 if stat.S_ISDIR(st.st_mode) else st.st_mtime_ns
        out[rel] = (stat.S_IMODE(st.st_mode), st.st_uid, mtime, digest)
    return out


@pytest.fixture(scope="module")
def installed(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, Path, str]:
    tmp = tmp_path_factory.mktemp("install")
    src = _source(tmp)
    root = tmp / "root"
    first = _install(src, root, "--station-id", "TEST-42")
    return src, root, first.stdout


def test_install_lays_out_exactly_the_documented_files(installed: tuple[Path, Path, str]) -> None:
    src, root, output = installed
    tree = _tree(root)
    outside = {p: v[0] for p, v in tree.items() if not p.startswith("opt/dockagent/")}
    outside.update(
        {p: v[0] for p, v in tree.items() if p in DOCUMENTED and p.startswith("opt/dockagent/")}
    )
    assert {p: m for p, m in outside.items() if p not in PARENTS} == DOCUMENTED
    # The virtual environment holds the agent and its command.
    assert os.access(root / "opt/dockagent/bin/dockagent", os.X_OK)
    for name in UNITS:
        assert (root / "usr/local/lib/systemd/system" / name).read_text() == (
            src / "systemd" / name
        ).read_text()
    assert (root / "usr/local/lib/udev/rules.d/99-dockagent.rules").read_text() == (
        src / "systemd/99-dockagent.rules"
    ).read_text()
    config = (root / "etc/dockagent/config.toml").read_text()
    assert 'station_id = "TEST-42"' in config
    assert 'data_dir = "/var/lib/dockagent"' in config
    assert 'metrics_path = "/run/dockagent/dockagent.prom"' in config
    # The public key printed is the one generated.
    key = subprocess.run(
        [str(root / "opt/dockagent/bin/dockagent"), "--config", str(root / "etc/dockagent/config.toml"),
         "key", "show", "--json"],
        env={"DOCKAGENT_DATA_DIR": str(root / "var/lib/dockagent"), "PATH": os.environ["PATH"]},
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    shown = json.loads(key.stdout)
    assert shown["public_key_pem"] in output
    assert "systemctl enable --now dockagent" in output
    assert "dockagent-verify.timer" in output
    assert "skipped   user dockagent" in output


def test_install_twice_changes_nothing_and_keeps_the_config(
    installed: tuple[Path, Path, str],
) -> None:
    src, root, _ = installed
    config = root / "etc/dockagent/config.toml"
    edited = config.read_text().replace('station_id = "TEST-42"', 'station_id = "EDITED-7"')
    config.write_text(edited)
    before = _tree(root)
    again = _install(src, root, "--station-id", "OTHER")
    assert _tree(root) == before
    assert config.read_text() == edited
    assert "kept      /etc/dockagent/config.toml" in again.stdout
    assert "installed" not in again.stdout and "made" not in again.stdout


def test_installed_units_and_rules_satisfy_doctor(installed: tuple[Path, Path, str]) -> None:
    _, root, _ = installed
    env = {
        "DOCKAGENT_DATA_DIR": str(root / "var/lib/dockagent"),
        "DOCKAGENT_TEST_STATION_CLOCK": "synced",
        "DOCKAGENT_TEST_HOOKS": "1",
        "PATH": os.environ["PATH"],
    }
    command = [
        str(root / "opt/dockagent/bin/dockagent"),
        "--config",
        str(root / "etc/dockagent/config.toml"),
        "doctor",
        "--json",
        "--root",
        str(root),
    ]

    def install_check() -> dict[str, str]:
        proc = subprocess.run(command, env=env, capture_output=True, text=True, check=False)
        checks = {c["check"]: c for c in json.loads(proc.stdout)["checks"]}
        assert checks["key"]["status"] == "green"
        assert checks["config"]["status"] == "green"
        return checks["install"]

    # Read-only camera mounts with the default wipe policy: said, with the fix.
    check = install_check()
    assert check["status"] == "yellow"
    assert "mounted read-only" in check["detail"]
    dropin = root / "etc/systemd/system/dockagent-mount@.service.d"
    dropin.mkdir(parents=True)
    (dropin / "wipe.conf").write_text("[Service]\nEnvironment=DOCKAGENT_MOUNT_ACCESS=rw\n")
    try:
        check = install_check()
        assert check["status"] == "green", check
    finally:
        shutil.rmtree(root / "etc/systemd")
    # An older install without the SCSI relay: red, naming what is missing.
    relay = root / "usr/local/lib/systemd/system/dockagent-scsi.socket"
    kept, times = relay.read_bytes(), relay.stat()
    relay.unlink()
    try:
        check = install_check()
        assert check["status"] == "red" and "dockagent-scsi.socket" in check["detail"], check
    finally:
        relay.write_bytes(kept)
        relay.chmod(0o644)
        os.utime(relay, ns=(times.st_atime_ns, times.st_mtime_ns))


def test_uninstall_never_removes_evidence(
    installed: tuple[Path, Path, str], tmp_path: Path
) -> None:
    src, root, _ = installed
    copy = tmp_path / "root"
    shutil.copytree(root, copy, symlinks=True)
    (copy / "var/lib/dockagent/dockagent.db").write_bytes(b"evidence database")
    proc = subprocess.run(
        ["bash", str(src / "scripts" / "uninstall")],
        env={"DESTDIR": str(copy), "PATH": os.environ["PATH"]},
        capture_output=True,
        text=True,
        check=False,
    )
    assert proc.returncode == 0, proc.stderr
    left = {p for p, v in _tree(copy).items() if v[3]}  # files only
    assert left == {
        "etc/dockagent/config.toml",
        "var/lib/dockagent/dockagent.db",
        "var/lib/dockagent/station.key",
        "var/lib/dockagent/station.pub",
        "var/lib/dockagent/station-config",
    }


def test_fresh_station_reads_as_empty_not_as_lost(
    installed: tuple[Path, Path, str], tmp_path: Path
) -> None:
    """Day one, after the install made the key: every read command says there is nothing yet,
    none of them asks for a rebuild, and nothing puts a rebuild record in the chain."""
    _, root, _ = installed
    data = tmp_path / "data"
    shutil.copytree(root / "var/lib/dockagent", data)
    assert {p.name for p in data.iterdir()} == {"station.key", "station.pub", "station-config"}
    env = {
        "DOCKAGENT_DATA_DIR": str(data),
        "DOCKAGENT_TEST_STATION_CLOCK": "synced",
        "DOCKAGENT_TEST_HOOKS": "1",
        "PATH": os.environ["PATH"],
    }
    program = [str(root / "opt/dockagent/bin/dockagent"), "--config",
               str(root / "etc/dockagent/config.toml")]  # fmt: skip

    def run(*args: str) -> subprocess.CompletedProcess[str]:
        return subprocess.run(
            [*program, *args], env=env, capture_output=True, text=True, check=False, timeout=60
        )

    for command in (["status"], ["queue"], ["devices"], ["ledger"],
                    ["report", "compliance"], ["verify"]):  # fmt: skip
        proc = run(*command)
        assert proc.returncode == 0, (command, proc.stdout + proc.stderr)
        assert "rebuild" not in proc.stdout + proc.stderr, command
    # The installed configuration ships speaking Chinese ([station] language = "zh_CN").
    assert 'language = "zh_CN"' in (root / "etc/dockagent/config.toml").read_text().splitlines()
    assert "没有记录仪入位" in run("devices").stdout
    assert "verify OK: 0 files" in run("verify").stdout
    status = json.loads(run("status", "--json").stdout)
    assert (status["files"], status["chain_length"], status["sessions"]) == (0, 0, [])
    assert json.loads(run("queue", "--json").stdout)["files"] == []
    # Readers made no database on the station's behalf: the first writer does.
    assert {p.name for p in data.iterdir()} == {"station.key", "station.pub", "station-config"}

    # A technician who tries `rebuild` anyway is told there is nothing to rebuild.
    proc = run("rebuild")
    assert proc.returncode == 64, proc.stdout + proc.stderr
    assert "nothing to rebuild" in proc.stderr
    assert not (data / "dockagent.db").exists()
    assert json.loads(run("status", "--json").stdout)["chain_length"] == 0


def test_a_user_outside_the_group_is_told_how_to_run_it(
    installed: tuple[Path, Path, str],
) -> None:
    # The data directory is the service user's and the dockagent group's (README "Who may run
    # what"): anyone else is told to go through root instead of meeting EACCES.
    _, root, _ = installed
    wrapper = (root / "usr/local/bin/dockagent").read_text()
    with tempfile.TemporaryDirectory() as base:
        os.chmod(base, 0o755)  # noqa: S103 - another user must reach the directory inside
        data = Path(base) / "dockagent"
        data.mkdir(mode=0o700)
        proc = subprocess.run(
            ["runuser", "-u", "nobody", "--", "sh", "-s", "status", "--json"],
            input=wrapper,
            env={"PATH": os.environ["PATH"], "DOCKAGENT_DATA_DIR": str(data)},
            capture_output=True,
            text=True,
            timeout=30,
            check=False,
        )
    assert proc.returncode == 77, proc.stderr
    assert f"only the service user and the dockagent group can read {data}" in proc.stderr
    assert "sudo dockagent status --json" in proc.stderr


def _command_words() -> list[str]:
    """Every command of dockagent as typed ("devices enroll"), from the parser itself."""
    from agent.cli import helptext
    from agent.cli.main import build_parser

    return [" ".join(words) for words, _ in helptext.commands(build_parser([])) if words]


def test_installed_manual_page_names_every_command_and_exit_status(
    installed: tuple[Path, Path, str],
) -> None:
    _, root, _ = installed
    page = root / "usr/local/share/man/man1/dockagent.1"
    shown = subprocess.run(
        ["man", "-l", str(page)],
        env={"PATH": os.environ["PATH"], "MANWIDTH": "200", "MANPAGER": "cat", "LANG": "C.UTF-8"},
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert shown.returncode == 0, shown.stderr
    text = shown.stdout
    assert text.startswith("DOCKAGENT(1)")
    commands = _command_words()
    assert "devices enroll" in commands and "completion" in commands
    for words in commands:
        assert f"dockagent {words}\n" in text, words
    exits = text[text.index("\nEXIT STATUS\n") : text.index("\nSEE ALSO\n")]
    for code in (0, 3, 4, 5, 64, 65, 66, 74, 75, 77, 78):
        assert f"\n       {code} " in exits, code
    # Examples keep ASCII hyphens, so that they can be copied into a shell as they are.
    assert "dockagent status --limit 5 --since 2026-03-01" in text


def _complete(script: Path, *words: str) -> list[str]:
    """What bash offers at the end of `words` (the last one being typed), as on <TAB>."""
    program = (
        'source "$1"; shift; COMP_WORDS=("$@"); COMP_CWORD=$(($# - 1)); '
        'COMP_LINE="$*"; COMP_POINT=${#COMP_LINE}; '
        '_shtab_dockagent dockagent "${COMP_WORDS[COMP_CWORD]}"; printf "%s\\n" "${COMPREPLY[@]}"'
    )
    proc = subprocess.run(
        ["bash", "--norc", "--noprofile", "-c", program, "complete", str(script), *words],
        capture_output=True, text=True, check=False, timeout=60,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    return [line for line in proc.stdout.splitlines() if line]


def test_installed_bash_completion_completes_commands_and_options(
    installed: tuple[Path, Path, str],
) -> None:
    _, root, _ = installed
    script = root / "usr/local/share/bash-completion/completions/dockagent"
    assert _complete(script, "dockagent", "dev") == ["devices"]
    assert _complete(script, "dockagent", "devices", "enr") == ["enroll", "enrolled"]
    assert {"--json", "--refused"} <= set(_complete(script, "dockagent", "devices", "--"))
    enroll = set(_complete(script, "dockagent", "devices", "enroll", "--"))
    assert {"--officer", "--name", "--csv"} <= enroll
    assert {"--limit", "--since", "--json"} <= set(_complete(script, "dockagent", "status", "--"))
    assert _complete(script, "dockagent", "queue", "--state", "he") == ["held"]
    assert _complete(script, "dockagent", "--log-level", "w") == ["warning"]
