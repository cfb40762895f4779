"""Ctrl-C and SIGTERM during training: the step in progress finishes, then training stops.

A step changes the weights, the optimizer state, the batch-sampling RNG and the dropout counter
one after the other; interrupted half-way, those would describe different steps, and a checkpoint
of them would not resume exactly. So the signal only sets a flag, which the loop reads between
steps. A second Ctrl-C stops at once, for a step that never ends.
"""
import signal
import threading


class DeferredInterrupts:
    """`with DeferredInterrupts() as interrupts:` ... `if interrupts.requested: stop cleanly`.
    Outside the main thread (where Python cannot install signal handlers) it does nothing."""

    SIGNALS = (signal.SIGINT, signal.SIGTERM)

    def __init__(self):
        self.requested = None  # the name of the signal that asked to stop
        self._previous = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for signum in self.SIGNALS:
                self._previous[signum] = signal.signal(signum, self._handle)
        return self

    def __exit__(self, *exc):
        for signum, handler in self._previous.items():
            signal.signal(signum, handler)
        self._previous.clear()

    def _handle(self, signum, frame):
        if self.requested and signum == signal.SIGINT:
            raise KeyboardInterrupt  # the second Ctrl-C: stop now
        self.requested = signal.Signals(signum).name
