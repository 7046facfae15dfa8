"""Programs from outside Python that some tests need (Node.js, a browser, programs installed
with `go install`, see acme_devkit.go): a loud skip when they are missing, a failure when CI
requires them."""

from __future__ import annotations

import os
from typing import NoReturn

import pytest


def not_run(test: str, problem: str, install: str, require_variable: str) -> NoReturn:
    """Skip loudly, or fail when require_variable=1 (CI sets it): nobody should miss that a
    test needing programs from outside Python (Node.js, a browser, a Go program) did not run.
    install says how to get them."""
    message = (
        f"{test} NOT RUN: {problem}. Install {install}; CI's .ci/run installs them. "
        f"{require_variable}=1 turns this skip into a failure."
    )
    if os.environ.get(require_variable) == "1":
        pytest.fail(message)
    pytest.skip(message)
