"""The train step: golden values after one step, no recompilation, schedule, state layout."""

import dataclasses
import functools
import re

import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest

from p2p import config as base
from p2p.config import train_config
from p2p.train import parallel
from p2p.train.losses import discriminator_loss, generator_loss
from p2p.train.state import (TrainState, abstract_state, build_networks, count_params,
                             create_train_state, ema_update, learning_rate_schedule)
from p2p.train.step import METRICS, compile_step, multi_step, precompile


def tiny_config(**top):
  c = base.default_config()
  c.data.image_size, c.data.load_size, c.data.patch_size = 32, 36, 32
  c.model.ngf = c.model.ndf = 8
  for k, v in top.items():
    setattr(c, k, v)
  return train_config(c)


@pytest.fixture(scope="module")
def setup():
  config = tiny_config(batch_size=2)
  mesh = parallel.make_mesh(jax.devices()[:1])
  nets = build_networks(config, steps_per_epoch=10)
  return config, mesh, nets, compile_step(nets, config, mesh)


def _batch(seed=0, n=2):
  rng = np.random.default_rng(seed)
  x = rng.uniform(-1, 1, (n, 32, 32, 3)).astype(np.float32)
  return {"input": x, "target": np.tanh(2 * x[..., ::-1])}


def test_state_is_one_pytree_with_both_networks(setup):
  config, mesh, nets, _ = setup
  state = create_train_state(nets, config, mesh)
  assert isinstance(state, TrainState)
  assert set(state.g.params) and set(state.d.params)
  assert state.g.batch_stats and state.d.batch_stats
  assert int(state.step) == 0
  # Adam holds two moments per parameter.
  assert count_params(state.g.opt_state) == 2 * count_params(state.g.params) + 2  # m, v, counts


def test_one_step_golden_values(setup):
  config, mesh, nets, step = setup
  state = create_train_state(nets, config, mesh)
  state, metrics = step(state, parallel.global_batch(_batch(), mesh))
  got = {k: float(v) for k, v in metrics.items()}
  assert set(got) == set(METRICS)
  # Recorded from this implementation (jax 0.10.2, CPU); a change here is a behaviour change.
  golden = GOLDEN
  for k in METRICS:
    assert got[k] == pytest.approx(golden[k], rel=2e-4, abs=1e-5), k
  assert int(state.step) == 1
  assert float(jnp.abs(state.g.params["up_1"]["conv"]["kernel"]).sum()) == pytest.approx(
      GOLDEN_G_KERNEL_ABS_SUM, rel=2e-4)


def test_abstract_state_matches_a_fresh_state(setup):
  """Checkpoints restore into abstract_state: its shapes and dtypes (the raw key too) must match."""
  config, mesh, nets, _ = setup
  shapes = lambda tree: jax.tree.map(lambda a: (a.shape, a.dtype), tree)  # noqa: E731
  assert shapes(abstract_state(nets, 32)) == shapes(create_train_state(nets, config, mesh))


def test_step_compiled_before_any_state_runs_on_fresh_and_later_states(setup):
  """Training compiles from abstract shapes first (lower peak memory), then runs that program."""
  config, mesh, nets, step = setup
  abstract = parallel.with_sharding(abstract_state(nets, 32), parallel.replicated(mesh))
  early = precompile(step, abstract, config, mesh)
  batch = parallel.global_batch(_batch(), mesh)
  got_state, got = early(*early(create_train_state(nets, config, mesh), batch)[:1], batch)
  want_state, want = step(step(create_train_state(nets, config, mesh), batch)[0], batch)
  for k in METRICS:
    assert float(got[k]) == pytest.approx(float(want[k]), rel=1e-5), k
  assert int(got_state.step) == int(want_state.step) == 2


def test_ema_update_skips_the_init_then_averages_with_the_decay():
  ema, params = {"w": jnp.zeros(3)}, {"w": jnp.ones(3)}
  # d = min(decay, (1 + step) / (10 + step)): 0.1 at step 0, the decay once steps pass ~10^4.
  np.testing.assert_allclose(ema_update(ema, params, 0.999, jnp.int32(0))["w"], 0.9, rtol=1e-6)
  np.testing.assert_allclose(ema_update(ema, params, 0.999, jnp.int32(10**6))["w"], 0.001,
                             rtol=1e-4)
  half = ema_update({"w": jnp.full(3, 2.0)}, {"w": jnp.full(3, 4.0)}, 0.5, jnp.int32(100))
  np.testing.assert_allclose(half["w"], 3.0)


def test_step_does_not_recompile(setup):
  config, mesh, nets, step = setup
  state = create_train_state(nets, config, mesh)
  for i in range(3):
    state, metrics = step(state, parallel.global_batch(_batch(i), mesh))
  jax.block_until_ready(metrics)
  assert step._cache_size() == 1


def test_state_is_donated(setup):
  config, mesh, nets, step = setup
  state = create_train_state(nets, config, mesh)
  leaf = jax.tree.leaves(state.g.params)[0]
  step(state, parallel.global_batch(_batch(), mesh))
  assert leaf.is_deleted()


def test_linear_schedule_matches_pytorch():
  config = tiny_config(num_epochs=4)
  optim = config.optim.__class__(schedule="linear", decay_epochs=2)
  lr = learning_rate_schedule(optim, num_epochs=4, steps_per_epoch=10)
  got = [float(lr(s)) for s in (0, 19, 20, 29, 30, 39)]
  # PyTorch lambda: 1 - max(0, epoch + 1 - n_epochs) / (n_epochs_decay + 1), n_epochs = 2.
  want = [2e-4, 2e-4, 2e-4 * (1 - 1 / 3), 2e-4 * (1 - 1 / 3), 2e-4 * (1 - 2 / 3),
          2e-4 * (1 - 2 / 3)]
  np.testing.assert_allclose(got, want, rtol=1e-6)
  constant = learning_rate_schedule(config.optim, 4, 10)
  assert float(constant(35)) == pytest.approx(2e-4)


def test_g_norm_replaces_the_norm_in_g_only():
  config = tiny_config()
  config = dataclasses.replace(config, model=dataclasses.replace(config.model, g_norm="instance"))
  nets = build_networks(config, steps_per_epoch=10)
  assert nets.generator.norm == "instance" and nets.discriminator.norm == "batch"
  state = create_train_state(nets, config, parallel.make_mesh(jax.devices()[:1]))
  assert not state.g.batch_stats and state.d.batch_stats


def test_d_learning_rate_is_scaled_on_the_same_schedule():
  config = tiny_config(num_epochs=4)
  config = dataclasses.replace(config, optim=dataclasses.replace(
      config.optim, schedule="linear", decay_epochs=2, d_lr_scale=3.0))
  nets = build_networks(config, steps_per_epoch=10)
  params = {"w": jnp.zeros(4)}
  grads = {"w": jnp.ones(4)}  # Adam's first move is lr * g / (|g| + eps): the rate itself
  for tx, scale in ((nets.g_tx, 1.0), (nets.d_tx, 3.0)):
    opt_state = tx.init(params)
    for _ in range(25):  # the rate in the first decayed epoch, 2e-4 * (1 - 1/3)
      updates, opt_state = tx.update(grads, opt_state, params)
    np.testing.assert_allclose(updates["w"], -scale * 2e-4 * (2 / 3), rtol=1e-3)


GOLDEN = {"fake_d_loss": 0.7233310, "fake_d_real_class_loss": 0.7801167, "l1_loss": 0.6669747,
          "real_d_loss": 0.6752431, "total_disc_loss": 1.3985741, "total_gen_loss": 67.477592}
GOLDEN_G_KERNEL_ABS_SUM = 12.024029


def _reference_update(nets, state, x, y, fm_weight=0.0, mode="vanilla"):
  """Plain grads: G forward, D update, then G update via the new D (pix2pixHD FM if weighted)."""
  rng = jax.random.fold_in(state.rng, state.step)

  def g_apply(params):
    return nets.generator.apply({"params": params, "batch_stats": state.g.batch_stats}, x,
                                train=True, rngs={"dropout": rng}, mutable=["batch_stats"])[0]

  def d_apply(params, stats, out):
    pair = jnp.concatenate([x, out], -1) if nets.d_conditional else out
    logits, m = nets.discriminator.apply({"params": params, "batch_stats": stats}, pair, train=True,
                                         mutable=["batch_stats", "intermediates"])
    inter = m["intermediates"]  # a multi-scale D: one subtree per scale, finest first
    feats = (inter["features"] if "features" in inter
             else sum((inter[f"scale_{k}"]["features"] for k in range(len(inter))), ()))
    return logits, m["batch_stats"], feats

  fake = g_apply(state.g.params)

  def d_loss(params):
    fake_logits, stats, _ = d_apply(params, state.d.batch_stats, fake)
    real_logits, stats, _ = d_apply(params, stats, y)
    return discriminator_loss(real_logits, fake_logits, mode=mode)[0], stats

  d_grads, d_stats = jax.grad(d_loss, has_aux=True)(state.d.params)
  d_upd, _ = nets.d_tx.update(d_grads, state.d.opt_state, state.d.params)
  d_params = optax.apply_updates(state.d.params, d_upd)
  _, _, real_feats = d_apply(d_params, d_stats, y)

  def g_loss(params):
    out = g_apply(params)
    logits, _, feats = d_apply(d_params, d_stats, out)
    fm = sum(jnp.abs(f - r).mean() for f, r in zip(feats, real_feats)) * 4 / len(feats)
    return generator_loss(logits, out, y, mode=mode)[0] + fm_weight * fm

  g_grads = jax.grad(g_loss)(state.g.params)
  g_upd, _ = nets.g_tx.update(g_grads, state.g.opt_state, state.g.params)
  return optax.apply_updates(state.g.params, g_upd), d_params


@pytest.mark.parametrize("fm_weight,num_d,sn,mode,cond", [
    (0.0, 1, False, "vanilla", True),
    # Each option is covered once (feature matching in all three, to reuse D's features).
    *(pytest.param(*case, marks=pytest.mark.slow) for case in [
        (10.0, 2, False, "vanilla", True), (10.0, 1, True, "hinge", True),
        (10.0, 1, False, "lsgan", False)])])
def test_step_equals_a_naive_two_pass_reference(setup, fm_weight, num_d, sn, mode, cond):
  """The staged, vjp-reusing step against plain grads: G forward, D update, G update via new D.

  fm_weight: pix2pixHD feature matching (a step that ignored it would differ, checked). sn:
  GauGAN's D (spectral norm, its power-iteration state threaded like BatchNorm's) with the
  hinge loss. cond=False: an unconditional D (the photo alone; its first conv takes 3
  channels, so a step that fed it pairs would fail).
  """
  config, mesh, nets, step = setup
  if fm_weight or num_d > 1 or mode != "vanilla" or not cond:
    # Two scales at 32 px need a receptive field the 16 px coarse scale can hold.
    model = {**base.default_config().model.to_dict(), "ngf": 8, "ndf": 8, "num_d": num_d,
             "receptive_field": 70 if num_d == 1 else 16, "d_spectral_norm": sn,
             "d_conditional": cond}
    config = tiny_config(batch_size=2, model=model, **{
        "optim": {**base.default_config().optim.to_dict(), "fm_weight": fm_weight,
                  "gan_mode": mode}})
    nets = build_networks(config, steps_per_epoch=10)
    step = compile_step(nets, config, mesh)
  state = create_train_state(nets, config, mesh)
  batch = _batch(3)
  # fm_weight traced: one compile
  reference = jax.jit(functools.partial(_reference_update, nets, mode=mode))
  g_params, d_params = reference(state, batch["input"], batch["target"], fm_weight)
  if fm_weight:
    plain = reference(state, batch["input"], batch["target"], 0.0)[0]
  new, metrics = step(state, parallel.global_batch(batch, mesh))
  assert ("feature_matching_loss" in metrics) == bool(fm_weight)
  if num_d == 1:
    assert new.d.params["conv_0"]["kernel"].shape[-2] == (6 if cond else 3)
  for want, got in ((g_params, new.g.params), (d_params, new.d.params)):
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-3, atol=1e-5), want, got)
  if fm_weight:  # the loss changes G's update, so the comparison above can fail
    assert not np.allclose(plain["up_1"]["conv"]["kernel"], new.g.params["up_1"]["conv"]["kernel"])


@pytest.mark.slow
@pytest.mark.parametrize("unroll", [False, True])
def test_multi_step_equals_single_steps(setup, unroll):
  """K steps per call, as a loop (the GPU form) or unrolled (the CPU form): same as K calls."""
  config, mesh, nets, step = setup
  batches = [_batch(s) for s in (4, 5)]
  state = create_train_state(nets, config, mesh)
  for b in batches:
    state, metrics = step(state, parallel.global_batch(b, mesh))
  stacked = {k: np.stack([b[k] for b in batches]) for k in batches[0]}
  fused = jax.jit(functools.partial(multi_step, nets=nets, optim=config.optim, unroll=unroll))
  got, got_metrics = fused(create_train_state(nets, config, mesh), stacked)
  assert int(got.step) == 2
  for k in METRICS:
    np.testing.assert_allclose(got_metrics[k][1], metrics[k], rtol=1e-4, atol=1e-6)
  # Adam moves a weight by ~lr (2e-4) whatever its gradient's size, so a float reordering of a
  # near-zero gradient between the loop and single calls can move one weight by ~1e-6 (seen
  # under load); a missed or repeated step moves nearly all of them by ~lr.
  for x, y in zip(jax.tree.leaves(got), jax.tree.leaves(state)):
    np.testing.assert_allclose(x, y, rtol=1e-4, atol=1e-5)


@pytest.mark.slow
def test_state_is_updated_in_place_without_copies(setup):
  """On CPU the step compiles with copy-insertion region analysis: no copy of the donated state."""
  config, mesh, nets, step = setup
  state = create_train_state(nets, config, mesh)
  lowered = step.lower(state, parallel.global_batch(_batch(), mesh))
  state_copies = lambda compiled: len(re.findall(r"copy\(%?state", compiled.as_text()))
  assert state_copies(lowered.compile()) == 0
  # Without the option XLA copies every Adam first moment before updating it: this can fail.
  off = {"xla_cpu_copy_insertion_use_region_analysis": False}
  assert state_copies(lowered.compile(compiler_options=off)) > 20
