"""bench/REPORT.md and bench/latency.png from the runs of bench/run.py."""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
from importlib import metadata
from pathlib import Path

from bench import procstats

MB = 1024 * 1024
P99_LIMIT_MS = 100


def write_report(results: list, context: dict, args: argparse.Namespace) -> None:
    chart_note = write_chart(results, args.chart)
    lines = [
        "# Benchmark: Peer Circles against a bare Channels chat",
        "",
        "Written by `bench/run.py` (`make bench`). Saturation is the highest deliveries per",
        f"second of any phase with p99 delivery latency under {P99_LIMIT_MS} ms and no loss.",
        "",
        "## How it ran",
        "",
        f"- Command: `{context['command']}`",
        f"- Machine: {machine_line()}",
        f"- Date: {context['started_at']}; the whole run took {context.get('total_seconds')} s "
        f"(preparing the database and fixtures: {context.get('prepare_seconds', '?')} s).",
        f"- Software: {software_line(context)}",
        f"- Load: {args.circles} circles x {args.members} members = "
        f"{args.circles * args.members} sockets; steady {args.rate:g} share/s per circle "
        f"({args.rate * args.circles * args.members:g} deliveries/s) for "
        f"{args.steady_seconds:g} s; then steps of {args.step_seconds:g} s, the rate "
        f"x{args.step_factor:g} while it holds (halved while it does not), up to "
        f"{args.max_steps} steps; after a phase that fails, the next waits (up to 20 s) "
        "until the backlog it left has arrived. Senders take turns round-robin within "
        "each circle.",
        "- Peer Circles runs with DEBUG off, on its own PostgreSQL database "
        f"(`{args.database}`) and Redis database {args.redis_db_app}; the baseline on Redis "
        f"database {args.redis_db_baseline}. Each run starts with its Redis database flushed.",
        "",
    ]
    lines += summary_table(results)
    lines += ratio_table(results)
    lines += resource_table(results)
    lines += database_table(results)
    lines += phase_table(results)
    lines += [
        "## Latency against load",
        "",
        chart_note,
        "",
        "## Notes",
        "",
        "- Latency is measured in one process (the load generator) from just before a share",
        "  is written to its socket to the moment each copy is read, so one clock times both",
        "  ends. When the generator's CPU share nears 1.0, the generator is the bottleneck",
        "  and the figures are its limit, not the server's.",
        "- Deliveries expected = shares accepted x sockets of that circle connected when the",
        "  share was sent (the sender's own copy included). A copy not read within the drain",
        "  window after its phase counts as lost (and as late if it comes later).",
        "- Refused shares (error frames answering a share) are counted apart, by code, and are",
        "  not expected anywhere. Peer Circles' rate is kept under 80% of its share limit",
        "  (20 per 30 s per member), so the steps stop at that ceiling if nothing fails first.",
        "- Shares go to the open floor (the circle's default mode); hands and passes in queue",
        "  mode are not exercised. Socket ready = the handshake (and, for Peer Circles, the",
        "  `hello` frame).",
        "- Memory per socket above idle = (peak RSS of a daphne process - its idle RSS)",
        "  / the sockets it held.",
        "- CPU is user + system time read from /proc while the load ran (warm-up excluded).",
        "  Redis and PostgreSQL are shared with anything else on the machine; their figures",
        "  include that. PostgreSQL's CPU is the postmaster's with every child it has",
        "  reaped, so backends that live a few milliseconds count; during the baseline runs",
        "  it shows the machine's background. Bench backends are sampled every 0.5 s.",
        "- Idle size is read after one member has connected and left (the first socket",
        "  loads routing, the consumer and a database connection), so the per-socket",
        "  figure is what each further socket costs.",
        "- The baseline sends no message history, has no auth and no database, and its",
        "  channel layer has no encryption and the default capacity; Peer Circles'",
        "  layer encrypts every group message (`symmetric_encryption_keys`).",
    ]
    lines += [f"- {note}" for note in context.get("notes", [])]
    args.report.write_text("\n".join(lines) + "\n")


# Tables --------------------------------------------------------------------------


def steady_of(result) -> dict | None:
    return next((p for p in result.load.get("phases", []) if p["name"] == "steady"), None)


def summary_table(results: list) -> list[str]:
    lines = [
        "## Runs",
        "",
        "| run | sockets | connect all (s) | one socket ready, p50 / p99 (ms) | "
        "steady: sent / refused / lost / dup | steady delivered/s | "
        "steady p50 / p95 / p99 / max (ms) | saturation (deliveries/s) |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        label = result.target.label
        if result.error:
            lines.append(f"| {label} | failed: {result.error} | | | | | | |")
            continue
        connect = result.load["connect"]
        steady = steady_of(result)
        sockets = f"{connect['sockets_connected']} / {connect['sockets_wanted']}"
        if connect.get("failures"):
            sockets += " (" + ", ".join(f"{k}: {v}" for k, v in connect["failures"].items()) + ")"
        if steady:
            counts = (
                f"{steady['shares_sent']} / {refused_text(steady)} / {steady['losses']} / "
                f"{steady['duplicates']}"
            )
            latency = " / ".join(
                fmt(steady["latency_ms"][key]) for key in ("p50", "p95", "p99", "max")
            )
            delivered = fmt(steady["deliveries_per_second"])
        else:
            counts, latency, delivered = "no steady phase", "", ""
        ready = connect["socket_ready_ms"]
        lines.append(
            f"| {label} | {sockets} | {connect['seconds_to_connect_all']} | "
            f"{fmt(ready['p50'])} / {fmt(ready['p99'])} | {counts} | "
            f"{delivered} | {latency} | {saturation_text(result.load)} |"
        )
    return [*lines, ""]


def saturation_text(load: dict) -> str:
    best = load.get("saturation_deliveries_per_second")
    text = fmt(best) if best is not None else "none passed"
    stopped = load.get("stopped", "")
    if stopped == "at the rate limit's ceiling":
        text = f"≥ {text} (at the rate limit's ceiling)"
    elif load.get("lowest_failing_offered_per_second") is None and best is not None:
        text = f"≥ {text} (never failed; {stopped or 'no more steps'})"
    return text


def refused_text(phase: dict) -> str:
    if not phase["shares_refused"]:
        return "0"
    codes = ", ".join(f"{code} {count}" for code, count in phase["refused_by_code"].items())
    return f"{phase['shares_refused']} ({codes})"


def ratio_table(results: list) -> list[str]:
    lines = [
        "## Peer Circles / best baseline, same topology",
        "",
        "| daphne processes | Peer Circles layer | best baseline | saturation ratio | "
        "steady p99 ratio |",
        "| --- | --- | --- | --- | --- |",
    ]
    ok = [r for r in results if not r.error]
    for app in [r for r in ok if r.target.app == "peer_circles"]:
        baselines = [
            r
            for r in ok
            if r.target.app == "baseline"
            and r.target.processes == app.target.processes
            and r.load.get("saturation_deliveries_per_second")
        ]
        if not baselines:
            lines.append(f"| {app.target.processes} | {app.target.layer} | none measured | | |")
            continue
        best = max(baselines, key=lambda r: r.load["saturation_deliveries_per_second"])
        app_saturation = app.load.get("saturation_deliveries_per_second")
        saturation_ratio = (
            f"{app_saturation / best.load['saturation_deliveries_per_second']:.2f}"
            if app_saturation
            else "- (no phase passed)"
        )
        app_steady, base_steady = steady_of(app), steady_of(best)
        p99_ratio = ""
        if app_steady and base_steady:
            app_p99, base_p99 = app_steady["latency_ms"]["p99"], base_steady["latency_ms"]["p99"]
            if app_p99 and base_p99:
                p99_ratio = f"{app_p99 / base_p99:.2f}"
        lines.append(
            f"| {app.target.processes} | {app.target.layer} | {best.target.layer} "
            f"({fmt(best.load['saturation_deliveries_per_second'])}/s) | "
            f"{saturation_ratio} | {p99_ratio} |"
        )
    return [*lines, ""]


def resource_table(results: list) -> list[str]:
    lines = [
        "## Resources while each run's load ran",
        "",
        "| run | daphne CPU s (each) | daphne peak RSS MB (each) | KB per socket above idle "
        "(each) | Redis CPU s / peak RSS MB | PostgreSQL CPU s, whole cluster | bench "
        "backends: seen, most at once, their peak RSS MB | generator CPU s |",
        "| --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        if result.error:
            continue
        servers = result.servers
        cpu = " + ".join(fmt(server["cpu_seconds"]) for server in servers)
        rss = " + ".join(f"{server['peak_rss_bytes'] / MB:.0f}" for server in servers)
        per_socket = " / ".join(
            f"{server['bytes_per_socket_above_idle'] / 1024:.1f}"
            if server["bytes_per_socket_above_idle"] is not None
            else "-"
            for server in servers
        )
        redis = f"{fmt(result.redis['cpu_seconds'])} / {result.redis['peak_rss_bytes'] / MB:.0f}"
        pg = result.postgres
        backends = "-"
        if "backends_seen" in pg:
            backends = (
                f"{pg['backends_seen']}, {pg['peak_backends']}, "
                f"{pg['peak_total_rss_bytes'] / MB:.0f}"
            )
        lines.append(
            f"| {result.target.label} | {cpu} | {rss} | {per_socket} | {redis} | "
            f"{fmt(pg.get('cluster_cpu_seconds'))} | {backends} | "
            f"{fmt(result.generator.get('cpu_seconds'))} |"
        )
    return [*lines, ""]


def database_table(results: list) -> list[str]:
    """What Peer Circles asked of PostgreSQL during each run, from pg_stat_database."""
    rows = [r for r in results if not r.error and r.postgres.get("database")]
    if not rows:
        return []
    lines = [
        "## PostgreSQL work during each Peer Circles run (pg_stat_database)",
        "",
        "Counted from the first socket to the last (connecting, the steady load, every step,",
        "and the once-a-second sweep of each process), so per share it is an upper bound.",
        "",
        "| run | shares accepted | connections opened | transactions | rows inserted / "
        "updated / deleted | per accepted share: connections, transactions, rows written |",
        "| --- | --- | --- | --- | --- | --- |",
    ]
    for result in rows:
        database = result.postgres["database"]
        accepted = sum(p["shares_accepted"] for p in result.load.get("phases", []))
        written = database["tup_inserted"] + database["tup_updated"] + database["tup_deleted"]
        per_share = "-"
        if accepted:
            per_share = (
                f"{database['sessions'] / accepted:.1f}, "
                f"{(database['xact_commit'] + database['xact_rollback']) / accepted:.1f}, "
                f"{written / accepted:.1f}"
            )
        lines.append(
            f"| {result.target.label} | {accepted:,} | {database['sessions']:,} | "
            f"{database['xact_commit'] + database['xact_rollback']:,} | "
            f"{database['tup_inserted']:,} / {database['tup_updated']:,} / "
            f"{database['tup_deleted']:,} | {per_share} |"
        )
    return [*lines, ""]


def phase_table(results: list) -> list[str]:
    lines = [
        "## Every phase",
        "",
        "| run | phase | shares/s per circle | offered deliveries/s | delivered/s | sent | "
        "refused | expected | lost | dup | late | p50 / p95 / p99 / max (ms) | generator CPU | "
        "verdict |",
        "| --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |",
    ]
    for result in results:
        if result.error:
            continue
        for phase in result.load.get("phases", []):
            latency = " / ".join(
                fmt(phase["latency_ms"][key]) for key in ("p50", "p95", "p99", "max")
            )
            lines.append(
                f"| {result.target.label} | {phase['name']} | {phase['rate_per_circle']:.2f} | "
                f"{fmt(phase['offered_deliveries_per_second'])} | "
                f"{fmt(phase['deliveries_per_second'])} | {phase['shares_sent']} | "
                f"{refused_text(phase)} | {phase['deliveries_expected']} | {phase['losses']} | "
                f"{phase['duplicates']} | {phase['late_deliveries']} | {latency} | "
                f"{phase['generator_cpu_share']:.2f} | {'pass' if phase['passes'] else 'fail'} |"
            )
        extra = result.load
        details = []
        if extra.get("disconnects_by_close_code"):
            details.append(f"disconnects by close code {extra['disconnects_by_close_code']}")
        if extra.get("unmatched_errors_by_code"):
            details.append(f"other error frames {extra['unmatched_errors_by_code']}")
        if extra.get("other_frames_by_type"):
            details.append(f"other frames {extra['other_frames_by_type']}")
        if details:
            lines.append(f"| {result.target.label} | *also* | " + "; ".join(details) + " |")
    return [*lines, ""]


def fmt(value) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.1f}" if value < 100 else f"{value:,.0f}"
    return f"{value:,}"


# Chart ---------------------------------------------------------------------------


def write_chart(results: list, path: Path) -> str:
    """latency.png: p99 (solid) and p50 (dotted) against delivered load, one line per run."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return (
            "No chart: matplotlib is not installed (`.venv/bin/pip install matplotlib`, "
            "then run again)."
        )
    figure, axes = plt.subplots(figsize=(9, 5.5))
    plotted = False
    for result in results:
        phases = [p for p in result.load.get("phases", []) if p["latency_ms"]["p99"] is not None]
        if result.error or not phases:
            continue
        phases.sort(key=lambda phase: phase["deliveries_per_second"])
        load = [phase["deliveries_per_second"] for phase in phases]
        (line,) = axes.plot(
            load, [p["latency_ms"]["p99"] for p in phases], marker="o", label=result.target.label
        )
        axes.plot(
            load, [p["latency_ms"]["p50"] for p in phases], linestyle=":", color=line.get_color()
        )
        failed = [p for p in phases if not p["passes"]]
        axes.scatter(
            [p["deliveries_per_second"] for p in failed],
            [p["latency_ms"]["p99"] for p in failed],
            marker="x",
            s=80,
            color=line.get_color(),
        )
        plotted = True
    if not plotted:
        plt.close(figure)
        return "No chart: no run measured any latency."
    axes.axhline(P99_LIMIT_MS, color="grey", linestyle="--", linewidth=1)
    axes.set_yscale("log")
    axes.set_xlabel("deliveries per second (received)")
    axes.set_ylabel("delivery latency, ms (p99 solid, p50 dotted; x = failed phase)")
    axes.set_title("Latency against load")
    axes.grid(True, which="both", alpha=0.3)
    axes.legend(fontsize=8)
    figure.tight_layout()
    figure.savefig(path, dpi=110)
    plt.close(figure)
    return f"![latency against load]({path.name})"


# Machine -------------------------------------------------------------------------


def machine_line() -> str:
    try:
        cores = subprocess.run(["nproc"], capture_output=True, text=True, check=True).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        cores = str(os.cpu_count())
    memory = procstats.memory_total_bytes() / (1024**3)
    return (
        f"`nproc` = {cores}; {procstats.cpu_model()}; {memory:.1f} GiB RAM; "
        f"{platform.system()} {platform.release()}"
    )


def software_line(context: dict) -> str:
    versions = []
    for package in ("daphne", "channels", "channels-redis", "redis", "Django", "websockets"):
        try:
            versions.append(f"{package} {metadata.version(package)}")
        except metadata.PackageNotFoundError:
            continue
    services = context.get("services", {})
    return (
        f"Python {platform.python_version()}; "
        + ", ".join(versions)
        + f"; PostgreSQL {services.get('postgres', '?')}; Redis server {services.get('redis', '?')}"
    )
