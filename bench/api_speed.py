"""The HTTP API's recommendations endpoint under load, beside a bare psycopg2 query of the same rows.

On a throw-away embedded PostgreSQL built as ``make run`` builds it (the committed
sample, a simulated cohort of ``--users`` users, the default model trained and its top
20 published), with a ``data_scientist`` key made by ``python -m recommender keys
create``, then, alternately, ``--repeats`` times, over loopback:
- for each ``--workers`` count: ``python -m recommender serve --workers N`` in a
  subprocess, loaded by ``wrk`` (2 threads, ``--connections`` connections) with
  ``GET /users/<random user with recommendations>/recommendations?limit=<--limit>``
  for ``--duration`` seconds after ``--warmup`` seconds; then ``GET /health`` (one
  trivial query: the framework's own ceiling) the same way;
- the baseline: the endpoint's own SQL (recommender/api/routers/users.py,
  get_recommendations) by bare psycopg2, ``--connections`` threads, each with its own
  autocommit connection, random users, the same warm-up and duration.

    python bench/api_speed.py [--users 3000] [--workers 1,2] [--repeats 3] [--duration 10] [--warmup 3]
                              [--raw-data-dir DIR]

Needs ``wrk`` (Debian/Ubuntu: ``apt-get install wrk``) and Linux (/proc). The load
generator, the API and PostgreSQL share the machine's cores. Any socket error or answer
of 400 or more (wrk's "Non-2xx or 3xx responses") fails the run.
Prints `name: value unit` lines: medians of the repeats (requests/s, p50, p99), the CPU
milliseconds a request spent by the API, PostgreSQL and the load generator, the cores
other processes kept busy meanwhile, and the ratio API / psycopg2 throughput.
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import resource
import shutil
import statistics
import subprocess
import sys
import tempfile
import threading
import time
import urllib.error
import urllib.request
import uuid
from collections.abc import Iterator, Mapping
from contextlib import closing, contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path

from recommender.activity.simulate import SimulationConfig
from recommender.refresh import pipeline
from recommender.warehouse.targets import PROJECT_ROOT, Target, free_port, throwaway_warehouse

# the query of recommender/api/routers/users.py get_recommendations, in psycopg2's placeholders
RECOMMENDATIONS_SQL = """select recommendation_rank as rank, content_id, title, content_type, release_year, score,
            reason, run_id, model, published_at
        from marts.user_recommendations where user_id = %s order by recommendation_rank limit %s"""

WRK_SCRIPT = """
local ids = {%(ids)s}
local path_after = "%(path_after)s"
wrk.headers["X-API-Key"] = "%(key)s"
local counter = 0

function setup(thread)
    counter = counter + 1
    thread:set("seed", counter)
end

function init(args)
    math.randomseed(%(seed)d + seed * 7919)
end

function request()
    if #ids == 0 then
        return wrk.format("GET", path_after)
    end
    return wrk.format("GET", "/users/" .. ids[math.random(#ids)] .. path_after)
end

function done(summary, latency, requests)
    local e = summary.errors
    io.write(string.format(
        "BENCH requests=%%d duration_us=%%d status_errors=%%d connect=%%d read=%%d write=%%d timeout=%%d"
        .. " p50_us=%%d p99_us=%%d\\n",
        summary.requests, summary.duration, e.status, e.connect, e.read, e.write, e.timeout,
        latency:percentile(50), latency:percentile(99)))
end
"""


@dataclass(frozen=True)
class Load:
    """Throughput, latency and CPU of one timed window."""

    rate: float  # requests (or queries) per second
    p50_ms: float
    p99_ms: float
    cpu_ms: dict[str, float] = field(default_factory=dict)  # CPU milliseconds a request, by who spent them
    others_cores: float = 0.0  # cores busy with processes outside this benchmark meanwhile

    def __str__(self) -> str:
        cpu = ", ".join(f"{who} {ms:.2f}" for who, ms in self.cpu_ms.items())
        return (
            f"{self.rate:,.0f}/s p50 {self.p50_ms:.1f} ms p99 {self.p99_ms:.1f} ms"
            f" (CPU ms a request: {cpu}; other processes {self.others_cores:.2f} cores)"
        )


CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def tree_cpu_seconds(root: int) -> float:
    """CPU seconds of process ``root`` and all its descendants, the exited ones included (Linux /proc)."""
    stats: dict[int, tuple[int, float]] = {}  # pid -> (parent, own + reaped children's CPU seconds)
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            try:
                fields = (entry / "stat").read_text().rpartition(")")[2].split()
            except OSError:
                continue  # gone meanwhile
            # after "(comm)": state, ppid, ..., utime (12th), stime, cutime, cstime
            stats[int(entry.name)] = (int(fields[1]), sum(int(f) for f in fields[11:15]) / CLOCK_TICKS)
    total, frontier = 0.0, [root]
    while frontier:
        pid = frontier.pop()
        total += stats.get(pid, (0, 0.0))[1]
        frontier += [child for child, (parent, _) in stats.items() if parent == pid]
    return total


def machine_busy_seconds() -> float:
    """CPU seconds all cores spent not idle since boot (/proc/stat)."""
    ticks = [int(f) for f in Path("/proc/stat").read_text().split("\n", 1)[0].split()[1:9]]
    return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICKS  # less idle and iowait


class CpuMeter:
    """CPU spent by the named processes (trees, or ``self`` for this process) over a window."""

    def __init__(self, **roots: int) -> None:
        self.roots = roots

    def read(self) -> dict[str, float]:
        readings = {who: tree_cpu_seconds(pid) for who, pid in self.roots.items() if who != "client"}
        readings["client"] = time.process_time() + sum(resource.getrusage(resource.RUSAGE_CHILDREN)[:2])
        readings["machine"] = machine_busy_seconds()
        return readings

    def per_request(
        self, before: dict[str, float], after: dict[str, float], requests: float, seconds: float
    ) -> tuple[dict[str, float], float]:
        """CPU milliseconds a request by who spent them, and the cores other processes kept busy."""
        spent = {who: after[who] - before[who] for who in before}
        others = spent.pop("machine") - sum(spent.values())
        return {who: 1e3 * cpu / requests for who, cpu in spent.items()}, max(0.0, others / seconds)


def wrk_binary() -> str:
    found = shutil.which("wrk")
    if found is None:
        raise SystemExit("wrk is not installed: it generates the HTTP load (Debian/Ubuntu: apt-get install wrk)")
    return found


def wrk_script(folder: Path, name: str, key: str, ids: list[int], path_after: str, seed: int) -> Path:
    path = folder / f"{name}.lua"
    path.write_text(WRK_SCRIPT % {"ids": ",".join(map(str, ids)), "key": key, "path_after": path_after, "seed": seed})
    return path


def run_wrk(url: str, script: Path, meter: CpuMeter, *, connections: int, threads: int, seconds: float) -> Load:
    """One wrk run; fails loudly on any socket error or non-2xx answer."""
    command = [wrk_binary(), f"-t{threads}", f"-c{connections}", f"-d{seconds:g}s", "--timeout", "10s"]
    before = meter.read()
    result = subprocess.run([*command, "--latency", "-s", str(script), url], capture_output=True, text=True)
    after = meter.read()
    found = re.search(r"^BENCH (.*)$", result.stdout, re.MULTILINE)
    if result.returncode != 0 or found is None:
        raise SystemExit(f"wrk failed (exit {result.returncode}):\n{result.stdout}\n{result.stderr}")
    fields = {name: float(value) for name, value in (pair.split("=") for pair in found.group(1).split())}
    errors = {name: int(fields[name]) for name in ("status_errors", "connect", "read", "write", "timeout")}
    if any(errors.values()):
        raise SystemExit(f"wrk saw failed requests against {url}: {errors}\n{result.stdout}")
    cpu, others = meter.per_request(before, after, fields["requests"], fields["duration_us"] / 1e6)
    cpu["wrk"] = cpu.pop("client")
    rate = fields["requests"] / (fields["duration_us"] / 1e6)
    return Load(rate, fields["p50_us"] / 1e3, fields["p99_us"] / 1e3, cpu, others)


def http_get(url: str, key: str | None = None) -> tuple[int, bytes]:
    request = urllib.request.Request(url, headers={"X-API-Key": key} if key else {})
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as exc:
        return exc.code, exc.read()


# wrk sends one key's requests at thousands a second, far past the API's default rate per key (100/s):
# the limit is off here, so that what is measured is the API's own throughput, not the limiter's 429s
NO_RATE_LIMIT = {"NETFLIX_API_RATE_PER_S": "0"}


def start_api(
    target: Target, workers: int, log: Path, environ: Mapping[str, str]
) -> tuple[subprocess.Popen[bytes], str] | str:
    """Start ``python -m recommender serve`` with ``environ`` added; the process and its URL once it answers,
    else why not."""
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    command = [sys.executable, "-m", "recommender", "serve", "--port", str(port), "--workers", str(workers)]
    offset = log.stat().st_size if log.exists() else 0
    with log.open("ab") as output:
        process = subprocess.Popen(
            command,
            env={**os.environ, **target.env(), **environ},
            cwd=PROJECT_ROOT,
            stdout=output,
            stderr=subprocess.STDOUT,
        )
    deadline, answered = time.monotonic() + 60, None
    while process.poll() is None and time.monotonic() < deadline:
        try:
            if http_get(f"{url}/health")[0] == 200:
                answered = answered or time.monotonic()
        except OSError:
            pass
        if answered and time.monotonic() - answered > 2:  # every worker had time to start (or fail)
            return process, url
        time.sleep(0.2)
    stop(process)
    with log.open("rb") as written:
        written.seek(offset)
        tail = written.read().decode(errors="replace")[-3000:]
    return f"the API (--workers {workers}) exited ({process.returncode}) or did not answer in 60 s; its log:\n{tail}"


def stop(process: subprocess.Popen[bytes]) -> None:
    process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


@contextmanager
def api_server(
    target: Target, workers: int, log: Path, environ: Mapping[str, str] = NO_RATE_LIMIT
) -> Iterator[tuple[str, int]]:
    """The API on a free port of loopback: its URL and pid, once /health answers; a failed start is tried again once.

    (Several workers run the app's startup DDL at once; PostgreSQL may refuse one with "tuple
    concurrently updated", and the whole server stops.)
    """
    started = start_api(target, workers, log, environ)
    if isinstance(started, str):
        lines = started.splitlines()
        cause = next((line for line in reversed(lines) if "Error" in line), lines[-1])
        print(f"    {lines[0]}; {cause.strip()!r}; starting it again")
        started = start_api(target, workers, log, environ)
        if isinstance(started, str):
            raise SystemExit(started)
    process, url = started
    try:
        yield url, process.pid
    finally:
        stop(process)


def bare_queries(
    target: Target, ids: list[int], limit: int, meter: CpuMeter, *, connections: int, warmup: float, seconds: float
) -> Load:
    """``connections`` threads, each its own autocommit connection, querying random users' rows back to back.

    Counts the queries that finish within the timed window that follows the warm-up.
    """
    barrier = threading.Barrier(connections + 1)
    latencies: list[list[float]] = [[] for _ in range(connections)]
    window: dict[str, float] = {}
    failures: list[BaseException] = []

    def worker(index: int) -> None:
        try:
            rng = random.Random(index)
            with closing(target.connect()) as conn:
                conn.autocommit = True  # as the API's asyncpg pool: no transaction left open
                with conn.cursor() as cur:
                    barrier.wait()
                    start, end = window["start"], window["end"]
                    mine = latencies[index]
                    while True:
                        began = time.perf_counter()
                        cur.execute(RECOMMENDATIONS_SQL, (rng.choice(ids), limit))
                        cur.fetchall()
                        finished = time.perf_counter()
                        if finished > end:
                            break
                        if finished >= start:
                            mine.append(finished - began)
        except BaseException as exc:  # reported by the main thread
            failures.append(exc)
            barrier.abort()

    threads = [threading.Thread(target=worker, args=(i,), daemon=True) for i in range(connections)]
    for thread in threads:
        thread.start()
    window["start"] = time.perf_counter() + warmup + 0.5  # the workers read it after the barrier
    window["end"] = window["start"] + seconds
    with suppress(threading.BrokenBarrierError):  # a worker failed: reported below
        barrier.wait()
    time.sleep(max(0.0, window["start"] - time.perf_counter()))
    before = meter.read()
    time.sleep(max(0.0, window["end"] - time.perf_counter()))
    after = meter.read()
    for thread in threads:
        thread.join()
    if failures:
        raise SystemExit(f"the psycopg2 baseline failed: {failures[0]!r}")
    every = sorted(latency for mine in latencies for latency in mine)
    cpu, others = meter.per_request(before, after, len(every), seconds)
    cpu["python"] = cpu.pop("client")
    return Load(len(every) / seconds, percentile(every, 50) * 1e3, percentile(every, 99) * 1e3, cpu, others)


def percentile(ordered: list[float], pct: float) -> float:
    """The nearest-rank percentile of sorted values."""
    return ordered[max(0, min(len(ordered) - 1, round(pct / 100 * len(ordered)) - 1))]


def create_key(target: Target, role: str = "data_scientist") -> str:
    result = subprocess.run(
        [sys.executable, "-m", "recommender", "keys", "create", "--role", role, "--name", f"bench {role}"],
        env={**os.environ, **target.env()},
        cwd=PROJECT_ROOT,
        capture_output=True,
        text=True,
    )
    if result.returncode != 0:
        raise SystemExit(f"keys create failed:\n{result.stdout}{result.stderr}")
    return result.stdout.strip().splitlines()[-1]


def check_same_rows(target: Target, url: str, key: str, user_id: int, limit: int) -> int:
    """The API's items for ``user_id`` are the baseline's rows, in order; returns how many."""
    status, body = http_get(f"{url}/users/{user_id}/recommendations?limit={limit}", key)
    if status != 200:
        raise SystemExit(f"GET /users/{user_id}/recommendations answered {status}: {body[:500]!r}")
    answered = [(item["rank"], item["content_id"]) for item in json.loads(body)["items"]]
    with closing(target.connect()) as conn, conn.cursor() as cur:
        cur.execute(RECOMMENDATIONS_SQL, (user_id, limit))
        expected = [(row[0], row[1]) for row in cur.fetchall()]
    if answered != expected or not expected:
        raise SystemExit(f"the API and the baseline disagree for user {user_id}: {answered[:3]} vs {expected[:3]}")
    return len(expected)


def worker_counts(text: str) -> list[int]:
    counts = [int(part) for part in text.split(",") if part.strip()]
    if not counts or min(counts) < 1:
        raise argparse.ArgumentTypeError(f"a comma-separated list of positive numbers, not {text!r}")
    return counts


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=SimulationConfig().users, help="simulated cohort (as make run)")
    parser.add_argument("--raw-data-dir", type=Path, help="a real export instead of the committed sample")
    parser.add_argument("--workers", type=worker_counts, default=[1, 2], help="API processes, e.g. 1,2")
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--duration", type=float, default=10.0, help="seconds timed per measurement")
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of untimed load before each")
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--threads", type=int, default=2, help="wrk threads")
    parser.add_argument("--limit", type=int, default=20, help="recommendations per request")
    parser.add_argument("--no-health", action="store_true", help="skip GET /health")
    args = parser.parse_args()
    wrk_binary()  # before the minutes of building

    work_dir = PROJECT_ROOT / "target" / f"bench-{uuid.uuid4().hex[:8]}"
    median = statistics.median
    with throwaway_warehouse("api_bench") as target, tempfile.TemporaryDirectory(prefix="api_bench-") as folder:
        try:
            started = time.perf_counter()
            pipeline.run(target, args.raw_data_dir, work_dir=work_dir, simulation=SimulationConfig(users=args.users))
            built_s = time.perf_counter() - started
            catalogue = args.raw_data_dir or "the committed sample"
            print(f"warehouse: {catalogue}, {args.users:,} simulated users, built in {built_s:.0f} s")
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
        with closing(target.connect()) as conn, conn.cursor() as cur:
            cur.execute("select distinct user_id from marts.user_recommendations order by user_id")
            ids = [user_id for (user_id,) in cur.fetchall()]
            cur.execute("select count(*) from app.users")
            (users,) = cur.fetchone()
            cur.execute("select pg_backend_pid()")
            (backend,) = cur.fetchone()  # its parent is the server's postmaster: read while it lives
            postmaster = int(Path(f"/proc/{backend}/stat").read_text().rpartition(")")[2].split()[1])
        if not ids:
            raise SystemExit("no recommendations were published: nothing to request")
        key = create_key(target)
        scratch = Path(folder)
        log = scratch / "api.log"
        recommendations = wrk_script(scratch, "recommendations", key, ids, f"/recommendations?limit={args.limit}", 1)
        health = wrk_script(scratch, "health", key, [], "/health", 2)
        with api_server(target, 1, log) as (url, _):
            rows = check_same_rows(target, url, key, ids[0], args.limit)
        print(
            f"users: {users:,}, {len(ids):,} with recommendations ({rows} rows a request);"
            f" {args.connections} connections, {args.warmup:g} s warm-up + {args.duration:g} s timed,"
            f" {os.cpu_count()} cores shared by load generator, API and PostgreSQL"
        )

        def wrk_load(url: str, script: Path, meter: CpuMeter) -> Load:
            options = {"connections": args.connections, "threads": args.threads}
            run_wrk(url, script, meter, seconds=args.warmup, **options)
            return run_wrk(url, script, meter, seconds=args.duration, **options)

        api: dict[int, list[Load]] = {n: [] for n in args.workers}
        ceiling: dict[int, list[Load]] = {n: [] for n in args.workers}
        bare: list[Load] = []
        for repeat in range(1, args.repeats + 1):
            print(f"  repeat {repeat}:", flush=True)
            for workers in args.workers:
                with api_server(target, workers, log) as (url, pid):
                    meter = CpuMeter(api=pid, postgres=postmaster)
                    api[workers].append(wrk_load(url, recommendations, meter))
                    print(f"    api workers{workers}: {api[workers][-1]}", flush=True)
                    if not args.no_health:
                        ceiling[workers].append(wrk_load(url, health, meter))
                        print(f"    health workers{workers}: {ceiling[workers][-1]}", flush=True)
            options = {"connections": args.connections, "warmup": args.warmup, "seconds": args.duration}
            bare.append(bare_queries(target, ids, args.limit, CpuMeter(postgres=postmaster), **options))
            print(f"    psycopg: {bare[-1]}", flush=True)
        log_mb = log.stat().st_size / 1e6

    def medians(loads: list[Load]) -> Load:
        cpu = {who: median(x.cpu_ms[who] for x in loads) for who in loads[0].cpu_ms}
        rates = (median(x.rate for x in loads), median(x.p50_ms for x in loads), median(x.p99_ms for x in loads))
        return Load(*rates, cpu, median(x.others_cores for x in loads))

    def cpu_line(name: str, load: Load) -> None:
        parts = ", ".join(f"{who} {ms:.2f} ms" for who, ms in load.cpu_ms.items())
        total = sum(load.cpu_ms.values())
        print(f"{name}: {total:.2f} ms ({parts}; at this rate {total * load.rate / 1e3:.2f} cores)")

    note = f"(median of {args.repeats})"
    baseline = medians(bare)
    for workers in args.workers:
        load = medians(api[workers])
        print(f"api_rps_workers{workers}: {load.rate:,.0f} req/s {note}")
        print(f"api_p50_workers{workers}: {load.p50_ms:.1f} ms")
        print(f"api_p99_workers{workers}: {load.p99_ms:.1f} ms")
        cpu_line(f"api_cpu_per_request_workers{workers}", load)
        if ceiling[workers]:
            top = medians(ceiling[workers])
            print(f"health_rps_workers{workers}: {top.rate:,.0f} req/s {note}")
            print(f"health_p50_workers{workers}: {top.p50_ms:.1f} ms")
            print(f"health_p99_workers{workers}: {top.p99_ms:.1f} ms")
            cpu_line(f"health_cpu_per_request_workers{workers}", top)
    print(f"psycopg_qps: {baseline.rate:,.0f} queries/s {note}")
    print(f"psycopg_p50: {baseline.p50_ms:.1f} ms")
    print(f"psycopg_p99: {baseline.p99_ms:.1f} ms")
    cpu_line("psycopg_cpu_per_query", baseline)
    every = [load for loads in (*api.values(), *ceiling.values(), bare) for load in loads]
    print(f"other_processes_cpu: {median(x.others_cores for x in every):.2f} cores (median over measurements)")
    print(f"api_access_log: {log_mb:.1f} MB written")
    for workers in args.workers:
        load = medians(api[workers])
        met = load.rate >= 1000 and load.p99_ms <= 50
        print(f"ratio_api_to_psycopg_workers{workers}: {load.rate / baseline.rate:.2f}")
        print(f"target_workers{workers}: {'met' if met else 'missed'} (>= 1,000 req/s with p99 <= 50 ms)")


if __name__ == "__main__":
    main()
