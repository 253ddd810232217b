"""What a training run reports as it goes: averaged metrics (one step late) and validation."""

from __future__ import annotations

import logging
import math
import time

import flax.linen as nn
import jax
import numpy as np

from p2p.config import TrainConfig
from p2p.data.errors import DataError
from p2p.errors import UserError
from p2p.data.images import triplets
from p2p.data.pipeline import eval_dataset, make_split
from p2p.infer.sample import Generator, sample
from p2p.train.state import TrainState, generator_params
from p2p.train.writers import Writer


class NonFiniteLoss(UserError, RuntimeError):
  """A loss became NaN or infinite; the run stopped without saving the bad state."""


class MetricsLogger:
  """Fetches each step's metrics (one step late), checks them, averages them between logs."""

  def __init__(self, writer: Writer, every: int, batch_size: int):
    self.writer, self.every, self.batch_size = writer, every, batch_size
    self.sums: dict[str, float] = {}
    self.count = 0
    self.last: dict[str, float] = {}
    self.tick = time.perf_counter()
    self.images_per_s = 0.0

  def consume(self, step: int, metrics: dict[str, jax.Array], steps: int = 1) -> None:
    """Takes the metrics of the call that ended at `step` (stacked when it ran several steps).

    Raises NonFiniteLoss if any is NaN or infinite.
    """
    host = jax.device_get(metrics)
    for i in range(steps):
      at = step - steps + 1 + i
      values = {k: float(v[i] if steps > 1 else v) for k, v in host.items()}
      bad = {k: v for k, v in values.items() if not math.isfinite(v)}
      if bad:
        raise NonFiniteLoss(f"Non-finite loss at step {at}: {bad}.")
      self.last = values
      self.count += 1
      for k, v in values.items():
        self.sums[k] = self.sums.get(k, 0.0) + v
      if at % self.every == 0:
        self.flush(at)

  def flush(self, step: int) -> None:
    """Writes the averages since the last flush, with images/s over that stretch."""
    if not self.count:
      return
    now = time.perf_counter()
    self.images_per_s = self.count * self.batch_size / max(now - self.tick, 1e-9)
    scalars = {k: v / self.count for k, v in self.sums.items()}
    scalars["perf/images_per_s"] = self.images_per_s
    self.writer.write_scalars(step, scalars)
    self.writer.flush()
    logging.info("step %d: %s", step, ", ".join(f"{k}={v:.4g}" for k, v in scalars.items()))
    self.sums, self.count, self.tick = {}, 0, now

  def summary(self) -> str:
    """The latest losses, short, for the progress bar."""
    v = self.last
    return (f"G {v['total_gen_loss']:.3f}  L1 {v['l1_loss']:.4f}  D {v['total_disc_loss']:.3f}"
            if v else "")


VAL_CHUNK = 4  # val images per sampler call: 16 at once added ~0.5 GB to a full-size run's peak


class Validator:
  """val_l1 and a sample grid (input | generated | target) on the first val examples."""

  def __init__(self, config: TrainConfig, generator: nn.Module, writer: Writer):
    self.config, self.generator, self.writer = config, generator, writer
    self.examples = _load_eval_examples(config)
    self.history: list[tuple[int, float]] = []

  def __call__(self, state: TrainState, step: int, epoch: float) -> None:
    if self.examples is None:
      return
    x, y = self.examples["input"], self.examples["target"]
    gen = Generator(self.generator, {"params": generator_params(state),
                                     "batch_stats": state.g.batch_stats}, x.shape[1],
                    data=self.config.data)
    fake = sample(gen, x, rng=jax.random.PRNGKey(self.config.seed), chunk=VAL_CHUNK)  # paper mode
    l1 = float(np.abs(fake - y).mean())
    self.history.append((step, l1))
    self.writer.write_scalars(step, {"val_l1": l1})
    n = self.config.num_sample_images
    self.writer.write_image(step, "val_samples", triplets(x[:n], fake[:n], y[:n]))
    self.writer.flush()
    logging.info("step %d (epoch %.2f): val_l1 %.4f", step, epoch, l1)


def _load_eval_examples(config: TrainConfig) -> dict[str, np.ndarray] | None:
  """The first eval_examples validation examples, in file order (None if there is no val)."""
  try:
    split = make_split(config.data, "val", equal_shards=False)
  except DataError as e:  # A dataset without val/ still trains.
    logging.warning("No validation examples (%s); skipping val_l1 and samples.", e)
    return None
  ds = eval_dataset(config.data, split, batch_size=1)
  count = min(max(config.eval_examples, config.num_sample_images), len(ds))
  rows = [ds[i] for i in range(count)]
  return {k: np.concatenate([r[k] for r in rows]) for k in ("input", "target")}
