"""iba.train_readout and iba.explain end to end on a tiny localisation setting (every artifact written)."""
import json

import keras
import numpy as np
import pytest

import data
from data.blackbox import cache_paths
from data.dataset import Dataset
from data.models import small_cnn
from iba import explain, train_readout

pytestmark = pytest.mark.filterwarnings("ignore::iba.EstimationWarning")


@pytest.fixture(scope="module")
def setting(tmp_path_factory):
    """A small localisation set (patched into data.load) and an untrained small_cnn cached as its black box."""
    x, y, boxes, _ = data.synthetic.localization(160, seed=0)
    tiny = Dataset(name="localization", x_train=x[:96], y_train=y[:96], x_val=x[96:128], y_val=y[96:128],
                   x_test=x[128:], y_test=y[128:], feature_shape=(64, 64, 1),
                   class_names=list(data.synthetic.SHAPE_NAMES[:3]), source="synthetic",
                   boxes={"train": boxes[:96], "val": boxes[96:128], "test": boxes[128:]})
    models_dir = tmp_path_factory.mktemp("models")
    keras.utils.set_random_seed(0)
    model_path, info_path = cache_paths("localization", None, 0, None, models_dir)
    small_cnn((64, 64, 1), 3, name="blackbox_localization").save(model_path)
    info_path.write_text(json.dumps({"dataset": "localization", "classes": None, "test_accuracy": 0.0,
                                     "full_test_accuracy": 0.0, "paper_accuracy": None}))
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(data, "load", lambda name, **kwargs: tiny)
        yield tiny, models_dir


def test_train_readout_then_explain_write_every_artifact(setting, tmp_path):
    _, models_dir = setting
    common = ["--dataset", "localization", "--models-dir", str(models_dir)]
    run = tmp_path / "readout"
    readout_args = common + ["--layers", "conv2,conv3,conv4", "--bottleneck-layer", "conv3", "--epochs", "2",
                             "--batch-size", "32", "--lr", "1e-3", "--estimate-samples", "64", "--out", str(run),
                             "--verbose", "0"]
    assert train_readout.main(readout_args) == 0
    for name in ("config.json", "report.json", "report.md", "figures/readout.png", "explainer/saved_model.pb",
                 "checkpoints/epoch001.weights.h5", "checkpoints/epoch002.weights.h5",
                 "checkpoints/latest/latest.weights.h5"):
        assert (run / name).exists(), name
    assert any((run / "tensorboard").rglob("*.tfevents*"))
    report = json.loads((run / "report.json").read_text())
    assert len(report["extra"]["history"]["loss"]) == 2 and "test loss" in report["metrics"]
    # --resume continues after the two finished epochs: one more epoch runs.
    assert train_readout.main([a if a != "2" else "3" for a in readout_args] + ["--resume"]) == 0
    assert len(json.loads((run / "report.json").read_text())["extra"]["history"]["loss"]) == 1

    out = tmp_path / "explain"
    assert explain.main(common + ["--layer", "conv3", "--betas", "10/k", "--methods", "gradient,occlusion",
                                  "--n", "4", "--estimate-samples", "64", "--steps", "2", "--n-masks", "4", "--tiles", "8,16",
                                  "--sanity-n", "2",
                                  "--readout", str(run / "explainer"), "--out", str(out)]) == 0
    report = json.loads((out / "report.json").read_text())
    methods = ["IBA Per-Sample beta=10/k", "IBA Readout", "gradient", "occlusion-8x8"]
    assert list(report["metrics"]) == methods
    assert report["config"]["tiles"] == [8, 16] and report["config"]["k"] == 16 * 16 * 64
    for row in report["metrics"].values():
        for key in ("degradation 8x8", "degradation 16x16", "sensitivity-n (pooled)", "sensitivity-n (per image)",
                    "bbox ratio", "seconds per image"):
            assert np.isfinite(float(row[key])), (row["method"], key)
    assert report["metrics"]["IBA Per-Sample beta=10/k"]["mean bits"] > 0
    # The sanity check: every method but the Readout (not re-trained) has SSIMs in [-1, 1] and its curve.
    assert "SSIM, all layers random" not in report["metrics"]["IBA Readout"]
    for method in ("IBA Per-Sample beta=10/k", "gradient", "occlusion-8x8"):
        row = report["metrics"][method]
        for key in ("SSIM, top layer random", "SSIM, all layers random"):
            assert -1.0 <= row[key] <= 1.0, (method, key)
        curve = report["extra"]["details"][method]["cascading_randomization"]
        assert curve["steps"][0] == "original" and len(curve["ssim"]) == len(curve["steps"]) == 1 + 5
        assert curve["ssim"][-1] == pytest.approx(row["SSIM, all layers random"])
    markdown = (out / "report.md").read_text()
    assert "| IBA Per-Sample beta=10/k |" in markdown and "degradation 8x8" in markdown
    for method in methods:
        assert (out / "figures" / f"{explain.file_name(method)}.png").exists(), method
    heatmaps = np.load(out / "heatmaps.npz")
    assert heatmaps[explain.file_name("IBA Readout")].shape == (4, 64, 64)


def test_cli_bad_inputs(setting):
    _, models_dir = setting
    with pytest.raises(ValueError, match=r"no layer named 'conv33'.*close names: 'conv3'"):
        explain.main(["--dataset", "localization", "--models-dir", str(models_dir), "--layer", "conv33", "--n", "2",
                      "--methods", "", "--estimate-samples", "8"])
    with pytest.raises(ValueError, match=r"--dataset: unknown value 'mnist'"):
        explain.parse_args(["--dataset", "mnist", "--layer", "conv3"])
    with pytest.raises(ValueError, match=r"--betas: write beta as b/k"):
        explain.parse_args(["--dataset", "localization", "--layer", "conv3", "--betas", "0.1"])
    with pytest.raises(ValueError, match=r"--methods: unknown value 'gradcm' \(did you mean 'gradcam'"):
        explain.parse_args(["--dataset", "localization", "--layer", "conv3", "--methods", "gradcm"])
    with pytest.raises(ValueError, match=r"readout_layers: unknown value 'conv5'"):
        train_readout.main(["--dataset", "localization", "--models-dir", str(models_dir), "--layers", "conv5",
                            "--bottleneck-layer", "conv3", "--estimate-samples", "8", "--verbose", "0"])


def test_tile_sizes_keep_the_papers_share_of_the_side():
    assert explain.tile_sizes(224) == (8, 14)
    assert explain.tile_sizes(28) == (1, 2)
    assert explain.tile_sizes(64) == (2, 4)
    assert explain.parse_betas("1/k, 10/k,100/k") == [("1/k", 1.0), ("10/k", 10.0), ("100/k", 100.0)]
