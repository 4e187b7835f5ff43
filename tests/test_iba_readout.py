"""iba.ReadoutBottleneck on tiny CNNs; the information guarantee of the Per-Sample Bottleneck; ResNet50."""
import subprocess
import sys
import textwrap

import keras
import numpy as np
import pytest
import tensorflow as tf
from keras import layers

from iba import EstimationWarning, InformationBottleneck, ReadoutBottleneck, total_bits
from eval.training import Checkpointer, restore
from iba.bottleneck import lambdas, restrict
from tests import tiny
from tests.helpers import snapshot

pytestmark = pytest.mark.filterwarnings("ignore::iba.EstimationWarning")
READ = ["conv1", "conv2", "relu2"]
IMAGE = tiny.BOTTLENECK_SHAPE


@pytest.fixture(scope="module")
def model():
    return tiny.bottleneck_cnn()


@pytest.fixture(scope="module")
def data():
    return tiny.images(96, IMAGE, seed=1)


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
    x = tiny.images(4, IMAGE, seed=2)
    alpha = rb.alpha(x)
    assert alpha.shape == (4,) + rb.feature_shape and np.all(np.abs(alpha - 5.0) < 0.05)
    np.testing.assert_allclose(rb.alpha(x, batch_size=1), alpha, rtol=1e-6)
    lam, _ = lambdas(alpha, rb.sigma)
    assert lam.numpy().min() > 0.99
    # Same statistics, alpha ~ 5: the capacity is the Per-Sample Bottleneck's before its first step.
    per_sample = InformationBottleneck(model, "conv2", steps=0).fit(data, verbose=0)
    np.testing.assert_allclose(rb.capacity(x, verbose=0), per_sample.capacity(x, verbose=0), rtol=0.02, atol=0.02)


def test_explain_shapes_batches_and_targets(model, data):
    rb = readout(model, data, normalization="channel")
    x = tiny.images(5, IMAGE, seed=3)
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
    # Per-channel statistics pool every position of the readout (here conv1's map): one mean / std per channel.
    conv1 = keras.Model(model.input, model.get_layer("conv1").output)(data).numpy().reshape(-1, 8).astype(np.float64)
    mean, std = rb.readout_statistics[0]
    np.testing.assert_allclose(mean, conv1.mean(axis=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(std, np.maximum(conv1.std(axis=0, ddof=1), rb.min_std), rtol=1e-5, atol=1e-6)


def test_the_users_model_is_unchanged(data):
    model = tiny.bottleneck_cnn(seed=4)
    x = tiny.images(4, IMAGE, seed=4)
    weights = snapshot(model.weights)
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


def test_labels_as_targets_and_exact_resume(model, data, tmp_path):
    labels = np.arange(len(data)) % 3

    def trained(first, last, resume_from=None):
        rb = readout(model, data, train_targets="label")
        rb.compile(keras.optimizers.Adam(1e-2))
        if resume_from is not None:
            assert restore(rb, resume_from) == first
        history = rb.fit(data, labels, batch_size=32, epochs=last, initial_epoch=first, verbose=0, callbacks=[
            Checkpointer(tmp_path / "ckpt"), keras.callbacks.TensorBoard(str(tmp_path / "tb"))]).history
        return rb, history

    uninterrupted, history = trained(0, 3)
    assert len(history["loss"]) == 3 and any((tmp_path / "tb").rglob("*.tfevents*"))
    trained(0, 2)  # "killed" after epoch 2: the checkpoint survives
    resumed, more = trained(2, 3, resume_from=tmp_path / "ckpt")
    assert len(more["loss"]) == 1 and int(resumed.optimizer.iterations.numpy()) == 9
    for a, b in zip(uninterrupted.weights, resumed.weights):  # the seeded order and step seeds resume exactly
        np.testing.assert_allclose(a.numpy(), b.numpy(), rtol=1e-6, atol=1e-7, err_msg=a.path)
    with pytest.raises(ValueError, match="train_targets='label'"):
        uninterrupted.fit(data, batch_size=32, epochs=1, verbose=0)


def test_export_round_trip_in_a_fresh_process(model, data, tmp_path):
    rb = readout(model, data)
    rb.compile(keras.optimizers.Adam(1e-2))
    rb.fit(data, batch_size=32, epochs=1, verbose=0)
    x = tiny.images(3, IMAGE, seed=5)
    np.save(tmp_path / "x.npy", x)
    path = rb.export(tmp_path / "explainer", k=12)
    script = textwrap.dedent(f"""
        import numpy as np, tensorflow as tf
        loaded = tf.saved_model.load({path!r})
        out = loaded.signatures["serving_default"](x=tf.constant(np.load({str(tmp_path / 'x.npy')!r})))
        np.save({str(tmp_path / 'served.npy')!r}, out["scores"].numpy())
        np.save({str(tmp_path / 'mask.npy')!r}, out["mask"].numpy())
    """)
    subprocess.run([sys.executable, "-c", script], check=True, cwd=tmp_path, capture_output=True, timeout=300)
    np.testing.assert_allclose(np.load(tmp_path / "served.npy"), rb.explain(x, verbose=0), rtol=1e-5, atol=1e-6)
    np.testing.assert_array_equal(np.load(tmp_path / "mask.npy"), rb.select(x, 12))


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
    with pytest.raises(ValueError, match="train_targets: unknown value 'labels'"):
        ReadoutBottleneck(model, "conv2", READ, train_targets="labels")
    fresh = ReadoutBottleneck(model, "conv2", READ)
    for call in (lambda: fresh.explain(tiny.images(1, IMAGE), verbose=0), lambda: fresh.export("unused", k=3),
                 lambda: fresh.fit(tf.data.Dataset.from_tensor_slices(data).batch(8), epochs=1, verbose=0)):
        with pytest.raises(RuntimeError, match=r"not estimated yet; call fit\(images\) first"):
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


def test_regions_with_zero_bits_are_not_needed_but_the_top_regions_are(object_task):
    """The paper's guarantee (Section 3.1): where the capacity is ~0 the noise can replace the features."""
    net, x, test_set = object_task
    x_test, y_test, _ = test_set(16)
    ib = InformationBottleneck(net, "features").fit(x[:1000], verbose=0)
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
    ib = InformationBottleneck(resnet, "conv3_block4_out", steps=2, copies=2).fit(x, verbose=0)
    assert ib.feature_shape == (28, 28, 512)
    heat = ib.explain(x, verbose=0)
    assert heat.shape == (2, 224, 224) and np.all(np.isfinite(heat)) and heat.min() >= -1e-6
    assert np.all(total_bits(heat) > 0)
