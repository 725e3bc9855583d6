"""The REST API suite's fixtures come from the shared harness (tests/lib/vpcd_pytest.py over tests/lib/vpcdtest.py):
a real vpcd per test module on a temporary state dir, listening on 127.0.0.1:0 over HTTPS, with an admin and a viewer
token, every response checked against the server's own OpenAPI document. Needs $VPCD_BUILD_DIR/vpcd."""
import os
import sys

sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "lib"))

from vpcd_pytest import *  # noqa: E402,F401,F403  (fixtures: state_dir, vpcd_factory, api, vpc)
