#!/bin/sh
echo "Bazel's coverage tools are not available offline; run 'pytest --cov' instead." >&2
exit 1
