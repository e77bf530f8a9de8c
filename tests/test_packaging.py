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


def test_authors_and_urls():
    meta = metadata.metadata("flowmancer")
    assert meta["Author"] == "The Flowmancer authors"
    urls = dict(u.split(", ", 1) for u in meta.get_all("Project-URL"))
    assert urls["Documentation"] == "https://github.com/natsunlee/flowmancer#readme"
    assert {"Homepage", "Issues", "Source"} <= set(urls)


def test_the_installed_docs_answer_help(fmtester):
    """--help points at --docs, which prints the README installed with this version (no network, no file)."""
    help_text = fmtester.run_subprocess("--help", jobdef=None).stdout
    assert "flowmancer --docs [TOPIC]" in help_text and "https://github.com/natsunlee/flowmancer#readme" in help_text
    listing = fmtester.run_subprocess("--docs", jobdef=None)
    assert listing.ret == 0
    assert "  Exit codes" in listing.stdout and "  Shell completion" in listing.stdout
    codes = fmtester.run_subprocess("--docs", "exit codes", jobdef=None)
    assert codes.ret == 0 and codes.stdout.startswith("## Exit codes") and "| 130 | `INTERRUPTED` |" in codes.stdout
    assert "```" not in "".join(line for line in listing.stdout.splitlines() if line.startswith("  #"))
    missing = fmtester.run_subprocess("--docs", "no such heading", jobdef=None)
    assert missing.ret == 2 and "flowmancer --docs lists them" in missing.stdout
