"""Scores a trained generator and no-learning baselines on a split (behind p2p.evaluate).

Protocols: `patches` (the seed's): each half cut into non-overlapping tiles of the model size
(4 per 600 px half at 256); `resize` (the seed's): whole halves resized to the model size;
`full`: each whole map translated with tiled inference and compared with the whole photo.
Baselines, scored the same way: `mean_color` (a constant image of the training photos' mean
colour), `mean_photo` (their per-pixel mean), `input` (the map itself). Pixel metrics reward
blur; the baselines show the floor. FID and KID use the standard FID Inception network.
"""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any

import numpy as np

PROTOCOLS = ("patches", "resize", "full")
BASELINES = ("mean_color", "mean_photo", "input")
MODEL = "model"


@dataclasses.dataclass(frozen=True)
class Pairs:
  """A split's (input, target) halves, uint8, in file order."""

  names: list[str]
  inputs: np.ndarray   # N x H x W x 3
  targets: np.ndarray  # N x H x W x 3


@dataclasses.dataclass(frozen=True)
class Examples:
  """One protocol's evaluation set: what the model sees and what it is compared with."""

  protocol: str
  names: list[str]       # "<file>" or "<file>#<patch>"
  image_index: np.ndarray  # the pair each example comes from
  inputs: np.ndarray     # N x h x w x 3 uint8
  targets: np.ndarray    # N x h x w x 3 uint8
  cut: Callable[[np.ndarray], np.ndarray]  # a full-size half -> this protocol's examples of it
  group: int             # examples per seed HP-L1 normalisation batch


def load_pairs(data_dir: str, split: str, direction: str, limit: int = 0) -> Pairs:
  """Decodes a split (the first `limit` pairs if > 0); every half must have the same size."""
  from p2p.data.folder import load_pair, scan_split, split_pair
  paths = scan_split(data_dir, split)
  paths = paths[:limit] if limit > 0 else paths
  halves = [split_pair(load_pair(p), direction) for p in paths]
  sizes = {h[0].shape for h in halves}
  if len(sizes) > 1:
    from p2p.data.errors import DataError
    raise DataError(f"{data_dir}/{split} mixes pair sizes {sorted(sizes)}; evaluation needs one "
                    f"size per split (resize the files).")
  return Pairs([p.name for p in paths], np.stack([h[0] for h in halves]),
               np.stack([h[1] for h in halves]))


def make_examples(protocol: str, pairs: Pairs, size: int) -> Examples:
  """Cuts or resizes the pairs as a protocol asks."""
  from p2p.data.transforms import patch_boxes, resize
  n, half = len(pairs.names), pairs.inputs.shape[1]
  if protocol == "patches":
    boxes = patch_boxes(half, size, "grid")

    def cut(images: np.ndarray) -> np.ndarray:
      return np.stack([im[t:t + size, l:l + size] for im in images for t, l in boxes])

    names = [f"{name}#{k}" for name in pairs.names for k in range(len(boxes))]
    index, group = np.repeat(np.arange(n), len(boxes)), len(boxes)
  elif protocol == "resize":
    def cut(images: np.ndarray) -> np.ndarray:
      return np.stack([resize(im, size) for im in images])

    names, index, group = list(pairs.names), np.arange(n), 1
  elif protocol == "full":
    def cut(images: np.ndarray) -> np.ndarray:
      return np.asarray(images)

    names, index, group = list(pairs.names), np.arange(n), 1
  else:
    raise ValueError(f"protocol={protocol!r} is not one of {PROTOCOLS}.")
  return Examples(protocol, names, index, cut(pairs.inputs), cut(pairs.targets), cut, group)


def training_means(data_dir: str, direction: str, size: int, limit: int = 0
                   ) -> tuple[np.ndarray, np.ndarray]:
  """(mean colour (3,), per-pixel mean photo size x size x 3) of the training targets, in 0..255."""
  from p2p.data.folder import load_pair, scan_split, split_pair
  from p2p.data.transforms import resize
  paths = scan_split(data_dir, "train", verify=False)
  paths = paths[:limit] if limit > 0 else paths
  total = np.zeros((size, size, 3), np.float64)
  for path in paths:
    total += resize(split_pair(load_pair(path), direction)[1], size)
  mean_photo = total / len(paths)
  return mean_photo.mean(axis=(0, 1)), mean_photo


def baseline(kind: str, examples: Examples, pairs: Pairs, means: tuple[np.ndarray, np.ndarray]
             ) -> np.ndarray:
  """A no-learning prediction for every example, uint8."""
  if kind == "input":
    return examples.inputs
  colour, photo = means
  if kind == "mean_color":
    return np.broadcast_to(np.rint(colour).astype(np.uint8), examples.targets.shape)
  if kind == "mean_photo":
    whole = np.rint(photo).astype(np.uint8)[None]
    per_image = examples.cut(whole)  # this protocol's cut of one mean photo
    return per_image[np.arange(len(examples.names)) % len(per_image)]
  raise ValueError(f"baseline={kind!r} is not one of {BASELINES}.")


def predict(gen: Any, examples: Examples, *, norm: str, seed: int) -> np.ndarray:
  """The model's output for every example: batched for tiles, tiled for whole maps."""
  import jax

  import p2p
  rng = jax.random.PRNGKey(seed)
  if examples.protocol == "full":
    return np.stack([p2p.translate_image(gen, x, norm=norm, rng=jax.random.fold_in(rng, i))
                     for i, x in enumerate(examples.inputs)])
  return p2p.sample(gen, examples.inputs, norm=norm, rng=rng)


def score(fake: np.ndarray, examples: Examples, fid: FidScorer | None) -> dict[str, Any]:
  """Per-example metrics and their summaries (+ FID/KID against the targets)."""
  from p2p.eval.metrics import compute_metrics, summarize
  per_image: dict[str, np.ndarray] = {}
  for start in range(0, len(fake), 64 * examples.group):  # bounded memory, whole groups
    chunk = compute_metrics(_unit(fake[start:start + 64 * examples.group]),
                            _unit(examples.targets[start:start + 64 * examples.group]),
                            hp_group=examples.group)
    for k, v in chunk.items():
      per_image.setdefault(k, []).append(v)
  per_image = {k: np.concatenate(v) for k, v in per_image.items()}
  summary = {k: summarize(v) for k, v in per_image.items()}
  if fid is not None:
    summary.update(fid(fake))
  return {"per_image": per_image, "summary": summary}


def _unit(images: np.ndarray) -> np.ndarray:
  return np.asarray(images, np.float32) / 127.5 - 1.0


class FidScorer:
  """FID and KID of image sets against one protocol's real targets (features computed once)."""

  def __init__(self, params: Any, targets: np.ndarray):
    from p2p.eval.fid import fid_features
    self.params = params
    self.real = fid_features(params, targets)

  def __call__(self, fake: np.ndarray) -> dict[str, Any]:
    from p2p.eval.fid import fid_features, frechet_distance, kernel_inception_distance
    if (fake == fake[:1]).all():  # a constant baseline: one image's features, repeated
      feats = np.repeat(fid_features(self.params, fake[:1]), len(fake), axis=0)
    else:
      feats = fid_features(self.params, fake)
    kid_mean, kid_std = kernel_inception_distance(feats, self.real)
    # 'svd' is exact and ~50x faster than sqrtm while the sets are smaller than 2048.
    method = "svd" if min(len(feats), len(self.real)) < feats.shape[1] else "sqrtm"
    return {"fid": float(frechet_distance(feats, self.real, method=method)),
            "kid": {"mean": float(kid_mean), "std": float(kid_std), "n": len(fake)}}


def load_fid(spec: str) -> Any:
  """FID network parameters: '' = find the installed weights, 'random:SEED' = plumbing tests."""
  from p2p.eval import fid
  if spec.startswith("random:"):
    logging.warning("FID with RANDOM weights (%s): the numbers are meaningless.", spec)
    return fid.random_fid_params(int(spec.split(":", 1)[1]))
  return fid.load_fid_params(spec or None)


def evaluate(gen: Any, pairs: Pairs, *, protocols: Sequence[str], baselines: Sequence[str],
             means: tuple[np.ndarray, np.ndarray] | None, fid_params: Any = None,
             norm: str = "batch", seed: int = 0) -> dict[str, Any]:
  """Scores the model and baselines under each protocol: {protocol: {source: result}}."""
  results: dict[str, Any] = {}
  for protocol in protocols:
    examples = make_examples(protocol, pairs, gen.image_size)
    fid = FidScorer(fid_params, examples.targets) if fid_params is not None else None
    sources = {MODEL: predict(gen, examples, norm=norm, seed=seed)}
    for kind in baselines:
      sources[kind] = baseline(kind, examples, pairs, means)
    results[protocol] = {"examples": examples,
                         "sources": {name: {"images": images, **score(images, examples, fid)}
                                     for name, images in sources.items()}}
    logging.info("Scored protocol %s: %d examples, %s.", protocol, len(examples.names),
                 ", ".join(sources))
  return results
