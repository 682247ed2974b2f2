"""wootz_keras: composability-based structured CNN pruning for Keras 3."""

from setuptools import setup

TOOLS = {
    "wootz-prune": "prune",
    "wootz-plan": "plan",
    "wootz-pretrain": "pretrain",
    "wootz-explore": "explore",
    "wootz-run": "run",
    "wootz-export": "export",
}

setup(
    name="wootz_keras",
    version="0.1.0",
    description="Fast structured CNN pruning for Keras 3 through composability (Wootz, PLDI 2019)",
    long_description=open("README.md").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    packages=[
        "wootz_keras",
        "wootz_keras.graph",
        "wootz_keras.pruning",
        "wootz_keras.planner",
        "wootz_keras.compose",
        "wootz_keras.search",
        "wootz_keras.export",
        "wootz_keras.data",
        "wootz_keras.zoo",
        "wootz_keras.utils",
        "wootz_keras.tools",
    ],
    package_dir={"wootz_keras.tools": "tools"},
    install_requires=[
        "tensorflow==2.21.0",
        "keras>=3.10",
        "tensorflow-model-optimization>=0.8.1",
        "tf2onnx>=1.17",
        "onnx",
        "onnxruntime",
        "ai-edge-litert",
        "absl-py",
        "tensorboard",
        "numpy",
        "scikit-learn",
        "mlxtend",
        "matplotlib",
    ],
    extras_require={"test": ["pytest", "hypothesis"]},
    entry_points={
        "console_scripts": [f"{cmd}=wootz_keras.tools.{mod}:run" for cmd, mod in TOOLS.items()],
    },
)
