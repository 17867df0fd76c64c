"""Progress of long steps, one mechanism for every layer: a tqdm bar on a terminal, plain lines in a log.

It lives here, in the lowest layer, because every long step reaches it: dbt builds, the
simulation, training, evaluation. Commands turn it on (``with shown():``, the CLI does for
every command); library calls and tests stay quiet unless they ask. In a log (stderr not
a terminal) a bar prints a line per step, at most one per ``LOG_EVERY_S`` but always the
last, so the log stays readable: no carriage returns.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from types import TracebackType
from typing import TypeVar

from tqdm import tqdm

T = TypeVar("T")
LOG_EVERY_S = 5.0  # in a log, at most a line this often for one bar (a silent stretch stays under ~10 s)
_shown: ContextVar[bool] = ContextVar("progress_shown", default=False)
_last_said = [time.perf_counter()]  # when this module last printed: a phase's heartbeat speaks only into silence


def _say(text: str, stream: object = None) -> None:
    print(text, file=stream or sys.stdout, flush=True)
    _last_said[0] = time.perf_counter()


@contextmanager
def shown(on: bool = True) -> Iterator[None]:
    """Within it, bars and phase timings print (``on``) or not."""
    token = _shown.set(on)
    try:
        yield
    finally:
        _shown.reset(token)


def enabled() -> bool:
    return _shown.get()


def on_terminal() -> bool:
    """Whether progress is shown and stderr, where bars go, is a terminal (tqdm may redraw in place)."""
    return enabled() and sys.stderr.isatty()


class Bar:
    """Counts steps of ``total`` (None: unknown): a tqdm bar on a terminal, throttled lines in a log, else nothing."""

    def __init__(self, total: int | None, desc: str, unit: str, every_s: float = LOG_EVERY_S) -> None:
        self.total, self.desc, self.unit, self.every_s = total, desc, unit, every_s
        self.done, self.note = 0, ""
        self.started = self.printed = time.perf_counter()
        self.bar = tqdm(total=total, desc=desc, unit=unit) if on_terminal() else None

    def update(self, steps: int = 1, note: str = "") -> None:
        """``steps`` more done; ``note`` says what was last done (a model's name, a table)."""
        self.done += steps
        self.note = note
        if self.bar is not None:
            self.bar.set_postfix_str(note, refresh=False)
            self.bar.update(steps)
        elif enabled() and (self.done == self.total or time.perf_counter() - self.printed >= self.every_s):
            self.printed = time.perf_counter()
            of = f"/{self.total}" if self.total is not None else ""
            what = f" ({note})" if note else ""
            elapsed = self.printed - self.started
            _say(f"{self.desc}: {self.done}{of} {self.unit}{what}, {elapsed:.1f} s", sys.stderr)

    def __enter__(self) -> Bar:
        return self

    def __exit__(self, *exc: object) -> None:
        if self.bar is not None:
            self.bar.close()


def bar(iterable: Iterable[T], desc: str, unit: str, every_s: float = LOG_EVERY_S) -> Iterator[T]:
    """``iterable``, counted by a ``Bar`` (its length, where it has one, is the total)."""
    items = list(iterable)
    with Bar(len(items), desc, unit, every_s) as counter:
        for item in items:
            yield item
            counter.update()


class phase:  # noqa: N801 (used as a function: ``with phase(...)``)
    """Says ``<prefix>: <name>: <detail>`` as a step starts and ``<prefix>: <name> done in 1.2 s`` as it ends.

    ``seconds`` holds its time once it ended. ``always`` prints even where progress is off
    (the refresh's phases, which its readers and benchmarks follow). Where progress is shown,
    a phase with ``heartbeat`` says it is still running after ``LOG_EVERY_S`` without a line
    from this module (a step with no steps to count, such as a library's one long call).
    Besides ``with``, ``start()`` and ``end()`` mark steps that follow one another.
    """

    def __init__(self, prefix: str, name: str, detail: str = "", *, always: bool = False, heartbeat: bool = False):
        self.prefix, self.name, self.detail = prefix, name, detail
        self.printing = always or enabled()
        self.heartbeat = heartbeat and enabled()
        self.started = time.perf_counter()
        self.seconds = 0.0
        self.ended = threading.Event()

    def start(self) -> phase:
        if self.printing:
            _say(f"{self.prefix}: {self.name}{f': {self.detail}' if self.detail else ''}")
        self.started = time.perf_counter()
        if self.heartbeat:
            threading.Thread(target=self._beat, daemon=True).start()
        return self

    def _beat(self) -> None:
        while not self.ended.wait(1.0):
            if time.perf_counter() - _last_said[0] >= LOG_EVERY_S:
                _say(f"{self.prefix}: {self.name} still running, {time.perf_counter() - self.started:.0f} s")

    def end(self, failed: bool = False) -> None:
        self.ended.set()
        self.seconds = time.perf_counter() - self.started
        if self.printing:
            _say(f"{self.prefix}: {self.name} {'failed' if failed else 'done'} in {self.seconds:.1f} s")

    def __enter__(self) -> phase:
        return self.start()

    def __exit__(self, kind: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None) -> None:
        self.end(failed=kind is not None)
