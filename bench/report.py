"""From section results to the table of figures: each with median, min, max and its target."""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from bench.common import paired_ratios, summarize


def _row(rid: str, figure: str, stats: Mapping[str, Any] | None, *, unit: str = "s",
         limit: float | None = None, op: str = "", key: str = "median",
         note: str = "") -> dict[str, Any]:
    stats = stats or {}
    value = stats.get(key)
    row: dict[str, Any] = {
        "id": rid, "figure": figure, "unit": unit, "median": stats.get("median"),
        "min": stats.get("min"), "max": stats.get("max"), "p95": stats.get("p95"),
        "n": stats.get("n", 0), "target": f"{key} {op} {_fmt(limit, unit)}" if limit else "",
        "compared": key if limit else "", "vs_target": None, "verdict": "-", "note": note,
    }
    if limit and value is not None:
        row["vs_target"] = round(float(value) / limit, 3)
        good = float(value) <= limit if op == "<=" else float(value) < limit
        row["verdict"] = "ok" if good else "MISS"
    elif limit:
        row["verdict"] = "n/a"
    return row


def _ratio_row(rid: str, figure: str, a: Mapping[str, Any] | None, b: Mapping[str, Any] | None,
               *, limit: float | None, op: str = "<=", note: str = "") -> dict[str, Any]:
    """Ratio of medians; min and max are the run-by-run ratios (the runs were paired)."""
    if not a or not b or not a.get("median") or not b.get("median"):
        return _row(rid, figure, None, unit="x", limit=limit, op=op, note=note)
    paired = paired_ratios(a.get("samples", []), b.get("samples", []))
    stats = {"median": round(a["median"] / b["median"], 3), "min": paired["min"],
             "max": paired["max"], "n": paired["n"], "p95": None}
    return _row(rid, figure, stats, unit="x", limit=limit, op=op, note=note)


def _zero_row(rid: str, figure: str, stats: Mapping[str, Any] | None, *,
              target: bool) -> dict[str, Any]:
    """A count per deploy whose target is "none in any run": the verdict reads the max."""
    row = _row(rid, figure, stats, unit="n")
    if target:
        row["target"], row["compared"] = "max = 0", "max"
        worst = row["max"]
        row["verdict"] = "n/a" if worst is None else "ok" if worst == 0 else "MISS"
    return row


def _fmt(value: float | None, unit: str) -> str:
    if value is None:
        return "-"
    if unit == "ms":
        return f"{value * 1000:.0f} ms" if value >= 0.1 else f"{value * 1000:.1f} ms"
    if unit == "x":
        return f"{value:.2f}x"
    if unit == "n":
        return f"{value:g}"
    return f"{value:.2f} s"


def figures(sections: Mapping[str, Any]) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    rec = sections.get("recover")
    if isinstance(rec, dict) and "figures" in rec:
        f = rec["figures"]
        soak = rec.get("min_healthy")
        for case in rec.get("cases", []):
            mine, peer = f.get(f"ours.{case}", {}), f.get(f"swarm.{case}", {})
            rows += [
                _row(f"recover.{case}.ours.exit",
                     f"recover/{case}: ours, until exit 1 (restored, soaked {soak})",
                     mine.get("exit")),
                _row(f"recover.{case}.ours.healthy",
                     f"recover/{case}: ours, until old release healthy", mine.get("healthy_again")),
            ]
            if peer:
                rows += [
                    _row(f"recover.{case}.swarm.done",
                         f"recover/{case}: Swarm, until rollback_completed + healthy",
                         peer.get("done")),
                    _row(f"recover.{case}.swarm.healthy",
                         f"recover/{case}: Swarm, until old release healthy",
                         peer.get("healthy_again")),
                    # The measure: ours until the previous release is healthy again,
                    # Swarm until its UpdateStatus says rollback_completed and the old task
                    # is healthy. The two rows after it compare stricter pairs, no target.
                    _ratio_row(f"recover.{case}.ratio", f"recover/{case}: ratio ours/Swarm "
                               "(old healthy vs rollback_completed + healthy)",
                               mine.get("healthy_again"), peer.get("done"), limit=0.25),
                    _ratio_row(f"recover.{case}.ratio_healthy", f"recover/{case}: ratio "
                               "ours/Swarm (old healthy vs old healthy)",
                               mine.get("healthy_again"), peer.get("healthy_again"),
                               limit=None),
                    _ratio_row(f"recover.{case}.ratio_exit", f"recover/{case}: ratio "
                               "ours/Swarm (our exit after the soak vs rollback_completed "
                               "+ healthy)", mine.get("exit"), peer.get("done"), limit=None),
                ]
            rows.append(_row(f"recover.{case}.ours.applying",
                             f"recover/{case}: ours, start -> 'applying revision' (pre-apply)",
                             mine.get("applying")))
            rows.append(_row(f"recover.{case}.ours.detect",
                             f"recover/{case}: failure event -> our decision",
                             mine.get("detection_latency"), unit="ms"))
    det = sections.get("detect")
    if isinstance(det, dict) and "latency_from_finished_at" in det:
        rows += [
            _row("detect.finished_at", "detection: container FinishedAt -> our decision",
                 det["latency_from_finished_at"], unit="ms", limit=1.0, op="<", key="p95"),
            _row("detect.die_event", "detection: die event -> our decision",
                 det["latency_from_die_event"], unit="ms", limit=1.0, op="<", key="p95"),
        ]
    over = sections.get("overhead")
    if isinstance(over, dict):
        for size, data in over.items():
            if not isinstance(data, dict) or "ours" not in data:
                continue
            rows += [
                _row(f"overhead.{size}.ours", f"good deploy, {size} service(s): ours up "
                     "--min-healthy 0", data["ours"]),
                _row(f"overhead.{size}.compose", f"good deploy, {size} service(s): compose up "
                     "-d --wait", data["compose"]),
                _ratio_row(f"overhead.{size}.ratio", f"good deploy, {size} service(s): ratio",
                           data["ours"], data["compose"], limit=1.08),
            ]
    cli = sections.get("cli")
    if isinstance(cli, dict) and "commands" in cli:
        c = cli["commands"]
        n = cli.get("revisions")
        targets = {"history": 0.150, "--help": 0.150}
        labels = {"history": f"cli: history ({n} revisions)",
                  "history --json": f"cli: history --json ({n} revisions)",
                  "status": "cli: status", "--help": "cli: --help",
                  "docker compose ps": "cli: docker compose ps (reference)",
                  "python -c pass": "cli: python -c pass (interpreter floor)",
                  "docker compose rollback history": f"cli: docker compose rollback history "
                  f"({n}, installed)",
                  "docker compose rollback --help": "cli: docker compose rollback --help "
                  "(installed)"}
        for name, label in labels.items():
            if name in c:
                limit = targets.get(name)
                rows.append(_row(f"cli.{name}", label, c[name], unit="ms", limit=limit,
                                 op="<" if limit else ""))
        cpu = cli.get("cpu") or {}
        for name in ("history", "--help", "python -c pass"):
            if name in cpu:
                rows.append(_row(f"cli.cpu.{name}", f"cli: {name}, CPU time (user+sys)",
                                 cpu[name], unit="ms"))
        if "docker compose ps" in c:  # issue 14's targets: as fast as compose's own ps
            for name, limit in (("history", 1.0), ("--help", 1.0), ("status", 1.5)):
                if name in c:
                    rows.append(_ratio_row(f"cli.{name.strip('-')}_vs_ps",
                                           f"cli: ratio {name} / compose ps", c[name],
                                           c["docker compose ps"], limit=limit))
        shim = cli.get("shim") or {}
        shim_cmds = shim.get("commands") or {}
        for name, label in (
                ("docker compose version (plain)", "shim: docker compose version, real plugin"),
                ("docker compose version (shim)", "shim: docker compose version, via the shim"),
                ("plugin direct: compose version (plain)", "shim: plugin run directly, real"),
                ("plugin direct: compose version (shim)", "shim: plugin run directly, shim")):
            if name in shim_cmds:
                rows.append(_row(f"shim.{name}", label, shim_cmds[name], unit="ms"))
        if "added: docker compose version" in shim:
            rows.append(_row("shim.added", "shim: added to docker compose version (paired)",
                             shim["added: docker compose version"], unit="ms", limit=0.010,
                             op="<"))
            rows.append(_row("shim.added_direct", "shim: added, plugin run directly (paired)",
                             shim["added: plugin direct: compose version"], unit="ms",
                             limit=0.010, op="<"))
            for label, key in (("docker compose version", "docker compose version"),
                               ("plugin run directly", "plugin direct: compose version")):
                value = shim.get(f"added cpu: {key}")
                fastest = shim.get(f"added fastest: {key}")
                rows.append(_row(f"shim.added_cpu.{key}", f"shim: added CPU time, {label} "
                                 "(difference of medians)", {"median": value, "n": 1},
                                 unit="ms", note=f"fastest run minus fastest run: {fastest}"))
    sc = sections.get("scale")
    if isinstance(sc, dict) and "pinning" in sc:
        n = sc.get("services")
        rows += [
            _row("scale.pinning", f"scale: pinning {n} services (prepare_images+pin_services)",
                 sc["pinning"], unit="ms", limit=1.0, op="<"),
            _row("scale.retention", f"scale: retention tags for {n} services (keep_alive)",
                 sc["retention_tags"], unit="ms"),
            _row("scale.dry_run", f"scale: up --dry-run, {n} services (whole CLI)",
                 sc["dry_run"]),
        ]
        up = sc.get("up") or {}
        if "ours" in up:
            rows += [
                _row("scale.up.ours", f"scale: good deploy {n} services, ours", up["ours"]),
                _row("scale.up.compose", f"scale: good deploy {n} services, compose",
                     up["compose"]),
                _ratio_row("scale.up.ratio", f"scale: good deploy {n} services, ratio",
                           up["ours"], up["compose"], limit=1.2),
            ]
    rows += _zero_downtime(sections.get("zerodowntime"))
    return rows


MODE_LABELS = {"compose": "compose up -d --wait", "stop-first": "ours stop-first",
               "start-first": "ours start-first", "canary": "ours canary",
               "swarm": "Swarm start-first"}
ZERO_TARGET = ("start-first", "canary")  # the modes whose target is 0 failed, 0 broken


def _zero_downtime(zd: Any) -> list[dict[str, Any]]:
    rows: list[dict[str, Any]] = []
    if not isinstance(zd, dict):
        return rows
    proxy = zd.get("proxy") or {}
    f = proxy.get("figures") or {}
    rate = proxy.get("rate")
    for case in proxy.get("cases", []):
        for mode in proxy.get("modes", []):
            got = f.get(f"{mode}.{case}") or {}
            label = f"zerodowntime/{case} release, {MODE_LABELS.get(mode, mode)}"
            goal = mode in ZERO_TARGET
            rows += [
                _zero_row(f"zerodowntime.{mode}.{case}.failed",
                          f"{label}: failed requests per deploy ({rate:g} req/s)",
                          got.get("failed"), target=goal),
                _zero_row(f"zerodowntime.{mode}.{case}.broken_served",
                          f"{label}: requests answered by the broken release",
                          got.get("broken_served"), target=goal),
                _row(f"zerodowntime.{mode}.{case}.deploy", f"{label}: deploy command",
                     got.get("deploy_seconds")),
            ]
    start, stop = f.get("start-first.good") or {}, f.get("stop-first.good") or {}
    if start and stop:
        rows.append(_ratio_row("zerodowntime.start_vs_stop", "zerodowntime/good release: "
                               "start-first / stop-first deploy duration",
                               start.get("deploy_seconds"), stop.get("deploy_seconds"),
                               limit=None))
    st = zd.get("stubborn") or {}
    sf = (st.get("figures") or {})
    grace = st.get("grace")
    mine, peer, sta = sf.get("stop-first") or {}, sf.get("swarm") or {}, sf.get("start-first")
    if mine:
        rows += [
            _row("zerodowntime.stubborn.stop_first.healthy", f"stubborn (ignores SIGTERM, grace "
                 f"{grace:g}s): ours stop-first, until old release healthy",
                 mine.get("healthy_again")),
            _row("zerodowntime.stubborn.stop_first.exit", "stubborn: ours stop-first, until "
                 f"exit 1 (restored, soaked {st.get('soak')})", mine.get("exit")),
            _row("zerodowntime.stubborn.floor", "stubborn: floor (broken start -> unhealthy "
                 "+ restored start -> healthy)", mine.get("floor")),
            _row("zerodowntime.stubborn.over", "stubborn: ours until old healthy - floor - "
                 "one grace period", mine.get("over_floor_and_grace"), limit=2.0, op="<="),
        ]
    if peer:
        rows += [
            _row("zerodowntime.stubborn.swarm.done", "stubborn: Swarm, until "
                 "rollback_completed + healthy", peer.get("done")),
            _row("zerodowntime.stubborn.swarm.healthy", "stubborn: Swarm, until old release "
                 "healthy", peer.get("healthy_again")),
        ]
        if mine:
            rows.append(_ratio_row("zerodowntime.stubborn.ratio", "stubborn: ratio ours/Swarm "
                                   "(old healthy vs rollback_completed + healthy)",
                                   mine.get("healthy_again"), peer.get("done"), limit=None))
    if sta:
        rows += [
            _row("zerodowntime.stubborn.start_first.gone", "stubborn: ours start-first, until "
                 "the failed container is gone", sta.get("failed_gone")),
            _row("zerodowntime.stubborn.start_first.exit", "stubborn: ours start-first, until "
                 "exit 1", sta.get("exit")),
            _zero_row("zerodowntime.stubborn.start_first.old_stopped", "stubborn: ours "
                      "start-first, old containers stopped", sta.get("old_stopped"), target=True),
        ]
    return rows


def _vs(row: Mapping[str, Any]) -> str:
    if row["verdict"] in ("ok", "MISS") and row["vs_target"] is None:
        return str(row["verdict"])  # a count against "none": no ratio to show
    if row["verdict"] == "n/a":
        return "n/a"
    return "" if row["vs_target"] is None else f"{row['vs_target']:.2f} {row['verdict']}"


def table(rows: list[dict[str, Any]]) -> str:
    header = ["figure", "median", "min", "max", "n", "target", "vs target"]
    body = []
    for r in rows:
        unit = r["unit"]
        target = r["target"]
        vs = _vs(r)
        med = _fmt(r["median"], unit)
        if r["compared"] == "p95":
            med = f"{med} (p95 {_fmt(r['p95'], unit)})"
        body.append([r["figure"], med, _fmt(r["min"], unit), _fmt(r["max"], unit),
                     str(r["n"]), target, vs])
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h)
              for i, h in enumerate(header)]
    lines = [" | ".join(h.ljust(w) for h, w in zip(header, widths, strict=True))]
    lines.append("-|-".join("-" * w for w in widths))
    lines += [" | ".join(c.ljust(w) for c, w in zip(b, widths, strict=True)) for b in body]
    return "\n".join(line.rstrip() for line in lines)


def markdown(rows: list[dict[str, Any]]) -> str:
    header = ["Figure", "Median", "Min", "Max", "n", "Target", "vs target"]
    lines = ["| " + " | ".join(header) + " |", "|" + "---|" * len(header)]
    for r in rows:
        unit = r["unit"]
        med = _fmt(r["median"], unit)
        if r["compared"] == "p95":
            med = f"{med} (p95 {_fmt(r['p95'], unit)})"
        vs = _vs(r)
        cells = [r["figure"], med, _fmt(r["min"], unit), _fmt(r["max"], unit), str(r["n"]),
                 r["target"] or "-", vs or "-"]
        lines.append("| " + " | ".join(c.replace("|", "\\|") for c in cells) + " |")
    return "\n".join(lines)


__all__ = ["figures", "markdown", "summarize", "table"]
