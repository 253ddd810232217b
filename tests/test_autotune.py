"""bf16 on CPU: GEMM convs against float32, the form their dots compile to, auto's choice."""

import json

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from jax import lax

from p2p import config as base
from p2p.config import train_config
from p2p.hardware import CpuInfo, cpu_info, parse_cpuinfo
from p2p.ops import KernelOptions, autotune, conv2d, conv_transpose2d
from p2p.ops.conv import lax_conv
from p2p.ops.gemm import gemm_conv, gemm_conv_s2, gemm_conv_transpose, mxu_dot
from p2p.train import parallel
from p2p.train.losses import discriminator_loss, generator_loss
from p2p.train.state import build_networks, create_train_state

SAPPHIRE_RAPIDS = CpuInfo("Intel(R) Xeon(R) Platinum 8480+", 2, "6/143/8",
                          frozenset({"avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}))
ZEN4 = CpuInfo("AMD EPYC 9R14 96-Core Processor", 2, "25/17/1",
               frozenset({"avx512f", "avx512_bf16"}))
SKYLAKE = CpuInfo("Intel(R) Xeon(R) Gold 6148", 2, "6/85/4", frozenset({"avx512f"}))
LAPTOP = CpuInfo("Intel(R) Core(TM) i7-8550U", 8, "6/142/10", frozenset({"avx2"}))
# bf16 tolerance: operands rounded to 8 significant bits, accumulated in float32.
BF16_RTOL = 2e-2


def _rel(got, want) -> float:
  return float(jnp.linalg.norm(got - want) / jnp.linalg.norm(want))


def test_cpuinfo_names_model_cores_and_the_features_that_matter():
  text = ("processor\t: 0\nvendor_id\t: GenuineIntel\ncpu family\t: 6\nmodel\t\t: 143\n"
          "model name\t: Intel(R) Xeon(R) Platinum 8480+\nstepping\t: 8\n"
          "flags\t\t: fpu sse avx512f avx512_bf16 amx_bf16 amx_tile\n\n"
          "processor\t: 1\nmodel name\t: another\n")
  cpu = parse_cpuinfo(text, cores=2)
  assert (cpu.model, cpu.cores, cpu.family_model) == ("Intel(R) Xeon(R) Platinum 8480+", 2,
                                                      "6/143/8")
  assert cpu.features() == {"avx512f": True, "avx512_bf16": True, "amx_bf16": True}
  assert cpu.key == "Intel(R) Xeon(R) Platinum 8480+ [6/143/8] avx512f,avx512_bf16,amx_bf16"
  assert LAPTOP.key.endswith("no avx512") and not any(LAPTOP.features().values())
  here = cpu_info()
  assert here.cores >= 1 and here.model and set(here.features()) == {"avx512f", "avx512_bf16",
                                                                      "amx_bf16"}


@pytest.mark.parametrize("backend,cpu,timings,dtype,path", [
    ("gpu", SAPPHIRE_RAPIDS, None, "float32", "gpu"),
    ("cpu", LAPTOP, None, "float32", "float32 (no bf16 dot)"),
    ("cpu", SKYLAKE, None, "float32", "float32 (no bf16 dot)"),
    ("cpu", SAPPHIRE_RAPIDS, {"float32": 3.0, "bfloat16": 1.0}, "bfloat16", "amx_bf16"),
    ("cpu", SAPPHIRE_RAPIDS, {"float32": 1.0, "bfloat16": 0.95}, "float32", "amx_bf16"),
    ("cpu", ZEN4, {"float32": 1.0, "bfloat16": 2.0}, "float32", "avx512_bf16"),
    ("cpu", ZEN4, {"float32": 1.3, "bfloat16": 1.0}, "bfloat16", "avx512_bf16"),
])
def test_auto_picks_bf16_only_where_the_cpu_runs_it_faster(backend, cpu, timings, dtype, path):
  assert autotune.needs_timing(backend, cpu) == (timings is not None)
  choice = autotune.select(backend, cpu, timings)
  assert (choice.dtype, choice.path) == (dtype, path)
  assert choice.line().startswith(f"compute_dtype: {dtype} (auto")
  if timings:
    assert f"{timings['float32'] / timings['bfloat16']:.2f}x" in choice.reason
    with pytest.raises(ValueError, match="needs the autotune's timings"):
      autotune.select(backend, cpu)


def test_auto_times_once_per_cpu_and_reuses_the_run_folders_cache(tmp_path, monkeypatch):
  monkeypatch.delenv(autotune.PIN_ENV)
  monkeypatch.setattr(autotune, "_chosen", {})
  calls = []
  monkeypatch.setattr(autotune, "time_convs", lambda: calls.append(1) or {"float32": 2.0,
                                                                          "bfloat16": 1.0})
  monkeypatch.setattr(autotune, "cpu_info", lambda: SAPPHIRE_RAPIDS)
  choice = autotune.resolve("auto", tmp_path, backend="cpu")
  assert (choice.dtype, choice.path, len(calls)) == ("bfloat16", "amx_bf16", 1)
  assert autotune.resolve("auto", backend="cpu") == choice and len(calls) == 1  # per process
  autotune.record(tmp_path, choice)
  saved = json.loads((tmp_path / "autotune.json").read_text())
  assert saved["chosen"]["dtype"] == "bfloat16" and saved["chosen"]["cpu"] == SAPPHIRE_RAPIDS.key
  assert saved["cpus"][SAPPHIRE_RAPIDS.key]["timings"] == {"float32": 2.0, "bfloat16": 1.0}
  monkeypatch.setattr(autotune, "_chosen", {})  # a new process (a resume) on the same CPU
  again = autotune.resolve("auto", tmp_path, backend="cpu")
  assert again.dtype == "bfloat16" and "cached in" in again.reason and len(calls) == 1
  monkeypatch.setattr(autotune, "cpu_info", lambda: ZEN4)  # another CPU model times again
  assert autotune.resolve("auto", tmp_path, backend="cpu").path == "avx512_bf16"
  assert len(calls) == 2
  assert autotune.resolve("auto", tmp_path, backend="cpu", cpu=LAPTOP).dtype == "float32"
  assert autotune.resolve("bfloat16", tmp_path).path == "explicit" and len(calls) == 2
  monkeypatch.setenv(autotune.PIN_ENV, "float32")
  assert autotune.resolve("auto", tmp_path).path == "pinned"
  monkeypatch.setenv(autotune.PIN_ENV, "fp8")
  with pytest.raises(ValueError, match="P2P_AUTO_DTYPE='fp8'"):
    autotune.resolve("auto", tmp_path)


def test_the_autotune_times_both_dtypes_of_real_convs():
  timings = autotune.time_convs(repeats=1)
  assert set(timings) == {"float32", "bfloat16"} and all(t > 0 for t in timings.values())


def _vjp(fn, x, kernel, seed):
  y, vjp = jax.vjp(fn, x, kernel)
  g = jax.random.normal(jax.random.key(seed), y.shape)
  return (y, *vjp(g))


@pytest.mark.parametrize("kind,x_shape,k_shape", [
    ("down", (2, 16, 16, 8), (4, 4, 8, 16)),  # im2col in the kernel's order
    ("down", (1, 32, 32, 4), (4, 4, 4, 8)),  # over the space-to-depth input
    ("down", (1, 2, 2, 8), (4, 4, 8, 16)),  # the U-Net's innermost level: one output pixel
    ("s1", (2, 9, 9, 8), (4, 4, 8, 16)),
    ("s1", (2, 9, 9, 8), (4, 4, 8, 1)),  # the PatchGAN's logits
    ("up", (2, 8, 8, 8), (4, 4, 8, 16)),
    ("up", (1, 1, 1, 8), (4, 4, 8, 16)),
    ("resize", (2, 4, 6, 8), (3, 3, 8, 4)),  # nearest upsampling + 3x3 conv
])
def test_bf16_gemm_convs_equal_float32_forward_and_backward(kind, x_shape, k_shape):
  x = jax.random.normal(jax.random.key(1), x_shape)
  kernel = 0.1 * jax.random.normal(jax.random.key(2), k_shape)
  options = KernelOptions(matmul_conv_max_size=0, winograd_min_tiles=0)
  stock = {"down": lambda x, k: lax_conv(x, k, (2, 2), ((1, 1), (1, 1))),
           "s1": lambda x, k: lax_conv(x, k, (1, 1), ((1, 1), (1, 1))),
           "up": lambda x, k: conv_transpose2d(x, k, KernelOptions(conv_transpose_impl="flax")),
           "resize": lambda x, k: conv_transpose2d(x, k, options)}[kind]
  fast = ((lambda x, k: conv2d(x.astype(jnp.bfloat16), k, 2 if kind == "down" else 1))
          if kind in ("down", "s1") else
          (lambda x, k: conv_transpose2d(x.astype(jnp.bfloat16), k)))
  want = _vjp(stock, x, kernel, 3)
  got = _vjp(lambda x, k: fast(x, k).astype(jnp.float32), x, kernel, 3)
  assert got[0].shape == want[0].shape and got[2].dtype == jnp.float32  # kernel grad in f32
  for g, w in zip(got, want):
    assert _rel(g, w) < BF16_RTOL
  jaxpr = str(jax.make_jaxpr(fast)(x, kernel))  # routed to the GEMM forms, not lax's bf16 conv
  assert "conv_general_dilated" not in jaxpr and "dot_general" in jaxpr


@pytest.mark.skipif(not (cpu_info().has("amx_bf16") or cpu_info().has("avx512_bf16")),
                    reason="XLA:CPU's bf16 matrix kernels need AMX-BF16 or AVX512-BF16")
@pytest.mark.parametrize("conv,x_shape,k_shape", [
    (gemm_conv_s2, (2, 16, 16, 8), (4, 4, 8, 16)),
    (lambda x, k: gemm_conv(x, k, ((1, 1), (1, 1))), (2, 9, 9, 8), (4, 4, 8, 16)),
    (gemm_conv_transpose, (2, 8, 8, 8), (4, 4, 8, 16)),
])
def test_every_gemm_of_forward_and_backward_takes_the_matrix_unit_form(conv, x_shape, k_shape):
  """Each dot compiles to XLA:CPU's YNNPACK bf16 kernel (the AMX path), none stays a plain dot."""
  x = jnp.ones(x_shape, jnp.bfloat16)
  kernel = jnp.ones(k_shape)

  def fwd_bwd(x, kernel):
    y, vjp = jax.vjp(conv, x, kernel)
    return y, vjp(jnp.ones_like(y))

  text = jax.jit(fwd_bwd).lower(x, kernel).compile().as_text()
  entry = text[text.index("ENTRY"):]
  assert ynn_dots(text) == 3  # forward, dX, dW
  assert " dot(" not in entry  # no dot left outside a YNNPACK fusion
  # Without the physical transposes, the backward dots are the slow transposed form:
  plain = jax.jit(lambda a, b, g: jax.vjp(
      lambda a, b: lax.dot_general(a, b, (((1,), (0,)), ((), ())),
                                   preferred_element_type=jnp.float32), a, b)[1](g))
  a, b, g = jnp.ones((64, 32), jnp.bfloat16), jnp.ones((32, 48), jnp.bfloat16), jnp.ones((64, 48))
  slow = plain.lower(a, b, g).compile().as_text()
  fast = jax.jit(lambda a, b, g: jax.vjp(mxu_dot, a, b)[1](g)).lower(a, b, g).compile().as_text()
  assert (ynn_dots(slow), ynn_dots(fast)) == (1, 2)  # dX and dW: only mxu_dot's dW is fast


def ynn_dots(hlo: str) -> int:
  """YNNPACK fusions called from a compiled module's entry computation."""
  entry = hlo[hlo.index("ENTRY"):]
  return sum("kind=kCustom" in line and "ynn" in line for line in entry.splitlines())


def _grads(nets, state, x, y):
  """Plain float32-loss gradients of D's and G's losses (G's through the updated-free D)."""
  rng = jax.random.key(0)

  def g_apply(params):
    return nets.generator.apply({"params": params, "batch_stats": state.g.batch_stats}, x,
                                train=True, rngs={"dropout": rng}, mutable=["batch_stats"])[0]

  def d_apply(params, out):
    return nets.discriminator.apply({"params": params, "batch_stats": state.d.batch_stats},
                                    jnp.concatenate([x, out], -1), train=True,
                                    mutable=["batch_stats"])[0].astype(jnp.float32)

  fake = g_apply(state.g.params).astype(jnp.float32)
  d_grads = jax.grad(lambda p: discriminator_loss(d_apply(p, y), d_apply(p, fake))[0])(
      state.d.params)
  g_grads = jax.grad(lambda p: generator_loss(
      d_apply(state.d.params, g_apply(p).astype(jnp.float32)),
      g_apply(p).astype(jnp.float32), y)[0])(state.g.params)
  return d_grads, g_grads


def test_bf16_gradients_stay_within_tolerance_of_the_float32_reference():
  """The bf16 path's gradients (GEMM convs, float32 params and loss) against plain float32.

  Stated bf16 tolerance, per network over all parameters: relative L2 error < 0.2 and cosine
  > 0.985 (measured 0.11-0.12 and 0.993 at this 32 px, batch-2 size, where BatchNorm over two
  values at the innermost levels amplifies rounding; XLA's own bf16 convs are as far).
  """
  c = base.default_config()
  c.data.image_size, c.data.load_size, c.data.patch_size = 32, 36, 32
  c.model.ngf = c.model.ndf = 8
  nets = {}
  for dtype in ("float32", "bfloat16"):
    c.compute_dtype = dtype
    nets[dtype] = build_networks(train_config(c), 10)
  state = create_train_state(nets["float32"], train_config(c),
                             parallel.make_mesh(jax.devices()[:1]))
  rng = np.random.default_rng(0)
  x = rng.uniform(-1, 1, (2, 32, 32, 3)).astype(np.float32)
  y = np.tanh(2 * x[..., ::-1])
  flat = lambda tree: jnp.concatenate([a.ravel() for a in jax.tree.leaves(tree)])  # noqa: E731
  grads = {n: jax.jit(lambda s, n=n: _grads(nets[n], s, x, y))(state) for n in nets}
  for net in (0, 1):  # D, G
    want, got = (flat(grads[n][net]) for n in ("float32", "bfloat16"))
    cosine = float(jnp.dot(got, want) / jnp.linalg.norm(got) / jnp.linalg.norm(want))
    assert _rel(got, want) < 0.2 and cosine > 0.985


def test_bf16_gemm_can_be_switched_off_for_lax_convs():
  x = jnp.ones((1, 32, 32, 4), jnp.bfloat16)  # above matmul_conv_max_size
  kernel = jnp.ones((4, 4, 4, 8), jnp.bfloat16)
  off = KernelOptions(bf16_gemm=False)
  assert "conv_general_dilated" in str(jax.make_jaxpr(lambda x: conv2d(x, kernel, 2, off))(x))
  assert "conv_general_dilated" not in str(jax.make_jaxpr(lambda x: conv2d(x, kernel, 2))(x))
