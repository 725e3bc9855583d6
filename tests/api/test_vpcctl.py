"""vpcctl against a real vpcd over real HTTPS: create / list / get / update / delete, settings from flags, environment
and the config file, problem+json errors with their field and a non-zero exit status."""
import json
import os
import subprocess

import pytest

from vpcdtest import VPCCTL


@pytest.fixture
def daemon(state_dir, vpcd_factory):
    d = vpcd_factory(state_dir)
    admin = d.token("admin")
    viewer = d.token("viewer")
    d.start()
    try:
        yield d, admin, viewer
    finally:
        d.kill()
        d.remove_run_dir()


def ctl(d, token, *args, env_extra=None, check=True, home=None):
    env = {k: v for k, v in os.environ.items() if not k.startswith("VPCD_")}
    env["HOME"] = home or os.path.join(d.state_dir, "..")
    if env_extra:
        env.update(env_extra)
    cmd = [VPCCTL]
    if token is not None:
        cmd += ["--server", "https://127.0.0.1:%d" % d.port, "--token", token,
                "--cacert", os.path.join(d.state_dir, "tls", "cert.pem")]
    cmd += list(args)
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=60, env=env)
    if check:
        assert r.returncode == 0, (cmd, r.returncode, r.stdout, r.stderr)
    return r


def test_create_list_get_update_delete(daemon):
    d, admin, _ = daemon
    r = ctl(d, admin, "-o", "json", "vpcs", "create", 'cidrs=["10.41.0.0/16"]', "name=ctl-test", "labels.team=blue")
    vpc = json.loads(r.stdout)
    assert vpc["cidrs"] == ["10.41.0.0/16"] and vpc["name"] == "ctl-test" and vpc["labels"] == {"team": "blue"}
    vpc_id = vpc["id"]

    r = ctl(d, admin, "vpcs", "list")
    lines = r.stdout.splitlines()
    assert lines[0].split()[:3] == ["ID", "NAME", "VNI"]
    assert any(l.startswith(vpc_id) and "ctl-test" in l and "10.41.0.0/16" in l for l in lines[1:]), r.stdout

    r = ctl(d, admin, "-o", "json", "subnets", "create", "--json",
            json.dumps({"vpc_id": vpc_id, "cidr": "10.41.1.0/24"}))
    subnet = json.loads(r.stdout)
    assert subnet["gateway"] == "10.41.1.1"
    r = ctl(d, admin, "subnets", "list", "--vpc-id", vpc_id)
    assert subnet["id"] in r.stdout and "10.41.1.0/24" in r.stdout

    r = ctl(d, admin, "vpc", "get", vpc_id)  # singular kind, table output
    assert "name:" in r.stdout and "ctl-test" in r.stdout and vpc_id in r.stdout

    r = ctl(d, admin, "-o", "json", "vpcs", "update", vpc_id, "name=renamed", "--if-match", str(vpc["revision"]))
    assert json.loads(r.stdout)["name"] == "renamed"
    assert json.loads(r.stdout)["revision"] == vpc["revision"] + 1

    # Stale If-Match: 412, reported with a non-zero exit.
    r = ctl(d, admin, "vpcs", "update", vpc_id, "name=again", "--if-match", str(vpc["revision"]), check=False)
    assert r.returncode == 1 and "412" in r.stderr

    # A VPC with a subnet cannot be deleted: 409 naming the dependent.
    r = ctl(d, admin, "vpcs", "delete", vpc_id, check=False)
    assert r.returncode == 1 and "409" in r.stderr

    ctl(d, admin, "subnets", "delete", subnet["id"])
    r = ctl(d, admin, "vpcs", "delete", vpc_id)
    assert "deleted " + vpc_id in r.stdout
    r = ctl(d, admin, "vpcs", "get", vpc_id, check=False)
    assert r.returncode == 1 and "404" in r.stderr


def test_errors_name_the_field(daemon):
    d, admin, viewer = daemon
    r = ctl(d, admin, "vpcs", "create", 'cidrs=["10.0.0.300/16"]', check=False)
    assert r.returncode == 1
    assert "400" in r.stderr and "(field: cidrs" in r.stderr, r.stderr
    r = ctl(d, viewer, "vpcs", "create", 'cidrs=["10.42.0.0/16"]', check=False)
    assert r.returncode == 1 and "403" in r.stderr
    r = ctl(d, "vpcd_aaaaaaaaaaaa_" + "A" * 43, "vpcs", "list", check=False)
    assert r.returncode == 1 and "401" in r.stderr
    r = ctl(d, admin, "vpcs", "create", "--json", "{not json", check=False)
    assert r.returncode == 2 and "not valid JSON" in r.stderr
    r = ctl(d, admin, "widgets", "list", check=False)
    assert r.returncode == 2 and "unknown kind" in r.stderr


def test_settings_from_env_and_config_file(daemon):
    d, admin, viewer = daemon
    cert = os.path.join(d.state_dir, "tls", "cert.pem")
    env = {"VPCD_URL": "https://127.0.0.1:%d" % d.port, "VPCD_TOKEN": viewer}
    r = ctl(d, None, "--cacert", cert, "-o", "json", "vpcs", "list", env_extra=env)
    assert json.loads(r.stdout)["items"] == [] or "items" in json.loads(r.stdout)

    home = os.path.join(d.state_dir, "..", "home")
    os.makedirs(os.path.join(home, ".config", "vpcctl"), exist_ok=True)
    with open(os.path.join(home, ".config", "vpcctl", "config"), "w") as f:
        f.write("# vpcctl settings\nserver = https://127.0.0.1:%d\ntoken = %s\ncacert = %s\noutput = json\n"
                % (d.port, admin, cert))
    r = ctl(d, None, "health", home=home)
    assert json.loads(r.stdout)["status"] == "ok"
    r = ctl(d, None, "vpcs", "create", 'cidrs=["10.43.0.0/16"]', home=home)
    assert json.loads(r.stdout)["cidrs"] == ["10.43.0.0/16"]
    # The environment wins over the file: the viewer token cannot write.
    r = ctl(d, None, "vpcs", "create", 'cidrs=["10.44.0.0/16"]', home=home, env_extra={"VPCD_TOKEN": viewer},
            check=False)
    assert r.returncode == 1 and "403" in r.stderr
    # Without the CA the self-signed certificate is refused; --insecure accepts it.
    r = ctl(d, None, "--cacert", "/dev/null", "health", home="/nonexistent", env_extra=env, check=False)
    assert r.returncode == 3
    r = ctl(d, None, "--insecure", "health", home="/nonexistent", env_extra=env)
    assert "ok" in r.stdout


def test_unreachable_server_exit_3(daemon):
    d, admin, _ = daemon
    r = subprocess.run([VPCCTL, "--server", "https://127.0.0.1:1", "--token", admin, "--insecure", "health"],
                       capture_output=True, text=True, timeout=60)
    assert r.returncode == 3 and "cannot reach" in r.stderr
