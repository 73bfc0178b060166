"""`make bench`: the baseline chat and Peer Circles under the same load, in one run.

    .venv/bin/python -m bench.run [--circles 200 --members 10 --rate 1 ...]

For each target (the baseline of bench/baseline/ on both channel layers, Peer
Circles on the layer it is configured with, and the other one if time allows), on
one and on two daphne processes: connect every member, hold a steady load, then
step the rate to the saturation point. Samples the CPU and memory of each server,
Redis and the PostgreSQL backends, and writes bench/REPORT.md and bench/latency.png.

Everything stops within --time-limit seconds (600 by default): runs are given
equal shares of the time left, and a watchdog ends whatever is still running.
Every option also reads an environment variable (BENCH_CIRCLES, ...), so
`BENCH_CIRCLES=3 BENCH_MEMBERS=4 make bench` is a quick check.
"""

from __future__ import annotations

import argparse
import json
import os
import shlex
import signal
import socket
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path

from bench import procstats
from bench.fixtures import ensure_empty_database

PROJECT_ROOT = Path(__file__).resolve().parent.parent
BENCH_DIR = PROJECT_ROOT / "bench"
# Sessions are signed with SECRET_KEY: the fixtures and the servers must share it.
BENCH_SECRET_KEY = "bench-only-secret-key-never-used-anywhere-else-0123456789"  # noqa: S105
# Time kept back at the end for the report; the watchdog fires just before the limit.
REPORT_RESERVE_SECONDS = 20
WATCHDOG_MARGIN_SECONDS = 6
SERVER_START_SECONDS = 30
# Shares of the time for each run: Peer Circles does more per socket to connect it.
RUN_WEIGHTS = {"baseline": 1.0, "peer_circles": 1.6}
MIN_RUN_SECONDS = 12


@dataclass(frozen=True)
class Target:
    app: str  # "baseline" or "peer_circles"
    layer: str  # "core" or "pubsub"
    processes: int
    required: bool = True

    @property
    def label(self) -> str:
        name = "Peer Circles" if self.app == "peer_circles" else "baseline"
        return f"{name} · {self.layer} · {self.processes} daphne"


@dataclass
class RunResult:
    target: Target
    load: dict = field(default_factory=dict)
    servers: list[dict] = field(default_factory=list)
    redis: dict = field(default_factory=dict)
    postgres: dict = field(default_factory=dict)
    generator: dict = field(default_factory=dict)
    wall_seconds: float = 0.0
    error: str = ""


def env_default(name: str, default):
    raw = os.environ.get(name)
    return type(default)(raw) if raw not in (None, "") else default


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    add = parser.add_argument
    add("--circles", type=int, default=env_default("BENCH_CIRCLES", 200))
    add("--members", type=int, default=env_default("BENCH_MEMBERS", 10))
    add("--rate", type=float, default=env_default("BENCH_RATE", 1.0), help="shares/s per circle")
    add("--steady-seconds", type=float, default=env_default("BENCH_STEADY_SECONDS", 15.0))
    add("--step-seconds", type=float, default=env_default("BENCH_STEP_SECONDS", 6.0))
    add("--max-steps", type=int, default=env_default("BENCH_MAX_STEPS", 6))
    add("--step-factor", type=float, default=env_default("BENCH_STEP_FACTOR", 1.5))
    add("--processes", default=env_default("BENCH_PROCESSES", "1,2"), help="e.g. 1,2")
    add(
        "--app-layers",
        default=env_default(
            "BENCH_APP_LAYERS", os.environ.get("REDIS_CHANNEL_LAYER", "pubsub") + ",auto"
        ),
        help="Peer Circles' layers: the first always, 'auto' adds the other if time allows",
    )
    add("--baseline-layers", default=env_default("BENCH_BASELINE_LAYERS", "pubsub,core"))
    add("--time-limit", type=float, default=env_default("BENCH_TIME_LIMIT", 600.0))
    add("--database", default=env_default("BENCH_DATABASE", "peer_circles_bench"))
    add("--pg-host", default=env_default("BENCH_PG_HOST", "127.0.0.1"))
    add("--pg-port", type=int, default=env_default("BENCH_PG_PORT", 5432))
    add("--pg-user", default=env_default("BENCH_PG_USER", os.environ.get("USER", "root")))
    add("--redis", default=env_default("BENCH_REDIS", "redis://127.0.0.1:6379"))
    add("--redis-db-app", type=int, default=env_default("BENCH_REDIS_DB_APP", 8))
    add("--redis-db-baseline", type=int, default=env_default("BENCH_REDIS_DB_BASELINE", 9))
    add("--report", type=Path, default=BENCH_DIR / "REPORT.md")
    add("--chart", type=Path, default=BENCH_DIR / "latency.png")
    add("--work-dir", type=Path, default=BENCH_DIR / "var")
    return parser.parse_args(argv)


# Progress ------------------------------------------------------------------------


class Progress:
    """One line, rewritten in place on a terminal; a line every few seconds otherwise."""

    def __init__(self, started: float, limit: float):
        self.started = started
        self.limit = limit
        self.is_terminal = sys.stdout.isatty()
        self.last_printed = 0.0
        self.lock = threading.Lock()

    def show(self, text: str, *, force: bool = False) -> None:
        now = time.monotonic()
        line = f"[{now - self.started:4.0f}s / {self.limit:.0f}s] {text}"
        with self.lock:
            if self.is_terminal:
                sys.stdout.write("\r" + line[:150].ljust(150))
                sys.stdout.flush()
            elif force or now - self.last_printed >= 5:
                print(line, flush=True)
                self.last_printed = now

    def say(self, text: str) -> None:
        """A line that stays."""
        with self.lock:
            if self.is_terminal:
                sys.stdout.write("\r" + " " * 150 + "\r")
            print(f"[{time.monotonic() - self.started:4.0f}s] {text}", flush=True)


# Children ------------------------------------------------------------------------


class Children:
    """Every process this run starts, so the watchdog can end them all by pid."""

    def __init__(self):
        self.processes: list[subprocess.Popen] = []
        self.lock = threading.Lock()
        self.stopping = threading.Event()

    def start(self, command: list[str], **options) -> subprocess.Popen:
        with self.lock:
            if self.stopping.is_set():
                raise RuntimeError("out of time")
            process = subprocess.Popen(command, cwd=PROJECT_ROOT, **options)
            self.processes.append(process)
            return process

    def stop(self, process: subprocess.Popen, *, grace: float = 5.0) -> None:
        if process.poll() is None:
            process.send_signal(signal.SIGTERM)
            try:
                process.wait(timeout=grace)
            except subprocess.TimeoutExpired:
                process.kill()
                process.wait(timeout=5)
        with self.lock:
            if process in self.processes:
                self.processes.remove(process)

    def stop_all(self) -> None:
        self.stopping.set()
        with self.lock:
            running = list(self.processes)
        for process in running:
            if process.poll() is None:
                process.kill()


def run_checked(children: Children, command: list[str], *, env: dict, timeout: float) -> str:
    process = children.start(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True
    )
    try:
        output, _ = process.communicate(timeout=max(1.0, timeout))
    except subprocess.TimeoutExpired:
        children.stop(process, grace=1)
        raise RuntimeError(f"{shlex.join(command)} did not finish in {timeout:.0f} s") from None
    children.stop(process)
    if process.returncode != 0:
        raise RuntimeError(f"{shlex.join(command)} failed:\n{output[-3000:]}")
    return output


# Servers -------------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def is_listening(port: int) -> bool:
    with socket.socket() as probe:
        probe.settimeout(0.2)
        return probe.connect_ex(("127.0.0.1", port)) == 0


def server_env(target: Target, args: argparse.Namespace) -> dict:
    env = {key: value for key, value in os.environ.items() if not key.startswith("BENCH_")}
    env["PYTHONUNBUFFERED"] = "1"
    env["REDIS_CHANNEL_LAYER"] = target.layer
    if target.app == "baseline":
        env["DJANGO_SETTINGS_MODULE"] = "bench.baseline.settings"
        env["REDIS_URL"] = f"{args.redis}/{args.redis_db_baseline}"
        return env
    env.update(app_env(args))
    # As in production: DEBUG off (no query log), warnings and errors only.
    env.update({"DEBUG": "0", "ALLOWED_HOSTS": "127.0.0.1,localhost", "LOG_LEVEL": "WARNING"})
    env["REDIS_URL"] = f"{args.redis}/{args.redis_db_app}"
    return env


def app_env(args: argparse.Namespace) -> dict:
    """What Peer Circles' settings need to reach the bench database."""
    env = {key: value for key, value in os.environ.items() if not key.startswith("BENCH_")}
    env.pop("REDIS_URL", None)  # the fixtures need no Redis; the servers get theirs
    env.update(
        {
            "DJANGO_SETTINGS_MODULE": "config.settings",
            "DEBUG": "1",
            "SECRET_KEY": BENCH_SECRET_KEY,
            "DATABASE_URL": (
                f"postgres://{args.pg_user}@{args.pg_host}:{args.pg_port}/{args.database}"
            ),
        }
    )
    return env


@dataclass
class Server:
    port: int
    process: subprocess.Popen
    log_path: Path
    idle_rss_bytes: int = 0

    @property
    def url(self) -> str:
        return f"ws://127.0.0.1:{self.port}"


def start_servers(
    children: Children, target: Target, args: argparse.Namespace, log_dir: Path, fixtures: dict
) -> list[Server]:
    application = (
        "bench.baseline.asgi:application" if target.app == "baseline" else "config.asgi:application"
    )
    env = server_env(target, args)
    servers = []
    for number in range(target.processes):
        port = free_port()
        log_path = log_dir / f"{target.app}-{target.layer}-{target.processes}p-{number + 1}.log"
        command = [sys.executable, "-m", "config.serve", "-b", "127.0.0.1", "-p", str(port)]
        with log_path.open("w") as log:
            process = children.start(
                [*command, application], env=env, stdout=log, stderr=subprocess.STDOUT
            )
        servers.append(Server(port, process, log_path))
    for server in servers:
        started = procstats.wait_for(
            lambda server=server: is_listening(server.port) or server.process.poll() is not None,
            timeout=SERVER_START_SECONDS,
        )
        if not started or server.process.poll() is not None:
            raise RuntimeError(f"daphne did not start; see {server.log_path}")
    for server in servers:
        warm_up(server, target, fixtures)
    time.sleep(1)
    for server in servers:
        reading = procstats.read_process(server.process.pid)
        server.idle_rss_bytes = reading.rss_bytes if reading else 0
    return servers


def warm_up(server: Server, target: Target, fixtures: dict) -> None:
    """One member in and out, so the idle size includes what the first socket loads
    (URL routing, the consumer, a database connection): the per-socket figure is
    then what each further socket costs."""
    from websockets.sync.client import connect

    member = fixtures["circles"][0]["members"][0]
    with connect(
        f"{server.url}/ws/circles/{fixtures['circles'][0]['id']}/",
        origin=server.url.replace("ws://", "http://"),
        additional_headers={"Cookie": f"{fixtures['session_cookie_name']}={member['session_key']}"},
        open_timeout=30,
        compression=None,
    ) as connection:
        if target.app == "peer_circles":
            connection.recv(timeout=30)  # hello: the room is fully set up


# One run -------------------------------------------------------------------------


DATABASE_COUNTERS = (
    "sessions",
    "xact_commit",
    "xact_rollback",
    "tup_inserted",
    "tup_updated",
    "tup_deleted",
)
DATABASE_COUNTERS_QUERY = (
    "SELECT sessions, xact_commit, xact_rollback, tup_inserted, tup_updated, tup_deleted "
    "FROM pg_stat_database WHERE datname = %s"
)


def database_counters(args: argparse.Namespace) -> dict:
    """PostgreSQL's own running totals for the bench database: connections opened
    (sessions), transactions and rows written. Exact, unlike sampling processes."""
    import psycopg

    with psycopg.connect(
        host=args.pg_host, port=args.pg_port, user=args.pg_user, dbname="postgres"
    ) as connection:
        # Counters are flushed by each backend about once a second: ask for fresh ones.
        connection.execute("SELECT pg_stat_clear_snapshot()")
        row = connection.execute(DATABASE_COUNTERS_QUERY, [args.database]).fetchone()
    return dict(zip(DATABASE_COUNTERS, row or (), strict=False))


def redis_client(url: str):
    import redis

    return redis.Redis.from_url(url, socket_timeout=5)


def run_target(
    target: Target,
    args: argparse.Namespace,
    *,
    children: Children,
    progress: Progress,
    fixtures_path: Path,
    budget: float,
    run_number: str,
    postmaster_pid: int | None,
) -> RunResult:
    result = RunResult(target)
    started = time.monotonic()
    log_dir = args.work_dir / "logs"
    log_dir.mkdir(parents=True, exist_ok=True)
    redis_db = args.redis_db_baseline if target.app == "baseline" else args.redis_db_app
    # Nothing carries over: groups, rate-limit windows and cached reads start empty.
    redis_client(f"{args.redis}/{redis_db}").flushdb()
    if target.app == "peer_circles":
        run_checked(
            children,
            [sys.executable, "-m", "bench.fixtures", "reset-presence"],
            env=app_env(args),
            timeout=30,
        )
    servers = start_servers(children, target, args, log_dir, json.loads(fixtures_path.read_text()))
    redis_pid = int(redis_client(f"{args.redis}/{redis_db}").info("server")["process_id"])
    result_path = args.work_dir / f"load-{target.app}-{target.layer}-{target.processes}p.json"
    result_path.unlink(missing_ok=True)
    spent = time.monotonic() - started
    command = [
        sys.executable,
        "-m",
        "bench.loadgen",
        "--fixtures",
        str(fixtures_path),
        *[part for server in servers for part in ("--url", server.url)],
        "--ready-frame",
        "none" if target.app == "baseline" else "hello",
        "--say-limit",
        "" if target.app == "baseline" else "20/30",
        "--rate",
        str(args.rate),
        "--steady-seconds",
        str(args.steady_seconds),
        "--step-seconds",
        str(args.step_seconds),
        "--step-factor",
        str(args.step_factor),
        "--max-steps",
        str(args.max_steps),
        # Up to half the run for connecting: a room that can't hold everyone says so.
        "--connect-timeout",
        str(max(10.0, (budget - spent) * 0.5)),
        "--budget-seconds",
        str(max(5.0, budget - spent - 8)),
        "--out",
        str(result_path),
    ]
    counters_before = database_counters(args) if target.app == "peer_circles" else {}
    generator = children.start(command, stdout=subprocess.PIPE, text=True)
    fixed = {f"daphne {number + 1}": server.process.pid for number, server in enumerate(servers)}
    fixed["redis-server"] = redis_pid
    fixed["load generator"] = generator.pid
    sampler = procstats.ProcessSampler(
        fixed,
        trees={"postgres": postmaster_pid} if postmaster_pid else None,
        group_label="postgres",
        discover_group=(lambda: procstats.postgres_backends_of(args.database))
        if target.app == "peer_circles"
        else None,
    ).start()
    try:
        follow_generator(generator, progress, f"{run_number} {target.label}", budget - spent)
    finally:
        sampler.stop()
        for server in servers:
            children.stop(server.process)
        children.stop(generator, grace=2)
    result.wall_seconds = round(time.monotonic() - started, 1)
    if counters_before:
        # Read after the servers stopped: a backend flushes its counts when it ends.
        counters_after = database_counters(args)
        result.postgres["database"] = {
            name: counters_after.get(name, 0) - counters_before.get(name, 0)
            for name in DATABASE_COUNTERS
        }
    if not result_path.exists():
        result.error = "the load generator wrote no result (out of time or failed)"
        return result
    result.load = json.loads(result_path.read_text())
    connected = result.load["connect"].get("connected_by_server", {})
    for number, server in enumerate(servers):
        usage = sampler.fixed[f"daphne {number + 1}"]
        sockets = connected.get(server.url, 0)
        above_idle = max(0, usage.kernel_peak_rss_bytes - server.idle_rss_bytes)
        result.servers.append(
            {
                "url": server.url,
                "sockets": sockets,
                "cpu_seconds": round(usage.cpu_seconds, 2),
                "idle_rss_bytes": server.idle_rss_bytes,
                "peak_rss_bytes": usage.kernel_peak_rss_bytes,
                "bytes_per_socket_above_idle": round(above_idle / sockets) if sockets else None,
                "log": str(server.log_path.relative_to(PROJECT_ROOT)),
            }
        )
    redis_usage = sampler.fixed["redis-server"]
    result.redis = {
        "cpu_seconds": round(redis_usage.cpu_seconds, 2),
        "peak_rss_bytes": redis_usage.peak_rss_bytes,
    }
    generator_usage = sampler.fixed["load generator"]
    result.generator = {
        "cpu_seconds": round(generator_usage.cpu_seconds, 2),
        "peak_rss_bytes": generator_usage.kernel_peak_rss_bytes,
    }
    if "postgres" in sampler.trees:
        result.postgres["cluster_cpu_seconds"] = round(sampler.trees["postgres"].cpu_seconds, 2)
    if sampler.group is not None:
        result.postgres.update(
            {
                "backends_seen": len(sampler.group.processes),
                "peak_backends": sampler.group.peak_count,
                "peak_total_rss_bytes": sampler.group.peak_total_rss_bytes,
            }
        )
    return result


def follow_generator(
    generator: subprocess.Popen, progress: Progress, label: str, timeout: float
) -> None:
    """Show the generator's progress lines until it ends, or end it at the timeout."""

    def end_at_timeout() -> None:
        if generator.poll() is None:
            generator.kill()

    timer = threading.Timer(max(1.0, timeout), end_at_timeout)
    timer.daemon = True
    timer.start()
    try:
        for line in generator.stdout:
            try:
                event = json.loads(line)
            except ValueError:
                continue
            progress.show(f"{label} | {describe_event(event)}", force=event["event"] != "progress")
        generator.wait()
    finally:
        timer.cancel()


def describe_event(event: dict) -> str:
    kind = event["event"]
    if kind == "progress":
        return (
            f"{event['stage']} | sockets {event['connected']}/{event['sockets']} | "
            f"{event['rate_per_circle']:.2f}/s/circle sent {event['sent']} "
            f"received {event['received']}/{event['expected']}"
        )
    if kind == "connected":
        return (
            f"connected {event['sockets_connected']}/{event['sockets_wanted']} "
            f"in {event['seconds_to_connect_all']} s"
        )
    latency = event["latency_ms"]
    verdict = "pass" if event["passes"] else "FAIL"
    return (
        f"{event['name']}: {event['deliveries_per_second']:.0f} deliveries/s, "
        f"p99 {latency['p99']} ms, lost {event['losses']} -> {verdict}"
    )


# The whole run -------------------------------------------------------------------


def plan(args: argparse.Namespace) -> list[Target]:
    processes = [int(part) for part in args.processes.split(",") if part.strip()]
    baseline_layers = [part.strip() for part in args.baseline_layers.split(",") if part.strip()]
    app_layers = [part.strip() for part in args.app_layers.split(",") if part.strip()]
    first_app_layer = app_layers[0]
    other = {"core": "pubsub", "pubsub": "core"}[first_app_layer]
    extra_app_layers = [
        other if layer == "auto" else layer for layer in app_layers[1:] if layer != first_app_layer
    ]
    targets = []
    # Topology by topology, so a run cut short still has pairs to compare.
    for count in processes:
        targets += [Target("baseline", layer, count) for layer in baseline_layers]
        targets.append(Target("peer_circles", first_app_layer, count))
    for layer in dict.fromkeys(extra_app_layers):
        targets += [Target("peer_circles", layer, count, required=False) for count in processes]
    return targets


def check_services(args: argparse.Namespace) -> dict:
    import psycopg

    with psycopg.connect(
        host=args.pg_host, port=args.pg_port, user=args.pg_user, dbname="postgres"
    ) as connection:
        postgres_version = connection.execute("SHOW server_version").fetchone()[0]
        # A backend's parent is the postmaster, whose figures include every backend.
        backend = connection.execute("SELECT pg_backend_pid()").fetchone()[0]
        postmaster = procstats.parent_of(backend)
    redis_version = redis_client(args.redis).info("server")["redis_version"]
    return {"postgres": postgres_version, "redis": redis_version, "postmaster_pid": postmaster}


def prepare(args: argparse.Namespace, children: Children, progress: Progress) -> Path:
    progress.show("creating the bench database", force=True)
    ensure_empty_database(
        host=args.pg_host, port=args.pg_port, user=args.pg_user, name=args.database
    )
    progress.show("migrating the bench database", force=True)
    env = app_env(args)
    run_checked(
        children,
        [sys.executable, "manage.py", "migrate", "--noinput", "-v", "0"],
        env=env,
        timeout=180,
    )
    progress.show(f"creating {args.circles} circles x {args.members} members", force=True)
    fixtures_path = args.work_dir / "fixtures.json"
    output = run_checked(
        children,
        [
            sys.executable,
            "-m",
            "bench.fixtures",
            "create",
            "--circles",
            str(args.circles),
            "--members",
            str(args.members),
            "--out",
            str(fixtures_path),
        ],
        env=env,
        timeout=240,
    )
    progress.say(output.strip().splitlines()[-1] if output.strip() else "fixtures made")
    return fixtures_path


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    procstats.allow_many_open_files()  # for the servers this run starts
    started = time.monotonic()
    hard_deadline = started + args.time_limit - WATCHDOG_MARGIN_SECONDS
    soft_deadline = started + args.time_limit - REPORT_RESERVE_SECONDS
    args.work_dir.mkdir(parents=True, exist_ok=True)
    progress = Progress(started, args.time_limit)
    children = Children()
    results: list[RunResult] = []
    context = {
        "command": command_line(argv),
        "started_at": time.strftime("%Y-%m-%d %H:%M:%S %Z"),
        "args": {key: str(value) for key, value in vars(args).items()},
        "notes": [],
    }
    report_written = threading.Event()
    report_lock = threading.Lock()

    def write_report_once(reason: str = "") -> None:
        from bench.report import write_report

        with report_lock:
            if report_written.is_set():
                return
            if reason:
                context["notes"].append(reason)
            context["total_seconds"] = round(time.monotonic() - started, 1)
            (args.work_dir / "results.json").write_text(
                json.dumps({"context": context, "runs": [asdict(r) for r in results]}, indent=2)
            )
            write_report(results, context, args)
            report_written.set()

    def watchdog() -> None:
        # The hard stop: end every child, give the main thread a moment, then report.
        children.stop_all()
        time.sleep(3)
        if not report_written.is_set():
            write_report_once("The watchdog ended the run at the time limit.")
            progress.say(f"stopped at the time limit; wrote {args.report}")
            os._exit(1)

    timer = threading.Timer(max(1.0, hard_deadline - time.monotonic()), watchdog)
    timer.daemon = True
    timer.start()
    try:
        context["services"] = check_services(args)
        fixtures_path = prepare(args, children, progress)
        context["prepare_seconds"] = round(time.monotonic() - started, 1)
        targets = plan(args)
        required = [target for target in targets if target.required]
        done_required: list[Target] = []
        for index, target in enumerate(targets, start=1):
            now = time.monotonic()
            left = soft_deadline - now
            if target.required:
                weights_left = sum(RUN_WEIGHTS[t.app] for t in required[len(done_required) :])
                budget = left * RUN_WEIGHTS[target.app] / max(weights_left, 1e-9)
                done_required.append(target)
            else:
                budget = min(left, average_seconds(results, target.app) * 1.1)
                if budget <= 0 or left < average_seconds(results, target.app):
                    context["notes"].append(f"Not enough time left for {target.label}.")
                    continue
            if budget < MIN_RUN_SECONDS:
                context["notes"].append(f"Skipped {target.label}: {budget:.0f} s left for it.")
                continue
            progress.say(f"run {index}/{len(targets)}: {target.label} (up to {budget:.0f} s)")
            try:
                result = run_target(
                    target,
                    args,
                    children=children,
                    progress=progress,
                    fixtures_path=fixtures_path,
                    budget=budget,
                    run_number=f"{index}/{len(targets)}",
                    postmaster_pid=context["services"]["postmaster_pid"],
                )
            except Exception as error:  # one failed run must not lose the others
                result = RunResult(target, error=f"{type(error).__name__}: {error}")
            results.append(result)
            progress.say(summary_line(result))
    except Exception as error:
        context["notes"].append(f"The run stopped early: {type(error).__name__}: {error}")
        progress.say(f"stopped early: {error}")
    finally:
        timer.cancel()
        children.stop_all()
        write_report_once()
    progress.say(
        f"wrote {os.path.relpath(args.report, PROJECT_ROOT)} in {time.monotonic() - started:.0f} s"
    )


def average_seconds(results: list[RunResult], app: str) -> float:
    times = [result.wall_seconds for result in results if result.target.app == app]
    return sum(times) / len(times) if times else float("inf")


def summary_line(result: RunResult) -> str:
    if result.error:
        return f"  {result.target.label}: {result.error}"
    load = result.load
    steady = next((phase for phase in load["phases"] if phase["name"] == "steady"), None)
    steady_text = (
        f"steady p99 {steady['latency_ms']['p99']} ms, lost {steady['losses']}, "
        f"refused {steady['shares_refused']}"
        if steady
        else "no steady phase"
    )
    return (
        f"  {result.target.label}: {load['connect']['sockets_connected']} sockets in "
        f"{load['connect']['seconds_to_connect_all']} s; {steady_text}; saturation "
        f"{load['saturation_deliveries_per_second']} deliveries/s ({result.wall_seconds} s)"
    )


def command_line(argv: list[str] | None) -> str:
    arguments = sys.argv[1:] if argv is None else argv
    command = shlex.join(["python", "-m", "bench.run", *arguments])
    if os.environ.get("MAKELEVEL"):
        command = f"make bench  ({command})"
    overrides = " ".join(
        f"{key}={value}" for key, value in os.environ.items() if key.startswith("BENCH_")
    )
    return f"{overrides} {command}".strip()


if __name__ == "__main__":
    main()
