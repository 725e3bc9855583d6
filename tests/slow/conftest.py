import os
import subprocess

import pytest


@pytest.fixture(scope="session", autouse=True)
def require_root():
    if os.geteuid() != 0:
        pytest.fail("the slow tier needs root (packages, namespaces, QEMU with taps)")
