"""Scores a trained generator and no-learning baselines on a split (behind p2p.evaluate).

Protocols: `patches` (the seed's): each image cut into its own grid of non-overlapping tiles
of the model size (4 per 600 px half at 256); `resize` (the seed's): each whole image resized
(shorter side to the model size) and centre-cropped; `full`: each whole input translated with
tiled inference and compared with the whole target. Images may differ in size: a split of
one size is held as N x H x W x C arrays, a mixed one as lists. Baselines, scored the same
way: `mean_color` (a constant image of the training targets' mean colour), `mean_photo`
(their per-pixel mean), `input` (the input itself, when it has the target's channels and
dtype). Pixel metrics reward blur; the baselines show the floor. Every metric compares the
images scaled to [-1, 1] by the run's target range, so 16-bit data keeps its precision. FID
and KID use the standard FID Inception network, so they score 3-channel targets only (of
another dtype: their 8-bit quantisation).
"""

from __future__ import annotations

import collections
import dataclasses
import logging
from collections.abc import Callable, Sequence
from typing import Any, Union

import numpy as np

PROTOCOLS = ("patches", "resize", "full")
BASELINES = ("mean_color", "mean_photo", "input")
MODEL = "model"
CHUNK_IMAGES = 64  # images (of whole HP-L1 groups) per compute_metrics call: bounds memory
Images = Union[np.ndarray, list]  # N x H x W x C when all share a size, else a list of H x W x C


@dataclasses.dataclass(frozen=True)
class Pairs:
  """A split's (input, target) images in their native dtype, in file order."""

  names: list[str]
  inputs: Images
  targets: Images
  layout: str = ""      # the dataset layout they were read from
  val_source: str = ""  # folder or holdout


@dataclasses.dataclass(frozen=True)
class Examples:
  """One protocol's evaluation set: what the model sees and what it is compared with."""

  protocol: str
  names: list[str]         # "<file>" or "<file>#<patch>"
  image_index: np.ndarray  # the pair each example comes from (an image's examples adjacent)
  inputs: Images           # native dtype
  targets: Images
  cut: Callable[[np.ndarray], list[np.ndarray]]  # one whole image -> its examples

  @property
  def group(self) -> int:
    """Examples per image (the seed HP-L1's normalisation batch); 0 if the counts differ."""
    counts = np.bincount(self.image_index)
    return int(counts[0]) if len(counts) and (counts == counts[0]).all() else 0


def stack(images: Sequence[np.ndarray]) -> Images:
  """One N x H x W x C array when every image has the same shape, else the list."""
  images = list(images)
  if images and len({im.shape for im in images}) == 1:
    return np.stack(images)
  return images


def common_shape(images: Images) -> tuple[int, int]:
  """The most frequent (height, width) of a set of images (the first of ties)."""
  return collections.Counter(im.shape[:2] for im in images).most_common(1)[0][0]


def load_pairs(data: Any, split: str, limit: int = 0, max_pixels: int = 0) -> Pairs:
  """Decodes a split of a run's data section (the first `limit` pairs if > 0), values checked.

  max_pixels > 0: a pair whose side holds more pixels is refused from its header (--max_pixels).
  """
  from p2p.data.errors import DataError
  from p2p.data.folder import load_pair, orient, scan_split
  from p2p.data.values import check_values, value_range
  scan = scan_split(data, split, verify=False, min_size=1)  # headers: each file decoded once, below
  files = scan.pairs[:limit] if limit > 0 else scan.pairs
  for f, (height, width) in zip(files, scan.sizes):
    if max_pixels > 0 and height * width > max_pixels:
      raise DataError(f"{f.a} is {width}x{height} per side ({height * width:,} pixels), over "
                      f"the limit of {max_pixels:,}; raise --max_pixels or remove the pair.")
  inputs, targets = [], []
  for f in files:
    a, b = load_pair(f, data.a_channels, data.b_channels)
    for image, path, side in ((a, f.a, "a"), (b, f.b or f.a, "b")):
      check_values(image, value_range(image.dtype, getattr(data, f"{side}_range")), path,
                   f"data.{side}_range")
    x, y = orient(a, b, data.direction)
    inputs.append(x)
    targets.append(y)
  return Pairs([f.name for f in files], stack(inputs), stack(targets), scan.layout.kind,
               scan.val_source)


def check_fits(gen: Any, pairs: Pairs) -> None:
  """DataError unless the split's images have the channels the run was trained on."""
  from p2p.data.errors import DataError
  for role, images, want in (("input", pairs.inputs, gen.channels[0]),
                             ("target", pairs.targets, gen.channels[1])):
    have = images[0].shape[-1]
    if have != want:
      raise DataError(f"The {role} images of {pairs.names[0]} have {have} channel(s) but the "
                      f"run was trained on {want}; pass the run's dataset (--data_dir) or set "
                      f"its data.a_channels/b_channels.")


def _cutter(protocol: str, size: int) -> Callable[[np.ndarray], list[np.ndarray]]:
  """The function that turns one whole image into a protocol's examples of it."""
  from p2p.data.transforms import center_crop, patch_boxes, resize_short
  if protocol == "patches":
    def cut(image: np.ndarray) -> list[np.ndarray]:
      return [image[t:t + size, l:l + size] for t, l in patch_boxes(image.shape[:2], size, "grid")]
  elif protocol == "resize":
    def cut(image: np.ndarray) -> list[np.ndarray]:
      return [center_crop(resize_short(image, size), size)]
  elif protocol == "full":
    def cut(image: np.ndarray) -> list[np.ndarray]:
      return [image]
  else:
    raise ValueError(f"protocol={protocol!r} is not one of {PROTOCOLS}.")
  return cut


def make_examples(protocol: str, pairs: Pairs, size: int) -> Examples:
  """Cuts or resizes the pairs as a protocol asks (each image by its own size)."""
  cut = _cutter(protocol, size)
  if protocol == "patches":
    small = [n for n, im in zip(pairs.names, pairs.inputs) if min(im.shape[:2]) < size]
    if small:
      from p2p.data.errors import DataError
      more = f" (and {len(small) - 1} more)" if len(small) > 1 else ""
      raise DataError(f"{small[0]}{more} is smaller than the {size} px patches; score it with "
                      f"--protocol=resize or full, or a smaller --image_size.")
  if protocol == "full":  # the whole images, not copied
    return Examples(protocol, list(pairs.names), np.arange(len(pairs.names)), pairs.inputs,
                    pairs.targets, cut)
  inputs = [cut(im) for im in pairs.inputs]
  counts = [len(parts) for parts in inputs]
  names = ([f"{name}#{k}" for name, n in zip(pairs.names, counts) for k in range(n)]
           if protocol == "patches" else list(pairs.names))
  return Examples(protocol, names, np.repeat(np.arange(len(counts)), counts),
                  stack([e for parts in inputs for e in parts]),
                  stack([e for im in pairs.targets for e in cut(im)]), cut)


def training_means(data: Any, shape: int | tuple[int, int], limit: int = 0
                   ) -> tuple[np.ndarray, np.ndarray]:
  """(mean colour (C,), per-pixel mean H x W x C) of the training targets resized to `shape`,
  in the targets' native units (float64)."""
  from p2p.data.folder import load_pair, orient, scan_split
  from p2p.data.transforms import resize_to
  height, width = (shape, shape) if isinstance(shape, (int, np.integer)) else shape
  files = scan_split(data, "train", verify=False, min_size=1).pairs
  paths = files[:limit] if limit > 0 else files
  total = None
  for path in paths:
    target = orient(*load_pair(path, data.a_channels, data.b_channels), data.direction)[1]
    image = resize_to(target, height, width).astype(np.float64)
    total = image if total is None else total + image
  mean_photo = total / len(paths)
  return mean_photo.mean(axis=(0, 1)), mean_photo


def skip_reasons(pairs: Pairs, baselines: Sequence[str], fid: bool) -> dict[str, str]:
  """Why FID/KID ('fid') or a baseline cannot score this split; {} when everything can."""
  reasons = {}
  x, y = pairs.inputs[0], pairs.targets[0]
  if fid and y.shape[-1] != 3:
    reasons["fid"] = (f"FID/KID need 3-channel (RGB) targets; this run's target has "
                      f"{y.shape[-1]} channel{'' if y.shape[-1] == 1 else 's'}")
  if "input" in baselines and (x.shape[-1], x.dtype) != (y.shape[-1], y.dtype):
    reasons["input"] = (f"the input baseline needs inputs like the targets; the input has "
                        f"{x.shape[-1]} channel(s) of {x.dtype}, the target {y.shape[-1]} of "
                        f"{y.dtype}")
  return reasons


def fid_note(pairs: Pairs, value_range: Sequence[float]) -> str | None:
  """How FID sees targets that are not 8-bit (None when they are)."""
  dtype = pairs.targets[0].dtype
  if dtype == np.uint8 and tuple(value_range) == (0.0, 255.0):
    return None
  return (f"FID/KID scored the 8-bit quantisation of the [-1, 1] images (the FID network "
          f"takes 8-bit RGB; the targets are {dtype.name} in [{value_range[0]:g}, "
          f"{value_range[1]:g}])")


def baseline(kind: str, examples: Examples, pairs: Pairs, means: tuple[np.ndarray, np.ndarray]
             ) -> Images:
  """A no-learning prediction for every example, in the targets' dtype."""
  if kind == "input":
    return examples.inputs
  from p2p.data.values import cast
  colour, photo = means
  dtype = pairs.targets[0].dtype
  if kind == "mean_color":
    value = cast(colour, dtype)
    if isinstance(examples.targets, np.ndarray):
      return np.broadcast_to(value, examples.targets.shape)
    return [np.broadcast_to(value, t.shape) for t in examples.targets]
  if kind == "mean_photo":
    from p2p.data.transforms import resize_to
    whole, cuts = cast(photo, dtype), {}
    parts = []
    for target in pairs.targets:  # this protocol's cut of the mean photo at each image's size
      shape = target.shape[:2]
      if shape not in cuts:
        cuts[shape] = examples.cut(resize_to(whole, *shape))
      parts += cuts[shape]
    return stack(parts)
  raise ValueError(f"baseline={kind!r} is not one of {BASELINES}.")


def predict(gen: Any, examples: Examples, *, norm: str, seed: int) -> Images:
  """The model's output for every example (target dtype): batched for tiles, tiled for whole
  images."""
  import jax

  import p2p
  from p2p.data.values import from_unit, to_unit
  rng = jax.random.PRNGKey(seed)
  if examples.protocol == "full":
    return stack([p2p.translate_image(gen, x, norm=norm, rng=jax.random.fold_in(rng, i))
                  for i, x in enumerate(examples.inputs)])
  out = p2p.sample(gen, to_unit(examples.inputs, gen.ranges[0]), norm=norm, rng=rng)
  return from_unit(out, gen.ranges[1], gen.output_dtype)


def _take(images: Images, rows: np.ndarray) -> np.ndarray:
  """The images at `rows` as one array (they share a shape)."""
  if isinstance(images, np.ndarray):
    return images[rows]
  return np.stack([images[i] for i in rows])


def _buckets(examples: Examples, shapes: Sequence[tuple]) -> list[tuple[np.ndarray, int]]:
  """(rows, HP-L1 group) of examples that can be scored together: one shape, whole images."""
  counts = np.bincount(examples.image_index)
  keys = collections.defaultdict(list)
  for row, (shape, image) in enumerate(zip(shapes, examples.image_index)):
    keys[(shape, int(counts[image]))].append(row)
  return [(np.array(rows), key[1]) for key, rows in keys.items()]


def score(fake: Images, examples: Examples, fid: FidScorer | None,
          value_range: Sequence[float] = (0.0, 255.0)) -> dict[str, Any]:
  """Per-example metrics of native images scaled from value_range (+ FID/KID vs the targets)."""
  from p2p.data.values import to_unit
  from p2p.eval.metrics import METRIC_NAMES, compute_metrics, summarize
  shapes = ([examples.targets.shape[1:]] * len(examples.names)
            if isinstance(examples.targets, np.ndarray) else [t.shape for t in examples.targets])
  per_image = {k: np.zeros(len(examples.names), np.float64) for k in METRIC_NAMES}
  for rows, group in _buckets(examples, shapes):
    for start in range(0, len(rows), CHUNK_IMAGES * group):  # bounded memory, whole groups
      part = rows[start:start + CHUNK_IMAGES * group]
      chunk = compute_metrics(to_unit(_take(fake, part), value_range),
                              to_unit(_take(examples.targets, part), value_range), hp_group=group)
      for k, v in chunk.items():
        per_image[k][part] = v
  summary = {k: summarize(v) for k, v in per_image.items()}
  if fid is not None:
    summary.update(fid(fake))
  return {"per_image": per_image, "summary": summary}


class FidScorer:
  """FID and KID of image sets against one protocol's real targets (features computed once)."""

  def __init__(self, params: Any, targets: Images, value_range: Sequence[float] = (0.0, 255.0)):
    self.params = params
    self.value_range = tuple(value_range)
    self.real = self._features(targets)

  def _features(self, images: Images) -> np.ndarray:
    """N x 2048 features in image order; images of one size are batched together."""
    from p2p.data.values import to_8bit
    from p2p.eval.fid import fid_features
    if len(images) and images[0].dtype != np.uint8 or self.value_range != (0.0, 255.0):
      images = stack([to_8bit(im, self.value_range) for im in images])
    if isinstance(images, np.ndarray):
      if len(images) and (images == images[:1]).all():  # a constant baseline: one image, repeated
        return np.repeat(fid_features(self.params, images[:1]), len(images), axis=0)
      return fid_features(self.params, images)
    by_shape = collections.defaultdict(list)
    for i, image in enumerate(images):
      by_shape[image.shape].append(i)
    feats = None
    for rows in by_shape.values():
      part = fid_features(self.params, np.stack([images[i] for i in rows]))
      feats = np.zeros((len(images), part.shape[1]), np.float32) if feats is None else feats
      feats[rows] = part
    return feats

  def __call__(self, fake: Images) -> dict[str, Any]:
    from p2p.eval.fid import frechet_distance, kernel_inception_distance
    feats = self._features(fake)
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
  """Scores the model and baselines under each protocol: {protocol: {source: result}}.

  FID/KID and baselines that cannot score this split (skip_reasons) are left out.
  """
  skipped = skip_reasons(pairs, baselines, fid_params is not None)
  fid_params = None if "fid" in skipped else fid_params
  results: dict[str, Any] = {}
  for protocol in protocols:
    examples = make_examples(protocol, pairs, gen.image_size)
    fid = (FidScorer(fid_params, examples.targets, gen.ranges[1]) if fid_params is not None
           else None)
    sources = {MODEL: predict(gen, examples, norm=norm, seed=seed)}
    for kind in baselines:
      if kind not in skipped:
        sources[kind] = baseline(kind, examples, pairs, means)
    results[protocol] = {
        "examples": examples, "ranges": gen.ranges,
        "sources": {name: {"images": images, **score(images, examples, fid, gen.ranges[1])}
                    for name, images in sources.items()}}
    logging.info("Scored protocol %s: %d examples, %s.", protocol, len(examples.names),
                 ", ".join(sources))
  for what, why in skipped.items():
    logging.warning("Skipped %s: %s.", "FID/KID" if what == "fid" else f"the {what} baseline",
                    why)
  return results
