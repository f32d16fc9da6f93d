"""Every `--json` document of dockagent is an object that says which shape it has
("schema_version", README "JSON output") and names each concept one way across the commands:
a camera's serial is always device_serial, an officer's badge officer_id, a dock session
session_id, a file file_id, and a moment on the station's clock <event>_at in ISO 8601 with its
zone. A consumer that reads one command's document reads every other's the same way."""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path
from typing import Any

import pytest

from agent.cli import helptext
from agent.cli.main import build_parser
from agent.cli.output import CANONICAL, SCHEMA_VERSION
from scripts.simulator.cameras import CameraSpec, write_camera
from tests.conftest import Station

SERIAL = "CAMJSON1"
# Names a document may not use for the concepts above (older or ambiguous ones).
FORBIDDEN = set(CANONICAL) | {"at", "ended_at", "serial_number", "camera_serial", "badge"}
# Maps keyed by data (a serial, a badge, a state, a sink's name) and the signed records shown as
# signed: their keys are not field names.
KEYED_BY_DATA = {"cameras", "officers", "states", "sinks"}
VERBATIM = {"audit"}


def _commands(cam: Path) -> dict[str, list[list[str]]]:
    """Each command that has --json, and the command lines that print its documents."""
    return {
        "import": [["import", str(cam)]],
        "verify": [["verify"], ["verify", "--incremental"]],
        "status": [["status"], ["status", "--limit", "1"]],
        "queue": [["queue"]],
        "devices": [["devices"], ["devices", "--refused"]],
        "devices enrolled": [["devices", "enrolled"]],
        "devices show": [["devices", "show", SERIAL]],
        "key show": [["key", "show"]],
        "sync": [["sync", "--once"]],
        "retry": [["retry", "--held"]],
        "ledger": [["ledger"], ["ledger", "--faults"]],
        "report compliance": [["report", "compliance"], ["report", "compliance", "--files"]],
        "assign": [["assign", SERIAL, "200077"]],
        "doctor": [["doctor"]],
        "rebuild": [["rebuild", "--force"]],
        "profile try": [["profile", "try", "generic", str(cam)]],
    }


def _walk(node: Any, path: str, problems: list[str]) -> None:
    if isinstance(node, list):
        for item in node:
            _walk(item, f"{path}[]", problems)
        return
    if not isinstance(node, dict):
        return
    for key, value in node.items():
        where = f"{path}.{key}"
        if key in FORBIDDEN or key.endswith("_utc"):
            problems.append(f"{where}: not a canonical name")
        if "serial" in key and key != "device_serial":
            problems.append(f"{where}: a camera serial is device_serial")
        timed = key.endswith("_at") and isinstance(value, str) and value
        if timed and datetime.fromisoformat(value).tzinfo is None:
            problems.append(f"{where}: {value!r} has no zone")
        if key in VERBATIM:
            continue
        if key in KEYED_BY_DATA and isinstance(value, dict):
            for inner in value.values():
                _walk(inner, f"{where}.*", problems)
            continue
        _walk(value, where, problems)


@pytest.fixture
def documents(station: Station, tmp_path: Path) -> dict[str, list[dict[str, Any]]]:
    cam = tmp_path / "cam"
    spec = CameraSpec(serial=SERIAL, officer_id="100077", days=1, files_per_day=3, file_size=8192)
    write_camera(spec, cam)
    station.configure(
        station.config_text + f'\n[sync]\nkind = "directory"\ndirectory_root = "{tmp_path}/sink"\n'
    )
    enrolled = station.run("devices", "enroll", SERIAL, "--officer", "100077")
    assert enrolled.returncode == 0, enrolled.stderr
    out: dict[str, list[dict[str, Any]]] = {}
    for words, lines in _commands(cam).items():
        for argv in lines:
            proc = station.run(*argv, "--json")
            assert proc.returncode in (0, 1, 2), (argv, proc.stderr)  # doctor: 1 or 2 is yellow/red
            out.setdefault(words, []).append(json.loads(proc.stdout))
    return out


def test_every_json_command_is_covered() -> None:
    with_json = {
        " ".join(words)
        for words, parser in helptext.commands(build_parser([]))
        if any("--json" in a.option_strings for a in parser._actions)
    }
    assert with_json == set(_commands(Path("cam")))


def test_every_document_has_the_schema_version_and_canonical_names(
    documents: dict[str, list[dict[str, Any]]],
) -> None:
    problems: list[str] = []
    for words, docs in documents.items():
        for doc in docs:
            assert isinstance(doc, dict), words
            assert doc["schema_version"] == SCHEMA_VERSION and type(doc["schema_version"]) is int
            _walk(doc, words, problems)
    assert problems == []
    # The concepts are there, under those names, where a command has them.
    (session,) = documents["status"][0]["sessions"]
    assert (session["device_serial"], session["officer_id"]) == (SERIAL, "100077")
    assert documents["import"][0]["session_id"] == session["session_id"]
    (enrolled,) = documents["devices enrolled"][0]["enrolled"]
    assert enrolled["device_serial"] == SERIAL
    assert documents["devices show"][0]["device_serial"] == SERIAL
    assert documents["assign"][0]["device_serial"] == SERIAL
    assert documents["assign"][0]["previous_officer_id"] == "100077"
    (ledgered,) = documents["ledger"][0]["sessions"]
    assert (ledgered["device_serial"], ledgered["session_id"]) == (SERIAL, session["session_id"])
    assert datetime.fromisoformat(ledgered["docked_at"]).utcoffset() is not None
    files = documents["report compliance"][1]["files"]
    assert files and {f["device_serial"] for f in files} == {SERIAL}
    assert documents["profile try"][0]["identity"]["device_serial"] == SERIAL
    # Lists of rows are named members of an object, never a bare list.
    assert documents["queue"][0]["files"] == [] or "file_id" in documents["queue"][0]["files"][0]
    assert isinstance(documents["devices"][0]["docked"], list)
    assert isinstance(documents["devices"][1]["refused"], list)
