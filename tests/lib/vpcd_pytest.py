"""pytest fixtures over vpcdtest (the one harness): tests/api/conftest.py and tests/slow/conftest.py import them with
`from vpcd_pytest import *`. Every vpcd a fixture starts checks each response it receives against its own OpenAPI
document (GET /v1/openapi.json) and is stopped, with its run dir and temporary state dir removed, at the end, also
when a test fails.

Fixtures:
  state_dir     a fresh empty state directory (function scope)
  vpcd_factory  make(state_dir=None, workers=1, extra=()) -> a Vpcd not yet started; all are closed afterwards
  api           one started vpcd per test module: its admin Client (client.viewer / token="viewer" for the other role)
  vpc           a fresh VPC with a unique /16 on `api`, deleted afterwards when still empty
"""
import os
import shutil
import tempfile

import pytest

import vpcdtest

__all__ = ["state_dir", "vpcd_factory", "api", "vpc"]


@pytest.fixture
def state_dir():
    d = tempfile.mkdtemp(prefix="vpcd-test-%d-" % os.getpid())
    sd = os.path.join(d, "state")
    os.mkdir(sd)
    try:
        yield sd
    finally:
        shutil.rmtree(d, ignore_errors=True)


class _Factory:
    def __init__(self):
        self.made = []

    def __call__(self, state_dir=None, workers=1, extra=()):
        d = vpcdtest.Vpcd(state_dir, workers=workers, extra=extra, check_openapi=True)
        self.made.append(d)
        return d

    def close_all(self):
        for d in self.made:
            d.close()


@pytest.fixture
def vpcd_factory():
    f = _Factory()
    try:
        yield f
    finally:
        f.close_all()


@pytest.fixture(scope="module")
def api():
    f = _Factory()
    try:
        d = f()
        d.token("admin")
        d.token("viewer")
        try:
            d.start()
        except RuntimeError as e:
            pytest.fail(str(e))
        client = d.client("admin")
        client.log_path = d.log_path
        client.vpcd = d
        yield client
    finally:
        f.close_all()


@pytest.fixture
def vpc(api):
    vpc.counter = getattr(vpc, "counter", 0) + 1
    obj = api.create("vpcs", {"cidrs": ["10.%d.0.0/16" % (vpc.counter % 250)], "name": "t%d" % vpc.counter})
    yield obj
    api.delete("/v1/vpcs/" + obj["id"])
