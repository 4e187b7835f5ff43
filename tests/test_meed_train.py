"""MEED training plumbing: resume, export in a fresh process, tf.distribute, evaluation, the CLI."""
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import numpy as np
import pytest

from meed.training import Checkpointer, epoch_batches, evaluation_steps, restore
from tests.test_meed_model import batch, make_meed

REPO = Path(__file__).resolve().parents[1]
FASHION = Path("/usr/share/datasets/fashion-mnist")


def run_python(code: str, timeout: int = 300, env=None) -> str:
    result = subprocess.run([sys.executable, "-c", textwrap.dedent(code)], cwd=REPO, capture_output=True,
                            text=True, timeout=timeout, env={**os.environ, **(env or {})})
    assert result.returncode == 0, result.stderr[-3000:]
    return result.stdout


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
    with pytest.raises(ValueError, match="batch_size"):
        epoch_batches(x, 64, seed=0, first_epoch=0, epochs=1)


def test_resume_after_interruption_matches_an_uninterrupted_run(tmp_path):
    x = batch(64, seed=3).numpy()

    def train(first, last, model):
        model.fit(epoch_batches(x, 16, 7, first, last), epochs=last, initial_epoch=first, steps_per_epoch=4,
                  callbacks=[Checkpointer(tmp_path / "ckpt")], verbose=0)

    uninterrupted = make_meed()
    train(0, 3, uninterrupted)

    interrupted = make_meed()
    train(0, 1, interrupted)  # "killed" after epoch 1: only the checkpoint survives
    resumed = make_meed()
    first = restore(resumed, tmp_path / "ckpt")
    assert first == 1
    train(first, 3, resumed)
    for a, b in zip(uninterrupted.weights, resumed.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6, err_msg=a.path)
    assert not list((tmp_path / "ckpt").glob(".*"))  # atomic writes leave no temporary files


def test_savedmodel_round_trip_in_a_fresh_process(tmp_path):
    model = make_meed()
    model.fit(batch(32), batch_size=16, epochs=1, verbose=0)
    x = batch(5, seed=9).numpy()
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


def test_mirrored_strategy_on_two_logical_cpus():
    out = run_python("""
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        from tests.test_meed_model import make_meed, batch
        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        with strategy.scope():
            model = make_meed()
        before = [v.numpy().copy() for v in model.explainer.weights]
        history = model.fit(batch(64), batch_size=16, epochs=1, verbose=0)
        moved = any(not np.array_equal(a, v.numpy()) for a, v in zip(before, model.explainer.weights))
        print(strategy.num_replicas_in_sync, moved, np.isfinite(history.history["loss_explainer"][-1]))
    """)
    assert out.strip().splitlines()[-1] == "2 True True"


def test_evaluate_times_the_explainer_or_with_legacy_the_black_box(monkeypatch):
    import eval.explainer_metrics as metrics_module
    import meed.evaluate as evaluate_module
    from data.dataset import Dataset
    from meed.presets import get

    timed = []
    monkeypatch.setattr(metrics_module, "time_per_sample", lambda fn, x, **kw: timed.append(fn) or 1e-4)
    x = batch(40).numpy()
    dataset = Dataset(name="fashion_mnist", x_train=x[:24], y_train=np.zeros(24, np.int64), x_val=x[24:32],
                      y_val=np.zeros(8, np.int64), x_test=x[32:], y_test=np.zeros(8, np.int64),
                      feature_shape=(8, 8, 1), class_names=["a", "b"], source="test")
    preset = get("fashion_mnist")
    from meed import Legacy
    for legacy, expected in ((Legacy(), "explainer_logits"), (Legacy(sen_reset=True, tps_blackbox=True), None)):
        model = make_meed(legacy=legacy)
        metrics, timings, masks = evaluate_module.evaluate(model, dataset, preset, eval_epochs=0, sen_samples=4)
        assert set(metrics) == {"FS-M", "FU-M", "SEN", "TPS"} and masks["test"].shape == (8, 8, 8)
        if expected:
            assert timed[-1] == model.explainer_logits
        else:
            assert getattr(timed[-1], "__name__", "") == "<lambda>"  # wraps blackbox.predict


@pytest.mark.slow
@pytest.mark.realdata
@pytest.mark.skipif(not FASHION.exists(), reason="needs the Debian package dataset-fashion-mnist")
def test_cli_smoke_run_writes_every_artifact(tmp_path):
    out = tmp_path / "run"
    cmd = [sys.executable, "-m", "meed.train", "--preset", "fashion_mnist", "--epochs", "1", "--train-samples",
           "256", "--eval-epochs", "1", "--sen-samples", "20", "--out", str(out), "--verbose", "0"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    for name in ("config.json", "report.json", "report.md", "figures/masked_examples.png",
                 "checkpoints/latest.weights.h5", "explainer/saved_model.pb"):
        assert (out / name).exists(), name
    assert list((out / "tensorboard").rglob("events.out.tfevents.*"))
    report = json.loads((out / "report.json").read_text())
    metrics = report["metrics"]
    assert set(metrics) == {"FS-M", "FU-M", "FS-A", "FU-A", "SEN", "TPS"}
    assert all(0.0 <= metrics[k] <= 1.0 for k in ("FS-M", "FU-M", "FS-A", "FU-A"))
    assert metrics["TPS"] > 0 and metrics["SEN"] >= 0
    assert "| MEED (seed0) |" in (out / "report.md").read_text()
    # --resume on a finished run trains nothing more and reports again.
    result = subprocess.run(cmd + ["--resume"], cwd=REPO, capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    assert json.loads((out / "checkpoints/state.json").read_text())["epochs_done"] == 1
    # meed.rescore reloads the checkpoint: its max-form SEN on the same 20 samples and seed is the report's.
    result = subprocess.run([sys.executable, "-m", "meed.rescore", str(out), "--sen-samples", "20"], cwd=REPO,
                            capture_output=True, text=True, timeout=900)
    assert result.returncode == 0, result.stderr[-3000:]
    sen = json.loads((out / "sen.json").read_text())
    assert sen["n_samples"] == 20 and sen["SEN legacy"] >= 0
    assert sen["SEN"] == pytest.approx(metrics["SEN"], rel=1e-4)
    assert f"| {out} |" in result.stdout


def test_cli_rejects_an_unknown_preset():
    result = subprocess.run([sys.executable, "-m", "meed.train", "--preset", "fashion"], cwd=REPO,
                            capture_output=True, text=True, timeout=120)
    assert result.returncode != 0 and "unknown value 'fashion'" in result.stderr
