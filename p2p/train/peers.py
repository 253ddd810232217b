"""Multi-process runs: notice a lost peer process and stop in bounded time, naming it.

Without this, a process whose peer was SIGKILLed either hangs in a collective or is aborted by
the coordination service with a C++ stack dump. With jax's recoverable tasks turned on (set in
distributed.initialize), a background thread asks the coordination service which processes are
alive every few seconds (a call every live process makes, so it also notices a hung peer once
its heartbeats stop, after --peer_timeout); when one is gone, it logs one line naming it and
ends this process with exit code 2. The last complete checkpoint is intact, so relaunching every
process resumes from it.
"""

from __future__ import annotations

import logging
import os
import sys
import threading
from collections.abc import Callable

LOST_PEER_EXIT = 2
_INTERVAL_S = 3.0
_active: list[PeerWatch] = []


def _live(ids: list[int]) -> set[int]:
  from jax._src import distributed
  return set(distributed.global_state.client.get_live_nodes(ids))


class PeerWatch:
  """A daemon thread that ends the process, with `message(lost)`, when a peer is gone."""

  def __init__(self, num_processes: int, message: Callable[[list[int]], str],
               interval_s: float = _INTERVAL_S):
    self.ids = list(range(num_processes))
    self.message, self.interval_s = message, interval_s
    self.lost: list[int] = []
    self._found = threading.Event()
    self._stop = threading.Event()
    self._thread = threading.Thread(target=self._run, name="p2p-peer-watch", daemon=True)

  def start(self) -> PeerWatch:
    """Starts watching; returns self."""
    _active.append(self)
    self._thread.start()
    return self

  def stop(self) -> None:
    """Stops watching (the run ends normally)."""
    self._stop.set()

  def _run(self) -> None:
    while not self._stop.wait(self.interval_s):
      try:
        live = _live(self.ids)
      except Exception as e:  # noqa: BLE001 - the coordinator (process 0) itself is gone
        logging.debug("Liveness query failed: %s", e)
        live = set(self.ids[1:])
      lost = [i for i in self.ids if i not in live]
      if lost and not self._stop.is_set():
        self.lost = lost
        self._found.set()
        self.exit()

  def wait_for_loss(self, timeout_s: float) -> bool:
    """Whether a peer is (or within timeout_s turns out to be) lost."""
    return self._found.wait(timeout_s)

  def exit(self) -> None:
    """Logs the one line and ends the process now (no cleanup: a collective would hang)."""
    print(f"error: {self.message(self.lost)}", file=sys.stderr, flush=True)
    logging.shutdown()
    os._exit(LOST_PEER_EXIT)


def run_ended() -> None:
  """Stops every watch: called once all processes passed the run's last collective, since
  from then on a peer that exits first has simply finished."""
  for watch in _active:
    watch.stop()
