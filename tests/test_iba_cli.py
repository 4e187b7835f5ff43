"""iba.train_readout and iba.explain end to end on a tiny localisation setting (every artifact written)."""
import json

import keras
import numpy as np
import pytest

import data
from data.blackbox import cache_paths
from data.models import small_cnn
from eval.report import validate_report
from iba import explain, train_readout
from tests import tiny

pytestmark = pytest.mark.filterwarnings("ignore::iba.EstimationWarning")


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    """A small localisation set (patched into data.load) and an untrained small_cnn cached as its black box."""
    x, y, boxes, _ = data.synthetic.localization(160, seed=0)
    small = tiny.dataset("localization", x, y, 96, 32, class_names=data.synthetic.SHAPE_NAMES[:3], boxes=boxes)
    models_dir = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(0)
    model_path, info_path = cache_paths("localization", None, "small_cnn", 0, None, models_dir)
    model_path.parent.mkdir(parents=True, exist_ok=True)
    small_cnn((64, 64, 1), 3, name="blackbox_localization").save(model_path)
    info_path.write_text(json.dumps({"dataset": "localization", "classes": None, "recipe": "small_cnn",
                                     "test_accuracy": 0.0, "full_test_accuracy": 0.0, "paper_accuracy": None}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(data, "load", lambda name, **kwargs: small)
        yield small, models_dir


def test_train_readout_then_explain_write_every_artifact(setting, tmp_path):
    _, models_dir = setting
    common = ["--dataset", "localization", "--models-dir", str(models_dir)]
    run = tmp_path / "readout"
    readout_args = common + ["--readout-layers", "conv2,conv3,conv4", "--layer", "conv3", "--epochs", "2",
                             "--batch-size", "32", "--lr", "1e-3", "--estimate-samples", "64", "--out", str(run),
                             "--verbose", "0"]
    assert train_readout.main(readout_args) == 0
    for name in ("config.json", "report.json", "report.md", "figures/readout.png", "explainer/saved_model.pb",
                 "checkpoints/latest.weights.h5", "checkpoints/state.json"):
        assert (run / name).exists(), name
    assert any((run / "tensorboard").rglob("*.tfevents*"))
    report = validate_report(json.loads((run / "report.json").read_text()))
    assert len(report["details"]["history"]["loss"]) == 2 and "test loss" in report["rows"][0]
    assert report["config"]["export_k"] == 409  # 10% of the 64 x 64 pixels
    # --resume continues after the two finished epochs: one more epoch runs.
    assert train_readout.main([a if a != "2" else "3" for a in readout_args] + ["--resume"]) == 0
    resumed = json.loads((run / "report.json").read_text())
    assert len(resumed["details"]["history"]["loss"]) == 1 and resumed["details"]["epochs_before_resume"] == 2

    out = tmp_path / "explain"
    assert explain.main(common + ["--layer", "conv3", "--betas", "10/k", "--methods", "gradient,occlusion",
                                  "--n", "4", "--estimate-samples", "64", "--steps", "2", "--n-masks", "4", "--tiles", "8,16",
                                  "--sanity-n", "2",
                                  "--readout", str(run / "explainer"), "--out", str(out)]) == 0
    report = validate_report(json.loads((out / "report.json").read_text()))
    methods = ["IBA Per-Sample beta=10/k", "IBA Readout", "gradient", "occlusion-8x8"]
    rows = {row["label"]: row for row in report["rows"]}
    assert list(rows) == methods
    assert report["config"]["tiles"] == [8, 16] and report["config"]["k"] == 16 * 16 * 64
    for row in rows.values():
        for key in ("degradation 8x8", "degradation 16x16", "sensitivity-n (pooled)", "sensitivity-n (per image)",
                    "bbox ratio", "seconds per image"):
            assert np.isfinite(float(row[key])), (row["label"], key)
    assert rows["IBA Per-Sample beta=10/k"]["mean bits"] > 0
    assert report["details"]["IBA Per-Sample beta=10/k"]["config"]["n_samples"] == 64
    # The sanity check: every method but the Readout (not re-trained) has SSIMs in [-1, 1] and its curve.
    assert "SSIM, all layers random" not in rows["IBA Readout"]
    for method in ("IBA Per-Sample beta=10/k", "gradient", "occlusion-8x8"):
        row = rows[method]
        for key in ("SSIM, top layer random", "SSIM, all layers random"):
            assert -1.0 <= row[key] <= 1.0, (method, key)
        curve = report["details"][method]["cascading_randomization"]
        assert curve["steps"][0] == "original" and len(curve["ssim"]) == len(curve["steps"]) == 1 + 5
        assert curve["ssim"][-1] == pytest.approx(row["SSIM, all layers random"])
    markdown = (out / "report.md").read_text()
    assert "| IBA Per-Sample beta=10/k |" in markdown and "degradation 8x8" in markdown
    for method in methods:
        assert (out / "figures" / f"{explain.file_name(method)}.png").exists(), method
    heatmaps = np.load(out / "heatmaps.npz")
    assert heatmaps[explain.file_name("IBA Readout")].shape == (4, 64, 64)


def test_cli_mistakes_found_after_loading_are_one_line_errors(setting, capsys, tmp_path):
    _, models_dir = setting
    assert explain.main(["--dataset", "localization", "--models-dir", str(models_dir), "--layer", "conv33",
                         "--test-samples", "2", "--methods", "", "--estimate-samples", "8", "--out",
                         str(tmp_path / "a")]) == 2
    assert "--layer: layer: no layer named 'conv33'" in capsys.readouterr().err
    # The README's old flag names still work, with a deprecation warning (--layers, --bottleneck-layer).
    assert train_readout.main(["--dataset", "localization", "--models-dir", str(models_dir), "--layers", "conv5",
                               "--bottleneck-layer", "conv3", "--estimate-samples", "8", "--verbose", "0", "--out",
                               str(tmp_path / "b")]) == 2
    err = capsys.readouterr().err
    assert "--readout-layers: readout_layers: unknown value 'conv5'" in err and "deprecated" in err


def test_tile_sizes_keep_the_papers_share_of_the_side():
    assert explain.tile_sizes(224) == (8, 14)
    assert explain.tile_sizes(28) == (1, 2)
    assert explain.tile_sizes(64) == (2, 4)
    assert explain.parse_betas("1/k, 10/k,100/k") == [("1/k", 1.0), ("10/k", 10.0), ("100/k", 100.0)]
