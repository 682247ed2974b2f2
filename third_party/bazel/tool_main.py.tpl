# Bazel entry point of the `%TOOL%` tool, generated from
# third_party/bazel/tool_main.py.tpl by //:BUILD.
#
# Does what the `wootz-%TOOL%` console script of setup.py does: imports
# wootz_keras.tools.%TOOL% (a copy of tools/%TOOL%.py, see //:BUILD) and calls
# its run(); a tool without run() is run as `python -m wootz_keras.tools.%TOOL%`.

import importlib
import importlib.util
import runpy
import sys

MODULE = "wootz_keras.tools.%TOOL%"


def _main():
    spec = importlib.util.find_spec(MODULE)
    with open(spec.origin) as f:
        has_run = "def run(" in f.read()
    if not has_run:
        runpy.run_module(MODULE, run_name="__main__", alter_sys=True)
        return 0
    module = importlib.import_module(MODULE)
    # absl's --help prints the __main__ module's docstring: show the tool's.
    sys.modules["__main__"].__doc__ = module.__doc__
    return module.run()


if __name__ == "__main__":
    sys.exit(_main())
