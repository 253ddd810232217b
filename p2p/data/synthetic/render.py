"""Paints a layout: class and shadow rasters, the flat map half and the textured photo half."""

from __future__ import annotations

import dataclasses
import functools

import numpy as np
from PIL import Image, ImageDraw

from p2p.data.synthetic.layout import (ARTERIAL, BUILDING, CANOPY, GROUND, HIGHWAY, LANE, PARK,
                                       PAVED, SIDEWALK, SIZE, WATER, Layout, band, corners,
                                       to_xy)

# Map fill colours of classes GROUND..BUILDING, then their 1-px edge colours (real maps palette).
MAP_COLOURS = np.array([(232, 228, 220), (254, 254, 252), (252, 224, 130), (247, 186, 68),
                        (201, 223, 176), (176, 208, 254), (243, 241, 236),
                        (232, 228, 220), (210, 206, 198), (228, 192, 106), (220, 146, 42),
                        (201, 223, 176), (176, 208, 254), (220, 216, 209)], np.uint8)
# Photo colour of classes GROUND..LANE (roofs are appended per image) and their texture.
PHOTO_COLOURS = np.array([(80, 90, 56), (80, 80, 82), (68, 68, 71), (112, 110, 106), (70, 86, 48),
                          (30, 44, 52), (0, 0, 0), (150, 146, 138), (124, 120, 110), (56, 80, 40),
                          (205, 205, 200)], np.float32)
DETAIL = np.array([0.45, 0.3, 0.3, 0.25, 0.4, 0.15, 0, 0.2, 0.3, 0.6, 0, 0.25], np.float32)
ROOF_TONES = np.array([1.0, 0.78, 1.15, 0.75, 0.6, 0.86], np.float32)  # flat/shaded/sunlit, +eave
CARS = ((235, 235, 232), (30, 30, 34), (150, 152, 156), (160, 30, 30), (40, 60, 120))


@dataclasses.dataclass(frozen=True)
class Rasters:
  """Per-pixel layout, all (size, size): class, building number, roof tone and masks."""
  label: np.ndarray     # uint8 class GROUND..BUILDING
  ids: np.ndarray       # building number from 1, 0 elsewhere
  tone: np.ndarray      # index into ROOF_TONES
  sidewalk: np.ndarray  # bool
  shadow: np.ndarray    # bool, cast by buildings and the highway
  edge: np.ndarray      # bool, pixels beside another class or building



def _sweep(rects: np.ndarray, shift: np.ndarray) -> np.ndarray:
  """Hexagons (n, 6, 2) covering each rectangle swept along its grid-frame shift (n, 2)."""
  u0, u1, v0, v1 = rects.T
  du, dv = shift.T
  ua, ub = np.where(du >= 0, u0, u1), np.where(du >= 0, u1, u0)
  va, vb = np.where(dv >= 0, v0, v1), np.where(dv >= 0, v1, v0)
  points = ((ua, va), (ub, va), (ub + du, va + dv), (ub + du, vb + dv), (ua + du, vb + dv),
            (ua, vb))
  return np.stack([np.stack(p, -1) for p in points], 1)


def rasterize(layout: Layout) -> Rasters:
  """Draws the layout's classes, building numbers, roof halves, sidewalks and cast shadows."""
  size, scale = layout.size, layout.size / SIZE
  label, roof = Image.new("L", (size, size), GROUND), Image.new("I", (size, size), 0)
  walk, shadow = Image.new("1", (size, size)), Image.new("1", (size, size))
  draw, draw_roof = ImageDraw.Draw(label), ImageDraw.Draw(roof)
  draw_walk, draw_shadow = ImageDraw.Draw(walk), ImageDraw.Draw(shadow)
  for park in layout.parks:
    draw.polygon(park.ravel().tolist(), fill=PARK)
  highway = layout.streets[-1] if layout.streets[-1][2] == HIGHWAY else None
  for ends, width, kind in layout.streets[:-1] if highway else layout.streets:
    draw_walk.polygon(band(ends, width + 2 * layout.sidewalk).ravel().tolist(), fill=1)
    draw.polygon(band(ends, width).ravel().tolist(), fill=kind)
  for polygon in layout.water:  # over the streets, under the highway bridge
    draw.polygon(polygon.ravel().tolist(), fill=WATER)
  if highway:
    deck = band(highway[0], highway[1])
    draw.polygon(deck.ravel().tolist(), fill=HIGHWAY)
    draw_shadow.polygon((deck + layout.sun * 10 * scale).ravel().tolist(), fill=1)
  project = functools.partial(to_xy, layout.origin, layout.axes)
  sweeps = project(_sweep(layout.rects, np.outer(layout.heights, layout.axes @ layout.sun)))
  for sweep in sweeps.reshape(-1, 12).tolist():
    draw_shadow.polygon(sweep, fill=1)
  n = len(layout.rects)
  footprints = project(corners(layout.rects)).reshape(n, 8).tolist()
  halves = project(_roof_halves(layout)).reshape(n, 2, 8).tolist()
  for i, (footprint, (shaded, sunlit), pitched) in enumerate(zip(footprints, halves,
                                                                layout.pitched)):
    if pitched:
      draw_roof.polygon(shaded, fill=4 * i + 5)
      draw_roof.polygon(sunlit, fill=4 * i + 6)
    else:
      draw_roof.polygon(footprint, fill=4 * i + 4)
  label, roof = np.array(label), np.asarray(roof)
  building = (roof > 0) & (label == GROUND)
  label += (BUILDING - GROUND) * building.astype(np.uint8)
  ids = (roof >> 2) * building
  edge = _edges(label, ids)
  tone = ((roof & 3) * building).astype(np.uint8) + 3 * (edge & building).astype(np.uint8)
  shadow = np.asarray(shadow) & (label != BUILDING) & (label != HIGHWAY)
  return Rasters(label, ids, tone, np.asarray(walk) & (label == GROUND), shadow, edge)


def _roof_halves(layout: Layout) -> np.ndarray:
  """(n, 2, 4, 2) corners of the shaded then the sunlit half of each roof, split at the ridge."""
  u0, u1, v0, v1 = layout.rects.T
  along_u = (u1 - u0 >= v1 - v0)[:, None]
  um, vm = (u0 + u1) / 2, (v0 + v1) / 2
  low = np.where(along_u, np.stack([u0, u1, v0, vm], 1), np.stack([u0, um, v0, v1], 1))
  high = np.where(along_u, np.stack([u0, u1, vm, v1], 1), np.stack([um, u1, v0, v1], 1))
  light = -(layout.axes @ layout.sun)
  high_lit = np.where(along_u[:, 0], light[1] > 0, light[0] > 0)[:, None]
  halves = np.stack([np.where(high_lit, low, high), np.where(high_lit, high, low)], 1)
  return corners(halves.reshape(-1, 4)).reshape(-1, 2, 4, 2)


def _edges(label: np.ndarray, ids: np.ndarray) -> np.ndarray:
  """Pixels beside another class or building (streets and arterials meet seamlessly)."""
  key = ((label - (label == ARTERIAL)).astype(np.int32) << 20) | ids
  vertical, horizontal = key[1:] != key[:-1], key[:, 1:] != key[:, :-1]
  edge = np.zeros(label.shape, bool)
  edge[1:] |= vertical
  edge[:-1] |= vertical
  edge[:, 1:] |= horizontal
  edge[:, :-1] |= horizontal
  return edge


def render_map(rasters: Rasters) -> Image.Image:
  """The flat map half: one colour per class, a thin darker outline on roads and buildings."""
  image = Image.fromarray(rasters.label + 7 * rasters.edge.astype(np.uint8))
  image.putpalette(MAP_COLOURS.ravel().tolist())
  return image.convert("RGB")


def render_photo(rng: np.random.Generator, layout: Layout, rasters: Rasters) -> Image.Image:
  """The photo half: textured ground, roofs, trees, water, asphalt, shadows, cars and grain."""
  size, style, label, int32 = layout.size, layout.style, rasters.label, np.int32
  paving, lift, bumps, detail, broad = _crop(rng, _tiles(size))
  building, ground, park, sidewalk = (label == BUILDING, label == GROUND, label == PARK,
                                      rasters.sidewalk)
  lift = lift - style.trees + np.float32(style.trees - 0.5) * park  # > 0 under a tree crown
  canopy = (lift > 0) & (ground & ~(sidewalk & (lift < 0.06)) | park)
  key = label.astype(int32)
  key += int32(SIDEWALK - GROUND) * sidewalk
  key += int32(PAVED - GROUND) * ((paving > 0.15 - style.paved) & ground & ~sidewalk)
  key += (rasters.ids * int32(len(ROOF_TONES)) + rasters.tone + int32(LANE + 1 - 6 - BUILDING)
          ) * building  # roof colours, one per (building, tone), follow the LANE entry
  key += (int32(CANOPY) - key) * canopy
  if layout.streets[-1][2] == HIGHWAY:
    key += (int32(LANE) - key) * _lane_marks(layout, label)
  light = np.clip(lift * 12, 0, 1)
  light *= bumps
  lum = 1 - canopy * (np.float32(0.65) - light)
  tree_shade = _shifted(canopy, np.round(layout.sun * 5 * size / SIZE)) & ~canopy & ~building
  lum *= 1 - np.float32(0.55) * (rasters.shadow | tree_shade)
  lum *= broad
  lum = _soften(lum)
  lum += np.take(DETAIL, np.minimum(key, LANE + 1)) * detail
  roofs = layout.roofs[:, None] * ROOF_TONES[:, None]
  colours = np.concatenate([PHOTO_COLOURS, roofs.reshape(-1, 3)])
  colours *= rng.uniform(0.96, 1.04, 3).astype(np.float32) * rng.uniform(0.85, 1.15)
  photo = np.take(colours.T, key, axis=1)
  photo *= lum
  image = Image.merge("RGB", [Image.fromarray(p) for p in np.clip(photo, 0, 255).astype(np.uint8)])
  _cars(rng, layout, label, ImageDraw.Draw(image))
  return image


@functools.lru_cache(maxsize=4)
def _tiles(size: int) -> np.ndarray:
  """Fixed (5, 2*size, 2*size) fields: paving, tree lift, crown light, detail, broad shading."""
  rng = np.random.default_rng(0)
  broad, patches, crowns, bumps = (
      np.asarray(Image.fromarray(rng.random((c + 2, c + 2), np.float32)).resize(
          (2 * size, 2 * size), Image.BICUBIC, box=(1, 1, c + 1, c + 1)))
      for c in (8, max(2, size // 12), max(2, size // 9), max(2, size // 3)))
  grain = rng.random((2 * size, 2 * size), np.float32) - 0.5
  return np.stack([3 * broad + 0.3 * patches - 1.65, 0.6 * crowns + 0.4 * bumps,
                   0.75 * (0.5 + bumps), 0.8 * patches - 0.4 + grain, 0.93 + 0.14 * broad])


def _crop(rng: np.random.Generator, tiles: np.ndarray) -> np.ndarray:
  """The same random size x size window of every texture field, maybe flipped (a view)."""
  size = tiles.shape[1] // 2
  x, y, flip = rng.integers(0, size + 1), rng.integers(0, size + 1), rng.integers(2)
  return tiles[:, y:y + size, x:x + size][:, ::1 - 2 * flip]


def _shifted(mask: np.ndarray, shift: np.ndarray) -> np.ndarray:
  """The mask moved by (dx, dy) pixels, padding with False."""
  dx, dy = int(shift[0]), int(shift[1])
  h, w = mask.shape
  out = np.zeros_like(mask)
  out[max(dy, 0):h + min(dy, 0), max(dx, 0):w + min(dx, 0)] = (
      mask[max(-dy, 0):h - max(dy, 0), max(-dx, 0):w - max(dx, 0)])
  return out


def _lane_marks(layout: Layout, label: np.ndarray) -> np.ndarray:
  """Dashed lane lines and a solid median on the layout's highway (its last road), as a mask."""
  ends, width, _ = layout.streets[-1]
  scale, lanes = layout.size / SIZE, 6 if width > 36 * layout.size / SIZE else 4
  along = ends[1] - ends[0]
  side = np.array([-along[1], along[0]]) / np.linalg.norm(along)
  middle = (layout.origin - ends[0]) @ along / (along @ along)  # dashes only near the image
  half, step = np.array([0.75 * layout.size, 24 * scale]) / np.linalg.norm(along)
  starts = np.arange(middle - half, middle + half, step)
  mask = Image.new("1", label.shape[::-1])
  draw = ImageDraw.Draw(mask)
  for lane in range(1, lanes):
    offset = ends[0] + (lane / lanes - 0.5) * width * side
    pieces = [(0.0, 1.0)] if lane == lanes // 2 else zip(starts, starts + 0.45 * step)
    for start, stop in pieces:
      dash = band(offset + np.outer([start, stop], along), 1.4 * scale)
      draw.polygon(dash.ravel().tolist(), fill=1)
  return np.asarray(mask) & (label == HIGHWAY)


def _soften(image: np.ndarray) -> np.ndarray:
  """A separable [1, 2, 1] / 4 blur (the softness of aerial imagery) that shifts nothing."""
  for axis in (0, 1):
    def part(start, stop):
      return (slice(None),) * axis + (slice(start, stop),)
    out = image * 2
    out[part(1, None)] += image[part(None, -1)]
    out[part(None, -1)] += image[part(1, None)]
    out[part(None, 1)] += image[part(None, 1)]
    out[part(-1, None)] += image[part(-1, None)]
    image = out
  image *= np.float32(1 / 16)
  return image


def _cars(rng: np.random.Generator, layout: Layout, label: np.ndarray,
          draw: ImageDraw.ImageDraw) -> None:
  """Draws a few cars in the lanes of streets and the highway; the map does not show them."""
  ends = np.array([street[0] for street in layout.streets])
  width, kind = (np.array([street[i] for street in layout.streets]) for i in (1, 2))
  length = np.linalg.norm(ends[:, 1] - ends[:, 0], axis=1)
  rate = length / SIZE * np.where(kind == HIGHWAY, 10, 2)
  road = np.repeat(np.arange(len(ends)), rng.poisson(rate))
  along = (ends[road, 1] - ends[road, 0]) / length[road, None]
  side = np.stack([-along[:, 1], along[:, 0]], 1)
  lane = rng.choice([-1, 1], len(road)) * rng.uniform(0.12, 0.35, len(road)) * width[road]
  centres = (ends[road, 0] + rng.random((len(road), 1)) * (ends[road, 1] - ends[road, 0])
             + lane[:, None] * side)
  colours = rng.integers(len(CARS), size=len(road))
  pixel = np.clip(np.round(centres).astype(int), 0, layout.size - 1)
  visible = (np.all(np.abs(centres - pixel) < 1, axis=1)
             & (label[pixel[:, 1], pixel[:, 0]] == kind[road]))
  scale = layout.size / SIZE
  signs = np.array([[-1, -1], [1, -1], [1, 1], [-1, 1]])[None, :, :, None]
  corners = centres[:, None] + (signs[:, :, 0] * 4.5 * scale * along[:, None]
                                + signs[:, :, 1] * 2.25 * scale * side[:, None])
  for box, colour in zip(corners[visible].reshape(-1, 8).tolist(), colours[visible]):
    draw.polygon(box, fill=CARS[colour])

