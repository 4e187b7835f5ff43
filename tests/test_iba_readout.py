"""iba.ReadoutBottleneck on tiny CNNs; the information guarantee of the Per-Sample Bottleneck; ResNet50."""
import subprocess
import sys
import textwrap
from pathlib import Path

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from iba import EstimationWarning, InformationBottleneck, ReadoutBottleneck, total_bits
from iba.bottleneck import lambdas, restrict
from tests.test_iba_per_sample import images, localisation_set, object_model, tiny_cnn

pytestmark = pytest.mark.filterwarnings("ignore::iba.EstimationWarning")
REPO = Path(__file__).resolve().parents[1]
READ = ["conv1", "conv2", "relu2"]


@pytest.fixture(scope="module")
def model():
    return tiny_cnn()


@pytest.fixture(scope="module")
def data():
    return images(96, seed=1)


def readout(model, data, **kwargs):
    return ReadoutBottleneck(model, "conv2", READ, **kwargs).estimate(data, verbose=0)


def test_training_with_fit_lowers_the_loss(model, data):
    rb = readout(model, data)
    rb.compile(keras.optimizers.Adam(1e-2))
    history = rb.fit(data[:64], batch_size=16, epochs=3, verbose=0).history
    assert history["loss"][2] < history["loss"][1] < history["loss"][0]
    assert history["capacity"][-1] < history["capacity"][0]
    # Only the readout network trains: the statistics and the model stay as they were.
    assert [v.path for v in rb.trainable_variables] == [v.path for v in rb.readout.trainable_variables]
    # The same seed trains to the same weights.
    again = readout(model, data)
    again.compile(keras.optimizers.Adam(1e-2))
    again.fit(data[:64], batch_size=16, epochs=3, verbose=0)
    for a, b in zip(rb.readout.weights, again.readout.weights):
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-5, atol=1e-6)


def test_initial_alpha_lets_almost_all_information_pass(model, data):
    rb = readout(model, data)
    x = images(4, seed=2)
    readouts, features, _ = rb._first_pass(tf.constant(x))
    alpha = rb._alpha(readouts).numpy()
    assert np.all(np.abs(alpha - 5.0) < 0.05)
    lam, _ = lambdas(alpha, rb.sigma)
    assert lam.numpy().min() > 0.99
    # Same statistics, alpha ~ 5: the capacity is the Per-Sample Bottleneck's before its first step.
    per_sample = InformationBottleneck(model, "conv2", steps=0).estimate(data, verbose=0)
    np.testing.assert_allclose(rb.capacity(x, verbose=0), per_sample.capacity(x, verbose=0), rtol=0.02, atol=0.02)


def test_explain_shapes_batches_and_targets(model, data):
    rb = readout(model, data, normalization="channel")
    x = images(5, seed=3)
    heat = rb.explain(x, verbose=0)
    assert heat.shape == (5, 16, 16) and heat.dtype == np.float32 and np.all(np.isfinite(heat))
    np.testing.assert_allclose(total_bits(heat), rb.capacity(x, verbose=0).sum(axis=(1, 2, 3)) / np.log(2),
                               rtol=1e-4)
    one_by_one = np.concatenate([rb.explain(x[i:i + 1], verbose=0) for i in range(5)])
    np.testing.assert_allclose(rb.explain(x, batch_size=2, verbose=0), heat, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(one_by_one, heat, rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(rb.explain(x, [0, 1, 2, 0, 1], verbose=0), heat)  # class-agnostic
    with pytest.raises(ValueError, match="targets"):
        rb.explain(x, [0, 1, 7, 0, 1], verbose=0)
    # Per-channel statistics pool every position: one mean / std per channel.
    assert rb._readout_stats[0][0].shape == (8,)


def test_the_users_model_is_unchanged(data):
    model = tiny_cnn(seed=4)
    x = images(4, seed=4)
    weights = [w.numpy().copy() for w in model.weights]
    outputs = model(x).numpy()
    trainable = [layer.trainable for layer in model.layers]
    rb = readout(model, data[:40])
    rb.compile(keras.optimizers.Adam(1e-1))
    rb.fit(data[:40], batch_size=20, epochs=1, verbose=0)
    rb.explain(x, verbose=0)
    for w, before in zip(model.weights, weights):
        np.testing.assert_array_equal(w.numpy(), before)
    np.testing.assert_array_equal(model(x).numpy(), outputs)
    assert [layer.trainable for layer in model.layers] == trainable
    assert all("call" not in layer.__dict__ for layer in model.layers)  # hooks removed
    assert not any(w is v for w in model.weights for v in rb.weights)


def test_labels_as_targets_and_resume_with_fit_callbacks(model, data, tmp_path):
    labels = np.arange(len(data)) % 3
    rb = readout(model, data, targets="label")
    rb.compile(keras.optimizers.Adam(1e-2))
    backup = keras.callbacks.BackupAndRestore(str(tmp_path / "backup"), delete_checkpoint=False)
    history = rb.fit(data, labels, batch_size=32, epochs=2, verbose=0, callbacks=[
        backup, keras.callbacks.TensorBoard(str(tmp_path / "tb"))]).history
    assert len(history["loss"]) == 2 and any((tmp_path / "tb").rglob("*.tfevents*"))
    resumed = readout(model, data, targets="label")
    resumed.compile(keras.optimizers.Adam(1e-2))
    more = resumed.fit(data, labels, batch_size=32, epochs=3, verbose=0, callbacks=[
        keras.callbacks.BackupAndRestore(str(tmp_path / "backup"), delete_checkpoint=False)]).history
    assert len(more["loss"]) == 1  # epochs 0 and 1 were restored
    assert int(resumed.optimizer.iterations.numpy()) == 9
    with pytest.raises(ValueError, match="targets='label'"):
        rb.fit(data, batch_size=32, epochs=1, verbose=0)


def test_export_round_trip_in_a_fresh_process(model, data, tmp_path):
    rb = readout(model, data)
    rb.compile(keras.optimizers.Adam(1e-2))
    rb.fit(data, batch_size=32, epochs=1, verbose=0)
    x = images(3, seed=5)
    np.save(tmp_path / "x.npy", x)
    path = rb.export(tmp_path / "explainer")
    script = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        loaded = tf.saved_model.load({path!r})
        out = loaded.signatures["serving_default"](x=tf.constant(np.load({str(tmp_path / 'x.npy')!r})))
        np.save({str(tmp_path / 'served.npy')!r}, out["heatmap"].numpy())
    """)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, capture_output=True, timeout=300)
    np.testing.assert_allclose(np.load(tmp_path / "served.npy"), rb.explain(x, verbose=0), rtol=1e-5, atol=1e-6)


def test_bad_inputs(model, data):
    with pytest.raises(ValueError, match=r"readout_layers: unknown value 'conv3' \(did you mean 'conv\d'"):
        ReadoutBottleneck(model, "conv2", ["conv3"])
    with pytest.raises(ValueError, match=r"no layer named 'cnv2'.*close names: 'conv2'"):
        ReadoutBottleneck(model, "cnv2", READ)
    rank3 = keras.Sequential([keras.Input((16, 16, 1)), layers.Conv2D(2, 3, name="c"), layers.Reshape((14, 28), name="x"),
                              layers.Flatten(), layers.Dense(2, activation="softmax")])
    with pytest.raises(ValueError, match="readout_layers: the output of 'x'.*rank-4 feature maps"):
        ReadoutBottleneck(rank3, "c", ["x"])
    with pytest.raises(ValueError, match="readout_layers: expected a non-empty list"):
        ReadoutBottleneck(model, "conv2", "conv1")
    with pytest.raises(ValueError, match="targets: unknown value 'labels'"):
        ReadoutBottleneck(model, "conv2", READ, targets="labels")
    fresh = ReadoutBottleneck(model, "conv2", READ)
    for call in (lambda: fresh.explain(images(1), verbose=0), lambda: fresh.fit(data, epochs=1, verbose=0),
                 lambda: fresh.export("unused")):
        with pytest.raises(RuntimeError, match="not estimated yet; call estimate"):
            call()
    with pytest.warns(EstimationWarning, match=r"only 30 samples"):
        fresh.estimate(data[:30], verbose=0)
    with pytest.raises(ValueError, match=r"x: expected images of shape \(N, 16, 16, 1\)"):
        fresh.explain(np.zeros((2, 8, 8, 1), np.float32), verbose=0)


def _replace_by_noise(ib, features, region, draws=32):
    """Target-class probabilities with the feature cells in ``region`` (N, h, w) replaced by noise."""
    lam = np.broadcast_to((~region)[..., None], features.shape).astype(np.float32)
    noise = tf.random.stateless_normal((draws,) + ib.feature_shape, seed=(3, 4))
    z = restrict(features[:, None], lam[:, None], 1.0 - lam[:, None], noise[None], ib.mean, ib.std, ib.active,
                 False)
    out = ib.tail(tf.reshape(z, (-1,) + ib.feature_shape)).numpy()
    return out.reshape(len(features), draws, -1).mean(axis=1)


def test_regions_with_zero_bits_are_not_needed_but_the_top_regions_are():
    """The paper's guarantee (Section 3.1): where the capacity is ~0 the noise can replace the features."""
    rng = np.random.default_rng(0)
    net, x = object_model(rng)
    x_test, y_test, _ = localisation_set(16, rng)
    ib = InformationBottleneck(net, "features").estimate(x[:1000], verbose=0)
    bits = ib.capacity(x_test, y_test, verbose=0).sum(axis=-1) / np.log(2)  # (N, 16, 16) per cell
    features = ib.head(x_test).numpy()
    rows = np.arange(len(x_test))
    clean = _replace_by_noise(ib, features, np.zeros(bits.shape, bool))[rows, y_test]
    near_zero = bits < 0.05  # bits of a whole feature cell (16 channels); the object's cells hold ~0.1-0.3
    assert near_zero.mean(axis=(1, 2)).min() > 0.8  # most of the canvas carries (almost) no information
    p_zero = _replace_by_noise(ib, features, near_zero)[rows, y_test]
    order = np.argsort(-bits.reshape(len(bits), -1), axis=1)
    top = np.zeros(bits.size, bool).reshape(len(bits), -1)
    k = 36  # 6x6 cells: the 4x4 object and the ring its 3x3 convolutions spread it to
    top[rows[:, None], order[:, :k]] = True
    p_top = _replace_by_noise(ib, features, top.reshape(bits.shape))[rows, y_test]
    assert np.abs(clean - p_zero).mean() < 0.05
    assert (clean - p_top).mean() > 0.3


@pytest.mark.slow
def test_resnet50_at_224_on_the_papers_layer():
    keras.utils.set_random_seed(0)
    resnet = keras.applications.ResNet50(weights=None, input_shape=(224, 224, 3))
    x = (np.random.default_rng(0).uniform(size=(2, 224, 224, 3)) * 255).astype(np.float32)
    x = keras.applications.resnet50.preprocess_input(x)
    ib = InformationBottleneck(resnet, "conv3_block4_out", steps=2, batch_size=2).estimate(x, verbose=0)
    assert ib.feature_shape == (28, 28, 512)
    heat = ib.explain(x, verbose=0)
    assert heat.shape == (2, 224, 224) and np.all(np.isfinite(heat)) and heat.min() >= -1e-6
    assert np.all(total_bits(heat) > 0)
