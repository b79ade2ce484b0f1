"""Run a callback in the event loop as soon as the server is told to stop (SIGTERM/SIGINT),
before the server's own handler (uvicorn's) starts its graceful shutdown.

uvicorn waits for every request in flight before the app's lifespan shutdown runs: a
request that never ends by itself (a held long-poll, a live stream) must be told to
answer on the signal, or the stop waits for the graceful-shutdown timeout and then
cancels it. Only where signals can be handled (the main thread: `ftcontrol serve`); test
clients run the app elsewhere and stop it through the lifespan.
"""

from __future__ import annotations

import asyncio
import signal
import threading
from collections.abc import Callable
from types import FrameType

STOP_SIGNALS = (signal.SIGTERM, signal.SIGINT)


def on_stop_signal(callback: Callable[[], None]) -> Callable[[], None]:
    """Chain `callback` (run in the current event loop) before the signals' handlers;
    returns the undo."""
    if threading.current_thread() is not threading.main_thread():
        return lambda: None
    loop = asyncio.get_running_loop()
    previous = {sig: signal.getsignal(sig) for sig in STOP_SIGNALS}

    def handler(sig: int, frame: FrameType | None) -> None:
        # a signal handler may interrupt the loop anywhere: the callback runs in it
        loop.call_soon_threadsafe(callback)
        chained = previous[signal.Signals(sig)]
        if callable(chained):
            chained(sig, frame)

    for sig in STOP_SIGNALS:
        signal.signal(sig, handler)

    def restore() -> None:
        for sig, old in previous.items():
            signal.signal(sig, old)

    return restore
