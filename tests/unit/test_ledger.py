"""Ledger pieces without a station: retention classes from configuration, CSV export, --since."""

from __future__ import annotations

import csv
import io
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from agent.core import config
from agent.core.errors import ConfigError, UsageError
from agent.health.files import retention_class
from agent.reporting import exports
from agent.reporting.times import parse_since


def _load(tmp_path: Path, text: str) -> config.Config:
    path = tmp_path / "c.toml"
    path.write_text(text)
    return config.load(path, {"DOCKAGENT_DATA_DIR": str(tmp_path / "d")})


def test_default_retention_classes_follow_the_important_mark(tmp_path: Path) -> None:
    cfg = config.load(None, {"DOCKAGENT_DATA_DIR": str(tmp_path)})
    assert retention_class(cfg, "video", False) == "standard"
    assert retention_class(cfg, "video", True) == "important"
    assert {c.name: c.min_days for c in cfg.retention.classes} == {"standard": 90, "important": 180}


def test_retention_classes_and_rules_are_configuration(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path,
        """
[retention]
default_class = "simple"
[retention.classes.simple]
min_days = 90
description = "simple incident"
[retention.classes.administrative]
min_days = 180
[retention.classes.major]
min_days = 0
description = "long-term"
[[retention.rules]]
important = true
kinds = ["video", "audio"]
class = "major"
[[retention.rules]]
kinds = ["photo"]
class = "administrative"
""",
    )
    assert retention_class(cfg, "video", True) == "major"
    assert retention_class(cfg, "photo", True) == "administrative"  # first match wins
    assert retention_class(cfg, "photo", False) == "administrative"
    assert retention_class(cfg, "audio", False) == "simple"
    assert retention_class(cfg, "other", True) == "simple"


@pytest.mark.parametrize(
    ("text", "needle"),
    [
        ('[retention]\ndefault_class = "nope"\n', "retention.default_class: 'nope' is not a class"),
        (
            '[retention]\n[[retention.rules]]\nclass = "ghost"\n',
            "rule class 'ghost' is not a class",
        ),
        (
            '[retention]\n[[retention.rules]]\nkinds = ["movie"]\nclass = "standard"\n',
            "unknown kind 'movie'",
        ),
        ("[retention]\n[retention.classes.x]\ndescription = 'no days'\n", "min_days: missing"),
        ("[retention]\nkeep = 1\n", "retention.keep: unknown key"),
        (
            "[health]\nbattery_capacity_bad_pct = 90\n",
            "must not be above battery_capacity_warn_pct",
        ),
        ('[health]\ndrift_rate_flag_s_per_day = "fast"\n', "must be a number"),
        ("[compliance]\nlate_after_h = 0\n", "compliance.late_after_h: must be at least 1"),
    ],
)
def test_bad_health_and_retention_configuration_is_one_clear_line(
    tmp_path: Path, text: str, needle: str
) -> None:
    with pytest.raises(ConfigError) as info:
        _load(tmp_path, text)
    assert needle in info.value.message


def test_health_thresholds_are_read(tmp_path: Path) -> None:
    cfg = _load(
        tmp_path, "[health]\ndrift_rate_flag_s_per_day = 1.5\n[compliance]\nlate_after_h = 12\n"
    )
    assert cfg.health.drift_rate_flag_s_per_day == 1.5
    assert cfg.compliance.late_after_h == 12


def test_csv_opens_in_a_spreadsheet_and_quotes_formula_like_text() -> None:
    rows: list[dict[str, Any]] = [
        {"a": "=HYPERLINK(1)", "b": -90, "c": "-2 s", "d": 'x, "quoted"\nnext line'},
        {"a": "@SUM", "b": None, "c": True, "d": "-abc"},
    ]
    data = exports.to_csv(rows, ("a", "b", "c", "d")).encode()
    assert data.startswith(b"\xef\xbb\xbf")  # the BOM Excel looks for
    # decoded as Excel does: utf-8-sig
    parsed = list(csv.DictReader(io.StringIO(data.decode("utf-8-sig"), newline="")))
    assert parsed[0] == {
        "a": "'=HYPERLINK(1)",
        "b": "-90",
        "c": "-2 s",
        "d": 'x, "quoted"\nnext line',
    }
    assert parsed[1] == {"a": "'@SUM", "b": "", "c": "yes", "d": "'-abc"}
    plain = exports.to_csv(rows, ("a", "b", "c", "d"), bom=False)
    assert plain.startswith("a,b,c,d\r\n")


def test_since_accepts_a_date_or_a_time_and_reads_them_as_station_local() -> None:
    local = datetime(2024, 3, 10).astimezone()
    assert parse_since("2024-03-10") == local.astimezone(UTC).isoformat(timespec="milliseconds")
    assert parse_since("2024-03-10T08:00:00+00:00") == "2024-03-10T08:00:00.000+00:00"
    with pytest.raises(UsageError):
        parse_since("yesterday")


def test_the_example_configuration_documents_the_defaults(tmp_path: Path) -> None:
    example = Path(__file__).resolve().parents[2] / "config.example.toml"
    cfg = config.load(example, {"DOCKAGENT_DATA_DIR": str(tmp_path)})
    assert cfg.health == config.HealthConfig()
    assert cfg.compliance == config.ComplianceConfig()
    assert cfg.retention == config.RetentionConfig()
