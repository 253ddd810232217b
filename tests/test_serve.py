"""p2p.serve without a server: the engine (limits, errors, shape buckets), examples and info."""

import json
import shutil

import numpy as np
import pytest
from PIL import Image

import p2p
from p2p.data.synthetic import MAP_COLOURS
from p2p.infer.sample import bucket
from p2p.serve import examples as ex
from p2p.serve import info
from p2p.serve.engine import Engine, ServeError


@pytest.fixture(scope="module")
def engine(tiny_run, tmp_path_factory) -> Engine:
  return Engine(p2p.load(tiny_run), max_pixels=10_000,
                out_dir=tmp_path_factory.mktemp("serve_out"))


def test_bucket_is_the_next_power_of_two():
  assert [bucket(n) for n in (1, 2, 3, 4, 5, 16, 17, 64)] == [1, 2, 4, 4, 8, 16, 32, 64]


def test_padding_to_a_bucket_does_not_change_outputs(engine):
  x = np.random.default_rng(0).integers(0, 256, (3, 32, 32, 3), dtype=np.uint8)
  together = p2p.sample(engine.gen, x, norm="nodropout")  # 3 images run as a batch of 4
  alone = np.concatenate([p2p.sample(engine.gen, x[i:i + 1], norm="nodropout")
                          for i in range(3)])
  np.testing.assert_allclose(together, alone, atol=1)
  np.testing.assert_array_equal(p2p.sample(engine.gen, x, chunk=2), p2p.sample(engine.gen, x))


def test_same_size_requests_compile_once(engine):
  image = np.full((70, 50, 3), 200, np.uint8)
  engine.translate(image)
  compiled = engine.compiled()
  for _ in range(2):
    out = engine.translate(image)
  assert engine.compiled() == compiled
  assert out.shape == (70, 50, 3) and out.dtype == np.uint8


def test_rgba_and_gray_uploads_are_adapted(engine, tmp_path):
  for mode, shape in (("RGBA", (40, 60, 4)), ("L", (40, 60))):
    path = tmp_path / f"{mode}.png"
    Image.fromarray(np.full(shape, 120, np.uint8), mode).save(path)
    image = engine.read(path)
    assert engine.translate(image).shape == (40, 60, 3)
    assert engine.view(image, "input").shape[:2] == (40, 60)


def test_oversize_upload_is_refused_from_its_header(engine, tmp_path):
  path = tmp_path / "big.png"
  Image.new("RGB", (101, 100)).save(path)
  with pytest.raises(ServeError, match=r"big.png is 101x100 \(10,100 pixels\), over the limit of "
                     r"10,000.*--max_pixels"):
    engine.read(path)
  with pytest.raises(ServeError, match="over the limit"):
    engine.translate(np.zeros((101, 100, 3), np.uint8))


@pytest.mark.parametrize("name, data, message", [
    ("broken.png", b"\x89PNG\r\n\x1a\n" + b"x" * 64, "broken.png is not a decodable image"),
    ("empty.jpg", b"", "empty.jpg is empty"),
    ("notes.txt", b"hello", "notes.txt: p2p reads .jpg .jpeg .png .tif .tiff .npy images"),
])
def test_bad_uploads_give_one_line_naming_the_file(engine, tmp_path, name, data, message):
  path = tmp_path / name
  path.write_bytes(data)
  with pytest.raises(ServeError) as error:
    engine.read(path)
  text = str(error.value)
  assert message in text and "\n" not in text and str(tmp_path) not in text


def test_wrong_channels_and_bit_depth_are_refused(engine):
  with pytest.raises(ServeError, match="2 channel"):
    engine.translate(np.zeros((32, 32, 2), np.uint8))
  with pytest.raises(ServeError, match="uint16 samples but this run was trained on uint8"):
    engine.translate(np.zeros((32, 32, 3), np.uint16))


def test_results_are_saved_in_the_targets_format(engine):
  out = engine.translate(np.full((40, 40, 3), 90, np.uint8))
  path = engine.save(out, "map")
  assert path.name == "map_p2p.png"
  np.testing.assert_array_equal(np.asarray(Image.open(path)), out)


def test_palette_is_the_synthetic_maps_legend():
  names = dict(ex.palette())
  assert set(names) >= {"road", "highway", "water", "park", "building", "background"}
  legend = {tuple(int(names[n][i:i + 2], 16) for i in (1, 3, 5)) for n in names}
  assert legend <= {tuple(c) for c in MAP_COLOURS[:7].tolist()}
  assert ex.background_colour() == tuple(MAP_COLOURS[0].tolist())


def test_random_maps_fit_the_canvas_and_differ(engine):
  data = engine.gen.data
  first, second = ex.random_map(1, data), ex.random_map(2, data)
  assert first.shape == (data.image_size, data.image_size, 3) and first.dtype == np.uint8
  assert not np.array_equal(first, second)
  assert set(map(tuple, first.reshape(-1, 3))) <= {tuple(c) for c in MAP_COLOURS.tolist()}


def test_examples_are_written_with_ground_truth(engine, tmp_path):
  shown = ex.write_synthetic(tmp_path, 2, engine.gen.data) + ex.write_val(
      tmp_path, 2, engine.gen.data, engine.gen.ranges)
  assert [e.label.split()[0] for e in shown] == ["synthetic", "synthetic", "val", "val"]
  for e in shown:
    image, truth = np.asarray(Image.open(e.input_path)), np.asarray(Image.open(e.truth_path))
    assert image.shape == truth.shape and image.shape[-1] == 3


def test_val_examples_are_skipped_when_the_data_is_gone(engine, tmp_path):
  import dataclasses
  gone = dataclasses.replace(engine.gen.data, data_dir=str(tmp_path / "moved"))
  assert ex.write_val(tmp_path, 2, gone, engine.gen.ranges) == []


def test_info_panel_names_run_scores_and_device(engine, tiny_run, tmp_path):
  summary = {"meta": {"step": engine.gen.step, "n_pairs": 3, "split": "val"},
             "protocols": {"resize": {"sources": {"model": {"seed/l1": {"mean": 0.25},
                                                            "seed/psnr": {"mean": 14.5}}}}}}
  run = tmp_path / "run"
  (run / "eval").mkdir(parents=True)
  (run / "eval" / "metrics.json").write_text(json.dumps(summary))
  (run / "metrics.jsonl").write_text('{"step": 4, "val_l1": 0.5}\n{"step": 8, "val_l1": 0.4}\n')
  shutil.copy(tiny_run / "autotune.json", run)  # what compute_dtype=auto chose
  config = info.run_config(tiny_run, engine.gen.step)
  text = info.describe(run, engine.gen, config, "uploads up to 1 MP.")
  assert f"checkpoint step **{engine.gen.step}**" in text
  assert "ngf 8" in text and "Validation L1** during training: 0.4000 at step 8" in text
  assert "| resize | model | 0.2500 | 14.50 |" in text and "SSIM" not in text
  assert "CPU" in text and "uploads up to 1 MP." in text
  assert f"at batch {config.batch_size}, float32 (compute_dtype=auto)." in text
