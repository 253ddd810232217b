"""The pix2pix training step, a pure function (state, batch) -> (state, metrics)."""

from __future__ import annotations

import functools
from collections.abc import Callable
from typing import Any

import jax
import jax.numpy as jnp
import optax

from p2p import augment, parallel
from p2p.config import OptimConfig, TrainConfig
from p2p.losses import (Logits, discriminator_loss, feature_matching_loss, generator_loss,
                        r1_value_and_grad)
from p2p.state import NetState, Networks, TrainState, ema_update

# XLA:CPU's copy insertion, unless it uses region analysis, cannot prove that Adam may update the
# donated state in place, so every step first copied each first moment and some kernels (276 MiB
# at ngf 64: peak memory and time; benchmarks/README.md).
CPU_COMPILER_OPTIONS = {"xla_cpu_copy_insertion_use_region_analysis": True}

METRICS = ("total_gen_loss", "fake_d_real_class_loss", "l1_loss", "total_disc_loss",
           "real_d_loss", "fake_d_loss")
AUGMENT_STREAM = 0xA06  # folded into the step's key for D's input augmentation (DiffAugment)


def augment_keys(step_rng: jax.Array) -> tuple[jax.Array, jax.Array, jax.Array]:
  """Keys of D's input augmentation from the step's key: D update's fake and real pairs, G's.

  The G update augments the fake and the real pair with its one key, so feature matching
  compares features of identically transformed pairs.
  """
  k_fake, k_real, k_g = jax.random.split(jax.random.fold_in(step_rng, AUGMENT_STREAM), 3)
  return k_fake, k_real, k_g


def _d_input(nets: Networks, x: jax.Array, y: jax.Array, key: jax.Array,
             policy: tuple[str, ...]) -> jax.Array:
  """D's input, DiffAugmented: the (input, output) pair on channels, or the output alone."""
  pair = jnp.concatenate([x, y], axis=-1) if nets.d_conditional else y
  return augment.diff_augment(pair, key, policy)


def _apply_d(nets: Networks, params: Any, stats: Any, pair: jax.Array) -> tuple[Logits, Any]:
  """D logits of (input, output) pairs in train mode, and D's updated BatchNorm statistics.

  A multi-scale D gives a tuple of logit maps, one per scale; the losses sum over it.
  """
  logits, stats, _ = _apply_d_features(nets, params, stats, pair, features=False)
  return logits, stats


def _apply_d_features(nets: Networks, params: Any, stats: Any, pair: jax.Array,
                      features: bool = True) -> tuple[Logits, Any, tuple[jax.Array, ...]]:
  """As _apply_d, plus each D block's activation when features (else an empty tuple)."""
  mutable = ["batch_stats", "intermediates"] if features else ["batch_stats"]
  logits, updates = nets.discriminator.apply(
      {"params": params, "batch_stats": stats}, pair, train=True, mutable=mutable)
  # Blocks in order; a multi-scale D's scale_0, scale_1, ... subtrees in order of their names.
  feats = tuple(jax.tree.leaves(updates["intermediates"])) if features else ()
  return logits, updates.get("batch_stats", stats), feats


def _update(tx: optax.GradientTransformation, net: NetState, grads: Any, stats: Any) -> NetState:
  # Materialise the gradients once: otherwise XLA fuses each gradient's producer (e.g. four
  # padded phase-kernel gradients summed) into each of Adam's fusions and recomputes it there.
  grads = jax.lax.optimization_barrier(grads)
  updates, opt_state = tx.update(grads, net.opt_state, net.params)
  return NetState(optax.apply_updates(net.params, updates), stats, opt_state)


def _r1_grads(nets: Networks, optim: OptimConfig, state: TrainState, x: jax.Array,
              y: jax.Array, key: jax.Array, policy: tuple[str, ...], r1: bool | None
              ) -> tuple[jax.Array, Any]:
  """The R1 term added to D's loss this step, and its gradient in D's parameters.

  Lazy with r1_every = N > 1 (StyleGAN2): only every N-th step, at N times the weight; the
  logged term is then 0 between those steps, so its mean over a window is the mean per step.
  r1=None picks the steps by lax.cond on the step; True / False: the caller has picked.
  D sees the real pair as in its update (BatchNorm statistics of this pass are not kept).
  """
  d = nets.discriminator.clone(narrow_conv=False)  # same params; jax.jvp-able convs
  weight = 0.5 * optim.r1_gamma * optim.r1_every

  def d_real(params, target):
    return d.apply({"params": params, "batch_stats": state.d.batch_stats},
                   _d_input(nets, x, target, key, policy), train=True, mutable=["batch_stats"])[0]

  def weighted(params):
    value, grads = r1_value_and_grad(d_real, params, y)
    return weight * value, jax.tree.map(lambda g: weight * g, grads)

  if optim.r1_every == 1 or r1:
    return weighted(state.d.params)

  def skip(params):
    return jnp.zeros((), jnp.float32), jax.tree.map(jnp.zeros_like, params)

  return jax.lax.cond(state.step % optim.r1_every == 0, weighted, skip, state.d.params)


def train_step(state: TrainState, batch: dict[str, jax.Array], *, nets: Networks,
               optim: OptimConfig, r1: bool | None = None
               ) -> tuple[TrainState, dict[str, jax.Array]]:
  """One pix2pix iteration as in the PyTorch implementation: G forward, D update, G update.

  G runs once; its vjp carries the G update. D sees real and fake pairs in separate calls (so
  BatchNorm statistics stay separate), and the G update sees the freshly updated D. With a
  DiffAugment policy D sees every pair through its random transforms (augment_keys). With
  optim.r1_gamma > 0 D's loss also has the R1 penalty on its gradient at the real pair, on
  every r1_every-th step: chosen inside the step (r1=None) or by the caller (r1=True: this is
  one of them; False: it is not; XLA:CPU runs the lax.cond's R1 branch ~5x slower than inline).
  """
  x, y = batch["input"], batch["target"]
  dropout_rng = jax.random.fold_in(state.rng, state.step)
  policy = augment.parse_policy(optim.d_augment)
  k_fake, k_real, k_g = augment_keys(dropout_rng)

  def g_forward(params):
    fake, updates = nets.generator.apply(
        {"params": params, "batch_stats": state.g.batch_stats}, x, train=True,
        rngs={"dropout": dropout_rng}, mutable=["batch_stats"])
    return fake, updates.get("batch_stats", state.g.batch_stats)

  fake, g_vjp, g_stats = jax.vjp(g_forward, state.g.params, has_aux=True)

  def d_loss_fn(params):
    fake_logits, stats = _apply_d(nets, params, state.d.batch_stats,
                                  _d_input(nets, x, jax.lax.stop_gradient(fake), k_fake, policy))
    real_logits, stats = _apply_d(nets, params, stats, _d_input(nets, x, y, k_real, policy))
    loss, metrics = discriminator_loss(real_logits, fake_logits, mode=optim.gan_mode,
                                       weight=optim.disc_loss_weight)
    return loss, (metrics, stats)

  (_, (d_metrics, d_stats)), d_grads = jax.value_and_grad(d_loss_fn, has_aux=True)(
      state.d.params)
  if optim.r1_gamma > 0:
    penalty = jnp.zeros(())
    if r1 is not False:
      penalty, r1_grads = _r1_grads(nets, optim, state, x, y, k_real, policy, r1)
      d_grads = jax.tree.map(jnp.add, d_grads, r1_grads)
    d_metrics = {**d_metrics, "r1_penalty": penalty}
  d = _update(nets.d_tx, state.d, d_grads, d_stats)

  use_fm = optim.fm_weight > 0
  relativistic = optim.gan_mode == "relativistic"
  # The real pair's D logits and features under the updated D (its BatchNorm statistics are
  # not kept), for feature matching and the relativistic loss.
  real_logits, real_feats = None, ()
  if use_fm or relativistic:
    real_logits, _, real_feats = _apply_d_features(
        nets, d.params, d.batch_stats, _d_input(nets, x, y, k_g, policy), features=use_fm)

  def g_loss_fn(fake):
    fake_logits, stats, fake_feats = _apply_d_features(
        nets, d.params, d.batch_stats, _d_input(nets, x, fake, k_g, policy), features=use_fm)
    fm = feature_matching_loss(fake_feats, real_feats) if use_fm else None
    loss, metrics = generator_loss(fake_logits, fake, y, l1_weight=optim.l1_weight,
                                   gan_weight=optim.gan_weight, mode=optim.gan_mode,
                                   feature_matching=fm, fm_weight=optim.fm_weight,
                                   l1_pool=optim.l1_pool, real_logits=real_logits)
    return loss, (metrics, stats)

  (_, (g_metrics, d_stats)), fake_grad = jax.value_and_grad(g_loss_fn, has_aux=True)(fake)
  (g_grads,) = g_vjp(fake_grad)
  g = _update(nets.g_tx, state.g, g_grads, g_stats)
  d = d.replace(batch_stats=d_stats)
  g_ema = (None if state.g_ema is None
           else ema_update(state.g_ema, g.params, nets.ema_decay, state.step))
  new_state = TrainState(step=state.step + 1, rng=state.rng, g=g, d=d, g_ema=g_ema)
  return new_state, {**g_metrics, **d_metrics}


def multi_step(state: TrainState, batches: dict[str, jax.Array], *, nets: Networks,
               optim: OptimConfig, unroll: bool = False
               ) -> tuple[TrainState, dict[str, jax.Array]]:
  """train_step over a stack of K batches (leading axis) in one call; metrics stacked K x ...

  One dispatch for K steps: on a GPU at batch 1 the per-step launch overhead otherwise rivals
  the step itself. unroll=True traces the K steps as straight-line code instead of a loop:
  XLA:CPU runs a step inside a while loop several times slower (measured 3x at 64 px,
  benchmarks/README.md), so compile_step unrolls on CPU.
  """
  step = functools.partial(train_step, nets=nets, optim=optim)
  return jax.lax.scan(step, state, batches, unroll=unroll)


def compile_step(nets: Networks, config: TrainConfig, mesh: jax.sharding.Mesh,
                 steps: int = 1, r1: bool | None = None) -> Callable:
  """The jitted step (steps > 1: that many steps per call, on stacked batches).

  State replicated and donated; the batch axis split over the data axis of the mesh. r1: as
  in train_step, for single steps.
  """
  repl = parallel.replicated(mesh)
  on_cpu = mesh.devices.flat[0].platform == "cpu"
  if steps == 1:
    fn, data = functools.partial(train_step, r1=r1), parallel.batch_sharding(mesh)
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
  shape = (config.batch_size, size, size, 3)
  stacked = steps > 1
  sharding = parallel.batch_sharding(mesh, stacked=stacked)
  spec = jax.ShapeDtypeStruct((steps, *shape) if stacked else shape, jnp.float32,
                              sharding=sharding)
  return {"input": spec, "target": spec}


def precompile(step: Callable, state: Any, config: TrainConfig, mesh: jax.sharding.Mesh,
               steps: int = 1) -> Callable:
  """Compiles a compile_step function for abstract `state` before any real state exists.

  XLA's scratch while compiling the full-size CPU step (~1 GB) then never coexists with the
  state's buffers (0.66 GB at ngf 64), which lowers the run's peak memory. The result is
  called like the step; its inputs must match `state` and the batch exactly.
  """
  return step.lower(state, abstract_batch(config, mesh, steps)).compile()
