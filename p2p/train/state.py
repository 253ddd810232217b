"""One pytree of training state (both networks), the networks and optimizers that act on it."""

from __future__ import annotations

import dataclasses
import functools
from typing import Any

import flax.linen as nn
import jax
import jax.numpy as jnp
import optax
from flax import struct

from p2p.config import ModelConfig, OptimConfig, TrainConfig
from p2p.models import MultiScaleDiscriminator, PatchDiscriminator, UNetGenerator, resolve_num_downs
from p2p.ops import autotune
from p2p.train import parallel


class NetState(struct.PyTreeNode):
  """One network's parameters, BatchNorm statistics and optimizer state."""

  params: Any
  batch_stats: Any
  opt_state: Any


class TrainState(struct.PyTreeNode):
  """Everything that changes during training, as one pytree (checkpointed whole).

  g_ema: an exponential moving average of G's parameters (optim.ema_decay > 0), else None.
  """

  step: jax.Array
  rng: jax.Array
  g: NetState
  d: NetState
  g_ema: Any = None


@dataclasses.dataclass(frozen=True)
class Networks:
  """The static half of training: modules and optimizers (hashable, closed over by jit)."""

  generator: nn.Module
  discriminator: nn.Module
  g_tx: optax.GradientTransformation
  d_tx: optax.GradientTransformation
  ema_decay: float = 0.0  # > 0: the state also averages G's parameters
  d_conditional: bool = True  # D sees (input, output) pairs; False: the output alone


def learning_rate_schedule(optim: OptimConfig, num_epochs: int,
                           steps_per_epoch: int) -> optax.Schedule:
  """Constant, or PyTorch pix2pix 'linear': constant, then linearly to 0 over decay_epochs.

  As in the PyTorch implementation the rate changes once per epoch: in epoch e (0-based) it is
  lr * (1 - max(0, e + 1 - n_constant) / (decay_epochs + 1)), n_constant = num_epochs - decay.
  """
  base = optim.learning_rate
  if optim.schedule == "constant" or optim.decay_epochs == 0:
    return optax.constant_schedule(base)
  constant_epochs = num_epochs - optim.decay_epochs

  def schedule(step):
    epoch = step // steps_per_epoch
    fraction = jnp.maximum(0, epoch + 1 - constant_epochs) / (optim.decay_epochs + 1)
    return base * (1.0 - fraction)

  return schedule


def build_networks(config: TrainConfig, steps_per_epoch: int) -> Networks:
  """The generator, discriminator and one Adam each (D's rate x d_lr_scale), from a config."""
  model: ModelConfig = config.model
  dtype = jnp.dtype(autotune.resolve(config.compute_dtype).dtype)
  size = config.data.image_size  # fixes the depth, so the net also runs on larger inputs
  generator = UNetGenerator(ngf=model.ngf, out_channels=config.data.model_channels()[1], norm=model.g_norm or model.norm,
                            dropout_rate=model.dropout_rate,
                            num_downs=model.num_downs or resolve_num_downs(size, size),
                            upsample=model.upsample, dtype=dtype, kernels=config.kernels)
  d_args = dict(receptive_field=model.receptive_field, ndf=model.ndf, norm=model.norm,
                dtype=dtype, spectral_norm=model.d_spectral_norm, kernels=config.kernels)
  discriminator = (MultiScaleDiscriminator(num_scales=model.num_d, **d_args) if model.num_d > 1
                   else PatchDiscriminator(**d_args))
  schedule = learning_rate_schedule(config.optim, config.num_epochs, steps_per_epoch)
  make_tx = lambda lr: optax.adam(lr, b1=config.optim.b1, b2=config.optim.b2)
  scale = config.optim.d_lr_scale
  d_schedule = schedule if scale == 1 else (lambda step: scale * schedule(step))
  return Networks(generator, discriminator, make_tx(schedule), make_tx(d_schedule),
                  config.optim.ema_decay, config.model.d_conditional)


def _init_net(module: nn.Module, tx: optax.GradientTransformation, rng: jax.Array,
              x: jax.Array) -> NetState:
  variables = module.init({"params": rng, "dropout": rng}, x, train=False)
  params = variables["params"]
  return NetState(params, variables.get("batch_stats", {}), tx.init(params))


def init_state(nets: Networks, rng: jax.Array, image_size: int,
               channels: tuple[int, int] = (3, 3)) -> TrainState:
  """A fresh TrainState for (input, output) channels (pure; jit it: eager init is slow)."""
  g_rng, d_rng, state_rng = jax.random.split(rng, 3)
  x = jnp.zeros((1, image_size, image_size, channels[0]), jnp.float32)
  y = jnp.zeros((1, image_size, image_size, channels[1]), jnp.float32)
  g = _init_net(nets.generator, nets.g_tx, g_rng, x)
  d_x = jnp.concatenate([x, y], axis=-1) if nets.d_conditional else y
  d = _init_net(nets.discriminator, nets.d_tx, d_rng, d_x)
  g_ema = jax.tree.map(jnp.copy, g.params) if nets.ema_decay else None
  return TrainState(step=jnp.zeros((), jnp.int32), rng=state_rng, g=g, d=d, g_ema=g_ema)


def create_train_state(nets: Networks, config: TrainConfig, mesh: jax.sharding.Mesh) -> TrainState:
  """A fresh state, initialised directly replicated on the mesh's devices."""
  repl = parallel.replicated(mesh)
  init = jax.jit(functools.partial(init_state, image_size=config.data.image_size,
                                   channels=config.data.model_channels()),
                 static_argnums=(0,), out_shardings=repl)
  # An rbg key makes jit(init) compile in seconds (threefry kernels dominate it otherwise).
  state = init(nets, jax.random.key(config.seed, impl="rbg"))
  return state.replace(rng=jax.device_put(jax.random.PRNGKey(config.seed + 1), repl))


def abstract_state(nets: Networks, image_size: int,
                   channels: tuple[int, int] = (3, 3)) -> TrainState:
  """Shapes and dtypes of create_train_state's TrainState, without computing one."""
  abstract = jax.eval_shape(lambda: init_state(nets, jax.random.key(0), image_size, channels))
  return abstract.replace(rng=jax.eval_shape(jax.random.PRNGKey, 0))  # a raw uint32 key


def ema_update(ema: Any, params: Any, decay: float, step: jax.Array) -> Any:
  """ema + (1 - d) (params - ema), d = min(decay, (1 + step) / (10 + step)) to skip the init."""
  d = jnp.minimum(decay, (1.0 + step) / (10.0 + step))
  return jax.tree.map(lambda e, p: e + (1.0 - d) * (p - e), ema, params)


def generator_params(state: TrainState, ema: bool = True) -> Any:
  """G's weights to sample with: the average if the run keeps one (and ema), else the raw."""
  return state.g_ema if ema and state.g_ema is not None else state.g.params


def count_params(tree: Any) -> int:
  """Number of scalars in a pytree of arrays or shape structs."""
  return sum(int(x.size) for x in jax.tree.leaves(tree))
