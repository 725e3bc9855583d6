"""worker-cpus pins the datapath workers (issue 12's operator knob): a vpcd started with --worker-cpus CPU runs its
worker thread only on that CPU, says so in its log and in GET /v1/stats (workers[0].cpu, checked against the OpenAPI
document; null when not pinned); a CPU the machine lacks, or a workers count that disagrees with the list, stops the
start with an error naming it, before the datapath creates anything (no /run/vpcd/INSTANCE left). vpcd runs on a temporary state dir; nothing is sent anywhere.
"""
import os
import re
import shutil
import subprocess

import pytest

from vpcdtest import Vpcd, need_root, vpcd_binary


def worker_cpus_allowed(pid):
    """{thread name: Cpus_allowed_list} of pid's vpcd-wk-N threads."""
    out = {}
    for tid in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{tid}/comm") as f:
            name = f.read().strip()
        if name.startswith("vpcd-wk-"):
            with open(f"/proc/{pid}/task/{tid}/status") as f:
                out[name] = next(l.split(":", 1)[1].strip() for l in f if l.startswith("Cpus_allowed_list:"))
    return out


@pytest.mark.parametrize("pinned", [True, False])
def test_pinned_worker_runs_only_on_its_cpu_and_stats_say_so(pinned):
    need_root()
    cpu = sorted(os.sched_getaffinity(0))[-1]
    d = Vpcd(workers=1, extra=["--worker-cpus", str(cpu)] if pinned else [], check_openapi=True)
    try:
        d.token("admin")
        d.start()
        threads = worker_cpus_allowed(d.proc.pid)
        assert list(threads) == ["vpcd-wk-0"], threads
        r = d.client().get("/v1/stats")
        assert r.status == 200, r
        if pinned:
            assert threads["vpcd-wk-0"] == str(cpu), threads
            assert r.json["workers"][0]["cpu"] == cpu, r.json["workers"]
            assert f"1 worker(s) pinned to CPU {cpu}," in d.log_tail()
        else:
            assert threads["vpcd-wk-0"] != str(cpu) or len(os.sched_getaffinity(0)) == 1, threads
            assert r.json["workers"][0]["cpu"] is None, r.json["workers"]
    finally:
        d.kill()
        d.close()


@pytest.mark.parametrize("args,status,message", [
    (["--worker-cpus", str(os.cpu_count() + 7)], 1, "is not one vpcd may run on"),
    (["--workers", "2", "--worker-cpus", "0"], 2, "workers (2) and worker-cpus (1 CPUs) disagree"),
    (["--worker-cpus", "0,0"], 2, "CPU 0 is listed twice"),
])
def test_bad_worker_cpus_stop_the_start_with_a_message(tmp_path, args, status, message):
    need_root()
    state = tmp_path / "state"
    state.mkdir()
    r = subprocess.run([vpcd_binary(), "--state-dir", str(state), "--listen", "127.0.0.1:0"] + args,
                       capture_output=True, text=True, timeout=60)
    log = r.stdout + r.stderr
    instance = re.search(r"instance ([0-9a-f]+)", log)
    run_dir = os.path.join("/run/vpcd", instance.group(1)) if instance else None
    left = run_dir is not None and os.path.exists(run_dir)
    if left:
        shutil.rmtree(run_dir, ignore_errors=True)
    assert r.returncode == status, (r.returncode, log)
    assert message in log, log
    assert not left, f"the refused start left {run_dir} behind"
