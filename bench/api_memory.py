"""The HTTP API's memory under requests that try to make it hold a lot, beside its memory at rest.

On a throw-away embedded PostgreSQL built as ``make run`` builds it (the committed sample,
a simulated cohort of ``--users`` users), ``python -m recommender serve`` (one worker, the
default limits) in a subprocess, whose resident memory (RSS: psutil if installed, else
/proc/PID/status) a thread samples every 50 ms. Over loopback:
1. at rest: the RSS, and a probe client's latency of ``GET /health`` and of a keyed
   ``GET /runs``, one after the other, for ``--probe`` seconds;
2. the attack, all at once, while the probe goes on:
   - 4 anonymous ``POST /events`` of ``--body-mb`` MB each with a Content-Length,
   - 4 the same, chunked, without a Content-Length,
   - 4 the same, chunked, with a data_scientist key (read up to the body limit, then 413),
   - 4 ``POST /sql`` (analyst key) answering at their byte cap
     (``select repeat('x', 500000) from generate_series(1, 1000)``);
3. after: the RSS a second after the attack ended.

    python bench/api_memory.py [--users 300] [--body-mb 100] [--probe 3]

Needs Linux (/proc) where psutil is missing. Prints `name: value unit` lines: the RSS at
rest, its peak during the attack and after it (target: peak under 600 MB), the statuses
each kind of attacker saw, the probe's median latencies during the attack against those
at rest (a ratio), and whether every probe request answered 200.
"""

from __future__ import annotations

import argparse
import http.client
import json
import shutil
import statistics
import tempfile
import threading
import time
import uuid
from collections import Counter
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

from api_speed import api_server, create_key

from recommender.activity.simulate import SimulationConfig
from recommender.refresh import pipeline
from recommender.warehouse.targets import PROJECT_ROOT, throwaway_warehouse

MB = 1e6
CHUNK = b" " * 2**20
WIDE_SQL = "select repeat('x', 500000) from generate_series(1, 1000)"
PEAK_TARGET_MB = 600


def rss_reader(pid: int) -> Callable[[], int]:
    """A function that returns the resident bytes of process ``pid`` and its children."""
    try:
        import psutil
    except ImportError:
        status = Path(f"/proc/{pid}/status")  # uvicorn with one worker serves in the process it started in
        return lambda: 1024 * int(next(x for x in status.read_text().splitlines() if x.startswith("VmRSS:")).split()[1])
    process = psutil.Process(pid)
    return lambda: sum(p.memory_info().rss for p in [process, *process.children(recursive=True)])


class Sampler:
    """RSS every 50 ms from a thread: ``peak(since)`` is the highest since a moment."""

    def __init__(self, read: Callable[[], int]) -> None:
        self.read, self._stop = read, threading.Event()
        self.samples: list[tuple[float, int]] = []  # (monotonic seconds, bytes)
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        while not self._stop.wait(0.05):
            self.samples.append((time.monotonic(), self.read()))

    def peak(self, since: float, until: float) -> int:
        return max(rss for at, rss in self.samples if since <= at <= until)

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def post(port: int, path: str, headers: dict[str, str], body: bytes | Iterator[bytes], chunked: bool) -> str:
    """One POST on a connection of its own; its status, or the error that ended it."""
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=120)
    try:
        conn.request("POST", path, body=body, headers=headers, encode_chunked=chunked)
        response = conn.getresponse()
        answer = response.read()
        if path == "/sql" and response.status == 200:
            return f"200 truncated_by {json.loads(answer)['truncated_by']} ({len(answer) / MB:.1f} MB)"
        return str(response.status)
    except OSError as exc:
        return type(exc).__name__
    finally:
        conn.close()


def body(mb: int) -> Iterator[bytes]:
    for _ in range(mb):
        yield CHUNK


class Probe:
    """``GET /health`` and a keyed ``GET /runs`` in turn, on one keep-alive connection, each timed."""

    def __init__(self, port: int, key: str) -> None:
        self.port, self.key, self.phase = port, key, "rest"
        self.seen: list[tuple[str, str, float, int]] = []  # phase, path, seconds, status
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)
        self._thread.start()

    def _run(self) -> None:
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        while not self._stop.is_set():
            for path, headers in (("/health", {}), ("/runs", {"X-API-Key": self.key})):
                started = time.perf_counter()
                try:
                    conn.request("GET", path, headers=headers)
                    response = conn.getresponse()
                    response.read()
                    status = response.status
                except OSError:
                    conn.close()
                    conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
                    status = 0
                self.seen.append((self.phase, path, time.perf_counter() - started, status))
            time.sleep(0.01)
        conn.close()

    def median_ms(self, phase: str, path: str) -> float:
        return 1e3 * statistics.median(s for p, q, s, _ in self.seen if (p, q) == (phase, path))

    def stop(self) -> None:
        self._stop.set()
        self._thread.join()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--users", type=int, default=300, help="simulated cohort")
    parser.add_argument("--body-mb", type=int, default=100, help="MB each attacking body")
    parser.add_argument("--probe", type=float, default=3.0, help="seconds of probing at rest")
    args = parser.parse_args()

    work_dir = PROJECT_ROOT / "target" / f"bench-{uuid.uuid4().hex[:8]}"
    with throwaway_warehouse("api_memory") as target, tempfile.TemporaryDirectory(prefix="api_memory-") as folder:
        try:
            pipeline.run(target, work_dir=work_dir, simulation=SimulationConfig(users=args.users, days=14))
        finally:
            shutil.rmtree(work_dir, ignore_errors=True)
        writer, analyst = create_key(target), create_key(target, "analyst")
        # the default limits, the rate per key included: what a deployment gets
        with api_server(target, 1, Path(folder) / "api.log", environ={}) as (url, pid):
            port = int(url.rsplit(":", 1)[1])
            sampler = Sampler(rss_reader(pid))
            probe = Probe(port, writer)
            time.sleep(args.probe)
            rest_mb = sampler.read() / MB

            json_type = {"Content-Type": "application/json"}
            length = {"Content-Length": str(args.body_mb * len(CHUNK))}
            attackers = {
                "anonymous_content_length": lambda: post(
                    port, "/events", json_type | length, body(args.body_mb), False
                ),
                "anonymous_chunked": lambda: post(port, "/events", json_type, body(args.body_mb), True),
                "keyed_chunked": lambda: post(
                    port, "/events", json_type | {"X-API-Key": writer}, body(args.body_mb), True
                ),
                "sql_at_byte_cap": lambda: post(
                    port, "/sql", json_type | {"X-API-Key": analyst}, json.dumps({"sql": WIDE_SQL}).encode(), False
                ),
            }
            probe.phase, began = "attack", time.monotonic()
            with ThreadPoolExecutor(4 * len(attackers)) as pool:
                futures = {name: [pool.submit(attack) for _ in range(4)] for name, attack in attackers.items()}
                statuses = {name: Counter(f.result() for f in found) for name, found in futures.items()}
            ended = time.monotonic()
            probe.phase = "after"
            time.sleep(1)
            after_mb = sampler.read() / MB
            probe.stop()
            sampler.stop()

    peak_mb = sampler.peak(began, ended) / MB
    print(f"attack: 4 x {len(attackers)} requests of {args.body_mb} MB bodies or 10 MiB answers, {ended - began:.1f} s")
    print(f"rss_at_rest: {rest_mb:.0f} MB")
    print(f"rss_peak_during_attack: {peak_mb:.0f} MB")
    print(f"rss_after_attack: {after_mb:.0f} MB")
    for name, counted in statuses.items():
        print(f"statuses_{name}: {', '.join(f'{n} x {status}' for status, n in sorted(counted.items()))}")
    for path in ("/health", "/runs"):
        rest, attack = probe.median_ms("rest", path), probe.median_ms("attack", path)
        name = path.strip("/")
        print(f"{name}_p50_at_rest: {rest:.1f} ms")
        print(f"{name}_p50_during_attack: {attack:.1f} ms")
        print(f"ratio_{name}_p50_attack_to_rest: {attack / rest:.2f}")
    answered = Counter(status for _, _, _, status in probe.seen)
    print(f"probe_requests: {sum(answered.values())} ({', '.join(f'{n} x {s}' for s, n in sorted(answered.items()))})")
    print(f"probe_all_answered: {'yes' if set(answered) == {200} else 'no'}")
    print(f"target_peak: {'met' if peak_mb < PEAK_TARGET_MB else 'missed'} (< {PEAK_TARGET_MB} MB)")


if __name__ == "__main__":
    main()
