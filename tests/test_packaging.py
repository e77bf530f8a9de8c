"""What the installed distribution says about itself matches the code: one version, the license, Python."""

from __future__ import annotations

from importlib import metadata

import flowmancer


def test_one_version_license_and_python_range():
    meta = metadata.metadata("flowmancer")
    assert meta["Version"] == flowmancer.__version__  # pyproject reads it from flowmancer/__init__.py
    assert meta["License-Expression"] == "MIT"
    assert meta["Requires-Python"] == ">=3.11"
    assert "Programming Language :: Python :: 3.13" in meta.get_all("Classifier")
    assert "Operating System :: POSIX :: Linux" in meta.get_all("Classifier")
