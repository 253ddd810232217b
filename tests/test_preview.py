"""The pipeline preview (`make demo`'s first picture): a grid of what the model is fed."""

import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from p2p.config import DataConfig
from p2p.data import synthetic
from p2p.data.preview import write_preview

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture(scope="module")
def maps(tmp_path_factory) -> Path:
  return synthetic.write_dataset(tmp_path_factory.mktemp("data") / "synthetic", train=3, val=2,
                                 seed=0, size=64)


def test_preview_is_rows_of_train_and_val_pairs(maps, tmp_path):
  cfg = DataConfig(data_dir=str(maps), preprocess="resize", image_size=32, load_size=36,
                   verify_images=False)
  path = write_preview(cfg, tmp_path / "p.png", count=3)
  image = np.asarray(Image.open(path))
  assert image.shape == (4 + 3 * 36, 4 + 4 * 36, 3)  # 3 rows of 4 tiles of 32 px, 4 px gutters
  assert image[4:36, 4:36].std() > 0  # a real image, not a blank tile


@pytest.mark.slow
def test_preview_cli_writes_the_png_and_names_a_missing_folder(maps, tmp_path):
  run = lambda *a: subprocess.run(  # noqa: E731
      [sys.executable, "-m", "p2p.data.preview", "--config=configs/demo.py:tiny", *a],
      cwd=ROOT, capture_output=True, text=True, timeout=300)
  ok = run(f"--config.data.data_dir={maps}", f"--out={tmp_path / 'p.png'}")
  assert ok.returncode == 0, ok.stderr[-2000:]
  assert (tmp_path / "p.png").is_file()
  missing = run(f"--config.data.data_dir={tmp_path / 'synthetic'}", f"--out={tmp_path / 'q.png'}")
  assert missing.returncode != 0 and "Traceback" not in missing.stderr
  assert "python -m p2p.data.synthetic --out" in missing.stderr
