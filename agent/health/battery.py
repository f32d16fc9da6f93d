"""BATTERY.CSV read robustly and judged: charge, cycles, capacity fade, heat, discharges.

A flat battery truncates and garbles rows (camera-layout.md): every such row is skipped and
counted as truncated or garbled, never fatal. Cameras with another battery source (a profile's
BatterySpec, agent.camera.methods) are judged here too: `scsi`, a charge read by the SCSI unlock
and handed in (only the charge: no cycles, capacity or heat); `none`, no reading at all.
Thresholds come from [health] in the configuration; this module reads no file and writes
nothing, it only parses and judges bytes.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence
from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Any

from agent.core.config import HealthConfig
from agent.health.logs import split_lines

HEADER = "time,percent,voltage_mv,current_ma,temperature_c,cycle_count,full_charge_mah,design_mah"
_FIELDS = 8
_PRINTABLE = frozenset(range(0x20, 0x7F))


@dataclass(frozen=True)
class Sample:
    time: datetime  # camera clock
    percent: int
    voltage_mv: int
    current_ma: int
    temperature_c: float
    cycle_count: int
    full_charge_mah: int
    design_mah: int


class _Bad(ValueError):
    pass


def _int(text: str, low: int, high: int) -> int:
    value = int(text)
    if not low <= value <= high:
        raise _Bad(text)
    return value


def parse_row(text: str) -> Sample:
    """One data row; ValueError when a value is missing, not a number or out of range."""
    parts = text.split(",")
    if len(parts) != _FIELDS:
        raise _Bad(text)
    temperature = float(parts[4])
    if not -40.0 <= temperature <= 150.0:
        raise _Bad(text)
    return Sample(
        time=datetime.strptime(parts[0], "%Y-%m-%d %H:%M:%S"),
        percent=_int(parts[1], 0, 100),
        voltage_mv=_int(parts[2], 0, 100_000),
        current_ma=_int(parts[3], -100_000, 100_000),
        temperature_c=temperature,
        cycle_count=_int(parts[5], 0, 1_000_000),
        full_charge_mah=_int(parts[6], 0, 1_000_000),
        design_mah=_int(parts[7], 1, 1_000_000),
    )


@dataclass
class BatteryLog:
    samples: list[Sample] = field(default_factory=list)
    rows: int = 0  # data rows seen (header excluded)
    truncated: int = 0  # cut short: printable text with fields missing or empty
    garbled: int = 0  # unreadable bytes, or values that are no numbers or out of range
    header_ok: bool = True

    @property
    def skipped(self) -> int:
        return self.truncated + self.garbled


def parse(data: bytes, head_skipped: int = 0) -> BatteryLog:
    log = BatteryLog()
    _scan(split_lines(data, head_skipped), head_skipped, log, log.samples.append)
    return log


def _scan(
    lines: Iterable[bytes], head_skipped: int, log: BatteryLog, sample: Callable[[Sample], None]
) -> None:
    """Count the rows of `lines` into `log` and hand each valid one to `sample`, in order."""
    first = True
    for raw in lines:
        if first:
            first = False
            if raw.strip() == HEADER.encode():
                continue
            if not head_skipped:
                log.header_ok = False
        log.rows += 1
        if any(b not in _PRINTABLE for b in raw):
            log.garbled += 1
            continue
        text = raw.decode("ascii").strip()
        parts = text.split(",")
        if len(parts) < _FIELDS or any(p.strip() == "" for p in parts):
            log.truncated += 1
            continue
        try:
            row = parse_row(text)
        except ValueError:
            log.garbled += 1
            continue
        sample(row)
    if first and not head_skipped:
        log.header_ok = False  # an empty log has no header either


@dataclass
class BatteryReport:
    """The judgement of one camera's battery at one dock; stored as JSON on the session."""

    present: bool
    verdict: str  # ok | warning | bad | unknown
    reasons: list[str] = field(default_factory=list)
    rows: int = 0
    valid: int = 0
    truncated: int = 0
    garbled: int = 0
    header_ok: bool = True
    charge_pct: int | None = None
    cycle_count: int | None = None
    full_charge_mah: int | None = None
    design_mah: int | None = None
    capacity_pct: float | None = None  # full charge / design
    peak_temp_c: float | None = None
    deep_discharges: int = 0
    sudden_drops: int = 0
    read_error: str = ""
    source: str = "log:generic-csv"  # the profile's BatterySpec.source

    def as_dict(self) -> dict[str, Any]:
        return asdict(self)

    def summary(self) -> str:
        if not self.present or self.valid == 0:
            return f"{self.verdict}: " + ("; ".join(self.reasons) or "no battery data")
        parts = [
            f"{self.charge_pct} % now",
            f"{self.cycle_count} cycles",
            f"capacity {self.capacity_pct:g} % of design",
            f"peak {self.peak_temp_c:g} °C",
        ]
        if self.skipped and not any("unreadable" in r for r in self.reasons):
            parts.append(f"{self.skipped} of {self.rows} rows skipped")
        text = f"{self.verdict}: " + ", ".join(parts)
        return text + (f" ({'; '.join(self.reasons)})" if self.reasons else "")

    @property
    def skipped(self) -> int:
        return self.truncated + self.garbled


class _Running:
    """What assess() needs of the samples, gathered one sample at a time without keeping them
    (a camera's BATTERY.CSV grows until it rotates it; memory here must not grow with it).
    Deep discharges: episodes at or below the threshold; sudden drops: consecutive samples at
    most the window apart whose charge fell by the threshold or more."""

    def __init__(self, limits: HealthConfig) -> None:
        self.limits = limits
        self.valid = 0
        self.last: Sample | None = None
        self.cycle_count = 0
        self.peak_temp_c = 0.0
        self.deep_discharges = 0
        self.sudden_drops = 0
        self._below = False

    def add(self, s: Sample) -> None:
        limits, prev = self.limits, self.last
        if prev is None:
            self.cycle_count, self.peak_temp_c = s.cycle_count, s.temperature_c
        else:
            self.cycle_count = max(self.cycle_count, s.cycle_count)
            self.peak_temp_c = max(self.peak_temp_c, s.temperature_c)
            elapsed = (s.time - prev.time).total_seconds()
            drop = prev.percent - s.percent
            if 0 <= elapsed <= limits.battery_sudden_drop_window_s:
                self.sudden_drops += drop >= limits.battery_sudden_drop_pct
        below = s.percent <= limits.battery_deep_discharge_pct
        self.deep_discharges += below and not self._below
        self._below = below
        self.valid += 1
        self.last = s


def assess(
    data: bytes | Iterable[bytes] | None, limits: HealthConfig, head_skipped: int = 0
) -> BatteryReport:
    """Parse BATTERY.CSV (bytes or lines; None: absent) and judge it against the configured
    thresholds."""
    if data is None:
        return BatteryReport(False, "unknown", ["no battery log on the camera"])
    judge = Judge(limits)
    judge.feed(split_lines(data, head_skipped) if isinstance(data, bytes) else data, head_skipped)
    return judge.report()


class Judge:
    """A battery log judged as it is read: fed its lines once at the dock, then the lines the
    camera appends while it stays docked (agent.health.readiness_watch), each judged once;
    report() gives the judgement of every row fed so far. Memory does not grow with the rows."""

    def __init__(self, limits: HealthConfig) -> None:
        self.limits = limits
        self.log = BatteryLog()
        self.run = _Running(limits)
        self._fed = False

    def feed(self, lines: Iterable[bytes], head_skipped: int = 0) -> None:
        """Rows in log order; after the first feed, no header is expected (they continue it)."""
        _scan(lines, head_skipped or int(self._fed), self.log, self.run.add)
        self._fed = True

    def report(self) -> BatteryReport:
        return _judged(self.log, self.run, self.limits)


def _judged(log: BatteryLog, run: _Running, limits: HealthConfig) -> BatteryReport:
    report = BatteryReport(
        True,
        "ok",
        rows=log.rows,
        valid=run.valid,
        truncated=log.truncated,
        garbled=log.garbled,
        header_ok=log.header_ok,
    )
    last = run.last
    if last is None:
        report.verdict = "unknown"
        report.reasons.append(f"battery log unreadable: no valid row of {log.rows}")
        return report
    report.charge_pct = last.percent
    report.cycle_count = run.cycle_count
    report.full_charge_mah = last.full_charge_mah
    report.design_mah = last.design_mah
    report.capacity_pct = round(100.0 * last.full_charge_mah / last.design_mah, 1)
    report.peak_temp_c = run.peak_temp_c
    report.deep_discharges = run.deep_discharges
    report.sudden_drops = run.sudden_drops
    bad: list[str] = []
    warn: list[str] = []
    if report.capacity_pct < limits.battery_capacity_bad_pct:
        bad.append(
            f"capacity {report.capacity_pct:g} % of design, below "
            f"{limits.battery_capacity_bad_pct} %: replace the battery"
        )
    elif report.capacity_pct < limits.battery_capacity_warn_pct:
        warn.append(
            f"capacity faded to {report.capacity_pct:g} % of design "
            f"(below {limits.battery_capacity_warn_pct} %)"
        )
    if report.peak_temp_c >= limits.battery_temp_bad_c:
        bad.append(
            f"overheating: peak {report.peak_temp_c:g} °C (limit {limits.battery_temp_bad_c} °C)"
        )
    elif report.peak_temp_c >= limits.battery_temp_warn_c:
        warn.append(f"ran hot: peak {report.peak_temp_c:g} °C")
    if report.cycle_count >= limits.battery_cycles_warn:
        warn.append(f"{report.cycle_count} charge cycles (from {limits.battery_cycles_warn})")
    if report.deep_discharges >= limits.battery_deep_discharges_warn:
        warn.append(
            f"{report.deep_discharges} deep discharges "
            f"(to {limits.battery_deep_discharge_pct} % or less)"
        )
    if report.sudden_drops:
        warn.append(
            f"{report.sudden_drops} sudden drops of {limits.battery_sudden_drop_pct} points or "
            f"more within {limits.battery_sudden_drop_window_s} s"
        )
    if log.rows and 100 * log.skipped > limits.battery_skipped_warn_pct * log.rows:
        warn.append(
            f"battery log partly unreadable: {log.skipped} of {log.rows} rows skipped "
            f"({log.truncated} truncated, {log.garbled} garbled)"
        )
    report.reasons = bad + warn
    report.verdict = "bad" if bad else "warning" if warn else "ok"
    return report


def from_scsi(percent: int | None) -> BatteryReport:
    """The charge the SCSI unlock read (jl-dv16 0x08, handed in), judged on its own: the
    device's answer is hostile, so only 0-100 is a charge. Nothing else is known."""
    if percent is None:
        return BatteryReport(
            False, "unknown", ["no battery reading from the camera's SCSI unlock"], source="scsi"
        )
    if not 0 <= percent <= 100:
        return BatteryReport(
            False,
            "unknown",
            [f"the camera's SCSI battery reading {percent} is no percentage"],
            source="scsi",
        )
    return BatteryReport(True, "ok", [], charge_pct=percent, source="scsi")


def not_reported() -> BatteryReport:
    """A model whose profile names no battery source: nothing to judge, said as such."""
    return BatteryReport(
        False, "unknown", ["this camera model reports no battery state"], source="none"
    )


def trend(history: Sequence[tuple[str, dict[str, Any]]]) -> dict[str, Any]:
    """Capacity and cycles across sessions ((docked_at, report dict) oldest first)."""
    points = [
        {
            "docked_at": at,
            "capacity_pct": rep.get("capacity_pct"),
            "cycle_count": rep.get("cycle_count"),
            "peak_temp_c": rep.get("peak_temp_c"),
            "verdict": rep.get("verdict", ""),
        }
        for at, rep in history
    ]
    known = [p for p in points if p["capacity_pct"] is not None and p["cycle_count"] is not None]
    out: dict[str, Any] = {"sessions": points, "capacity_change_pct": None, "fade_per_100": None}
    if len(known) >= 2:
        first, last = known[0], known[-1]
        change = float(last["capacity_pct"]) - float(first["capacity_pct"])
        out["capacity_change_pct"] = round(change, 1)
        cycles = int(last["cycle_count"]) - int(first["cycle_count"])
        if cycles > 0:
            out["fade_per_100"] = round(-change * 100 / cycles, 2)
    return out
