"""SIGTERM/SIGINT become a request to stop after the current step, save and exit cleanly."""

from __future__ import annotations

import logging
import signal
import threading
from types import FrameType


class PreemptionGuard:
  """Context manager: `requested` turns True on SIGTERM or SIGINT; a second SIGINT aborts."""

  SIGNALS = (signal.SIGTERM, signal.SIGINT)

  def __init__(self):
    self.requested = False
    self.signal_name = ""
    self._previous: dict[int, object] = {}

  def __enter__(self) -> "PreemptionGuard":
    if threading.current_thread() is threading.main_thread():
      for sig in self.SIGNALS:
        self._previous[sig] = signal.signal(sig, self._handle)
    return self

  def __exit__(self, *exc) -> None:
    for sig, handler in self._previous.items():
      signal.signal(sig, handler)

  def _handle(self, signum: int, frame: FrameType | None) -> None:
    del frame
    if self.requested and signum == signal.SIGINT:
      raise KeyboardInterrupt
    self.requested = True
    self.signal_name = signal.Signals(signum).name
    logging.warning("%s received: finishing the current step, then saving a checkpoint.",
                    self.signal_name)
