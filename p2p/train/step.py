"""The pix2pix training step, a pure function (state, batch) -> (state, metrics), in stages.

With x the input (map), y the target (photo) and z G's dropout (Isola et al., 2017):
  L_cGAN(G, D) = E[log D(x, y)] + E[log(1 - D(x, G(x, z)))]             (eq. 1)
  L_L1(G)      = E[|y - G(x, z)|_1]                                      (eq. 3)
  G*           = arg min_G max_D  L_cGAN(G, D) + lambda L_L1(G)          (eq. 4)
As in the PyTorch implementation, one step runs G forward once, then a D update, then a G
update through the freshly updated D (`generator_forward`, `discriminator_update`,
`generator_update`), and reports the seed's metrics (`step_metrics`).
"""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from p2p.config import OptimConfig, TrainConfig
from p2p.train import parallel
from p2p.train.losses import (Logits, discriminator_loss, feature_matching_loss,
                              generator_loss)
from p2p.train.state import NetState, Networks, TrainState, ema_update

# XLA:CPU's copy insertion, unless it uses region analysis, cannot prove that Adam may update the
# donated state in place, so every step first copied each first moment and some kernels (276 MiB
# at ngf 64: peak memory and time; docs/performance.md).
CPU_COMPILER_OPTIONS = {"xla_cpu_copy_insertion_use_region_analysis": True}

METRICS = ("total_gen_loss", "fake_d_real_class_loss", "l1_loss", "total_disc_loss",
           "real_d_loss", "fake_d_loss")


def _d_input(nets: Networks, x: jax.Array, y: jax.Array) -> jax.Array:
  """What D judges: the (input, output) pair on channels, or the output alone (unconditional)."""
  return jnp.concatenate([x, y], axis=-1) if nets.d_conditional else y


def _apply_d(nets: Networks, params: Any, stats: Any, pair: jax.Array, features: bool = False
             ) -> tuple[Logits, Any, tuple[jax.Array, ...]]:
  """D's logits in train mode, its updated BatchNorm statistics, and (features) each block's
  activation, in order (a multi-scale D's scale_0, scale_1, ... subtrees by name)."""
  mutable = ["batch_stats", "intermediates"] if features else ["batch_stats"]
  logits, updates = nets.discriminator.apply(
      {"params": params, "batch_stats": stats}, pair, train=True, mutable=mutable)
  feats = tuple(jax.tree.leaves(updates["intermediates"])) if features else ()
  return logits, updates.get("batch_stats", stats), feats


def _adam_update(tx: optax.GradientTransformation, net: NetState, grads: Any, stats: Any
                 ) -> NetState:
  """One optimizer step of a network; its BatchNorm statistics become `stats`."""
  # Materialise the gradients once: otherwise XLA fuses each gradient's producer (e.g. four
  # padded phase-kernel gradients summed) into each of Adam's fusions and recomputes it there.
  grads = jax.lax.optimization_barrier(grads)
  updates, opt_state = tx.update(grads, net.opt_state, net.params)
  return NetState(optax.apply_updates(net.params, updates), stats, opt_state)


def generator_forward(nets: Networks, g: NetState, x: jax.Array, dropout_rng: jax.Array
                      ) -> tuple[jax.Array, Callable, Any]:
  """G(x, z): the fake, the vjp that carries G's update, and G's new BatchNorm statistics.

  G runs once per step; both updates reuse this output (D's detached, G's through the vjp).
  """
  def forward(params):
    fake, updates = nets.generator.apply(
        {"params": params, "batch_stats": g.batch_stats}, x, train=True,
        rngs={"dropout": dropout_rng}, mutable=["batch_stats"])
    return fake, updates.get("batch_stats", g.batch_stats)

  return jax.vjp(forward, g.params, has_aux=True)


def discriminator_update(nets: Networks, optim: OptimConfig, d: NetState, x: jax.Array,
                         y: jax.Array, fake: jax.Array) -> tuple[NetState, dict[str, jax.Array]]:
  """D ascends eq. 1: minimises w [-log D(x, y) - log(1 - D(x, G(x, z)))] (w: disc_loss_weight).

  G's output is a constant here. D sees fake and real pairs in separate calls, so its
  BatchNorm statistics stay separate, as in the reference implementation.
  """
  def loss_fn(params):
    fake_logits, stats, _ = _apply_d(nets, params, d.batch_stats,
                                     _d_input(nets, x, jax.lax.stop_gradient(fake)))
    real_logits, stats, _ = _apply_d(nets, params, stats, _d_input(nets, x, y))
    loss, metrics = discriminator_loss(real_logits, fake_logits, mode=optim.gan_mode,
                                       weight=optim.disc_loss_weight)
    return loss, (metrics, stats)

  (_, (metrics, stats)), grads = jax.value_and_grad(loss_fn, has_aux=True)(d.params)
  return _adam_update(nets.d_tx, d, grads, stats), metrics


def generator_update(nets: Networks, optim: OptimConfig, g: NetState, g_vjp: Callable,
                     g_stats: Any, d: NetState, x: jax.Array, y: jax.Array, fake: jax.Array
                     ) -> tuple[NetState, Any, dict[str, jax.Array]]:
  """G descends eq. 4: gan_weight L_GAN + l1_weight L_L1 [+ fm_weight L_FM], through the new D.

  L_GAN is -log D(x, G(x, z)) (the non-saturating form), L_FM pix2pixHD's feature matching.
  The loss is differentiated only in the fake; g_vjp carries that into G's parameters. Returns
  G's new state, D's BatchNorm statistics after this pass, and G's metrics.
  """
  use_fm, real_feats = optim.fm_weight > 0, ()
  if use_fm:  # the real pair's D features (statistics of this pass not kept)
    _, _, real_feats = _apply_d(nets, d.params, d.batch_stats, _d_input(nets, x, y), True)

  def loss_fn(fake):
    logits, stats, fake_feats = _apply_d(nets, d.params, d.batch_stats,
                                         _d_input(nets, x, fake), use_fm)
    fm = feature_matching_loss(fake_feats, real_feats) if use_fm else None
    loss, metrics = generator_loss(logits, fake, y, l1_weight=optim.l1_weight,
                                   gan_weight=optim.gan_weight, mode=optim.gan_mode,
                                   feature_matching=fm, fm_weight=optim.fm_weight)
    return loss, (metrics, stats)

  (_, (metrics, d_stats)), fake_grad = jax.value_and_grad(loss_fn, has_aux=True)(fake)
  (grads,) = g_vjp(fake_grad)
  return _adam_update(nets.g_tx, g, grads, g_stats), d_stats, metrics


def step_metrics(g_metrics: dict[str, jax.Array], d_metrics: dict[str, jax.Array]
                 ) -> dict[str, jax.Array]:
  """The step's scalars under the seed's names (METRICS, plus feature_matching_loss if used)."""
  metrics = {**g_metrics, **d_metrics}
  missing = set(METRICS) - set(metrics)
  if missing:
    raise ValueError(f"the step lost metrics {sorted(missing)}.")
  return metrics


def train_step(state: TrainState, batch: dict[str, jax.Array], *, nets: Networks,
               optim: OptimConfig) -> tuple[TrainState, dict[str, jax.Array]]:
  """One pix2pix iteration: G forward, D update, G update, G's weight average, metrics."""
  x, y = batch["input"], batch["target"]
  dropout_rng = jax.random.fold_in(state.rng, state.step)
  fake, g_vjp, g_stats = generator_forward(nets, state.g, x, dropout_rng)
  d, d_metrics = discriminator_update(nets, optim, state.d, x, y, fake)
  g, d_stats, g_metrics = generator_update(nets, optim, state.g, g_vjp, g_stats, d, x, y, fake)
  g_ema = (None if state.g_ema is None
           else ema_update(state.g_ema, g.params, nets.ema_decay, state.step))
  new_state = TrainState(step=state.step + 1, rng=state.rng, g=g,
                         d=d.replace(batch_stats=d_stats), g_ema=g_ema)
  return new_state, step_metrics(g_metrics, d_metrics)


def multi_step(state: TrainState, batches: dict[str, jax.Array], *, nets: Networks,
               optim: OptimConfig, unroll: bool = False
               ) -> tuple[TrainState, dict[str, jax.Array]]:
  """train_step over a stack of K batches (leading axis) in one call; metrics stacked K x ...

  One dispatch for K steps: on a GPU at batch 1 the per-step launch overhead otherwise rivals
  the step itself. unroll=True traces the K steps as straight-line code instead of a loop:
  XLA:CPU runs a step inside a while loop several times slower (measured 3x at 64 px), so
  compile_step unrolls on CPU.
  """
  step = functools.partial(train_step, nets=nets, optim=optim)
  return jax.lax.scan(step, state, batches, unroll=unroll)


def compile_step(nets: Networks, config: TrainConfig, mesh: jax.sharding.Mesh,
                 steps: int = 1) -> Callable:
  """The jitted step (steps > 1: that many steps per call, on stacked batches).

  State replicated and donated; the batch axis split over the data axis of the mesh.
  """
  repl = parallel.replicated(mesh)
  on_cpu = mesh.devices.flat[0].platform == "cpu"
  if steps == 1:
    fn, data = train_step, parallel.batch_sharding(mesh)
  else:
    fn = functools.partial(multi_step, unroll=on_cpu)
    data = parallel.batch_sharding(mesh, stacked=True)
  fn = functools.partial(fn, nets=nets, optim=config.optim)
  return jax.jit(fn, in_shardings=(repl, data), out_shardings=(repl, repl), donate_argnums=0,
                 compiler_options=CPU_COMPILER_OPTIONS if on_cpu else None)


def abstract_batch(config: TrainConfig, mesh: jax.sharding.Mesh, steps: int = 1
                   ) -> dict[str, jax.ShapeDtypeStruct]:
  """Shapes, dtypes and shardings of the global batch one call of the step takes."""
  size = config.data.image_size
  stacked = steps > 1
  sharding = parallel.batch_sharding(mesh, stacked=stacked)

  def spec(channels: int) -> jax.ShapeDtypeStruct:
    shape = (config.batch_size, size, size, channels)
    return jax.ShapeDtypeStruct((steps, *shape) if stacked else shape, jnp.float32,
                                sharding=sharding)

  in_channels, out_channels = config.data.model_channels()
  return {"input": spec(in_channels), "target": spec(out_channels)}


def precompile(step: Callable, state: Any, config: TrainConfig, mesh: jax.sharding.Mesh,
               steps: int = 1) -> Callable:
  """Compiles a compile_step function for abstract `state` before any real state exists.

  XLA's scratch while compiling the full-size CPU step (~1 GB) then never coexists with the
  state's buffers (0.66 GB at ngf 64), which lowers the run's peak memory. The result is
  called like the step; its inputs must match `state` and the batch exactly.
  """
  return step.lower(state, abstract_batch(config, mesh, steps)).compile()
