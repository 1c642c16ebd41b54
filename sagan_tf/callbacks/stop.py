"""A clean stop on SIGTERM or Ctrl-C (`GracefulStop`)."""

import signal
import threading

import keras


class GracefulStop(keras.callbacks.Callback):
    """Turns SIGTERM and SIGINT (Ctrl-C) into a clean stop after the current training step.

    While `fit` runs, the first such signal sets `signal_received` and `model.stop_training` and puts back the
    previous handler (a second Ctrl-C interrupts at once); `fit` then ends after the step it is running, through
    `on_train_end`, so a `CheckpointEvery` callback saves the final state. (Python runs the handler on the main
    thread between two steps' Python code, so nothing per step is needed.) Handlers can only be installed from the
    main thread; elsewhere this callback does nothing.

    Args:
      signals: the signal numbers to catch.
      print_fn: where the "stopping" message goes; default `print`.
    """

    def __init__(self, signals=(signal.SIGTERM, signal.SIGINT), print_fn=None):
        super().__init__()
        self.signals = tuple(signals)
        self.print_fn = print_fn or print
        self.signal_received = None
        self._previous_handlers = {}

    def _handle(self, signum, frame):
        if self.signal_received is None:
            self.signal_received = signum
            self.print_fn(f"Received {signal.Signals(signum).name}: stopping after this step and saving a "
                          "checkpoint (send it again to stop at once).")
            if self.model is not None:
                self.model.stop_training = True
        self._restore(signum)

    def _restore(self, signum):
        if signum in self._previous_handlers:
            previous = self._previous_handlers.pop(signum)
            signal.signal(signum, signal.SIG_DFL if previous is None else previous)

    def on_train_begin(self, logs=None):
        if self.signal_received is not None:  # received before this fit (e.g. during an evaluation): stop at once
            self.model.stop_training = True
        if threading.current_thread() is not threading.main_thread():
            return
        for signum in self.signals:
            self._previous_handlers[signum] = signal.signal(signum, self._handle)

    def on_train_end(self, logs=None):
        for signum in list(self._previous_handlers):
            self._restore(signum)
