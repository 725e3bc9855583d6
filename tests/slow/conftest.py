import os
import sys

import pytest

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from vpcd_pytest import *  # noqa: E402,F401,F403  (fixtures: state_dir, vpcd_factory, api, vpc)
import qemu_guest  # noqa: E402


@pytest.fixture(scope="session")
def guest_images():
    """(vmlinuz, initrd.gz) of the busybox QEMU guest (tests/lib/qemu_guest.py), built once per session."""
    try:
        return qemu_guest.images()
    except (RuntimeError, OSError) as e:
        pytest.fail(str(e))


@pytest.fixture(scope="session", autouse=True)
def require_root():
    if os.geteuid() != 0:
        pytest.fail("the slow tier needs root (packages, namespaces, QEMU with taps)")
