"""The load generator: real members on real websockets, sharing in turn.

    python -m bench.loadgen --fixtures bench/var/fixtures.json \\
        --url ws://127.0.0.1:8001 --url ws://127.0.0.1:8002 --ready-frame hello \\
        --rate 1 --steady-seconds 15 --out result.json

Connects every member of every circle in the fixtures (spread round-robin over the
server URLs), then runs a steady rate of shares per circle and, after it, steps the
rate to find the saturation point: the most deliveries per second with p99 under
100 ms and nothing lost. Within a circle the senders take turns round-robin, so no
one shares twice in a row and everyone stays far under the room's rate limit.

One process sends and receives, so one clock times every delivery: latency is
from just before a share is written to the socket to the moment each receiver's
copy is read. Progress goes to stdout as JSON lines; the result to --out.
"""

from __future__ import annotations

import argparse
import asyncio
import heapq
import json
import math
import sys
import time
import uuid
from array import array
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path

import websockets

from bench.procstats import allow_many_open_files

# The saturation criteria from the issue.
P99_LIMIT_SECONDS = 0.100
# Stay this far under the room's limit (20 shares per 30 s per member), so a
# refusal means the room refused, never that the generator overdid it.
SAY_LIMIT_SAFETY = 0.8


@dataclass(eq=False)
class Member:
    """One socket: one member of one circle."""

    circle: CircleState
    position: int  # within the circle: the bit of this member in Share.received_mask
    user_id: int
    session_key: str
    url: str
    connection: object = None
    reader: asyncio.Task | None = None
    connected: bool = False
    close_code: int | None = None


@dataclass(eq=False)
class CircleState:
    circle_id: int
    members: list[Member] = field(default_factory=list)
    turn: int = 0
    last_sender: Member | None = None

    def connected_count(self) -> int:
        return sum(member.connected for member in self.members)

    def next_sender(self) -> Member | None:
        """The next connected member in turn, never the one who spoke last."""
        count = len(self.members)
        for offset in range(count):
            candidate = self.members[(self.turn + offset) % count]
            if candidate.connected and candidate is not self.last_sender:
                self.turn = (self.turn + offset + 1) % count
                return candidate
        return None


@dataclass(eq=False, slots=True)
class Share:
    phase: Phase
    sent_at: float
    expected_receivers: int
    received_mask: int = 0
    refused: str | None = None


@dataclass(eq=False)
class Phase:
    name: str
    rate_per_circle: float
    circles: int
    planned_seconds: float = 0.0
    started: float = 0.0
    ended: float = 0.0
    frozen: bool = False  # after its drain window: later copies count as late
    sent: int = 0
    skipped: int = 0  # no member in turn was connected
    refused: Counter = field(default_factory=Counter)
    expected: int = 0
    received: int = 0
    duplicates: int = 0
    late: int = 0
    latencies: array = field(default_factory=lambda: array("d"))
    max_schedule_lag: float = 0.0
    generator_cpu: float = 0.0  # CPU seconds of this process over the phase and its drain
    generator_wall: float = 0.0
    result: dict | None = None

    def outstanding(self) -> int:
        return self.expected - self.received

    def summary(self, members_per_circle: float) -> dict:
        duration = max(self.planned_seconds, 1e-9)
        ordered = sorted(self.latencies)
        refused = sum(self.refused.values())
        lost = max(0, self.expected - self.received)
        p99 = percentile(ordered, 99)
        return {
            "name": self.name,
            "rate_per_circle": self.rate_per_circle,
            "offered_deliveries_per_second": self.rate_per_circle
            * self.circles
            * members_per_circle,
            "seconds": round(duration, 3),
            "shares_sent": self.sent,
            "shares_skipped": self.skipped,
            "shares_refused": refused,
            "refused_by_code": dict(self.refused),
            "shares_accepted": self.sent - refused,
            "deliveries_expected": self.expected,
            "deliveries_received": self.received,
            "losses": lost,
            "duplicates": self.duplicates,
            "late_deliveries": self.late,
            "deliveries_per_second": round(self.received / duration, 1),
            "latency_ms": {
                "p50": ms(percentile(ordered, 50)),
                "p95": ms(percentile(ordered, 95)),
                "p99": ms(p99),
                "max": ms(ordered[-1] if ordered else None),
            },
            "max_schedule_lag_ms": ms(self.max_schedule_lag),
            "generator_cpu_share": round(self.generator_cpu / max(self.generator_wall, 1e-9), 3),
            "passes": bool(self.received) and lost == 0 and p99 < P99_LIMIT_SECONDS,
        }


TYPE_PREFIX = '{"type": "'


def frame_type(raw: str | bytes) -> str:
    """A frame's type without parsing it all: both servers write `type` first, and
    most frames (floor, presence, balance) need nothing else. Parses when unsure."""
    if isinstance(raw, str) and raw.startswith(TYPE_PREFIX):
        end = raw.find('"', len(TYPE_PREFIX))
        if end > 0:
            return raw[len(TYPE_PREFIX) : end]
    try:
        frame = json.loads(raw)
    except ValueError:
        return "not json"
    return str(frame.get("type")) if isinstance(frame, dict) else "not an object"


def percentile(ordered, rank: float) -> float:
    """Nearest-rank percentile of a sorted sequence (inf when empty: never passes)."""
    if not ordered:
        return math.inf
    index = max(0, math.ceil(rank / 100 * len(ordered)) - 1)
    return ordered[index]


def ms(seconds: float | None) -> float | None:
    if seconds is None or math.isinf(seconds):
        return None
    return round(seconds * 1000, 2)


class LoadGenerator:
    def __init__(self, args: argparse.Namespace, fixtures: dict):
        self.args = args
        self.cookie_name = fixtures["session_cookie_name"]
        self.circles: list[CircleState] = []
        self.members: list[Member] = []
        for circle_data in fixtures["circles"]:
            circle = CircleState(circle_data["id"])
            for position, member_data in enumerate(circle_data["members"]):
                member = Member(
                    circle=circle,
                    position=position,
                    user_id=member_data["user_id"],
                    session_key=member_data["session_key"],
                    # Round-robin over the servers, socket by socket: each process
                    # holds a share of every circle, so every share crosses Redis.
                    url=args.url[len(self.members) % len(args.url)],
                )
                circle.members.append(member)
                self.members.append(member)
            self.circles.append(circle)
        self.members_per_circle = len(self.members) / max(1, len(self.circles))
        self.shares: dict[str, Share] = {}
        self.phases: list[Phase] = []
        self.current: Phase | None = None
        self.frame_counts: Counter = Counter()
        self.unmatched_errors: Counter = Counter()
        self.foreign_messages = 0
        self.disconnects: Counter = Counter()
        self.connect_report: dict = {}
        self.stage = "starting"
        self.loop = asyncio.get_running_loop()
        self.deadline = self.loop.time() + args.budget_seconds

    # Connecting ------------------------------------------------------------------

    async def connect_all(self) -> None:
        self.stage = "connect"
        limit = asyncio.Semaphore(self.args.connect_concurrency)
        failures: Counter = Counter()
        durations = array("d")
        started = self.loop.time()
        finished = [started]

        async def connect(member: Member) -> None:
            async with limit:
                attempt = self.loop.time()
                try:
                    await self.open(member)
                except Exception as error:  # every failure is counted, by kind
                    failures[describe(error)] += 1
                    return
                now = self.loop.time()
                durations.append(now - attempt)
                finished[0] = max(finished[0], now)

        tasks = [asyncio.create_task(connect(member)) for member in self.members]
        timeout = max(1.0, min(self.args.connect_timeout, self.deadline - self.loop.time()))
        _done, pending = await asyncio.wait(tasks, timeout=timeout)
        for task in pending:
            task.cancel()
        if pending:
            failures["connect phase out of time"] += len(pending)
            await asyncio.gather(*pending, return_exceptions=True)
        ordered = sorted(durations)
        by_server = Counter(member.url for member in self.members if member.connected)
        self.connect_report = {
            "sockets_wanted": len(self.members),
            "sockets_connected": sum(by_server.values()),
            "connected_by_server": {url: by_server[url] for url in self.args.url},
            "seconds_to_connect_all": round(finished[0] - started, 3),
            # From opening the socket to ready: the handshake, and the hello if awaited.
            "socket_ready_ms": {
                "p50": ms(percentile(ordered, 50)),
                "p99": ms(percentile(ordered, 99)),
                "max": ms(ordered[-1] if ordered else None),
            },
            "failures": dict(failures),
        }

    async def open(self, member: Member) -> None:
        http_origin = member.url.replace("ws://", "http://", 1).replace("wss://", "https://", 1)
        connection = await websockets.connect(
            f"{member.url}/ws/circles/{member.circle.circle_id}/",
            origin=http_origin,
            additional_headers={"Cookie": f"{self.cookie_name}={member.session_key}"},
            open_timeout=self.args.handshake_timeout,
            # Browsers' defaults differ, but the generator's CPU is the scarce thing
            # here: no compression, and no client pings a busy server could miss.
            compression=None,
            ping_interval=None,
            max_size=None,
        )
        try:
            if self.args.ready_frame != "none":
                raw = await asyncio.wait_for(connection.recv(), self.args.handshake_timeout)
                frame = json.loads(raw)
                if frame.get("type") != self.args.ready_frame:
                    raise ConnectionError(f"first frame was {frame.get('type')!r}")
        except BaseException:
            await connection.close()
            raise
        member.connection = connection
        member.connected = True
        member.reader = asyncio.create_task(self.read(member))

    # Receiving -------------------------------------------------------------------

    async def read(self, member: Member) -> None:
        bit = 1 << member.position
        clock = self.loop.time
        loads = json.loads
        try:
            async for raw in member.connection:
                now = clock()
                kind = frame_type(raw)
                if kind == "message":
                    share = self.shares.get(loads(raw).get("client_id"))
                    if share is None:
                        self.foreign_messages += 1  # system messages, history
                        continue
                    phase = share.phase
                    if share.received_mask & bit:
                        phase.duplicates += 1
                    elif phase.frozen:
                        share.received_mask |= bit
                        phase.late += 1
                    else:
                        share.received_mask |= bit
                        phase.received += 1
                        phase.latencies.append(now - share.sent_at)
                elif kind == "error":
                    self.on_error(loads(raw))
                else:
                    self.frame_counts[kind] += 1
        except websockets.ConnectionClosed:
            pass
        finally:
            member.connected = False
            close = getattr(member.connection, "close_code", None)
            member.close_code = close
            if self.stage != "closing":
                self.disconnects[str(close)] += 1

    def on_error(self, frame: dict) -> None:
        code = str(frame.get("code"))
        share = self.shares.get(frame.get("ref"))
        if share is None or share.refused is not None:
            self.unmatched_errors[code] += 1
            return
        share.refused = code
        phase = share.phase
        phase.refused[code] += 1
        # A refused share is delivered to nobody: take it out of what is expected.
        phase.expected -= share.expected_receivers

    # Sending ---------------------------------------------------------------------

    async def run_phase(self, name: str, rate_per_circle: float, seconds: float) -> dict:
        phase = Phase(name, rate_per_circle, len(self.circles), planned_seconds=seconds)
        self.phases.append(phase)
        self.current = phase
        self.stage = name
        interval = 1.0 / rate_per_circle
        cpu_started = time.process_time()
        phase.started = start = self.loop.time()
        end = start + seconds
        # Spread the circles over one interval so the load is steady, not in bursts.
        due = [
            (start + interval * index / len(self.circles), index)
            for index in range(len(self.circles))
        ]
        heapq.heapify(due)
        while due:
            when, index = due[0]
            if when >= end:
                break
            delay = when - self.loop.time()
            if delay > 0:
                await asyncio.sleep(delay)
            heapq.heapreplace(due, (when + interval, index))
            phase.max_schedule_lag = max(phase.max_schedule_lag, self.loop.time() - when)
            await self.send_share(self.circles[index], phase)
        phase.ended = self.loop.time()
        await self.drain(phase)
        phase.generator_cpu = time.process_time() - cpu_started
        phase.generator_wall = self.loop.time() - start
        phase.frozen = True
        phase.result = phase.summary(self.members_per_circle)
        self.emit({"event": "phase", **phase.result})
        return phase.result

    async def send_share(self, circle: CircleState, phase: Phase) -> None:
        sender = circle.next_sender()
        if sender is None:
            phase.skipped += 1
            return
        client_id = str(uuid.uuid4())
        text = json.dumps(
            {
                "type": "say",
                "text": f"Thank you all, this is share {phase.sent} of {phase.name}.",
                "client_id": client_id,
            }
        )
        share = Share(phase, self.loop.time(), circle.connected_count())
        self.shares[client_id] = share
        circle.last_sender = sender
        phase.sent += 1
        phase.expected += share.expected_receivers
        try:
            await sender.connection.send(text)
        except websockets.ConnectionClosed:
            phase.refused["socket closed"] += 1
            phase.expected -= share.expected_receivers
            share.refused = "socket closed"

    async def drain(self, phase: Phase) -> None:
        """Wait for every copy still on its way, up to the drain window."""
        self.stage = f"{phase.name} (drain)"
        until = min(phase.ended + self.args.drain_seconds, self.deadline)
        while phase.outstanding() > 0 and self.loop.time() < until:
            await asyncio.sleep(0.02)

    async def recover(self) -> None:
        """After a phase that failed, wait (up to --recover-seconds) until every copy
        of every phase so far has arrived, late or not: the next phase then measures
        its own rate, not the backlog the last one left."""
        self.stage = "recover"
        until = min(self.loop.time() + self.args.recover_seconds, self.deadline - 1)
        while self.loop.time() < until:
            behind = sum(phase.expected - phase.received - phase.late for phase in self.phases)
            if behind <= 0:
                return
            await asyncio.sleep(0.1)

    # The run ---------------------------------------------------------------------

    def say_rate_ceiling(self) -> float:
        """The most shares per second a circle may send with everyone under the limit."""
        if not self.args.say_limit:
            return math.inf
        count, seconds = (float(part) for part in self.args.say_limit.split("/"))
        return self.members_per_circle * count / seconds * SAY_LIMIT_SAFETY

    def time_left(self) -> float:
        return self.deadline - self.loop.time()

    async def run(self) -> dict:
        progress = asyncio.create_task(self.report_progress())
        await self.connect_all()
        self.emit({"event": "connected", **self.connect_report})
        results: dict = {"connect": self.connect_report, "phases": []}
        if not any(member.connected for member in self.members):
            return self.finish(results, progress)
        self.stage = "settle"
        await asyncio.sleep(self.args.settle_seconds)  # the joins' own broadcasts pass
        ceiling = self.say_rate_ceiling()
        rate = min(self.args.rate, ceiling)
        steady_seconds = min(self.args.steady_seconds, self.time_left() - self.args.drain_seconds)
        if steady_seconds < 1:
            return self.finish(results, progress)
        steady = await self.run_phase("steady", rate, steady_seconds)
        results["phases"].append(steady)
        if not steady["passes"]:
            await self.recover()
        await self.find_saturation(steady, ceiling, results)
        return self.finish(results, progress)

    async def find_saturation(self, steady: dict, ceiling: float, results: dict) -> None:
        """Step up from the steady rate while it holds, down while it does not, then
        narrow the bracket between the best pass and the lowest failure."""
        best_pass = steady["rate_per_circle"] if steady["passes"] else None
        lowest_fail = None if steady["passes"] else steady["rate_per_circle"]
        for step in range(1, self.args.max_steps + 1):
            if self.time_left() < self.args.step_seconds + self.args.drain_seconds + 1:
                results["stopped"] = "out of time"
                break
            if lowest_fail is None:
                if best_pass >= ceiling:
                    results["stopped"] = "at the rate limit's ceiling"
                    break
                rate = min(best_pass * self.args.step_factor, ceiling)
            elif best_pass is None:
                rate = lowest_fail / 2
            elif lowest_fail / best_pass < 1.15:
                results["stopped"] = "bracket narrow enough"
                break
            else:
                rate = math.sqrt(best_pass * lowest_fail)
            outcome = await self.run_phase(f"step {step}", rate, self.args.step_seconds)
            results["phases"].append(outcome)
            if outcome["passes"]:
                best_pass = max(best_pass or 0, rate)
            else:
                lowest_fail = min(lowest_fail or math.inf, rate)
                await self.recover()
        else:
            results["stopped"] = "all steps run"
        results["rate_ceiling_per_circle"] = None if math.isinf(ceiling) else round(ceiling, 3)

    def finish(self, results: dict, progress: asyncio.Task) -> dict:
        progress.cancel()
        passing = [phase for phase in results["phases"] if phase["passes"]]
        best = max(passing, key=lambda phase: phase["deliveries_per_second"], default=None)
        failing = [phase for phase in results["phases"] if not phase["passes"]]
        results.update(
            {
                "saturation_deliveries_per_second": best["deliveries_per_second"] if best else None,
                "saturation_phase": best["name"] if best else None,
                "lowest_failing_offered_per_second": min(
                    (phase["offered_deliveries_per_second"] for phase in failing), default=None
                ),
                "circles": len(self.circles),
                "members_per_circle": self.members_per_circle,
                "servers": list(self.args.url),
                "disconnects_by_close_code": dict(self.disconnects),
                "other_frames_by_type": dict(self.frame_counts),
                "unmatched_errors_by_code": dict(self.unmatched_errors),
                "foreign_messages": self.foreign_messages,
                "generator_cpu_seconds": round(time.process_time(), 2),
            }
        )
        return results

    async def close_all(self) -> None:
        self.stage = "closing"
        connections = [member.connection for member in self.members if member.connection]
        await asyncio.gather(
            *(asyncio.wait_for(connection.close(), 5) for connection in connections),
            return_exceptions=True,
        )

    # Progress --------------------------------------------------------------------

    async def report_progress(self) -> None:
        while True:
            await asyncio.sleep(1)
            phase = self.current
            self.emit(
                {
                    "event": "progress",
                    "stage": self.stage,
                    "connected": sum(member.connected for member in self.members),
                    "sockets": len(self.members),
                    "sent": phase.sent if phase else 0,
                    "received": phase.received if phase else 0,
                    "expected": phase.expected if phase else 0,
                    "rate_per_circle": phase.rate_per_circle if phase else 0,
                }
            )

    @staticmethod
    def emit(event: dict) -> None:
        sys.stdout.write(json.dumps(event) + "\n")
        sys.stdout.flush()


def describe(error: BaseException) -> str:
    if isinstance(error, websockets.InvalidStatus):
        return f"HTTP {error.response.status_code}"
    if isinstance(error, websockets.ConnectionClosed):
        code = error.rcvd.code if error.rcvd else None
        return f"closed {code}"
    if isinstance(error, TimeoutError):
        return "timeout"
    return type(error).__name__


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--fixtures", type=Path, required=True, help="from bench.fixtures")
    parser.add_argument("--url", action="append", required=True, help="ws://host:port; repeat")
    parser.add_argument(
        "--ready-frame",
        default="none",
        help="a frame type to wait for before a socket counts as connected "
        "(hello for Peer Circles; none: the handshake is enough)",
    )
    parser.add_argument("--rate", type=float, default=1.0, help="shares per second per circle")
    parser.add_argument("--steady-seconds", type=float, default=15.0)
    parser.add_argument("--step-seconds", type=float, default=6.0)
    parser.add_argument("--step-factor", type=float, default=1.5, help="rate multiplier per step")
    parser.add_argument("--max-steps", type=int, default=6)
    parser.add_argument("--drain-seconds", type=float, default=2.0)
    parser.add_argument(
        "--recover-seconds",
        type=float,
        default=20.0,
        help="after a failed phase, wait this long at most for the backlog to clear",
    )
    parser.add_argument("--settle-seconds", type=float, default=2.0)
    parser.add_argument(
        "--say-limit",
        default="",
        help="the room's share limit per member, COUNT/SECONDS (20/30 for Peer Circles); "
        "the rate never goes past 80%% of it",
    )
    parser.add_argument(
        "--connect-concurrency",
        type=int,
        default=48,
        help="handshakes in flight at once (daphne listens with a backlog of 50)",
    )
    parser.add_argument("--connect-timeout", type=float, default=120.0)
    parser.add_argument("--handshake-timeout", type=float, default=30.0)
    parser.add_argument("--budget-seconds", type=float, default=120.0, help="the whole run")
    parser.add_argument("--out", type=Path, required=True)
    return parser.parse_args(argv)


async def main_async(args: argparse.Namespace) -> dict:
    generator = LoadGenerator(args, json.loads(args.fixtures.read_text()))
    try:
        return await generator.run()
    finally:
        await generator.close_all()


def main(argv: list[str] | None = None) -> None:
    args = parse_args(argv)
    allow_many_open_files()
    results = asyncio.run(main_async(args))
    args.out.write_text(json.dumps(results, indent=2))


if __name__ == "__main__":
    main()
