"""A clean stop on SIGTERM or SIGINT for the commands that claim and send (`send-due`).

The first signal stops claiming: the request in flight may finish within `GRACE`
seconds, every claim never handed to the provider is released, and the command exits
with 128 + the signal's number (143 for SIGTERM, 130 for SIGINT), as a process killed
by it would, so supervisors read it the same way. A second signal, or the grace period
running out, abandons the requests in flight: their claims stay claimed (they may have
gone out; provider events settle them) and every other claim is still released.
"""

from __future__ import annotations

import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from types import FrameType

GRACE = 8.0  # seconds: under the 10 s a container stop waits before SIGKILL


@dataclass
class Stopping:
    stop: threading.Event = field(default_factory=threading.Event)
    abandon: threading.Event = field(default_factory=threading.Event)
    signum: int | None = None

    @property
    def exit_code(self) -> int:
        return 128 + self.signum if self.signum is not None else 0

    def line(self) -> str:
        name = signal.Signals(self.signum).name if self.signum is not None else "a signal"
        how = "at once" if self.abandon.is_set() else "cleanly"
        return (
            f"stopped by {name} ({how}): nothing more was claimed, every claim not handed to the "
            "provider was released; emails in flight settle from the provider's events"
        )


@contextmanager
def stopping_on_signals() -> Iterator[Stopping]:
    """Handle SIGTERM and SIGINT as described above while the block runs (main thread only)."""
    state = Stopping()
    if threading.current_thread() is not threading.main_thread():
        yield state
        return
    timer: threading.Timer | None = None

    def on_signal(signum: int, _frame: FrameType | None) -> None:
        nonlocal timer
        if state.stop.is_set():
            state.abandon.set()
            return
        state.signum = signum
        state.stop.set()
        print(f"{signal.Signals(signum).name}: stopping after the request in flight", file=sys.stderr)
        timer = threading.Timer(GRACE, state.abandon.set)
        timer.daemon = True
        timer.start()

    previous = {sig: signal.signal(sig, on_signal) for sig in (signal.SIGTERM, signal.SIGINT)}
    try:
        yield state
    finally:
        if timer is not None:
            timer.cancel()
        for sig, handler in previous.items():
            signal.signal(sig, handler)
