"""Ctrl-C and SIGTERM held back for the few steps that must not be cut in two: creating a
temporary and entering its cleanup, switching a directory over, removing the old one."""
import signal
import threading
from contextlib import contextmanager

SIGNALS = (signal.SIGINT, signal.SIGTERM)


class HeldInterrupts:
    """`with HeldInterrupts() as held:` a Ctrl-C or SIGTERM that arrives inside the block waits
    until it ends, then acts as it would have (KeyboardInterrupt, or whatever handler was there
    before); `with held.released():` lets them through for a stretch of the caller's own work,
    which may be long.

    Only signals that Python handles are held: under the default action (or ignored) a signal
    acts as before, since a process it ends cannot clean up anyway. Outside the main thread, where
    Python neither installs handlers nor receives signals, it does nothing."""

    def __init__(self):
        self._previous = {}  # signal -> the handler to give back
        self._pending = []   # signals that arrived while held, in order
        self._holding = False

    def __enter__(self):
        self._hold()
        return self

    def __exit__(self, *exc):
        self._let_go()

    @contextmanager
    def released(self):
        self._let_go()
        try:
            yield
        finally:
            self._hold()

    def _hold(self):
        if threading.current_thread() is not threading.main_thread():
            return
        self._holding = True
        for signum in SIGNALS:
            handler = signal.getsignal(signum)
            if callable(handler) and handler != self._record:
                self._previous[signum] = handler
                signal.signal(signum, self._record)

    def _record(self, signum, frame):
        if self._holding:
            self._pending.append(signum)
        else:  # it came while the handlers were being given back
            self._previous[signum](signum, frame)

    def _let_go(self):
        """Give the handlers back, then hand them what arrived meanwhile."""
        self._holding = False
        handlers = dict(self._previous)
        for signum, handler in handlers.items():
            signal.signal(signum, handler)
            del self._previous[signum]
        pending, self._pending = self._pending, []
        for signum in pending:
            handlers[signum](signum, None)
