"""MEED training plumbing: exact resume, export in a fresh process, the evaluation suite's legacy options, the CLI."""
import json
import subprocess
import sys

import numpy as np
import pytest

from eval.report import validate_report
from eval.training import Checkpointer, epoch_batches, restore
from meed.training import evaluation_steps
from tests import tiny
from tests.helpers import REPO, needs_fashion, run_python


def test_evaluation_steps_follow_the_released_code():
    assert evaluation_steps(1116) == [100, 200, 500, 1000, 1116]
    assert evaluation_steps(30000) == [100, 200, 500, 1000, 2000, 5000, 10000, 20000, 30000]
    assert evaluation_steps(50) == [50]


def test_epoch_batches_are_a_function_of_seed_and_epoch():
    x = np.arange(40, dtype=np.float32).reshape(40, 1)
    full = [b.numpy() for b in epoch_batches(x, 8, seed=1, first_epoch=0, epochs=3)]
    resumed = [b.numpy() for b in epoch_batches(x, 8, seed=1, first_epoch=2, epochs=3)]
    assert len(full) == 15 and len(resumed) == 5
    for a, b in zip(full[10:], resumed):
        np.testing.assert_array_equal(a, b)
    assert sorted(np.concatenate(full[:5]).ravel().tolist()) == list(range(40))  # each epoch a permutation
    pairs = [tuple(t.numpy() for t in b) for b in epoch_batches((x, 2 * x), 8, seed=1, first_epoch=0, epochs=1)]
    assert all(np.array_equal(2 * a, b) for a, b in pairs)  # tuples keep their rows together
    with pytest.raises(ValueError, match="batch_size"):
        epoch_batches(x, 64, seed=0, first_epoch=0, epochs=1)


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path):
    x = tiny.meed_batch(64, seed=3).numpy()

    def train(first, last, model):
        model.fit(x, batch_size=16, epochs=last, initial_epoch=first, callbacks=[Checkpointer(tmp_path / "ckpt")],
                  verbose=0)

    uninterrupted = tiny.make_meed()
    train(0, 3, uninterrupted)

    interrupted = tiny.make_meed()
    train(0, 1, interrupted)  # "killed" after epoch 1: only the checkpoint survives
    resumed = tiny.make_meed()
    first = restore(resumed, tmp_path / "ckpt")
    assert first == 1
    train(first, 3, resumed)
    for a, b in zip(uninterrupted.weights, resumed.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)
    assert not list((tmp_path / "ckpt").glob(".*"))  # atomic writes leave no temporary files


def test_savedmodel_round_trip_in_a_fresh_process(tmp_path):
    model = tiny.make_meed()
    model.fit(tiny.meed_batch(32), batch_size=16, epochs=1, verbose=0)
    x = tiny.meed_batch(5, seed=9).numpy()
    np.save(tmp_path / "x.npy", x)
    model.export(tmp_path / "explainer")
    out = run_python(f"""
        import numpy as np, tensorflow as tf, json
        loaded = tf.saved_model.load({str(tmp_path / 'explainer')!r})
        result = loaded.signatures["serving_default"](x=tf.constant(np.load({str(tmp_path / 'x.npy')!r})))
        np.save({str(tmp_path / 'scores.npy')!r}, result["scores"].numpy())
        np.save({str(tmp_path / 'mask.npy')!r}, result["mask"].numpy())
        print(json.dumps(sorted(result)))
    """)
    assert json.loads(out.strip().splitlines()[-1]) == ["mask", "scores"]
    np.testing.assert_allclose(np.load(tmp_path / "scores.npy"), model.explain(x), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.load(tmp_path / "mask.npy"), model.select(x))


def test_the_legacy_flags_pick_the_released_codes_evaluation_options():
    from meed import Legacy
    from meed.evaluate import suite
    from meed.presets import get

    x = tiny.meed_batch(40).numpy()
    dataset = tiny.dataset("fashion_mnist", x, np.zeros(40, np.int64), 24, 8, class_names=["a", "b"], source="test")
    preset = get("fashion_mnist")
    default = suite(tiny.make_meed(), dataset, preset, eval_epochs=0, sen_samples=4)
    assert (default.sen.form, default.sen_clean_conditioning, default.tps) == ("max", False, "explainer")
    legacy_model = tiny.make_meed(legacy=Legacy(sen_reset=True, tps_blackbox=True))
    legacy = suite(legacy_model, dataset, preset, eval_epochs=0, sen_samples=4)
    assert (legacy.sen.form, legacy.sen_clean_conditioning, legacy.tps) == ("last", True, "blackbox")
    result = legacy.evaluate(legacy_model)
    assert set(result.metrics) == {"FS-M", "FU-M", "SEN", "TPS"} and result.outputs["masks"].test.shape == (8, 8, 8)
    # The released code's SEN explains every perturbation for the clean input's y: the suite passes M(x).
    np.testing.assert_allclose(legacy.sen.explain_kwargs["conditioning"],
                               legacy_model.blackbox.predict(x[32:36], verbose=0), rtol=1e-6)


@pytest.mark.slow
@pytest.mark.realdata
@needs_fashion
def test_cli_smoke_run_writes_every_artifact(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "meed.train", "--preset", "fashion_mnist", "--epochs", "1", "--train-samples",
           "256", "--eval-epochs", "1", "--sen-samples", "20", "--out", str(out), "--verbose", "0"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert result.stderr == ""  # --verbose 0: no TensorFlow start-up lines, no log lines
    for name in ("config.json", "report.json", "report.md", "figures/masked_examples.png",
                 "checkpoints/latest.weights.h5", "explainer/saved_model.pb"):
        assert (out / name).exists(), name
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))
    report = validate_report(json.loads((out / "report.json").read_text()))
    (row,) = report["rows"]
    assert set(row) == {"label", "seed", "FS-M", "FU-M", "FS-A", "FU-A", "SEN", "TPS"} and row["label"] == "MEED"
    assert all(0.0 <= row[k] <= 1.0 for k in ("FS-M", "FU-M", "FS-A", "FU-A"))
    assert row["TPS"] > 0 and row["SEN"] >= 0
    assert report["reference"][0]["label"] == "meed (Ours)" and report["reference"][0]["FS-M"] == pytest.approx(0.978)
    assert {"data", "train", "evaluate", "export"} <= set(report["timings"])
    assert "| MEED | 0 |" in (out / "report.md").read_text()
    # --resume on a finished run trains nothing more and reports again.
    result = subprocess.run(cmd + ["--resume"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "checkpoints/state.json").read_text())["epochs_done"] == 1
    # meed.rescore reloads the checkpoint: its max-form SEN on the same 20 samples and seed is the report's.
    rescored = tmp_path / "rescore"
    result = subprocess.run([sys.executable, "-m", "meed.rescore", str(out), "--sen-samples", "20", "--out",
                             str(rescored)], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    sen = json.loads((out / "sen.json").read_text())
    assert sen["n_samples"] == 20 and sen["SEN legacy"] >= 0
    assert sen["SEN"] == pytest.approx(row["SEN"], rel=1e-4)
    (rescore_row,) = json.loads((rescored / "report.json").read_text())["rows"]
    assert rescore_row["label"] == "MEED fashion_mnist" and rescore_row["SEN"] == pytest.approx(sen["SEN"])
