"""Camera profile files: version 1 loads as it always did, version 2 is checked key by key and
every mistake is named with its line, and the shipped profiles say what their cameras are."""

from __future__ import annotations

from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from agent.camera import methods, profile, profile_v2
from agent.camera.profile import Profile
from agent.core.errors import EX_CONFIG, ConfigError
from agent.core.model import FileKind

# The generic profile as version 1 wrote it (no `format` key): kept here whole, so version 1
# stays loadable whatever the shipped generic.toml becomes.
V1_GENERIC = r"""
name = "generic"
usb_ids = ["2b0e:0a01"]
label_pattern = ""
timezone = ""
clock_threshold_s = 30
device_info = "DEVICE.INF"
record_dir = "RECORD"
system_log = "LOG/SYSTEM.LOG"
battery_log = "LOG/BATTERY.CSV"
time_file = "TIME.TXT"
binding = true
recording_pattern = '^(?P<serial>[A-Za-z0-9-]{1,32})_(?P<officer>[A-Za-z0-9-]*)_(?P<start>[0-9]{14})_(?P<segment>[0-9]{4})\.(?P<ext>[A-Za-z0-9]{1,8})$'
important_marker_ext = "IMP"

[kinds]
MP4 = "video"
MOV = "video"
AVI = "video"
WAV = "audio"
AMR = "audio"
JPG = "photo"
"""

SHIPPED = ("generic", "jl-dv16", "novatek-cardv", "android-dcam")


def _mistakes(text: str, where: str = "cam.toml") -> list[str]:
    with pytest.raises(ConfigError) as caught:
        profile.parse_text(text, where)
    assert caught.value.exit_code == EX_CONFIG
    return list(caught.value.fields["mistakes"])


def test_a_version_1_file_loads_as_it_always_did() -> None:
    v1 = profile.parse_text(V1_GENERIC, "v1.toml")
    assert v1.format == 1
    # What older code reads of a profile, by the names it has always used.
    assert (v1.device_info, v1.record_dir, v1.system_log, v1.battery_log, v1.time_file) == (
        "DEVICE.INF",
        "RECORD",
        "LOG/SYSTEM.LOG",
        "LOG/BATTERY.CSV",
        "TIME.TXT",
    )
    assert (v1.clock_threshold_s, v1.binding, v1.usb_ids) == (30, True, frozenset({"2b0e:0a01"}))
    assert v1.matches_hardware("2B0E", "0A01", "ANY") and not v1.matches_hardware("1", "2", "")
    # ... and what version 2 names the same things.
    assert (v1.transport, v1.identity, v1.unlock) == ("ums", ("file",), None)
    assert v1.clock == methods.ClockSpec("file:generic", "TIME.TXT", threshold_s=30)
    assert v1.battery == methods.BatterySpec("log:generic-csv", "LOG/BATTERY.CSV")
    # Names classify as before: kind by extension only when the pattern matches, .IMP markers.
    video = v1.classify(b"CAM1_100234_20261127080000_0002.mp4")
    assert (video.kind, video.recorded_start, video.segment) == (
        FileKind.VIDEO,
        "2026-11-27T08:00:00",
        2,
    )
    assert v1.classify(b"odd name.MP4").kind is FileKind.OTHER
    assert v1.classify(b"CAM1_1_20261127080000_0002.IMP").is_marker
    # The shipped generic profile is this same version 1 file.
    shipped = profile.load("generic")
    for name in (b"CAM1_100234_20261127080000_0002.mp4", b"x.MP4", b"A_B_2026_1.WAV"):
        assert shipped.classify(name) == v1.classify(name)


@pytest.mark.parametrize("name", SHIPPED)
def test_every_shipped_profile_loads(name: str) -> None:
    loaded = profile.load(name)
    assert loaded.name == name
    assert loaded.transport in methods.TRANSPORTS
    assert set(loaded.identity) <= set(methods.IDENTITY_SOURCES)
    assert loaded.clock.method in methods.CLOCK_METHODS
    assert loaded.battery.source in methods.BATTERY_SOURCES
    assert loaded.layout.roots


def test_the_shipped_profiles_say_how_their_cameras_are_reached_named_and_clocked() -> None:
    jl = profile.load("jl-dv16")
    assert jl.transport == "ums-unlock"
    assert jl.unlock == methods.UnlockSpec(dialect="jl-dv16", inquiry="dv16devicev1.00")
    assert (jl.identity, jl.identity_file) == (("scsi", "file"), "DEVICE.INF")
    assert (jl.clock.method, jl.clock.readback, jl.battery.source) == ("scsi", False, "scsi")
    assert jl.record_dir == "RECORD" and jl.time_file == ""
    nt = profile.load("novatek-cardv")
    assert (nt.clock.method, nt.clock.path, nt.time_file) == (
        "file:novatek-timeset",
        "TIMESET.txt",
        "TIMESET.txt",
    )
    assert nt.clock.max_error_s >= 60  # the firmware's clamps cost up to ~60 s
    assert (nt.battery.source, nt.battery_log, nt.identity) == ("none", "", ("file", "usb"))
    assert nt.layout.roots == ("CarDV/Movie", "CarDV/Photo")
    android = profile.load("android-dcam")
    assert (android.transport, android.identity, android.clock.method) == (
        "mtp",
        ("names",),
        "none",
    )
    assert android.metadata == frozenset()  # nothing of the station's own on a phone


def test_a_file_without_mistakes_loads_with_every_key(tmp_path: Path) -> None:
    text = """
format = 2
name = "acme"
usb_ids = ["1D6B:0104"]
label_pattern = "ACME[0-9]+"
timezone = "Asia/Shanghai"
transport = "ums-unlock"
system_log = "LOG/SYS.LOG"
binding = false

[unlock]
dialect = "jl-dv16"
record_size = 94
password = "000001"
inquiry = "acmecam"
command_timeout_s = 2
appear_timeout_s = 12.5

[identity]
sources = ["scsi", "names"]

[clock]
method = "file:generic"
path = "TIME.TXT"
readback = false
max_error_s = 3
threshold_s = 10

[battery]
source = "log:generic-csv"
path = "LOG/BAT.CSV"

[layout]
roots = ["REC", "EVT"]
ignore = ["*.tmp", "REC/cache/**"]

[layout.kinds]
video = ["*.mp4"]
audio = ["*.wav"]

[[layout.names]]
pattern = '(?P<serial>[A-Z0-9]+)-(?P<start>[0-9]{12})-(?P<channel>[AB])\\.(?i:mp4|wav)'
start_format = "%y%m%d%H%M%S"

[markers]
folders = ["EVT"]
suffixes = ["_LOCK"]
sidecars = ["imp"]

[partners]
extensions = ["thm", "mtd"]
"""
    path = tmp_path / "acme.toml"
    path.write_text(text)
    loaded = profile.load_file(path)
    assert loaded.usb_ids == frozenset({"1d6b:0104"})
    assert loaded.unlock is not None and loaded.unlock.record_size == 94
    assert loaded.unlock.appear_timeout_s == 12.5
    assert loaded.identity == ("scsi", "names")
    assert (loaded.clock.threshold_s, loaded.battery_log) == (10, "LOG/BAT.CSV")
    assert loaded.layout.marker_sidecars == ("IMP",) and loaded.layout.partners == ("THM", "MTD")
    info = loaded.classify(b"CAM9-261127080000-B.MP4")
    assert (info.kind, info.recorded_start, info.channel, info.serial) == (
        FileKind.VIDEO,
        "2026-11-27T08:00:00",
        "B",
        "CAM9",
    )
    # Loaded by name from a station's profile directory too.
    assert profile.load("acme", str(tmp_path)).name == "acme"


BAD = """\
format = 2
name = "Bad Name"
transport = "usb"
colour = "red"

[unlock]
dialect = "jl-dv16"

[identity]
sources = ["file", "scsi", "file"]

[clock]
method = "file:novatek-timeset"
max_error_s = "60"
threshold_s = 0

[battery]
source = "log:generic-csv"
path = "../outside"

[layout]
roots = ["/abs", "ok", "a/./b"]
ignore = ["[unclosed"]

[layout.kinds]
video = ["*.MOV", "x/*.MP4"]
sound = ["*.wav"]

[[layout.names]]
pattern = '(a)\\1'

[[layout.names]]
pattern = '(?P<serial>x)(?P<foo>y)'
start_format = "no percent"

[[layout.names]]
pattern = '(?P<start>x)(?P<date>y)(?P<time>z)'

[markers]
folders = ["elsewhere"]
sidecars = ["I.MP"]

[partners]
extensions = [3]
"""


def test_every_mistake_is_named_once_with_its_line() -> None:
    assert _mistakes(BAD) == [
        "cam.toml:2: name: 'Bad Name' is not 1-64 of a-z 0-9 _ -",
        "cam.toml:3: transport: 'usb' is not one of ums, ums-unlock, mtp",
        "cam.toml:4: colour: unknown key (known: battery, binding, clock, format, identity, "
        "label_pattern, layout, markers, name, partners, system_log, timezone, transport, "
        "unlock, usb_ids)",
        'cam.toml:6: unlock: only for transport = "ums-unlock"',
        'cam.toml:9: identity.file: missing: the "file" source reads it',
        "cam.toml:10: identity.sources: names a source twice",
        'cam.toml:10: identity.sources: scsi needs transport = "ums-unlock"',
        "cam.toml:12: clock.path: missing: file:novatek-timeset writes it",
        "cam.toml:14: clock.max_error_s: must be an integer, not a string",
        "cam.toml:15: clock.threshold_s: 0 is not within 1..86400",
        "cam.toml:19: battery.path: must be a path below the volume root (no leading /, no . "
        "or .. or empty parts)",
        "cam.toml:22: layout.roots[0]: '/abs': must be a path below the volume root (no "
        "leading /, no . or .. or empty parts)",
        "cam.toml:22: layout.roots[2]: 'a/./b': must be a path below the volume root (no "
        "leading /, no . or .. or empty parts)",
        "cam.toml:23: layout.ignore[0]: '[unclosed': unclosed [ in glob '[unclosed'",
        "cam.toml:26: layout.kinds.video[1]: 'x/*.MP4': matches a file's name: no /",
        "cam.toml:27: layout.kinds.sound: unknown key (known: audio, other, photo, video)",
        "cam.toml:30: layout.names[0].pattern: not an RE2 pattern: invalid escape sequence: \\1",
        "cam.toml:33: layout.names[1].pattern: unknown group 'foo' (known: channel, date, "
        "officer, segment, serial, start, time)",
        "cam.toml:34: layout.names[1].start_format: must be a strptime format of 1-64 characters",
        "cam.toml:37: layout.names[2].pattern: names the start once: either start, or date and "
        "time",
        "cam.toml:40: markers.folders[0]: 'elsewhere' is in none of layout.roots",
        "cam.toml:41: markers.sidecars[0]: 'I.MP': must be an extension of 1-8 letters or "
        "digits, without the dot",
        "cam.toml:44: partners.extensions[0]: must be a string, not an integer",
    ]


def test_missing_and_mistyped_tables_are_named() -> None:
    assert _mistakes('format = 2\nunlock = 3\n[identity]\nsources = ["names"]\n') == [
        "cam.toml:1: layout: missing: a profile names where the recordings are",
        "cam.toml:1: name: missing",
        "cam.toml:2: unlock: must be a table, not an integer",
        'cam.toml:2: unlock: only for transport = "ums-unlock"',
        'cam.toml:4: identity.sources: "names" needs a layout.names pattern with a serial group',
    ]
    assert _mistakes(
        'format = 3\nname = "x"\ntransport = "ums-unlock"\n[layout]\nroots = []\n'
    ) == [
        "cam.toml:1: format: 3 is not a profile format this station reads (1 or 2)",
        "cam.toml:3: transport: ums-unlock needs an [unlock] table",
        "cam.toml:5: layout.roots: must name at least one",
    ]


def test_a_file_that_is_not_toml_is_one_mistake_with_its_line() -> None:
    mistakes = _mistakes('format = 2\nname = "x\n')
    assert len(mistakes) == 1 and mistakes[0].startswith("cam.toml:2: syntax: "), mistakes


def test_a_version_1_mistake_is_still_a_config_error() -> None:
    broken = V1_GENERIC.replace("recording_pattern", "recording_patern")
    with pytest.raises(ConfigError, match="recording_pattern"):
        profile.parse_text(broken, "v1.toml")


def test_a_hostile_pattern_in_a_profile_loads_and_stays_linear() -> None:
    """RE2 takes patterns that backtrack exponentially in Python's re: they load, and they are
    linear (tests/unit/test_profile_classify.py times them)."""
    text = (
        'format = 2\nname = "x"\n[layout]\nroots = ["R"]\n'
        "[[layout.names]]\npattern = '(?P<serial>(a+)+)$'\n"
    )
    loaded: Profile = profile.parse_text(text, "x.toml")
    assert loaded.classify(b"a" * 50_000 + b"!").named is False


def test_a_profile_file_too_large_to_be_one_is_refused_unread(tmp_path: Path) -> None:
    huge = tmp_path / "huge.toml"
    huge.write_bytes(b"# " + b"x" * (profile.MAX_PROFILE_BYTES + 10) + b"\n")
    with pytest.raises(ConfigError, match="larger than 262144 bytes"):
        profile.load_file(huge)


_KEYS = st.sampled_from(
    [
        "name", "usb_ids", "label_pattern", "timezone", "transport", "system_log", "binding",
        "unlock", "identity", "clock", "battery", "layout", "markers", "partners", "sources",
        "file", "method", "path", "source", "roots", "ignore", "kinds", "names", "pattern",
        "start_format", "video", "folders", "suffixes", "sidecars", "extensions", "dialect",
        "record_size", "max_error_s", "x",
    ]
)  # fmt: skip
_SCALARS = st.one_of(
    st.integers(-(2**63), 2**63 - 1),
    st.booleans(),
    st.floats(allow_nan=False),
    st.text(max_size=40),
    st.sampled_from(["ums-unlock", "scsi", "file", "names", "*.mp4", "(?P<serial>a+)+", "R"]),
)
_VALUES = st.recursive(
    _SCALARS,
    lambda inner: st.one_of(st.lists(inner, max_size=4), st.dictionaries(_KEYS, inner, max_size=5)),
    max_leaves=25,
)


@settings(max_examples=100, deadline=None, database=None)
@given(st.dictionaries(_KEYS, _VALUES, max_size=10))
def test_any_table_is_a_profile_or_a_list_of_mistakes(raw: dict[str, object]) -> None:
    """Whatever a profile holds, loading it returns a profile or raises one ConfigError whose
    mistakes each name a line and a key; never another exception."""
    raw = {"format": 2, **raw}
    try:
        loaded = profile_v2.parse(raw, "format = 2\n", "h.toml")
    except ConfigError as exc:
        mistakes = exc.fields["mistakes"]
        assert mistakes and all(m.startswith("h.toml:1: ") for m in mistakes)
    else:
        assert loaded.format == 2 and loaded.layout.roots
