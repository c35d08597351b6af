"""``nn-tune`` on images: a PNG folder made at test time, npz arrays, the shipped digits_images.

Real TensorFlow, tiny budgets. Bad image data is one line and exit 2 and leaves
an earlier run's folder as it was.
"""

from __future__ import annotations

import csv
import hashlib
import json
import re
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from nn_tuning import cli
from tests.image_folders import write_digit_folder

EXPERIMENTS = Path(__file__).resolve().parents[1] / "experiments"

CONFIG = """
name = "pngs"
[data]
{source}
test_size = 0.25
scale = {scale}
[builder]
name = "cnn_classifier"
args = {{ n_blocks = 1, dense_units = 16 }}
[space]
filters = [4, 8]
[training]
cv = 2
epochs = 2
batch_size = 16
[strategies.random]
max_trials = 2
"""


def _config(path: Path, source: str, scale: str = '"unit"') -> str:
    path.write_text(CONFIG.format(source=source, scale=scale))
    return str(path)


def _snapshot(folder: Path) -> dict[str, str]:
    return {str(p.relative_to(folder)): hashlib.sha256(p.read_bytes()).hexdigest()
            for p in sorted(folder.rglob("*")) if p.is_file()}


@pytest.fixture(scope="module")
def png_run(tmp_path_factory):
    """``nn-tune run`` on 3 classes x 20 digit PNGs (8x8, grey)."""
    root = tmp_path_factory.mktemp("pngs")
    write_digit_folder(root / "digits")
    config = _config(root / "pngs.toml", 'images = "digits"\ncolor_mode = "grayscale"')
    out = root / "run"
    assert cli.main(["run", config, "--out", str(out), "--quiet"]) == 0
    return root, out


def test_cli_runs_a_cnn_on_an_image_folder(png_run):
    _, out = png_run
    data = json.loads((out / "data.json").read_text())
    assert data["sample_shape"] == [8, 8, 1] and data["scale"] == "unit"
    assert data["classes"] == ["digit_0", "digit_1", "digit_2"]
    assert data["train_rows"] == 45 and data["test_rows"] == 15
    summary = json.loads((out / "random" / "summary.json").read_text())
    assert summary["trials_run"] == 2 and 0 <= summary["test_metrics"]["accuracy"] <= 1
    assert (out / "random" / "best_model.keras").is_file()


def _bad_cases(root: Path) -> list[tuple[str, str]]:
    def folder(name: str, damage) -> str:
        target = root / name
        shutil.copytree(root / "digits", target)
        damage(target)
        return _config(root / f"{name}.toml", f'images = "{name}"\ncolor_mode = "grayscale"')

    def npz(name: str, **arrays) -> str:
        np.savez(root / f"{name}.npz", **arrays)
        return _config(root / f"{name}.toml", f'npz = "{name}.npz"')

    def big(f: Path) -> None:
        Image.fromarray(np.zeros((9, 8), "uint8"), mode="L").save(f / "digit_0" / "big.png")

    images = np.zeros((10, 8, 8), "uint8")
    return [
        (folder("mixed", big), r"mixed\.toml: data\.images: images of different sizes \(8x8 in "
                               r".*9x8 in .*big\.png'\); set data\.image_size"),
        (folder("empty", lambda f: (f / "digit_9").mkdir()),
         r"empty\.toml: data\.images: class folder '.*digit_9' holds no images"),
        (folder("text", lambda f: (f / "digit_1" / "labels.csv").write_text("a,b")),
         r"text\.toml: data\.images: '.*labels\.csv' is not an image file"),
        (npz("length", X=images, y=np.arange(9)),
         r"length\.toml: data\.npz arrays 'X' and 'y' must have the same number of samples, got "
         r"shapes \(10, 8, 8\) and \(9,\)"),
        (npz("rank1", X=np.arange(10.0), y=np.arange(10)),
         r"rank1\.toml: data\.npz array 'X' must have samples on its first axis and at least 2 "
         r"dimensions"),
        (npz("names", images=images, labels=np.arange(10)),
         r"names\.toml: data\.npz '.*names\.npz' has no array 'X' \(data\.x_array\); it holds: "
         r"images, labels"),
        (_config(root / "size.toml", 'dataset = "digits"\nimage_size = [8, 8]'),
         r"size\.toml: data\.image_size applies to data\.images, not to data\.dataset"),
        (_config(root / "scale.toml", 'dataset = "digits"\nshape = [8, 8, 1]', '"minmax"'),
         r"scale\.toml: data\.scale must be true, false or one of standard, channel, unit, none, "
         r"got 'minmax'"),
    ]


def test_bad_image_data_is_one_line_exit_2_and_leaves_earlier_results_alone(png_run, capsys):
    root, out = png_run
    before = _snapshot(out)
    for config, pattern in _bad_cases(root):
        code = cli.main(["run", config, "--out", str(out), "--quiet"])
        err = capsys.readouterr().err.strip()
        assert code == 2, (config, err)
        assert "\n" not in err and "Traceback" not in err, err
        assert err.startswith("nn-tune: error: "), err
        assert re.search(pattern, err), (pattern, err)
    assert _snapshot(out) == before


def test_the_shipped_digits_images_study_runs(tmp_path):
    out = tmp_path / "run"
    code = cli.main(["run", str(EXPERIMENTS / "digits_images.toml"), "--strategy", "random",
                     "--max-trials", "1", "--epochs", "1", "--cv", "2", "--out", str(out),
                     "--quiet"])
    assert code == 0
    assert json.loads((out / "data.json").read_text())["sample_shape"] == [8, 8, 1]
    # cnn_classifier on images stacks by default
    engines = {row["engine"] for row in csv.DictReader(open(out / "random" / "trials.csv"))}
    assert engines == {"stacked"}


def test_a_rerun_resumes_and_changed_images_are_another_run(png_run, capsys):
    root, out = png_run
    config = str(root / "pngs.toml")
    assert cli.main(["run", config, "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "random" / "summary.json").read_text())["resumed_trials"] == 2
    before = _snapshot(out)
    for png in (root / "digits" / "digit_0").glob("*.png"):  # some are training images
        pixels = np.asarray(Image.open(png)).copy()
        pixels[0, 0] = 255 - pixels[0, 0]
        Image.fromarray(pixels, mode="L").save(png)
    capsys.readouterr()
    assert cli.main(["run", config, "--out", str(out), "--quiet"]) == 2
    err = capsys.readouterr().err.strip()
    assert "\n" not in err and "different" in err, err
    assert _snapshot(out) == before
