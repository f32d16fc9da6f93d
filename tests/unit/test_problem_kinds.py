"""Per-file problems are told apart by their kind: which are the camera's, which the station's."""

from __future__ import annotations

from agent.core.model import ImportSummary, ProblemKind
from agent.health.faults import import_faults, problem_kind


def test_station_side_problems_are_no_device_fault_whatever_their_wording() -> None:
    summary = ImportSummary(1, "CAM1", "", "/cam")
    summary.add_problem("A.MP4", "copied at the next start", ProblemKind.SHUTTING_DOWN)
    summary.add_problem("B.MP4", "no room", ProblemKind.STAGING_FULL)
    # Worded like a station-side problem, but the camera's: its kind decides.
    summary.add_problem("C.MP4", "staging full of bad sectors", ProblemKind.READ_FAILED)
    summary.wipe = {
        "refused": [{"file": "D.MP4", "reason": "changed", "kind": "changed_on_camera"}]
    }
    faults = import_faults(summary)
    assert [(f.source, f.code, f.detail) for f in faults] == [
        ("read", "read_failed", "C.MP4: staging full of bad sectors"),
        ("wipe", "wipe_refused", "D.MP4: changed"),
    ]
    assert summary.problems[0] == {
        "file": "A.MP4",
        "reason": "copied at the next start",
        "kind": "shutting_down",
    }


def test_a_problem_is_read_by_its_kind_never_by_its_wording() -> None:
    # Every writer of an import problem names its kind; the words are for people only.
    assert problem_kind({"reason": "staging full; not copied"}) is ProblemKind.OTHER
    assert (
        problem_kind({"reason": "staging full; not copied", "kind": "shutting_down"})
        is ProblemKind.SHUTTING_DOWN
    )
    assert problem_kind({"reason": "Input/output error"}) is ProblemKind.OTHER
    assert problem_kind({"reason": "x", "kind": "no such kind"}) is ProblemKind.OTHER
