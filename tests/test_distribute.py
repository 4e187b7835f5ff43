"""The loss convention under tf.distribute (eval.training.replica_mean, kernels.seeds.replica_draw): for every
custom train_step of the project, one step under a MirroredStrategy on two logical CPUs makes exactly the update
a single-device step makes on the same global batch."""
from tests.helpers import run_python


def test_every_train_step_makes_the_single_device_update_under_a_mirrored_strategy():
    out = run_python("""
        import warnings
        warnings.simplefilter("ignore")
        import numpy as np, tensorflow as tf
        cpu = tf.config.list_physical_devices("CPU")[0]
        tf.config.set_logical_device_configuration(cpu, [tf.config.LogicalDeviceConfiguration()] * 2)
        import keras
        from baselines.amortised import CXPlain, L2X, VIBI
        from baselines.classifier_agnostic import ClassifierAgnostic
        from baselines.realtime import RealTimeSaliency
        from iba import ReadoutBottleneck
        from vp import VP
        from kernels.seeds import seeded
        from tests import tiny

        x = tiny.images(16, (8, 8, 1), seed=3)
        y = np.arange(16) % 2
        x16 = tiny.images(16, (16, 16, 1), seed=4)

        # Plain SGD (tiny.make_meed's too): Adam's first steps are ~lr * sign(gradient), so float rounding of a
        # gradient that is exactly 0 on one device (and 1e-12 summed over two) would flip whole updates.
        def meed():
            model = tiny.make_meed()
            return model, lambda m: m.fit(x, epochs=1, batch_size=8, verbose=0), lambda m: m.explainer.weights

        def amortised(cls):
            def make():
                method = cls(tiny.linear_softmax(seed=1), k=6, seed=0, verbose=0)
                method.compile(optimizer=keras.optimizers.SGD(0.1))
                return method, lambda m: m.fit(x, y, epochs=1, batch_size=8), lambda m: m.trainable_weights
            return make

        def readout():
            rb = ReadoutBottleneck(tiny.bottleneck_cnn(), "conv2", ["conv1", "conv2"], seed=0).estimate(x16, verbose=0)
            rb.compile(keras.optimizers.SGD(0.1))
            return rb, lambda m: m.fit(x16, epochs=1, batch_size=8, verbose=0), lambda m: m.readout.weights

        # The maskers with their own optimisers: both RTS phases (selector, then decoder) and CA's joint step.
        def realtime():
            method = RealTimeSaliency(tiny.image_cnn((8, 8, 1), n_classes=2), base_channels=8, seed=0, verbose=0)
            return (method, lambda m: m.fit(x, y, epochs=1, selector_epochs=1, batch_size=8, verbose=0),
                    lambda m: m.trainable_weights)

        def agnostic():
            method = ClassifierAgnostic(tiny.image_cnn((8, 8, 1), n_classes=2), channels=8, save_freq=1, f_size=2,
                                        seed=0, verbose=0)
            return method, lambda m: m.fit(x, y, epochs=1, batch_size=8, verbose=0), lambda m: m.trainable_weights

        def vp():
            method = VP(tiny.image_cnn((8, 8, 1), n_classes=2), baseline="noise", iterations=20, width=4, seed=0,
                        verbose=0)
            method.compile(optimizer=keras.optimizers.SGD(0.1))
            return method, lambda m: m.fit(x, epochs=1, batch_size=8), lambda m: m.explainer.weights

        strategy = tf.distribute.MirroredStrategy(["/cpu:0", "/cpu:1"])
        for name, make in (("vp", vp), ("meed", meed), ("l2x", amortised(L2X)), ("vibi", amortised(VIBI)),
                           ("cxplain", amortised(CXPlain)), ("readout", readout),
                           ("real_time_saliency", realtime), ("classifier_agnostic", agnostic)):
            with seeded(0):  # the same initial weights on both sides
                single, step, weights = make()
            with strategy.scope(), seeded(0):
                mirrored, _, _ = make()
            before = [w.numpy().copy() for w in weights(single)]
            assert all(np.array_equal(a, b.numpy()) for a, b in zip(before, weights(mirrored))), name
            step(single)
            step(mirrored)
            moved = max(float(np.abs(a - w.numpy()).max()) for a, w in zip(before, weights(single)))
            gap = max(float(np.abs(a.numpy() - b.numpy()).max()) for a, b in zip(weights(single), weights(mirrored)))
            print(name, strategy.num_replicas_in_sync, moved > 1e-4, gap < 1e-5 * max(moved, 1.0), gap)
    """, timeout=600)
    lines = [line.split() for line in out.strip().splitlines()[-8:]]
    assert [line[0] for line in lines] == ["vp", "meed", "l2x", "vibi", "cxplain", "readout", "real_time_saliency",
                                           "classifier_agnostic"]
    for name, replicas, moved, same, gap in lines:
        assert replicas == "2" and moved == "True", (name, moved)
        assert same == "True", f"{name}: the mirrored update differs from the single-device one by {gap}"
