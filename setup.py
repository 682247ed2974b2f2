"""wootz_keras: composability-based structured CNN pruning for Keras 3."""

from setuptools import find_packages, setup

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
    version="0.2.0",
    description="Fast structured CNN pruning for Keras 3 through composability (Wootz, PLDI 2019)",
    long_description=open("README.md").read() if __import__("os").path.exists("README.md") else "",
    long_description_content_type="text/markdown",
    python_requires=">=3.10",
    # wootz_keras/tools is a link to the top-level tools/ folder, so the command
    # tools are one package for regular and editable installs alike.
    packages=find_packages(include=["wootz_keras", "wootz_keras.*"]),
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
    extras_require={"postgres": ["psycopg[binary]>=3.1"],
                    "test": ["pytest", "hypothesis", "psycopg[binary]>=3.1"]},
    entry_points={
        "console_scripts": [f"{cmd}=wootz_keras.tools.{mod}:run" for cmd, mod in TOOLS.items()],
    },
)
