"""What the shipped profiles make of camera names and directories, and that no profile pattern
and no name can make classification slower than linear (RE2)."""

from __future__ import annotations

import time
from collections.abc import Callable

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from agent.camera import profile
from agent.camera.patterns import PatternError, compile_glob, compile_pattern
from agent.camera.profile_classify import NO_CLIP, DirectoryClassifier, FileClass
from agent.core.model import FileKind

NOVATEK = profile.load("novatek-cardv")
ANDROID = profile.load("android-dcam")
JL = profile.load("jl-dv16")
GENERIC = profile.load("generic")
KIB = 1024

V, A, P, OT = FileKind.VIDEO, FileKind.AUDIO, FileKind.PHOTO, FileKind.OTHER


@pytest.mark.parametrize(
    ("name", "kind", "start", "segment", "channel"),
    [
        (b"2016_0729_112129_001.MOV", V, "2016-07-29T11:21:29", 1, ""),
        (b"2016_0729_112129_012_F.MOV", V, "2016-07-29T11:21:29", 12, "F"),
        (b"2016_0729_112129_012_R.mp4", V, "2016-07-29T11:21:29", 12, "R"),
        (b"20251003172400_000001A.TS", V, "2025-10-03T17:24:00", 1, "A"),
        (b"20251003172400_000002B.ts", V, "2025-10-03T17:24:00", 2, "B"),
        (b"2016_0729_112129_003.JPG", P, "2016-07-29T11:21:29", 3, ""),
        # Wrong names: the kind still comes from the name's extension, the times do not.
        (b"2016_1329_112129_001.MOV", V, "", 1, ""),  # month 13
        (b"2016_0729_112129_001_X.MOV", V, "", None, ""),  # no such channel
        (b"20251003172400_000001.TS", V, "", None, ""),  # no channel letter
        (b"MOVIE.MOV", V, "", None, ""),
        (b"2016_0729_112129_001.THM", OT, "", None, ""),
        (b"2016_0729_112129_001.MOV\n", OT, "", None, ""),
        (b"\xff\xfe2016_0729_112129_001.MOV", OT, "", None, ""),
    ],
)
def test_novatek_names(
    name: bytes, kind: FileKind, start: str, segment: int | None, channel: str
) -> None:
    info = NOVATEK.classify(name)
    assert (info.kind, info.recorded_start, info.segment, info.channel) == (
        kind,
        start,
        segment,
        channel,
    )
    assert not info.serial  # Novatek names carry no camera


@pytest.mark.parametrize(
    ("name", "kind", "start", "serial", "officer", "important"),
    [
        (b"DCAM_CAM7_100234_20260301_081500.mp4", V, "2026-03-01T08:15:00", "CAM7", "100234", 0),
        (
            b"DCAM_CAM7_100234_20260301_081500_IMP.mp4",
            V,
            "2026-03-01T08:15:00",
            "CAM7",
            "100234",
            1,
        ),
        (b"DCAM_CAM7_100234_20260301_081501.jpg", P, "2026-03-01T08:15:01", "CAM7", "100234", 0),
        (b"DCAM_CAM7__20260301_081502_imp.M4A", A, "2026-03-01T08:15:02", "CAM7", "", 1),
        # Wrong names: no camera, no start; still their kind by extension.
        (b"DCAM_CAM7_100234_20260301.mp4", V, "", "", "", 0),
        (b"IMG_20260301_081500.jpg", P, "", "", "", 0),
        (b"DCAM_CAM7_100234_20261301_081500.mp4", V, "", "CAM7", "100234", 0),  # month 13
        (b"DCAM_" + b"C" * 40 + b"_1_20260301_081500.mp4", V, "", "", "", 0),  # serial > 32
        (b"DCAM_CAM7_1_20260301_081500.mp4.part", OT, "", "", "", 0),
    ],
)
def test_android_names(
    name: bytes, kind: FileKind, start: str, serial: str, officer: str, important: int
) -> None:
    info = ANDROID.classify(name)
    assert (info.kind, info.recorded_start, info.serial, info.officer) == (
        kind,
        start,
        serial,
        officer,
    )
    assert info.suffix_marked is bool(important)


def test_jl_dv16_names_are_the_generic_layouts() -> None:
    for name in (
        b"CAM00001_100234_20261127080000_0001.MP4",
        b"CAM00001_100234_20261127080000_0001.IMP",
        b"CAM00001_100234_2026112708000_0001.MP4",
        b"notes.txt",
    ):
        jl, generic = JL.classify(name), GENERIC.classify(name)
        assert (jl.recorded_start, jl.segment, jl.is_marker) == (
            generic.recorded_start,
            generic.segment,
            generic.is_marker,
        )
    assert JL.classify(b"CAM00001_100234_20261127080000_0001.MP4").serial == "CAM00001"
    # Format 2 takes the kind from the extension even when the name is wrong (version 1 made
    # such a file "other"): a .MP4 with a damaged name is still a video.
    wrong = b"CAM00001_100234_2026112708000_0001.MP4"
    assert (JL.classify(wrong).kind, GENERIC.classify(wrong).kind) == (V, OT)


def _dir(prof: profile.Profile, dir_rel: bytes, names: list[bytes]) -> dict[bytes, FileClass]:
    return {fc.rel_path: fc for fc in DirectoryClassifier(prof).directory(dir_rel, names)}


def test_a_novatek_locked_folder_marks_its_recordings_important() -> None:
    locked = _dir(NOVATEK, b"CarDV/Movie/RO", [b"2016_0729_112129_001.MOV"])
    plain = _dir(NOVATEK, b"CarDV/Movie", [b"2016_0729_112129_002.MOV"])
    fc = locked[b"CarDV/Movie/RO/2016_0729_112129_001.MOV"]
    assert (fc.important, fc.marked_by, fc.in_root) == (True, "folder", True)
    assert not plain[b"CarDV/Movie/2016_0729_112129_002.MOV"].important


def test_a_partner_takes_its_clips_times_and_marker_and_names_it() -> None:
    files = _dir(
        NOVATEK,
        b"CarDV/Movie/RO",
        [b"2016_0729_112129_001.MOV", b"2016_0729_112129_001.THM", b"2016_0729_999999_009.thm"],
    )
    partner = files[b"CarDV/Movie/RO/2016_0729_112129_001.THM"]
    assert partner.partner_of == b"CarDV/Movie/RO/2016_0729_112129_001.MOV"
    assert (partner.info.recorded_start, partner.info.segment, partner.important) == (
        "2016-07-29T11:21:29",
        1,
        True,
    )
    assert partner.kind is FileKind.OTHER and partner.in_root
    alone = files[b"CarDV/Movie/RO/2016_0729_999999_009.thm"]
    assert (alone.partner_of, alone.note, alone.ignored) == (b"", NO_CLIP, "")


def test_a_partner_outside_the_roots_is_no_partner() -> None:
    files = _dir(NOVATEK, b"CarDV", [b"2016_0729_112129_001.MOV", b"2016_0729_112129_001.THM"])
    assert all(not fc.in_root and not fc.partner_of for fc in files.values())
    assert all(fc.kind is FileKind.OTHER for fc in files.values())


def test_android_suffix_marks_and_ignored_files_are_said() -> None:
    files = _dir(
        ANDROID,
        b"DCIM/Camera",
        [b".nomedia", b"DCAM_C1_7_20260301_081500_IMP.mp4", b"\xff.nomedia"],
    )
    imp = files[b"DCIM/Camera/DCAM_C1_7_20260301_081500_IMP.mp4"]
    assert (imp.important, imp.marked_by) == (True, "suffix")
    assert "ignored by camera profile android-dcam" in files[b"DCIM/Camera/.nomedia"].ignored
    # A name that is not UTF-8 is never ignored: no odd byte hides a file from custody.
    assert files[b"DCIM/Camera/\xff.nomedia"].ignored == ""


def test_generic_sidecar_markers_and_metadata() -> None:
    files = _dir(
        GENERIC,
        b"RECORD/20261127",
        [b"C1_1_20261127080000_0001.MP4", b"C1_1_20261127080000_0001.IMP"],
    )
    video = files[b"RECORD/20261127/C1_1_20261127080000_0001.MP4"]
    marker = files[b"RECORD/20261127/C1_1_20261127080000_0001.IMP"]
    assert (video.important, video.marked_by) == (True, "sidecar")
    assert marker.info.is_marker and not marker.important and marker.in_root
    root = _dir(GENERIC, b"", [b"DEVICE.INF", b"TIME.TXT"])
    assert not any(fc.in_root for fc in root.values())


# ---- linear time, whatever the pattern and the name ----------------------------------------

PROPERTY = settings(
    max_examples=30, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
ATOMS = st.sampled_from(
    ["a", "a+", "a*", "(a|a)*", "(a+)+", "(a*)*", "(a|aa)+", ".*", "[ab]+", "(?:a?){20}", "b"]
)
PATTERNS = st.lists(ATOMS, min_size=1, max_size=6).map(lambda parts: "".join(parts) + "$")
NAMES = st.sampled_from([b"a", b"ab", b"a_", b"\xff", b"aaaa!"])


def _took(fn: Callable[[], object]) -> float:
    best = float("inf")
    for _ in range(2):
        started = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - started)
    return best


def _profile_with(pattern: str, ignore: str = "*.tmp") -> profile.Profile:
    text = (
        f'format = 2\nname = "x"\n[layout]\nroots = ["R"]\nignore = ["{ignore}"]\n'
        f"[layout.kinds]\nvideo = ['*a*a*a*a*.mp4']\n[[layout.names]]\npattern = '{pattern}'\n"
    )
    return profile.parse_text(text, "x.toml")


@PROPERTY
@given(PATTERNS, NAMES)
def test_any_pattern_classifies_any_name_in_linear_time(pattern: str, unit: bytes) -> None:
    """Catastrophic patterns for a backtracking engine ((a+)+$, (a|a)*b...) against names of
    NAME_MAX, 128 KiB and 512 KiB: quick, and four times the name costs about four times (RE2
    changes engines with the input's size, so the bound leaves room for that and for a busy
    machine; quadratic growth would be 16 times, exponential would not finish)."""
    try:
        compile_pattern(pattern)
    except PatternError:
        assume(False)
    prof = _profile_with(pattern)
    classifier = DirectoryClassifier(prof)
    short = (unit * 255)[:255]
    assert _took(lambda: prof.classify(short)) < 0.05
    n = unit * (128 * KIB // len(unit))
    four_n = n * 4
    t_n = _took(lambda: classifier.directory(b"R", [n]))
    t_4n = _took(lambda: classifier.directory(b"R", [four_n]))
    assert t_n < 0.5, f"{pattern!r} took {t_n:.3f} s on 128 KiB"
    assert t_4n < 10 * t_n + 0.1, f"{pattern!r}: {t_n:.4f} s at n, {t_4n:.4f} s at 4n"


@pytest.mark.parametrize(
    "pattern",
    [r"^(a+)+$", r"(a|a)*b", r"^(a|aa)+$", r"(x+x+)+y", r"(?P<serial>(a*)*)\.mp4"],
)
def test_a_catastrophic_version_1_pattern_against_a_mebibyte_name(pattern: str) -> None:
    """Version 1 profiles were matched with Python's backtracking re: `^(a+)+$` against 30 a's
    and a `!` took minutes. Now the same profile answers a 1 MiB name at once."""
    text = (
        'name = "v1"\ndevice_info = "D"\nrecord_dir = "R"\nsystem_log = "L"\n'
        'battery_log = "B"\ntime_file = "T"\nimportant_marker_ext = "IMP"\n'
        f"recording_pattern = '{pattern}'\n[kinds]\nMP4 = \"video\"\n"
    )
    v1 = profile.parse_text(text, "v1.toml")
    name = b"a" * (1 << 20) + b"!"
    assert _took(lambda: v1.classify(name)) < 1.0


@pytest.mark.parametrize("glob", ["*a*a*a*a*a*a*b", "**/**/**/**/x", "[!/]*?*?*?*z"])
def test_globs_are_linear_too(glob: str) -> None:
    compiled = compile_glob(glob)
    name = "a" * (256 * KIB)
    assert _took(lambda: compiled.matches(name, name)) < 0.5


@PROPERTY
@given(
    st.sampled_from([NOVATEK, ANDROID, JL, GENERIC]),
    st.lists(st.binary(min_size=1, max_size=300).filter(lambda n: b"/" not in n), max_size=8),
    st.sampled_from([b"", b"CarDV/Movie/RO", b"DCIM/Camera", b"RECORD/20260101", b"\xff/x"]),
)
def test_any_names_in_any_directory_are_classified_without_error(
    prof: profile.Profile, names: list[bytes], dir_rel: bytes
) -> None:
    """Hostile names (any bytes but /) never make classification raise; each name comes back
    once, a recording only inside a root, a partner's clip always a sibling."""
    names = sorted(set(names))
    out = DirectoryClassifier(prof).directory(dir_rel, names)
    assert [fc.rel_path.rpartition(b"/")[2] for fc in out] == names
    for fc in out:
        assert fc.in_root == any(
            fc.rel_path.startswith(r.encode() + b"/") for r in prof.layout.roots
        )
        if fc.partner_of:
            assert fc.partner_of.rpartition(b"/")[0] == fc.rel_path.rpartition(b"/")[0]
            assert fc.partner_of.rpartition(b"/")[2] in names
        if not fc.in_root:
            assert (fc.kind, fc.important) == (FileKind.OTHER, False)
