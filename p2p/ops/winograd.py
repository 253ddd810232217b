"""Winograd F(4x4, 4x4) for a large-batch 4x4 stride-1 conv (the PatchGAN's widest) on XLA:CPU.

It takes ~5x fewer multiplies than the direct conv and equals it up to float32 rounding (~1e-5
relative), not bit for bit. Kernels are HWIO and activations NHWC.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax.typing import PrecisionLike
from jax import lax

from p2p.ops.conv import Padding

# 4x4 output tiles from 7x7 input tiles, interpolation points below plus infinity. These points
# keep float32 errors ~1e-5 of the output's scale (measured in tests).
WINOGRAD_TILE = 4
WINOGRAD_POINTS = (0.0, 1.0, -1.0, 2.0, -2.0, 0.5)


@functools.cache
def winograd_matrices(tile: int = WINOGRAD_TILE, taps: int = 4,
                      points: tuple[float, ...] | None = None
                      ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
  """Toom-Cook matrices A^T (m x a), G (a x r), B^T (a x a) with y = A^T[(G g) * (B^T d)].

  For the correlation y_i = sum_k d_{i+k} g_k of an a = m + r - 1 input tile (Lavin & Gray,
  2016): A^T and G evaluate at the points and infinity; B^T solves the bilinear identity.
  """
  alpha = tile + taps - 1
  points = WINOGRAD_POINTS[:alpha - 1] if points is None else points
  if len(points) != alpha - 1:
    raise ValueError(f"F({tile}, {taps}) needs {alpha - 1} finite points; got {len(points)}.")
  a_t, g = np.zeros((tile, alpha)), np.zeros((alpha, taps))
  for j, p in enumerate(points):
    a_t[:, j] = [p ** i for i in range(tile)]
    g[j] = [p ** k for k in range(taps)]
  a_t[-1, -1] = g[-1, -1] = 1.0
  # sum_j A^T[i, j] G[j, k] B^T[j, l] = [l == i + k] for every i, k, l: linear in B^T.
  system = np.einsum("ij,jk,ln->ikljn", a_t, g, np.eye(alpha))
  system = system.reshape(tile * taps * alpha, alpha * alpha)
  target = np.array([float(l == i + k) for i in range(tile) for k in range(taps)
                     for l in range(alpha)])
  b_t = np.linalg.lstsq(system, target, rcond=None)[0]
  if np.abs(system @ b_t - target).max() > 1e-9:
    raise ValueError(f"points {points} give no exact F({tile}, {taps}) (repeated point?).")
  return a_t, g, b_t.reshape(alpha, alpha)


def winograd_tiles(batch: int, height: int, width: int, padding: Padding, taps: int = 4,
                   tile: int = WINOGRAD_TILE) -> int:
  """Output tiles a stride-1 conv's Winograd form computes (its GEMMs' row count)."""
  out_h = height + sum(padding[0]) - taps + 1
  out_w = width + sum(padding[1]) - taps + 1
  return batch * -(-out_h // tile) * -(-out_w // tile)


def winograd_conv(x_BxHxWxC: jax.Array, kernel_KxKxCxF: jax.Array, padding: Padding,
                  precision: PrecisionLike = None) -> jax.Array:
  """A stride-1 conv as Winograd F(4x4, 4x4): a^2 GEMMs of (tiles x C) @ (C x F), a = 7.

  Input tiles (7x7, stride 4) and the kernel go to the transform domain by Kronecker products
  of B^T and G, the a^2 elementwise products over C are one batched GEMM, and A^T maps them
  back to 4x4 output tiles. For a 4x4 kernel that is 49 / 256 of the direct conv's multiplies;
  the transforms are dots too, so autodiff gives gradients of the same GEMM form.
  """
  taps = kernel_KxKxCxF.shape[0]
  m = WINOGRAD_TILE
  a_t, g, b_t = (z.astype(np.float32) for z in winograd_matrices(m, taps))
  alpha = m + taps - 1
  x = jnp.pad(x_BxHxWxC, ((0, 0), padding[0], padding[1], (0, 0)))
  b, h, w, c = x.shape
  features = kernel_KxKxCxF.shape[-1]
  out_h, out_w = h - taps + 1, w - taps + 1
  th, tw = -(-out_h // m), -(-out_w // m)
  x = jnp.pad(x, ((0, 0), (0, m * th + taps - 1 - h), (0, m * tw + taps - 1 - w), (0, 0)))
  tiles = jnp.stack([x[:, i:i + m * th:m, j:j + m * tw:m]
                     for i in range(alpha) for j in range(alpha)])  # a^2 x B x th x tw x C
  v = jnp.einsum("pq,qbhwc->pbhwc", np.kron(b_t, b_t), tiles, precision=precision)
  u = jnp.dot(np.kron(g, g), kernel_KxKxCxF.reshape(taps * taps, c * features),
              precision=precision)
  products = lax.dot_general(v.reshape(alpha * alpha, b * th * tw, c),
                             u.reshape(alpha * alpha, c, features),
                             (((2,), (1,)), ((0,), (0,))), precision=precision)
  y = jnp.einsum("op,ptf->otf", np.kron(a_t, a_t), products, precision=precision)
  y = y.reshape(m, m, b, th, tw, features).transpose(2, 3, 0, 4, 1, 5)
  return y.reshape(b, m * th, m * tw, features)[:, :out_h, :out_w]
