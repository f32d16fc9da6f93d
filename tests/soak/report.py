"""The end of a soak: stop everything, let the independent judges speak, and report.

`finish` stops the daemon with SIGTERM, runs `dockagent verify`, runs the nothing-lost checker
over the manifest, the station and the tus server's store, and applies the flatness rule to the
samples; every verdict that fails is a failure of the run. It writes samples.csv and returns
the report that `__main__` writes as JSON and `print_report` prints. It changes nothing at the
station.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import TYPE_CHECKING, Any

from scripts.simulator.cameras import MIB
from tests.soak.sampling import METRICS, Sample, judge_resources
from tests.support.cli import run_cli
from tests.support.nothing_lost import Report, SinkObject, check, tus_file_store_objects

if TYPE_CHECKING:
    from tests.soak.run import Soak

Sink = tuple[list[SinkObject], list[str]]


def _stop_daemon(soak: Soak) -> int | None:
    if not soak.daemon.alive():
        soak.fail("the daemon was not running at the end")
        return None
    code = soak.daemon.stop()
    if code != 0:
        soak.fail(f"the daemon exited {code} on SIGTERM")
    return code


def _verify(soak: Soak) -> int:
    verify = run_cli(
        ["verify"], env=soak.cli_env, log=soak.station.root / "verify.log", timeout=3600
    )
    if verify.returncode != 0:
        soak.fail(f"dockagent verify exited {verify.returncode}")
    return verify.returncode


def _check_custody(soak: Soak) -> tuple[Report, Sink]:
    for cam in soak.cameras:  # anything the station wrote to a camera itself (TIME.TXT)
        if cam.root.exists():
            soak.record(cam)
    sink = tus_file_store_objects(soak.tus.store_dir)
    report = check(
        soak.manifest,
        soak.station.data_dir,
        cameras={c.serial: c.root for c in soak.cameras},
        sink=sink,
    )
    unsent = len(soak.manifest.files) - report.at_sink
    if report.problems:
        soak.fail(f"nothing-lost checker: {len(report.problems)} problems")
    if unsent and not soak.failures:
        soak.fail(f"{unsent} recorded files never reached the sink")
    return report, sink


def _judge_flat(soak: Soak, quiet: Sample | None) -> dict[str, Any]:
    resources = judge_resources(
        soak.sampler.samples,
        soak.daemon.incarnations,
        soak.s.warm_s,
        soak.s.warmup_sessions,
        soak.s.window_s,
        (soak.fresh, quiet),
        soak.s.cameras,
    )
    if not resources["flat"]:
        soak.fail("not flat: " + "; ".join(resources["violations"]))
    return resources


def write_samples(path: Path, samples: list[Sample]) -> None:
    with open(path, "w") as fh:
        fh.write("process,t_s,sessions,phase," + ",".join(METRICS) + ",anon_kib\n")
        for x in samples:
            fh.write(
                f"{x.incarnation},{x.t:.1f},{x.sessions},{x.phase},"
                + ",".join(str(getattr(x, m)) for m in (*METRICS, "anon_kib"))
                + "\n"
            )


def _checker_summary(report: Report, sink: Sink) -> dict[str, Any]:
    return {
        "ok": not report.problems,
        "summary": report.summary(),
        "at_sink": report.at_sink,
        "held": report.held,
        "on_camera": report.on_camera,
        "records": report.records,
        "sink_objects": len(sink[0]),
        "sink_partial": len(sink[1]),
        "problems": report.problems[:40],
    }


def finish(soak: Soak, soak_s: float) -> dict[str, Any]:
    time.sleep(2.0)  # idle: nothing docked, nothing to upload
    quiet = soak.sampler.take()
    soak.sampler.stopping.set()
    soak.sampler.join()
    stop_code = _stop_daemon(soak)
    soak.proxy.stop()
    soak.tus.stop()
    verify_exit = _verify(soak)
    checked, sink = _check_custody(soak)
    resources = _judge_flat(soak, quiet)
    write_samples(soak.s.out / "samples.csv", soak.sampler.samples)
    station, tally = soak.station, soak.tally
    return {
        "ok": not soak.failures,
        "failures": soak.failures,
        "seed": soak.s.seed,
        "duration_s": round(time.monotonic() - soak.started, 1),
        "soak_s": round(soak_s, 1),
        "sessions": tally.sessions,
        "station_sessions": station.count("SELECT COUNT(*) FROM sessions"),
        "cameras": len(soak.cameras),
        "files": len(soak.manifest.files),
        "bytes": sum(f.size for f in soak.manifest.files),
        "faults": dict(sorted(tally.faults.items())),
        "faults_total": sum(tally.faults.values()),
        # An armed proxy fault fires on the next matching request (none may come).
        "proxy_faults_fired": soak.proxy_fired,
        "clock_jumps_available": soak.faults.clock_hook,
        "events": dict(sorted(tally.events.items())),
        # Undocks the station heard of while it was still in the session (same clock).
        "undocks_landed_in_session": station.count(
            "SELECT COUNT(*) FROM sessions WHERE undocked_at IS NOT NULL AND ended_at IS NOT NULL "
            "AND undocked_at < ended_at"
        ),
        "recordings_skipped_as_name_clash": sum(c.skipped for c in soak.cameras),
        "daemon_restarts": len(soak.daemon.incarnations) - 1,
        "daemon_stop_exit": stop_code,
        "states": station.state_counts(),
        "resources": resources,
        "checker": _checker_summary(checked, sink),
        "verify_exit": verify_exit,
        "out": str(soak.s.out),
    }


def _print_daemons(res: dict[str, Any]) -> None:
    longest = res.get("longest")
    if longest:
        start, end = longest["start"], longest["end"]
        print(
            f"  longest-lived daemon (process {longest['process']}, {longest['lifetime_s']:.0f} s):"
            f" peak RSS {start['peak_rss_kib'] / 1024:.1f} -> {end['peak_rss_kib'] / 1024:.1f} MiB,"
            f" RSS {start['rss_kib'] / 1024:.1f} -> {end['rss_kib'] / 1024:.1f} MiB,"
            f" open files {start['open_files']} -> {end['open_files']},"
            f" threads {start['threads']} -> {end['threads']}"
        )
    judged = res.get("judged_processes") or []
    if len(judged) > 1:
        # Each process's start window: a later process starts over a longer history.
        starts = ", ".join(
            f"{j['process']}: {j['start']['peak_rss_kib'] / 1024:.1f}" for j in judged
        )
        print(f"  peak RSS (MiB) after warm-up, per daemon process: {starts}")
    top = res.get("max_over_all") or {}
    if top:
        print(
            f"  max over all daemons: peak RSS {top['peak_rss_kib'] / 1024:.1f} MiB, "
            f"open files {top['open_files']}, threads {top['threads']}"
        )


def print_report(report: dict[str, Any]) -> None:
    res = report["resources"]
    print()
    print(f"soak {'PASSED' if report['ok'] else 'FAILED'} (seed {report['seed']})")
    print(
        f"  sessions {report['sessions']} ({report['station_sessions']} at the station), "
        f"{report['cameras']} cameras, {report['files']} files, "
        f"{report['bytes'] / MIB:.1f} MiB, {report['duration_s']:.0f} s"
    )
    faults = ", ".join(f"{k} {v}" for k, v in report["faults"].items()) or "none"
    print(f"  faults {report['faults_total']}: {faults}")
    print(f"  daemon restarts {report['daemon_restarts']}; events: {report['events']}")
    _print_daemons(res)
    print(f"  flat: {res['flat']} ({'; '.join(res['violations']) or 'within the rule'})")
    print(f"  checker: {report['checker']['summary']}; verify exit {report['verify_exit']}")
    for failure in report["failures"]:
        print(f"  FAILURE: {failure}")
