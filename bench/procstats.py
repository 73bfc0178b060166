"""CPU time and memory of processes, read from /proc (psutil is not a dependency).

A `ProcessSampler` thread samples a set of processes every half second, so that
short-lived ones (a PostgreSQL backend per connection) are counted too, and
keeps per-process CPU seconds and peak resident memory.
"""

from __future__ import annotations

import os
import resource
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")
PAGE_BYTES = os.sysconf("SC_PAGE_SIZE")


@dataclass(frozen=True)
class Reading:
    cpu_seconds: float  # user + system, since the process started
    rss_bytes: int
    peak_rss_bytes: int  # VmHWM: the kernel's own high-water mark


def stat_fields(pid: int) -> list[str] | None:
    """/proc/PID/stat from field 3 on (state, ppid, ...), or None if it has gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    # The command name (field 2) may hold spaces and parentheses: split after the last ")".
    return stat[stat.rindex(")") + 2 :].split()


def read_process(pid: int) -> Reading | None:
    """One reading of a process, or None if it has gone."""
    fields = stat_fields(pid)
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return None
    if fields is None:
        return None
    utime, stime = int(fields[11]), int(fields[12])
    memory = {}
    for line in status.splitlines():
        if line.startswith(("VmRSS:", "VmHWM:")):
            name, value = line.split(":", 1)
            memory[name] = int(value.split()[0]) * 1024
    return Reading(
        cpu_seconds=(utime + stime) / CLOCK_TICKS,
        rss_bytes=memory.get("VmRSS", 0),
        peak_rss_bytes=memory.get("VmHWM", 0),
    )


def parent_of(pid: int) -> int | None:
    fields = stat_fields(pid)
    return int(fields[1]) if fields else None


def tree_cpu_seconds(root: int) -> float | None:
    """CPU of a process, its live children, and every child it has reaped (cutime,
    cstime): the PostgreSQL postmaster's figure covers backends of a few milliseconds
    that no sampling would catch."""
    fields = stat_fields(root)
    if fields is None:
        return None
    ticks = sum(int(value) for value in fields[11:15])  # utime stime cutime cstime
    for entry in os.scandir("/proc"):
        if not entry.name.isdigit():
            continue
        child = stat_fields(int(entry.name))
        if child is not None and int(child[1]) == root:
            ticks += sum(int(value) for value in child[11:15])
    return ticks / CLOCK_TICKS


def command_line(pid: int) -> str:
    try:
        return (
            Path(f"/proc/{pid}/cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        )
    except (FileNotFoundError, ProcessLookupError, PermissionError):
        return ""


def pids_matching(predicate: Callable[[str], bool]) -> list[int]:
    """Processes whose command line (or, for PostgreSQL backends, title) matches."""
    found = []
    for entry in os.scandir("/proc"):
        if entry.name.isdigit() and predicate(command_line(int(entry.name))):
            found.append(int(entry.name))
    return found


def postgres_backends_of(database: str) -> list[int]:
    """PostgreSQL backends serving one database: their titles name it
    ("postgres: root peer_circles_bench 127.0.0.1(40312) idle")."""
    return pids_matching(lambda title: title.startswith("postgres: ") and f" {database} " in title)


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return "unknown"


def memory_total_bytes() -> int:
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemTotal:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return 0


@dataclass
class ProcessUsage:
    """What one process used while it was watched."""

    label: str
    pid: int
    cpu_at_start: float | None = None
    cpu_last: float = 0.0
    peak_rss_bytes: int = 0  # the highest resident size seen while watched
    kernel_peak_rss_bytes: int = 0  # VmHWM: the highest since the process began
    last_rss_bytes: int = 0

    @property
    def cpu_seconds(self) -> float:
        return max(0.0, self.cpu_last - (self.cpu_at_start or 0.0))


@dataclass
class GroupUsage:
    """A changing set of processes (PostgreSQL backends): CPU summed over all of
    them, and the peak of their summed memory at any one sample."""

    label: str
    processes: dict[int, ProcessUsage] = field(default_factory=dict)
    peak_total_rss_bytes: int = 0
    peak_count: int = 0

    @property
    def cpu_seconds(self) -> float:
        return sum(usage.cpu_seconds for usage in self.processes.values())


class ProcessSampler:
    """Samples fixed processes and one discovered group until stopped."""

    def __init__(
        self,
        fixed: dict[str, int],
        *,
        group_label: str = "",
        discover_group: Callable[[], list[int]] | None = None,
        trees: dict[str, int] | None = None,
        interval: float = 0.5,
    ):
        self.fixed = {label: ProcessUsage(label, pid) for label, pid in fixed.items()}
        # A tree is a process and all its children, counted through its own figures.
        self.trees = {label: ProcessUsage(label, pid) for label, pid in (trees or {}).items()}
        self.group = GroupUsage(group_label) if discover_group else None
        self.discover_group = discover_group
        self.interval = interval
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name="process-sampler", daemon=True)
        self._lock = threading.Lock()

    def start(self) -> ProcessSampler:
        # Backends that already exist count from now, not from their birth.
        self.sample(first=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self.sample()

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self.sample()

    def sample(self, *, first: bool = False) -> None:
        with self._lock:
            for usage in self.fixed.values():
                _update(usage, read_process(usage.pid), first=True)
            for usage in self.trees.values():
                cpu = tree_cpu_seconds(usage.pid)
                if cpu is not None:
                    usage.cpu_at_start = cpu if usage.cpu_at_start is None else usage.cpu_at_start
                    usage.cpu_last = cpu
            if self.group is None or self.discover_group is None:
                return
            total_rss = 0
            pids = self.discover_group()
            for pid in pids:
                usage = self.group.processes.get(pid)
                is_new = usage is None
                if is_new:
                    usage = self.group.processes[pid] = ProcessUsage(self.group.label, pid)
                reading = read_process(pid)
                # A backend born while we watch counts from zero; one that was
                # already there counts from the first reading.
                _update(usage, reading, first=first)
                total_rss += usage.last_rss_bytes if reading else 0
            self.group.peak_total_rss_bytes = max(self.group.peak_total_rss_bytes, total_rss)
            self.group.peak_count = max(self.group.peak_count, len(pids))


def _update(usage: ProcessUsage, reading: Reading | None, *, first: bool) -> None:
    if reading is None:
        return
    if usage.cpu_at_start is None:
        usage.cpu_at_start = reading.cpu_seconds if first else 0.0
    usage.cpu_last = reading.cpu_seconds
    usage.last_rss_bytes = reading.rss_bytes
    usage.peak_rss_bytes = max(usage.peak_rss_bytes, reading.rss_bytes)
    usage.kernel_peak_rss_bytes = max(usage.kernel_peak_rss_bytes, reading.peak_rss_bytes)


def allow_many_open_files() -> int:
    """Raise this process's open-file limit to the hard limit (children inherit it):
    2,000 sockets do not fit under the common soft limit of 1,024."""
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    if hard == resource.RLIM_INFINITY or soft < hard:
        wanted = 65536 if hard == resource.RLIM_INFINITY else hard
        resource.setrlimit(resource.RLIMIT_NOFILE, (wanted, hard))
        return wanted
    return soft


def wait_for(condition: Callable[[], bool], *, timeout: float, interval: float = 0.1) -> bool:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if condition():
            return True
        time.sleep(interval)
    return condition()
