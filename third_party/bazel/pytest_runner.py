"""Runs pytest for one Bazel py_test target (the `main` of every py_test in //:BUILD).

Bazel starts a py_test in its runfiles tree, at the repository root there, so the
test file named in the target's ``args`` (``tests/test_x.py``) is found relative to
it; ``pytest.ini`` and ``tests/conftest.py`` travel in the target's ``data``, so the
markers, ``addopts`` and fixtures are the same as for a plain ``pytest`` run.

Extra pytest options can be given with ``--test_arg`` (for example
``bazel test //:test_data --test_arg=-x``); ``--test_filter=EXPR`` becomes ``-k EXPR``.
"""

import os
import sys

NO_TESTS_COLLECTED = 5


def pytest_args(argv, environ):
    """The pytest command line for this Bazel test run."""
    args = [
        # The runfiles tree is a mirror of the source tree that may be read-only:
        # keep .pytest_cache and pytest's temporary folders out of it.
        "-p", "no:cacheprovider",
    ]
    tmp = environ.get("TEST_TMPDIR")
    if tmp:
        args.append("--basetemp=" + os.path.join(tmp, "pytest"))
    xml = environ.get("XML_OUTPUT_FILE")
    if xml:
        # Per-test-case results in bazel-testlogs/<target>/test.xml.
        args.append("--junitxml=" + xml)
    test_filter = environ.get("TESTBRIDGE_TEST_ONLY")
    if test_filter:
        args += ["-k", test_filter]
    return args + list(argv)


def main(argv):
    sys.dont_write_bytecode = True  # no __pycache__ in the runfiles tree
    import pytest

    code = pytest.main(pytest_args(argv, os.environ))
    if code == NO_TESTS_COLLECTED:
        # Every test in the file is deselected (e.g. all marked slow): not a failure.
        print("pytest_runner: no test selected in", " ".join(argv))
        return 0
    return int(code)


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
