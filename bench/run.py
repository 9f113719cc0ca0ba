#!/usr/bin/env python3
"""compose-rollback benchmarks: one command, a JSON file of results and a printed table.

    python3 bench/run.py                      # everything (12-15 minutes on 2 cores)
    python3 bench/run.py --quick              # fewer repetitions, for development
    python3 bench/run.py --tiny --reps 1      # the smoke configuration (1-2 minutes)
    python3 bench/run.py --only cli,scale     # some sections

See bench/README.md for what each figure means. Benchmarks print figures; they never fail on
a number (the exit code is non-zero only when a section could not run).
"""

from __future__ import annotations

import argparse
import compileall
import json
import os
import platform
import signal
import subprocess
import sys
import time
import traceback
from pathlib import Path
from typing import Any

if __package__ in (None, ""):
    sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench import cli_latency, deploys, detect, recover, report, zero_downtime
from bench.common import REPO, BenchError, log, workspace

#: Run order: the CLI latencies first, before the sections that leave dozens of containers
#: probing their health behind them (the load average lags minutes behind).
SECTIONS = ("cli", "recover", "detect", "overhead", "scale", "zerodowntime")
RESULTS = REPO / "bench" / "results" / "latest.json"


def options(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="bench/run.py", description=__doc__.split("\n")[0])
    preset = parser.add_mutually_exclusive_group()
    preset.add_argument("--quick", action="store_true", help="fewer repetitions")
    preset.add_argument("--tiny", action="store_true",
                        help="smoke configuration: small projects, no Swarm, no install")
    parser.add_argument("--reps", type=int, help="repetitions of every paired measurement")
    parser.add_argument("--only", help=f"comma-separated sections: {', '.join(SECTIONS)}")
    parser.add_argument("--out", type=Path, default=RESULTS, help=f"JSON file ({RESULTS})")
    parser.add_argument("--no-swarm", action="store_true",
                        help="time to recover: ours only, without the Swarm peer")
    parser.add_argument("--no-shim", action="store_true",
                        help="skip the install into a temporary HOME and the shim figures")
    parser.add_argument("--soak", type=int, help="min_healthy = Swarm monitor, seconds (5)")
    parser.add_argument("--detect-runs", type=int, help="detection runs (10)")
    parser.add_argument("--cli-runs", type=int, help="runs of each CLI command (20)")
    parser.add_argument("--revisions", type=int, help="revisions in the history store (1000)")
    parser.add_argument("--sizes", help="services of the overhead projects (1,20)")
    parser.add_argument("--scale-services", type=int, help="services of the scale project (50)")
    parser.add_argument("--scale-probe-interval", type=float, metavar="S",
                        help="scale: healthcheck interval of the scale project, both tools (2)")
    parser.add_argument("--grace", type=float,
                        help="zerodowntime: stop grace period of the SIGTERM-ignoring app (10)")
    parser.add_argument("--probe-timeout", type=float,
                        help="healthcheck timeout, seconds, over the test image's own (1 s) in "
                             "every section's compose file (--tiny: 10)")
    parser.add_argument("--update-readme", action="store_true",
                        help="write the table into bench/README.md (after the run)")
    parser.add_argument("--render", type=Path, metavar="JSON",
                        help="run nothing: print the table of an earlier results file")
    args = parser.parse_args(argv)
    keys = ("reps", "soak", "detect_runs", "cli_runs", "revisions", "sizes", "scale_services",
            "pin_reps", "swarm", "shim")
    if args.tiny:
        values: tuple[Any, ...] = (1, 1, 1, 1, 50, "1", 3, 1, False, False)
    elif args.quick:
        values = (1, 5, 5, 5, 1000, "1,20", 50, 3, True, True)
    else:
        values = (None, 5, 10, 20, 1000, "1,20", 50, 5, True, True)
    base = dict(zip(keys, values, strict=True))
    for key in ("reps", "soak", "detect_runs", "cli_runs", "revisions", "sizes",
                "scale_services"):
        if getattr(args, key) is None:
            setattr(args, key, base[key])
    args.pin_reps = base["pin_reps"] if args.reps is None else max(args.reps, base["pin_reps"])
    args.swarm = base["swarm"] and not args.no_swarm
    args.shim = base["shim"] and not args.no_shim
    if args.grace is None:
        args.grace = 2.0 if args.tiny else 10.0
    # The smoke run shares the machine with the parallel test suite: a probe of the image's own
    # healthcheck (1 s timeout) that a loaded machine answers late would fail a good deploy,
    # and the run with it. Detection is unchanged: the broken images fail their probe at once.
    if args.probe_timeout is None and args.tiny:
        args.probe_timeout = 10.0
    # Warm-up runs of the CLI commands (1): none in the smoke run, which checks the harness.
    args.cli_warmup = 0 if args.tiny else 1
    # The tiny run covers the section with two modes; the others need the same code paths.
    args.zd_modes = ("stop-first", "start-first") if args.tiny else zero_downtime.MODES
    args.sections = [s.strip() for s in (args.only or ",".join(SECTIONS)).split(",") if s]
    unknown = sorted(set(args.sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section(s): {', '.join(unknown)}")
    return args


def reps(args: argparse.Namespace, default: int) -> int:
    return args.reps if args.reps is not None else default


def _out(*cmd: str) -> str:
    try:
        return subprocess.run(list(cmd), capture_output=True, text=True, timeout=30,
                              check=False, cwd=REPO).stdout.strip()
    except (OSError, subprocess.SubprocessError):
        return ""


def versions() -> dict[str, str]:
    """Versions of the libraries the CLI imports, in the interpreter that runs it."""
    from importlib import metadata

    found = {}
    for name in ("typer", "click", "pydantic", "python-on-whales", "ruamel.yaml", "packaging"):
        try:
            found[name] = metadata.version(name)
        except metadata.PackageNotFoundError:
            found[name] = "-"
    return found


def meta() -> dict[str, Any]:
    from compose_rollback import __version__

    return {
        "started": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "compose_rollback": __version__,
        "git": _out("git", "rev-parse", "--short=12", "HEAD"),
        "python": platform.python_version(),
        "python_executable": sys.executable,
        "libraries": versions(),
        "docker_engine": _out("docker", "version", "--format", "{{.Server.Version}}"),
        "docker_cli": _out("docker", "version", "--format", "{{.Client.Version}}"),
        "compose": _out("docker", "compose", "version", "--short"),
        "cpus": os.cpu_count(),
        "loadavg_start": list(os.getloadavg()),
    }


README = REPO / "bench" / "README.md"
MARKER = "<!-- latest-table -->"


def update_readme(data: dict[str, Any], out: Path) -> None:
    """Replace everything after the marker in bench/README.md with this run's table."""
    text = README.read_text()
    head = text.split(MARKER, 1)[0]
    m = data["meta"]
    libs = ", ".join(f"{k} {v}" for k, v in (m.get("libraries") or {}).items())
    cfg = data["config"]
    where = out.relative_to(REPO) if out.is_relative_to(REPO) else out
    about = (f"Run of {m['started']} at commit {m.get('git') or '?'}: {m['cpus']} CPUs, load "
             f"average {m['loadavg_start'][0]:.1f} at the start and {m['loadavg_end'][0]:.1f} "
             f"at the end (the machine is shared); Docker engine {m['docker_engine']}, CLI "
             f"{m['docker_cli']}, Compose {m['compose']}, Python {m['python']} ({libs}). "
             f"Repetitions: {cfg['reps'] or 'defaults'} (recover 3, overhead 5, scale 3), "
             f"detection runs {cfg['detect_runs']}, CLI runs {cfg['cli_runs']}; "
             f"{m['seconds'] / 60:.0f} minutes in all. Results: `{where}`.")
    README.write_text(f"{head}{MARKER}\n\n{about}\n\n{report.markdown(data['figures'])}\n")


def main(argv: list[str] | None = None) -> int:
    args = options(argv)
    if args.render is not None:
        earlier: dict[str, Any] = json.loads(args.render.read_text())
        earlier["figures"] = report.figures(earlier["sections"])
        print(report.table(earlier["figures"]))
        if args.update_readme:
            update_readme(earlier, args.render.resolve())
        return 0
    # SIGTERM unwinds like Ctrl-C, so the clean-up (and leaving a swarm we created) runs.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # Our CLI runs from the working tree here: give it the bytecode pip gives an installed
    # plugin. Where PYTHONDONTWRITEBYTECODE is set, Python never writes it, and every start
    # measured would include compiling our modules (~50 ms for `history`, ~150 ms for `up`).
    compileall.compile_dir(REPO / "compose_rollback", quiet=1)
    started = time.monotonic()
    data: dict[str, Any] = {"meta": meta(), "config": {
        k: getattr(args, k) for k in ("sections", "reps", "soak", "detect_runs", "cli_runs",
                                      "revisions", "sizes", "scale_services", "pin_reps",
                                      "swarm", "shim", "quick", "tiny", "grace",
                                      "zd_modes", "probe_timeout", "cli_warmup",
                                      "scale_probe_interval")},
        "sections": {}, "errors": {}}
    variants = ["healthy"]
    if "recover" in args.sections:
        variants += ["unhealthy", "crash"]
    elif "detect" in args.sections:
        variants.append("crash")
    if "zerodowntime" in args.sections:
        variants += [v for v in ("unhealthy", "stubborn", "stubborn-unhealthy")
                     if v not in variants]
    try:
        probe = {} if args.probe_timeout is None else {"timeout": f"{args.probe_timeout:g}s"}
        with workspace(variants, healthcheck=probe) as space:
            for name in args.sections:
                log(f"== section {name}")
                began, load = time.monotonic(), os.getloadavg()[0]
                try:
                    data["sections"][name] = run_section(name, space, args)
                    # A part of a section that failed while the rest measured (zerodowntime).
                    if data["sections"][name].get("errors"):
                        data["errors"][name] = json.dumps(data["sections"][name]["errors"])
                except BenchError as error:
                    log(f"section {name} failed: {error}")
                    data["errors"][name] = str(error)[-4000:]
                except Exception:
                    log(f"section {name} crashed:\n{traceback.format_exc()}")
                    data["errors"][name] = traceback.format_exc()[-4000:]
                section = data["sections"].setdefault(name, {})
                section["seconds"] = round(time.monotonic() - began, 1)
                section["loadavg_start"] = round(load, 2)
    except KeyboardInterrupt:
        data["errors"]["interrupted"] = "interrupted; partial results"
        log("interrupted: cleaned up, writing partial results")
    data["meta"]["seconds"] = round(time.monotonic() - started, 1)
    data["meta"]["loadavg_end"] = list(os.getloadavg())
    data["figures"] = report.figures(data["sections"])
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(data, indent=2, sort_keys=False) + "\n")
    print(report.table(data["figures"]))
    if args.update_readme:
        update_readme(data, args.out.resolve())
    print(f"\nresults: {args.out}  ({data['meta']['seconds']:.0f} s, load average "
          f"{data['meta']['loadavg_start'][0]:.1f} -> {data['meta']['loadavg_end'][0]:.1f})")
    if data["errors"]:
        print(f"errors in: {', '.join(data['errors'])} (see the JSON file)", file=sys.stderr)
        return 1
    return 0


def run_section(name: str, space: Any, args: argparse.Namespace) -> dict[str, Any]:
    if name == "recover":
        return recover.run(space, reps=reps(args, 3), soak_seconds=args.soak, swarm=args.swarm)
    if name == "detect":
        return detect.run(space, runs=args.detect_runs, crash_after=1.5)
    if name == "overhead":
        sizes = [int(s) for s in str(args.sizes).split(",") if s.strip()]
        return deploys.overhead(space, sizes=sizes, reps=reps(args, 5), warmup=not args.tiny)
    if name == "cli":
        return cli_latency.run(space, revisions=args.revisions, runs=args.cli_runs,
                               shim=args.shim, warmup=args.cli_warmup)
    if name == "zerodowntime":
        return zero_downtime.run(space, reps=reps(args, 3), modes=args.zd_modes,
                                 grace=args.grace, soak_seconds=args.soak, swarm=args.swarm)
    return deploys.scale(space, services=args.scale_services, reps=reps(args, 3),
                         pin_reps=args.pin_reps, warmup=not args.tiny,
                         probe_interval=args.scale_probe_interval)


if __name__ == "__main__":
    raise SystemExit(main())
