"""The TGD stand-in ``data.synthetic.timeseries``: shapes, determinism, the layout of the relevant entries,
that the label depends on the relevant entries only, ``load("timeseries")`` and the black-box recipe.

No model is trained here (the LSTM black box is checked by hand: see data/models.py RECIPES["lstm"])."""
import math

import keras
import numpy as np
import pytest

from data import synthetic
from data.dataset import SYNTHETIC_SIZES, load
from data.models import approximator_factory, default_recipe, lstm_classifier, paper_accuracy, recipe
from data.synthetic import timeseries, timeseries_groups

N = 4000


@pytest.fixture(scope="module")
def data():
    return timeseries(N, seed=0)


def layout(relevant):
    """(evidence features, switch features) read off a relevant mask (n, steps, features)."""
    anywhere, everywhere = relevant.any(axis=(0, 1)), relevant.all(axis=(0, 1))
    return np.flatnonzero(anywhere & ~everywhere), np.flatnonzero(everywhere)


def late_regime(x, switch):
    return x[:, :, switch].mean(axis=(1, 2)) > 0


def logistic_fit(a_train, y_train, steps=30, ridge=1e-3):
    """Weights of a ridge logistic regression (with intercept) fitted by Newton's method."""
    a = np.c_[a_train, np.ones(len(a_train))].astype(np.float64)
    w = np.zeros(a.shape[1])
    for _ in range(steps):
        p = 1 / (1 + np.exp(-np.clip(a @ w, -30, 30)))
        hess = a.T @ (a * (p * (1 - p))[:, None]) + ridge * np.eye(a.shape[1])
        w += np.linalg.solve(hess, a.T @ (y_train - p) - ridge * w)
    return w


def logistic_accuracy(a_train, y_train, a_test, y_test):
    w = logistic_fit(a_train, y_train)
    return float(np.mean((np.c_[a_test, np.ones(len(a_test))] @ w > 0) == y_test))


def shuffle_where(x, where, rng):
    """Permute, for every entry position, its values among the samples where ``where`` is True."""
    out = x.copy()
    flat_x, flat_out, flat_w = x.reshape(len(x), -1), out.reshape(len(x), -1), where.reshape(len(x), -1)
    for col in np.flatnonzero(flat_w.any(axis=0)):
        rows = np.flatnonzero(flat_w[:, col])
        flat_out[rows, col] = flat_x[rng.permutation(rows), col]
    return out


# ------------------------------------------------------------------------------ format

def test_shapes_dtypes_and_determinism(data):
    x, y, rel = data
    assert x.shape == (N, 3, 643) and x.dtype == np.float32 and np.all(np.isfinite(x))
    assert y.shape == (N,) and y.dtype == np.int64 and np.bincount(y).tolist() == [N // 2, N // 2]
    assert rel.shape == x.shape and rel.dtype == bool
    small = dict(steps=4, features=60, n_groups=10, n_relevant=6, relevant_groups=3)
    a, b = timeseries(300, seed=7, **small), timeseries(300, seed=7, **small)
    for u, v in zip(a, b):
        np.testing.assert_array_equal(u, v)
    c = timeseries(300, seed=8, **small)
    assert not np.array_equal(a[0], c[0]) and not np.array_equal(a[2], c[2])  # the layout is seeded too
    assert a[0].shape == (300, 4, 60)
    np.testing.assert_array_equal(timeseries(5, seed=3)[0], timeseries(5, seed=3)[0])


def test_groups_partition_the_features_like_tgd():
    g = timeseries_groups()
    assert g.shape == (643,) and g.dtype == np.int64
    assert np.all(np.diff(g) >= 0) and g[0] == 0 and g[-1] == 40  # contiguous, 41 groups
    assert np.bincount(g).tolist() == [16] * 28 + [15] * 13
    assert timeseries_groups(10, 3).tolist() == [0, 0, 0, 0, 1, 1, 1, 2, 2, 2]


# ------------------------------------------------------------------------------ relevant entries

def test_relevant_mask_layout(data):
    x, y, rel = data
    evidence, switch = layout(rel)
    assert len(evidence) == 16 and len(switch) == synthetic.TS_SWITCH_FEATURES == 2
    assert rel.sum(axis=(1, 2)).tolist() == [16 * 2 + 2 * 3] * N  # 38 of 1929 entries, 2.0%
    # nothing else is ever relevant; evidence features are relevant at the same steps (the active ones)
    others = np.setdiff1d(np.arange(643), np.r_[evidence, switch])
    assert not rel[:, :, others].any()
    steps_on = rel[:, :, evidence]
    assert np.all(steps_on == steps_on[:, :, :1])
    patterns = {tuple(p) for p in steps_on[:, :, 0].astype(int).tolist()}
    assert patterns == {(1, 1, 0), (0, 1, 1)}  # early regime: steps 0, 1; late regime: steps 1, 2
    late = late_regime(x, switch)
    assert np.mean(late == rel[:, 2, evidence[0]]) > 0.995  # the switch tells the regime
    assert 0.45 < late.mean() < 0.55
    # grouped: the switch in one group, the evidence in 4 others, 4 features each
    g = timeseries_groups()
    assert len(np.unique(g[switch])) == 1 and g[switch[0]] not in g[evidence]
    assert sorted(np.bincount(g[evidence]).tolist())[-4:] == [4, 4, 4, 4]

    # other step counts: ceil(steps / 2) active steps, first or last
    for steps, want in ((1, {(1,)}), (2, {(1, 0), (0, 1)}), (5, {(1, 1, 1, 0, 0), (0, 0, 1, 1, 1)})):
        _, _, r = timeseries(200, steps=steps, features=40, n_groups=8, n_relevant=6, relevant_groups=3)
        if steps == 1:  # both regimes use the one step (with opposite signs): switch + evidence, always
            assert r.all(axis=(0, 1)).sum() == 6 + 2 and r.sum() == 200 * 8
            continue
        ev, sw = layout(r)
        assert {tuple(p) for p in r[:, :, ev[0]].astype(int).tolist()} == want
        assert len(ev) == 6 and len(sw) == 2


def test_label_depends_on_the_relevant_entries_only(data):
    x, y, rel = data
    # Per entry: class-conditional mean difference over the samples where the entry is NOT relevant
    # (z-scores ~ N(0, 1) under independence) vs where it IS relevant (signal 0.4 per entry, |z| ~ 18).
    sign = np.where(y == 1, 1.0, -1.0)[:, None, None]

    def z_scores(where):
        w = where.astype(np.float64)
        counts = [np.maximum((w * (y == c)[:, None, None]).sum(0), 1) for c in (0, 1)]
        means = [(x * w * (y == c)[:, None, None]).sum(0) / counts[c] for c in (0, 1)]
        return (means[1] - means[0]) / np.sqrt(1 / counts[0] + 1 / counts[1])

    z_off = z_scores(~rel)
    assert np.abs(z_off).max() < 5.0  # 1929 entries, none related to y where not relevant
    evidence, switch = layout(rel)
    late = late_regime(x, switch)
    for regime in (False, True):  # within a regime the sign of the evidence is fixed
        z_on = z_scores(rel & (late == regime)[:, None, None])
        z_ev = z_on[:, evidence][rel[late == regime][0][:, evidence]]
        assert len(z_ev) == 32 and np.abs(z_ev).min() > 10
    assert abs(float(np.mean(sign[:, 0, 0] * x[:, :, switch].mean((1, 2))))) < 0.1  # switch: not y

    # Shuffling the non-relevant entries across samples keeps what a model learned from all evidence
    # features at all steps (with the regime interaction); shuffling the relevant ones destroys it. Only
    # the columns the model reads are shuffled (shuffling the others cannot change its output).
    used = np.r_[evidence, switch]
    xu, relu = x[:, :, used], rel[:, :, used]
    k = len(evidence)

    def features_of(z):
        e = z[:, :, :k].reshape(len(z), -1)
        s = np.where(z[:, :, k:].mean(axis=(1, 2)) > 0, 1.0, -1.0)[:, None]
        return np.c_[e, e * s]

    tr, te = slice(0, 3000), slice(3000, None)
    train_feats = features_of(xu[tr])
    acc = logistic_accuracy(train_feats, y[tr], features_of(xu[te]), y[te])
    rng = np.random.default_rng(0)
    acc_off = logistic_accuracy(train_feats, y[tr], features_of(shuffle_where(xu[te], ~relu[te], rng)), y[te])
    acc_on = logistic_accuracy(train_feats, y[tr], features_of(shuffle_where(xu[te], relu[te], rng)), y[te])
    assert acc > 0.95 and abs(acc_off - acc) < 0.03 and acc_on < 0.6


def test_relevant_entries_beat_random_entries_and_no_single_entry_suffices(data):
    x, y, rel = data
    n = len(x)
    evidence, switch = layout(rel)
    # Gather each sample's relevant entries in a fixed order: (k-th active step, evidence feature) ...
    active = rel[:, :, evidence[0]]
    ev_steps = np.argsort(~active, axis=1, kind="stable")[:, :2]  # the 2 active steps, in order
    gathered = x[np.arange(n)[:, None, None], ev_steps[:, :, None], evidence[None, None, :]].reshape(n, -1)
    sw = x[:, :, switch].reshape(n, -1)
    s = np.where(sw.mean(axis=1) > 0, 1.0, -1.0)[:, None]
    relevant_feats = np.c_[gathered, gathered * s, sw]
    # ... and the same construction on random entries that are never relevant
    rng = np.random.default_rng(1)
    others = rng.choice(np.setdiff1d(np.arange(643), np.r_[evidence, switch]), size=38, replace=False)
    rnd = x[:, rng.integers(0, 3, size=38), others]
    r_ev, r_sw = rnd[:, :32], rnd[:, 32:]
    r_s = np.where(r_sw.mean(axis=1) > 0, 1.0, -1.0)[:, None]
    random_feats = np.c_[r_ev, r_ev * r_s, r_sw]
    tr, te = slice(0, 3000), slice(3000, None)
    acc_rel = logistic_accuracy(relevant_feats[tr], y[tr], relevant_feats[te], y[te])
    acc_rnd = logistic_accuracy(random_feats[tr], y[tr], random_feats[te], y[te])
    bayes = 0.5 * (1 + math.erf(0.4 * math.sqrt(32) / math.sqrt(2)))  # Phi(signal sqrt(16 * 2)) = 0.988
    assert acc_rel > bayes - 0.03 and acc_rnd < 0.58

    # the Bayes rule knowing the regime (from the mask) reaches Phi(signal * sqrt(32))
    c = np.where(active[:, 0], 1.0, -1.0)  # early: +, late: - (the late regime flips the evidence)
    w = np.sign(np.mean((x[:, :, evidence] * active[:, :, None]).sum(1) * (c * np.where(y == 1, 1, -1))[:, None], 0))
    stat = c * ((x[:, :, evidence] * active[:, :, None]).sum(1) @ w)
    assert abs(np.mean((stat > 0) == y) - bayes) < 0.01

    # no single entry predicts y well (best of 1929 at ~Phi(0.4) = 65.5% within its regime, less overall)
    flat = x.reshape(n, -1)
    single = np.mean((flat > 0) == (y == 1)[:, None], axis=0)
    assert np.max(np.maximum(single, 1 - single)) < 0.62


def test_noise_statistics(data):
    x, _, rel = data
    evidence, switch = layout(rel)
    noise = np.setdiff1d(np.arange(643), np.r_[evidence, switch])
    assert abs(x[:, :, noise].std() - 1) < 0.02 and abs(x[:, :, noise].mean()) < 0.02
    a, b, c = (x[:, t, noise].ravel() for t in range(3))
    assert abs(np.corrcoef(a, b)[0, 1] - 0.5) < 0.02 and abs(np.corrcoef(a, c)[0, 1] - 0.25) < 0.02
    # evidence features: no temporal correlation of the noise (late regime: step 0 is inactive, pure noise;
    # the active steps share the planted shift, which correlates them)
    late = rel[:, 2, evidence[0]]
    e0, e1 = x[late, 0][:, evidence].ravel(), x[late, 1][:, evidence].ravel()
    assert abs(np.corrcoef(e0, e1)[0, 1]) < 0.03 and abs(e0.std() - 1) < 0.03
    x0, _, rel0 = timeseries(2000, temporal_corr=0.0, features=80, n_groups=8, n_relevant=4)
    noise0 = ~rel0.any(axis=(0, 1))
    assert noise0.sum() == 80 - 4 - 2
    assert abs(np.corrcoef(x0[:, 0, noise0].ravel(), x0[:, 1, noise0].ravel())[0, 1]) < 0.03


# ------------------------------------------------------------------------------ bad inputs

@pytest.mark.parametrize("kwargs, error, match", [
    (dict(n=0), ValueError, r"n: expected an integer >= 1, got 0"),
    (dict(n=2.5), TypeError, "n: expected an integer"),
    (dict(steps=0), ValueError, r"steps: expected an integer >= 1, got 0"),
    (dict(features=0), ValueError, r"features: expected an integer >= 1, got 0"),
    (dict(features=10), ValueError, r"n_groups: expected an integer in \[2, 10\], got 41"),
    (dict(features=50), ValueError, "features: 50 features in 41 groups leave groups of 1"),
    (dict(n_relevant=100), ValueError, "n_relevant: 100 evidence features in 4 groups"),
    (dict(n_relevant=2), ValueError, "n_relevant: expected an integer >= 4"),
    (dict(n_groups=1), ValueError, "n_groups"),
    (dict(relevant_groups=41), ValueError, "relevant_groups"),
    (dict(signal=0.0), ValueError, "signal"),
    (dict(temporal_corr=1.0), ValueError, r"temporal_corr: expected an AR\(1\) coefficient in \[0, 1\)"),
    (dict(temporal_corr=-0.1), ValueError, "temporal_corr"),
    (dict(seed=-1), ValueError, "seed"),
    (dict(steps=True), TypeError, "steps"),
])
def test_bad_inputs_name_the_argument(kwargs, error, match):
    kwargs = {"n": 5, **kwargs}
    with pytest.raises(error, match=match):
        timeseries(kwargs.pop("n"), **kwargs)


def test_groups_bad_inputs():
    with pytest.raises(ValueError, match="features"):
        timeseries_groups(0)
    with pytest.raises(ValueError, match=r"n_groups: expected an integer in \[1, 5\], got 6"):
        timeseries_groups(5, 6)


# ------------------------------------------------------------------------------ load() and recipe

def test_load_timeseries_splits():
    ds = load("timeseries", seed=0)
    assert SYNTHETIC_SIZES["timeseries"] == (8000, 2000)
    assert (len(ds.y_train), len(ds.y_val), len(ds.y_test)) == (8000, 1000, 1000)
    assert ds.feature_shape == (3, 643) and ds.class_names == ["adult", "teen"] and ds.n_classes == 2
    assert ds.source == "synthetic" and ds.boxes is None and ds.x_train.dtype == np.float32
    for split in ("train", "val", "test"):
        x, y, gt = getattr(ds, "x_" + split), getattr(ds, "y_" + split), ds.ground_truth[split]
        assert gt.shape == x.shape and gt.dtype == bool and len(y) == len(x) and y.dtype == np.int64
        assert gt.sum(axis=(1, 2)).tolist() == [38] * len(x)
    # the splits are the generator's output: train first, then the seeded val/test halves of the rest
    x, y, rel = timeseries(10_000, seed=0)
    np.testing.assert_array_equal(ds.x_train, x[:8000])
    perm = np.random.default_rng(0).permutation(2000)
    val, test = np.sort(perm[:1000]) + 8000, np.sort(perm[1000:]) + 8000
    np.testing.assert_array_equal(ds.y_val, y[val])
    np.testing.assert_array_equal(ds.ground_truth["test"], rel[test])
    np.testing.assert_array_equal(ds.x_test, x[test])
    sub = load("timeseries", classes=(1,), seed=0)
    assert sub.class_names == ["teen"] and np.all(sub.y_train == 0) and len(sub.y_train) == int(y[:8000].sum())


def test_timeseries_recipe_is_the_tgd_lstm():
    assert default_recipe("timeseries") == "lstm"
    spec = recipe("lstm")
    assert spec.builder is lstm_classifier and spec.batch_size == 128
    assert paper_accuracy("timeseries", "lstm") is None  # the paper's 90.16% is on the private TGD
    opt = spec.optimizer()
    assert isinstance(opt, keras.optimizers.Adam) and float(opt.learning_rate) == pytest.approx(1e-3)
    model = approximator_factory("lstm")((3, 643), 2)
    kinds = [type(layer).__name__ for layer in model.layers[1:]]
    assert kinds == ["LSTM", "LSTM", "Dense", "Softmax"] and model.output_shape == (None, 2)
    probs = model.predict(timeseries(4)[0], verbose=0)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-5)
