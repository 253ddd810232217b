"""Vector geometry of one synthetic tile: street grid, blocks, parks, water, highway, buildings."""

from __future__ import annotations

import dataclasses

import numpy as np
from PIL import Image, ImageDraw

SIZE = 600  # side of each half in pixels; every length below is given at this size
GROUND, STREET, ARTERIAL, HIGHWAY, PARK, WATER, BUILDING, SIDEWALK, PAVED, CANOPY, LANE = range(11)
ROOFS = np.array([(192, 190, 186), (224, 222, 216), (150, 150, 150), (112, 112, 114), (74, 75, 78),
                  (48, 48, 52), (118, 94, 78), (150, 92, 72), (168, 156, 134)], np.float32)


@dataclasses.dataclass(frozen=True)
class Style:
  """Building parameters of one neighbourhood type, in pixels at size 600."""
  lot: tuple[float, float]      # lot width along the street
  depth: tuple[float, float]    # building depth into the block
  gap: tuple[float, float]      # gap between neighbouring buildings
  setback: tuple[float, float]  # distance from the street side of the lot
  yard: float                   # open ground behind each building
  height: tuple[float, float]   # shadow length
  pitched: float                # fraction of pitched (two-tone) roofs
  empty: float                  # fraction of empty lots
  trees: float                  # canopy threshold on open ground (higher = fewer trees)
  paved: float                  # bias of open ground towards pavement


STYLES = (
    Style((14, 24), (13, 20), (4, 8), (5, 9), 12, (3, 7), 0.85, 0.12, 0.57, -0.45),  # houses
    Style((7, 12), (18, 30), (0, 1), (0, 3), 6, (5, 10), 0.3, 0.04, 0.62, 0.0),  # row houses
    Style((28, 70), (40, 80), (0, 4), (0, 2), 0, (14, 45), 0.0, 0.05, 0.7, 0.6),  # downtown
)


@dataclasses.dataclass(frozen=True)
class Layout:
  """Vector geometry of one tile in pixels, shared by the map and the photo."""
  size: int
  style: Style
  origin: np.ndarray   # (2,) centre of the grid frame
  axes: np.ndarray     # (2, 2) rows u, v: unit street directions
  streets: list        # (endpoints (2, 2), width, class) per road; a highway comes last
  sidewalk: float
  parks: list          # polygons (k, 2)
  water: list          # polygons (k, 2)
  rects: np.ndarray    # (n, 4) building footprints (u0, u1, v0, v1) in the grid frame
  heights: np.ndarray  # (n,) shadow length in pixels
  roofs: np.ndarray    # (n, 3) roof colour
  pitched: np.ndarray  # (n,) bool
  sun: np.ndarray      # (2,) unit direction in which shadows fall



def make_layout(rng: np.random.Generator, size: int) -> Layout:
  """Draws a street grid with blocks, parks, buildings and maybe water and a highway."""
  scale, reach = size / SIZE, 0.75 * size
  style = STYLES[rng.choice(len(STYLES), p=(0.4, 0.35, 0.25))]
  angle = rng.uniform(0, np.pi / 2)
  axes = np.array([[np.cos(angle), np.sin(angle)], [-np.sin(angle), np.cos(angle)]])
  origin = np.full(2, size / 2)
  width = rng.uniform(9, 15) * scale * (1.3 if style is STYLES[2] else 1.0)
  spacing = rng.uniform(70, 150) * scale
  cuts = (_cuts(rng, reach, spacing), _cuts(rng, reach, spacing * rng.uniform(1, 2.2)))
  streets = []
  for axis in (0, 1):
    major = rng.integers(len(cuts[axis])) if rng.random() < 0.5 else -1
    for k, cut in enumerate(cuts[axis]):
      ends = origin + cut * axes[axis] + np.outer([-reach, reach], axes[1 - axis])
      streets.append((ends, width * 1.6, ARTERIAL) if k == major else (ends, width, STREET))
  streets.sort(key=lambda street: street[2])
  if rng.random() < 0.35:
    turn = angle + rng.uniform(0.35, 1.2) * rng.choice([-1, 1])
    centre = origin + rng.uniform(-0.3, 0.3, 2) * size
    ends = centre + np.outer([-2 * reach, 2 * reach], [np.cos(turn), np.sin(turn)])
    streets.append((ends, rng.uniform(26, 42) * scale, HIGHWAY))
  sidewalk = rng.uniform(2, 4) * scale
  water = _water(rng, size, origin, reach)
  park_rate = rng.choice([0.0, 0.08, 0.2, 0.5], p=(0.3, 0.35, 0.25, 0.1))
  parks, boxes = [], []
  inset = width / 2 + sidewalk
  for u0, u1 in zip(cuts[0][:-1], cuts[0][1:]):
    for v0, v1 in zip(cuts[1][:-1], cuts[1][1:]):
      box = np.array([u0 + inset, u1 - inset, v0 + inset, v1 - inset])
      centre = origin + np.array([(u0 + u1) / 2, (v0 + v1) / 2]) @ axes
      if np.abs(centre - size / 2).max() > size / 2 + max(u1 - u0, v1 - v0) or box[1] <= box[0]:
        continue
      if rng.random() < park_rate:
        parks.append(to_xy(origin, axes, corners(box[None]))[0])
        if rng.random() < 0.3:
          water.append(_lake(rng, centre, min(box[1] - box[0], box[3] - box[2]) / 2))
      else:
        boxes.append(box)
  rects = _block_buildings(rng, style, scale, np.array(boxes).reshape(-1, 4))
  rects = rects[_buildable(rects, origin, axes, size, water, streets[-1])]
  n, sun = len(rects), rng.uniform(0.5, 0.9) * np.pi
  roofs = (ROOFS[rng.integers(len(ROOFS), size=n)] * rng.uniform(0.85, 1.15, (n, 1))
           + rng.normal(0, 4, (n, 3))).astype(np.float32)
  return Layout(size, style, origin, axes, streets, sidewalk, parks, water, rects,
                rng.uniform(*style.height, n) * scale, roofs, rng.random(n) < style.pitched,
                np.array([np.cos(sun), np.sin(sun)]))


def _cuts(rng: np.random.Generator, reach: float, spacing: float) -> np.ndarray:
  """Street positions along one axis covering -reach..reach, irregularly about `spacing` apart."""
  gaps = spacing * rng.uniform(0.75, 1.3, int(2 * reach / (0.75 * spacing)) + 2)
  cuts = -reach - rng.uniform(0, spacing) + np.concatenate([[0], np.cumsum(gaps)])
  return cuts[:np.searchsorted(cuts, reach) + 1]


def corners(rects: np.ndarray) -> np.ndarray:
  """(n, 4) grid-frame rectangles (u0, u1, v0, v1) -> (n, 4, 2) corners."""
  u0, u1, v0, v1 = rects.T
  return np.stack([np.stack(p, -1) for p in ((u0, v0), (u1, v0), (u1, v1), (u0, v1))], 1)



def to_xy(origin: np.ndarray, axes: np.ndarray, uv: np.ndarray) -> np.ndarray:
  """Grid-frame coordinates (..., 2) -> pixel coordinates (..., 2)."""
  return origin + uv @ axes


def band(ends: np.ndarray, width: float) -> np.ndarray:
  """The (4, 2) rectangle of a straight road of `width` between two end points."""
  along = (ends[1] - ends[0]) / np.linalg.norm(ends[1] - ends[0])
  side = np.array([-along[1], along[0]]) * width / 2
  return np.stack([ends[0] + side, ends[1] + side, ends[1] - side, ends[0] - side])


def _block_buildings(rng: np.random.Generator, style: Style, scale: float,
                     boxes: np.ndarray) -> np.ndarray:
  """Footprints (k, 4) in blocks (b, 4): strips of lots along each long side, facing out."""
  swap = boxes[:, 3] - boxes[:, 2] > boxes[:, 1] - boxes[:, 0]
  boxes = np.where(swap[:, None], boxes[:, [2, 3, 0, 1]], boxes)  # long along the first axis
  setback = rng.uniform(*style.setback, len(boxes)) * scale
  depth = rng.uniform(*style.depth, len(boxes)) * scale
  count = np.maximum(1, (boxes[:, 3] - boxes[:, 2]) // (setback + depth + style.yard * scale))
  block = np.repeat(np.arange(len(boxes)), count.astype(int))
  index = np.arange(len(block)) - np.repeat(np.cumsum(count) - count, count.astype(int))
  u0, u1, v0, v1 = boxes[block].T
  width = (v1 - v0) / count[block]
  facing = np.where(index < (count[block] - 1) / 2, 1.0, -1.0)  # +1: faces the v0 street
  low = v0 + index * width
  front = np.where(facing > 0, low + setback[block], low + width - setback[block])
  reach = np.minimum(depth[block], width - setback[block])
  step = style.lot[0] * scale
  shape = (len(block), int(((u1 - u0).max(initial=0)) / step) + 2)
  ends = u0[:, None] + np.cumsum(rng.uniform(*style.lot, shape) * scale, 1)
  ends = np.where(ends < (u1 - step / 2)[:, None], ends, u1[:, None])
  starts = np.concatenate([u0[:, None], ends[:, :-1]], 1)
  gap = rng.uniform(*style.gap, shape) * scale / 2
  back = front[:, None] + (facing * reach)[:, None] * rng.uniform(0.75, 1.0, shape)
  rects = np.stack([starts + gap, ends - gap, np.minimum(front[:, None], back),
                    np.maximum(front[:, None], back)], -1)
  rects = np.where(swap[block][:, None, None], rects[..., [2, 3, 0, 1]], rects)
  keep = ((rng.random(shape) >= style.empty) & (rects[..., 1] - rects[..., 0] > 1.5)
          & (rects[..., 3] - rects[..., 2] > 1.5))
  return rects[keep]


def _water(rng: np.random.Generator, size: int, origin: np.ndarray, reach: float) -> list:
  """No water, a winding river band, or a coast: everything on one side of a wavy shore."""
  kind = rng.choice(3, p=(0.55, 0.25, 0.2))
  if kind == 0:
    return []
  turn = rng.uniform(0, np.pi)
  along, across = np.array([np.cos(turn), np.sin(turn)]), np.array([-np.sin(turn), np.cos(turn)])
  t = np.linspace(-2 * reach, 2 * reach, 60)
  phase, freq = rng.uniform(0, 2 * np.pi, 2), rng.uniform(1, 3, 2) / reach
  wave = size * (0.06 * np.sin(freq[0] * t + phase[0]) + 0.02 * np.sin(4 * freq[1] * t + phase[1]))
  line = origin + rng.uniform(-0.3, 0.3, 2) * size + np.outer(t, along) + np.outer(wave, across)
  if kind == 1:
    half = rng.uniform(25, 80) * size / SIZE * (1 + 0.15 * np.sin(2 * freq[1] * t + phase[0]))
    return [np.concatenate([line + np.outer(half, across), (line - np.outer(half, across))[::-1]])]
  return [np.concatenate([line, line[[-1, 0]] + 3 * reach * across])]


def _lake(rng: np.random.Generator, centre: np.ndarray, room: float) -> np.ndarray:
  """A blobby pond polygon that fits in a park of half-width `room`."""
  theta = np.linspace(0, 2 * np.pi, 24, endpoint=False)
  radius = room * rng.uniform(0.3, 0.5) * (1 + 0.2 * np.sin(2 * theta + rng.uniform(0, 6))
                                          + 0.1 * np.sin(3 * theta + rng.uniform(0, 6)))
  return centre + radius[:, None] * np.stack([np.cos(theta), np.sin(theta)], 1)


def _buildable(rects: np.ndarray, origin: np.ndarray, axes: np.ndarray, size: int,
               water: list, last_road: tuple) -> np.ndarray:
  """Keeps buildings centred near the image, wholly on land and clear of the highway."""
  centre = to_xy(origin, axes, np.stack([rects[:, :2].mean(1), rects[:, 2:].mean(1)], 1))
  keep = np.all((centre > -size * 0.1) & (centre < size * 1.1), axis=1)
  if water:
    mask = Image.new("1", (size, size))
    for polygon in water:
      ImageDraw.Draw(mask).polygon(polygon.ravel().tolist(), fill=1)
    pixel = np.clip(to_xy(origin, axes, corners(rects)).round().astype(int), 0, size - 1)
    keep &= ~np.asarray(mask)[pixel[..., 1], pixel[..., 0]].any(1)
  ends, width, kind = last_road
  if kind == HIGHWAY:
    along = (ends[1] - ends[0]) / np.linalg.norm(ends[1] - ends[0])
    distance = np.abs((centre - ends[0]) @ np.array([-along[1], along[0]]))
    radius = np.hypot(rects[:, 1] - rects[:, 0], rects[:, 3] - rects[:, 2]) / 2
    keep &= distance > width / 2 + radius
  return keep

