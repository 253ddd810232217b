"""The PyTorch pix2pix iteration (junyanz/pytorch-CycleGAN-and-pix2pix), timed; one JSON line.

  pip install -e '.[bench]'     # PyTorch, never a main dependency
  python benchmarks/torch_reference.py --batch=1 --dtype=bfloat16 --json

The reference's networks, rebuilt layer for layer: UnetGenerator(3, 3, num_downs=8, ngf=64,
BatchNorm, dropout 0.5) with 54,413,955 parameters and the 70x70 NLayerDiscriminator(6, ndf=64,
n_layers=3, BatchNorm) with 2,768,705 (checked at start). One iteration is the reference's
optimize_parameters: fake = G(A); D update on (A, fake.detach()) and (A, B) with
BCEWithLogits * 0.5; G update on BCE(D(A, fake), 1) + 100 * L1(fake, B); Adam(2e-4, 0.5, 0.999)
each. --dtype=bfloat16 runs the forward passes under torch.autocast("cpu", torch.bfloat16), as a
user after CPU speed would; --channels_last puts weights and inputs in NHWC (oneDNN's layout).
--mode=infer times G in eval mode on one --size batch; --mode=tiled translates an --image px
square in 256 px tiles every 128 px, blended, as p2p.translate_image does (81 tiles at 1200 px).
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import statistics
import time

import numpy as np
import torch
from torch import nn

G_PARAMS, D_PARAMS = 54_413_955, 2_768_705


class UnetSkipConnectionBlock(nn.Module):
  """The reference's U-Net level: down conv, the inner levels, up conv, skip concat."""

  def __init__(self, outer_nc: int, inner_nc: int, input_nc: int | None = None,
               submodule: nn.Module | None = None, outermost: bool = False,
               innermost: bool = False, use_dropout: bool = False):
    super().__init__()
    self.outermost = outermost
    input_nc = input_nc or outer_nc
    downconv = nn.Conv2d(input_nc, inner_nc, 4, 2, 1, bias=False)
    downrelu, downnorm = nn.LeakyReLU(0.2, True), nn.BatchNorm2d(inner_nc)
    uprelu, upnorm = nn.ReLU(True), nn.BatchNorm2d(outer_nc)
    if outermost:
      up = [uprelu, nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1), nn.Tanh()]
      model = [downconv, submodule, *up]
    elif innermost:
      up = [uprelu, nn.ConvTranspose2d(inner_nc, outer_nc, 4, 2, 1, bias=False), upnorm]
      model = [downrelu, downconv, *up]
    else:
      up = [uprelu, nn.ConvTranspose2d(inner_nc * 2, outer_nc, 4, 2, 1, bias=False), upnorm]
      model = [downrelu, downconv, downnorm, submodule, *up]
      if use_dropout:
        model.append(nn.Dropout(0.5))
    self.model = nn.Sequential(*model)

  def forward(self, x: torch.Tensor) -> torch.Tensor:
    """The level's output, with the skip connection unless outermost."""
    return self.model(x) if self.outermost else torch.cat([x, self.model(x)], 1)


def unet_generator(ngf: int = 64, num_downs: int = 8) -> nn.Module:
  """UnetGenerator(3, 3, num_downs, ngf, BatchNorm2d, use_dropout=True)."""
  block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, innermost=True)
  for _ in range(num_downs - 5):
    block = UnetSkipConnectionBlock(ngf * 8, ngf * 8, submodule=block, use_dropout=True)
  block = UnetSkipConnectionBlock(ngf * 4, ngf * 8, submodule=block)
  block = UnetSkipConnectionBlock(ngf * 2, ngf * 4, submodule=block)
  block = UnetSkipConnectionBlock(ngf, ngf * 2, submodule=block)
  return UnetSkipConnectionBlock(3, ngf, input_nc=3, submodule=block, outermost=True)


def patch_discriminator(ndf: int = 64, n_layers: int = 3) -> nn.Module:
  """NLayerDiscriminator(6, ndf, n_layers, BatchNorm2d): the 70x70 PatchGAN at n_layers=3."""
  layers: list[nn.Module] = [nn.Conv2d(6, ndf, 4, 2, 1), nn.LeakyReLU(0.2, True)]
  mult = 1
  for n in range(1, n_layers + 1):
    prev, mult = mult, min(2 ** n, 8)
    layers += [nn.Conv2d(ndf * prev, ndf * mult, 4, 2 if n < n_layers else 1, 1, bias=False),
               nn.BatchNorm2d(ndf * mult), nn.LeakyReLU(0.2, True)]
  layers.append(nn.Conv2d(ndf * mult, 1, 4, 1, 1))
  return nn.Sequential(*layers)


def init_weights(net: nn.Module) -> None:
  """The reference's init_weights('normal', 0.02): N(0, 0.02) convs, N(1, 0.02) BatchNorm."""
  for m in net.modules():
    if isinstance(m, (nn.Conv2d, nn.ConvTranspose2d)):
      nn.init.normal_(m.weight, 0.0, 0.02)
      if m.bias is not None:
        nn.init.zeros_(m.bias)
    elif isinstance(m, nn.BatchNorm2d):
      nn.init.normal_(m.weight, 1.0, 0.02)
      nn.init.zeros_(m.bias)


def count(net: nn.Module) -> int:
  """Trainable parameters."""
  return sum(p.numel() for p in net.parameters())


class Pix2Pix:
  """The reference's pix2pix model: G, D, their Adams and one optimize_parameters step."""

  def __init__(self, dtype: str, channels_last: bool, seed: int = 0):
    torch.manual_seed(seed)
    self.g, self.d = unet_generator(), patch_discriminator()
    if (count(self.g), count(self.d)) != (G_PARAMS, D_PARAMS):
      raise AssertionError(f"parameter counts {count(self.g)}, {count(self.d)} are not the "
                           f"reference's {G_PARAMS}, {D_PARAMS}")
    init_weights(self.g)
    init_weights(self.d)
    self.format = torch.channels_last if channels_last else torch.contiguous_format
    self.g.to(memory_format=self.format)
    self.d.to(memory_format=self.format)
    self.opt_g = torch.optim.Adam(self.g.parameters(), lr=2e-4, betas=(0.5, 0.999))
    self.opt_d = torch.optim.Adam(self.d.parameters(), lr=2e-4, betas=(0.5, 0.999))
    self.bce, self.l1 = nn.BCEWithLogitsLoss(), nn.L1Loss()
    self.autocast = dtype == "bfloat16"

  def cast(self):
    """The forward passes' context: bf16 autocast or nothing."""
    return (torch.autocast("cpu", dtype=torch.bfloat16) if self.autocast
            else contextlib.nullcontext())

  def batch(self, batch: int, size: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Random inputs in [-1, 1], in the model's memory format."""
    a, b = (torch.rand(batch, 3, size, size) * 2 - 1 for _ in range(2))
    return a.to(memory_format=self.format), b.to(memory_format=self.format)

  def step(self, real_a: torch.Tensor, real_b: torch.Tensor) -> None:
    """optimize_parameters: forward, D update, G update."""
    with self.cast():
      fake_b = self.g(real_a)
    for p in self.d.parameters():
      p.requires_grad_(True)
    self.opt_d.zero_grad(set_to_none=True)
    with self.cast():
      pred_fake = self.d(torch.cat([real_a, fake_b.detach()], 1))
      pred_real = self.d(torch.cat([real_a, real_b], 1))
      loss_d = 0.5 * (self.bce(pred_fake.float(), torch.zeros_like(pred_fake, dtype=torch.float))
                      + self.bce(pred_real.float(), torch.ones_like(pred_real, dtype=torch.float)))
    loss_d.backward()
    self.opt_d.step()
    for p in self.d.parameters():
      p.requires_grad_(False)
    self.opt_g.zero_grad(set_to_none=True)
    with self.cast():
      pred_fake = self.d(torch.cat([real_a, fake_b], 1))
      loss_g = (self.bce(pred_fake.float(), torch.ones_like(pred_fake, dtype=torch.float))
                + 100.0 * self.l1(fake_b.float(), real_b))
    loss_g.backward()
    self.opt_g.step()

  @torch.no_grad()
  def forward(self, x: torch.Tensor) -> torch.Tensor:
    """G in eval mode (running statistics, no dropout), float32 out."""
    self.g.eval()
    with self.cast():
      return self.g(x).float()

  def translate(self, image: np.ndarray, size: int = 256, overlap: int = 128,
                chunk: int = 16) -> np.ndarray:
    """An H x W x 3 float image in [-1, 1] as p2p.translate_image tiles it: size-px tiles every
    size - overlap px (the last flush with the edge), chunk at a time, blended by a linear ramp."""
    def starts(extent: int) -> list[int]:
      out = list(range(0, extent - size + 1, size - overlap))
      return out + [extent - size] if out[-1] + size < extent else out
    boxes = [(t, left) for t in starts(image.shape[0]) for left in starts(image.shape[1])]
    tiles = np.stack([image[t:t + size, left:left + size] for t, left in boxes])
    x = torch.from_numpy(tiles).permute(0, 3, 1, 2).contiguous(memory_format=self.format)
    out = torch.cat([self.forward(x[i:i + chunk]) for i in range(0, len(x), chunk)])
    out = out.permute(0, 2, 3, 1).numpy()
    ramp = np.ones(size, np.float32)
    edge = np.arange(1, overlap + 1, dtype=np.float32) / (overlap + 1)
    ramp[:overlap], ramp[size - overlap:] = edge, np.minimum(ramp[size - overlap:], edge[::-1])
    window = np.outer(ramp, ramp)[..., None]
    total, weight = np.zeros_like(image), np.zeros(image.shape[:2] + (1,), np.float32)
    for (t, left), tile in zip(boxes, out):
      total[t:t + size, left:left + size] += window * tile
      weight[t:t + size, left:left + size] += window
    return total / weight


def peak_rss_mib() -> float:
  """The process's resident high-water mark."""
  return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def timed(fn, warmup: int, steps: int) -> list[float]:
  """Seconds of each of `steps` calls after `warmup` untimed ones."""
  for _ in range(warmup):
    fn()
  times = []
  for _ in range(steps):
    start = time.perf_counter()
    fn()
    times.append(time.perf_counter() - start)
  return times


def measure(args: argparse.Namespace) -> dict:
  """Times --steps train iterations (or translates) after warm-up; the result as a dict."""
  torch.set_num_threads(args.threads or torch.get_num_threads())
  model = Pix2Pix(args.dtype, args.channels_last)
  if args.mode == "train":
    a, b = model.batch(args.batch, args.size)
    run = lambda: model.step(a, b)
  elif args.mode == "infer":
    a, _ = model.batch(args.batch, args.size)
    run = lambda: model.forward(a)
  else:  # tiled
    image = np.random.default_rng(0).uniform(-1, 1, (args.image, args.image, 3)).astype(
        np.float32)
    run = lambda: model.translate(image)
  times = timed(run, args.warmup, args.steps)
  median = statistics.median(times)
  images = 1 if args.mode == "tiled" else args.batch
  return {"impl": "pytorch", "mode": args.mode, "dtype": args.dtype,
          "channels_last": args.channels_last, "batch": args.batch, "size": args.size,
          "image": args.image if args.mode == "tiled" else None,
          "img_per_s": round(images / median, 4), "step_s_median": round(median, 4),
          "step_s_min": round(min(times), 4),
          "threads": torch.get_num_threads(), "torch": torch.__version__,
          "cpu_capability": torch.backends.cpu.get_cpu_capability(),
          "g_params": count(model.g), "d_params": count(model.d),
          "peak_rss_mib": round(peak_rss_mib(), 1)}


def parser() -> argparse.ArgumentParser:
  """The command line (compare.py reuses it)."""
  p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
  p.add_argument("--mode", choices=("train", "infer", "tiled"), default="train",
                 help="train: one iteration; infer: G eval-mode forward of --batch --size "
                 "images; tiled: translate one --image px square as p2p.translate_image does")
  p.add_argument("--batch", type=int, default=1)
  p.add_argument("--size", type=int, default=256)
  p.add_argument("--image", type=int, default=1200, help="tiled: the image's side in px")
  p.add_argument("--dtype", choices=("float32", "bfloat16"), default="float32")
  p.add_argument("--channels_last", action="store_true")
  p.add_argument("--threads", type=int, default=0, help="0 = PyTorch's default")
  p.add_argument("--warmup", type=int, default=3)
  p.add_argument("--steps", type=int, default=10)
  p.add_argument("--json", action="store_true", help="print only the JSON line")
  return p


def main() -> None:
  """Runs the benchmark and prints one JSON line."""
  result = measure(parser().parse_args())
  print(json.dumps(result))


if __name__ == "__main__":
  main()
