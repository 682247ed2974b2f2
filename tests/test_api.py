"""The public namespace: explicit, and stable however often it is read or imported."""

import importlib
import inspect

import wootz_keras as wz


def test_every_public_name_exists():
    assert sorted(set(wz.__all__)) == sorted(wz.__all__)
    for name in wz.__all__:
        assert getattr(wz, name) is not None, name


def test_export_and_explore_stay_functions_after_importing_their_packages():
    before = (wz.export, wz.explore)
    for module in ("wootz_keras.export", "wootz_keras.export.api", "wootz_keras.export.tflite",
                   "wootz_keras.export.onnx_export", "wootz_keras.search",
                   "wootz_keras.search.exploration", "wootz_keras.workflow.runner",
                   "wootz_keras.workflow.pipeline"):
        importlib.import_module(module)
    for _ in range(3):
        assert inspect.isfunction(wz.export) and inspect.isfunction(wz.explore)
    assert (wz.export, wz.explore) == before
    from wootz_keras import export
    assert export is wz.export


def test_importance_registry_is_reachable():
    assert callable(wz.importance.get)
