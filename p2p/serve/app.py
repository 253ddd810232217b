"""The demo page (Gradio Blocks): a sketch tab, an upload tab with examples, and the run's info.

Every handler turns a bad request into one line in the page (gr.Error) and never a traceback;
the queue serves one translation at a time (JAX already uses every core for one).
"""

from __future__ import annotations

import functools
import html
import logging
import secrets
from collections.abc import Callable
from pathlib import Path
from typing import Any

import gradio as gr
import numpy as np

from p2p.config import DataConfig
from p2p.serve import examples as ex
from p2p.serve.engine import KEEP_OUTPUTS_S, Engine, ServeError

BRUSH_SIZE = 1 / 40   # of the canvas side: a street's width at the maps' scale
ERASER_SIZE = 1 / 16
CANVAS_PX = 512        # the canvas's shown size in the page
MAX_FILE_SIZE = "256mb"  # Gradio refuses larger request bodies before p2p sees them
THEME_FONTS = ["ui-sans-serif", "system-ui", "sans-serif"]  # no web fonts: works offline
# Results fill their frame like the canvas does (small models give small images), pixels kept.
CSS = """#sketch-output img, .p2p-view img {width: 100%; height: 100%; object-fit: contain;
  image-rendering: pixelated;}"""
VIEW_PX = 380          # the upload tab's three images


def guarded(fn: Callable) -> Callable:
  """A handler whose failures reach the page as one line: gr.Error, never a traceback."""
  @functools.wraps(fn)
  def handler(*args: Any) -> Any:
    try:
      return fn(*args)
    except ServeError as e:
      logging.info("Refused a request: %s", e)
      raise gr.Error(str(e), print_exception=False) from None
    except Exception as e:  # noqa: BLE001 - the server must outlive any request
      logging.exception("A request failed")
      raise gr.Error(f"Internal error ({type(e).__name__}: {e}); the server's log has the "
                     f"details.", print_exception=False) from None
  return handler


def sketchable(engine: Engine) -> bool:
  """The sketch tab needs a run whose input is 8-bit gray or RGB (a drawn map's kind)."""
  channels, dtype = engine.gen.channels[0], engine.gen.dtypes[0] or "uint8"
  return dtype == "uint8" and channels in (1, 3)


def blank_canvas(data: DataConfig) -> dict[str, Any]:
  """An empty map of the model's size, filled with the maps' background colour."""
  size = data.image_size
  image = np.empty((size, size, 3), np.uint8)
  image[:] = ex.background_colour()
  return {"background": image, "layers": [], "composite": image}


def flatten(value: dict[str, Any] | None) -> np.ndarray:
  """The editor's composite as uint8 RGB, transparent pixels on the background colour."""
  if not value or value.get("composite") is None:
    raise ServeError("The canvas is empty: draw a map or press 'Random map'.")
  image = np.asarray(value["composite"])
  if image.ndim == 2:
    image = np.repeat(image[..., None], 3, axis=-1)
  if image.shape[-1] == 4:
    alpha = image[..., 3:].astype(np.float32) / 255
    back = np.asarray(ex.background_colour(), np.float32)
    image = np.rint(image[..., :3] * alpha + back * (1 - alpha)).astype(np.uint8)
  return np.ascontiguousarray(image[..., :3], np.uint8)


def legend() -> str:
  """The palette's swatches with their names (the brush offers the same colours)."""
  chips = "".join(
      f'<span style="display:inline-flex;align-items:center;margin-right:14px">'
      f'<span style="width:16px;height:16px;border:1px solid #888;background:{colour};'
      f'margin-right:5px;display:inline-block"></span>{html.escape(name)}</span>'
      for name, colour in ex.palette())
  return f'<div id="palette">{chips}</div>'


def build(engine: Engine, info: str, examples: list[ex.Example], title: str) -> gr.Blocks:
  """The whole page for one run."""
  data = engine.gen.data
  size = data.image_size

  @guarded
  def sketch(value: dict[str, Any] | None) -> np.ndarray:
    return engine.view(engine.translate(flatten(value)))

  def live_sketch(value: dict[str, Any] | None) -> Any:
    if not value or value.get("composite") is None:
      return gr.skip()  # the editor reports an empty value as a stroke starts
    return sketch(value)

  @guarded
  def random_map() -> dict[str, Any]:
    image = ex.random_map(secrets.randbits(31), data)
    return {"background": image, "layers": [], "composite": image}

  @guarded
  def translate(path: str | None) -> tuple[np.ndarray | None, np.ndarray | None, Any, str]:
    if not path:  # the file was removed: clear the results
      return None, None, gr.update(value=None, interactive=False), ""
    image = engine.read(path)
    out = engine.translate(image)
    saved = engine.save(out, Path(path).stem)
    note = (f"{Path(path).name}: {image.shape[1]}x{image.shape[0]}, {image.shape[-1]} x "
            f"{image.dtype.name} -> {out.shape[1]}x{out.shape[0]}, {out.shape[-1]} x "
            f"{out.dtype.name} ({saved.suffix[1:].upper()} download).")
    return (engine.view(image, "input"), engine.view(out), gr.update(value=str(saved),
            interactive=True), note)

  with gr.Blocks(title=f"p2p · {title}", analytics_enabled=False,
                 delete_cache=(KEEP_OUTPUTS_S, KEEP_OUTPUTS_S)) as demo:
    gr.Markdown(f"## p2p · {html.escape(title)}\nDraw a map or upload one: the run's generator "
                f"paints the satellite photo ({size} px tiles; larger images are tiled at full "
                f"resolution).")
    with gr.Tab("Sketch", id="sketch"):
      if sketchable(engine):
        colours = ex.palette()
        with gr.Row():
          editor = gr.ImageEditor(
              value=blank_canvas(data), canvas_size=(size, size), fixed_canvas=True,
              image_mode="RGBA", type="numpy", sources=[], layers=False, transforms=[],
              brush=gr.Brush(colors=[c for _, c in colours], default_color=colours[0][1],
                             color_mode="fixed", default_size=max(1, round(size * BRUSH_SIZE))),
              eraser=gr.Eraser(default_size=max(2, round(size * ERASER_SIZE))),
              label="Map: draw with the legend's colours", height=CANVAS_PX, format="png",
              elem_id="sketch-input")
          sketch_out = gr.Image(label="Generated photo", format="png", interactive=False,
                                height=CANVAS_PX, elem_id="sketch-output",
                                buttons=["download"])
        gr.HTML(legend())
        with gr.Row():
          random_button = gr.Button("Random map", elem_id="random-map")
          run_button = gr.Button("Generate", variant="primary", elem_id="generate")
          clear_button = gr.Button("Clear", elem_id="clear")
        # Each stroke (the editor's input event) translates; while one runs, only the newest
        # waiting stroke is kept (always_last): a natural debounce.
        editor.input(live_sketch, editor, sketch_out, api_visibility="private",
                     trigger_mode="always_last", show_progress="hidden")
        run_button.click(sketch, editor, sketch_out, api_name="sketch", show_progress="minimal")
        # A value set by a handler does not fire the editor's change event: chain the sketch.
        random_button.click(random_map, None, editor, api_name="random_map").then(
            sketch, editor, sketch_out, api_visibility="private", show_progress="minimal")
        clear_button.click(lambda: blank_canvas(data), None, editor, api_visibility="private")
      else:
        gr.Markdown(f"Sketching needs a run trained on 8-bit RGB or gray inputs; this run takes "
                    f"{engine.gen.channels[0]} x {engine.gen.dtypes[0]}. Use the Upload tab.")
    with gr.Tab("Upload", id="upload"):
      with gr.Row():
        upload = gr.File(label="Input image (.png .jpg .tif .npy, any size; "
                               f"up to {engine.max_pixels / 1e6:.1f} MP)",
                         type="filepath", elem_id="upload-input")
        with gr.Column():
          status = gr.Markdown(elem_id="upload-status")
          download = gr.DownloadButton("Download the result at full resolution",
                                       interactive=False, elem_id="download")
      with gr.Row():
        view = dict(format="png", interactive=False, height=VIEW_PX, elem_classes=["p2p-view"])
        input_view = gr.Image(label="Input", **view)
        output_view = gr.Image(label="Generated", elem_id="upload-output", **view)
        truth_view = gr.Image(label="Ground truth (examples)", **view)
      upload.change(translate, upload, [input_view, output_view, download, status],
                    api_name="translate", show_progress="minimal")
      upload.upload(lambda: None, None, truth_view, api_visibility="private")
      if examples:
        gr.Examples([[str(e.input_path), str(e.truth_path) if e.truth_path else None]
                     for e in examples], [upload, truth_view],
                    example_labels=[e.label for e in examples], label="Examples")
    with gr.Tab("Run", id="run"):
      gr.Markdown(info, elem_id="run-info")
  return demo


def theme() -> gr.themes.Base:
  """Gradio's default look with system fonts (the page must not fetch web fonts)."""
  return gr.themes.Default(font=THEME_FONTS, font_mono=["ui-monospace", "monospace"])
