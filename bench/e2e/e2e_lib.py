"""Measurement helpers shared by the bench/e2e scripts (compare.py: one switch between two guests; overlay.py: guest
to guest across two boxes), so that every switch is measured the same way:
  - TCP throughput: iperf3 client in one guest namespace, a one-shot server in the other, bounded by `timeout`; the
    guests use the host's default congestion control (bbr on this VM); E2E_IPERF3_ARGS="-C cubic" adds client flags;
  - 64-byte frames: trafgen (Debian netsniff-ng) on one core sends 60-byte UDP frames for a bounded time; delivered =
    the receiving guest's eth0 rx_packets delta, offered = the sender's eth0 tx_packets delta;
  - ping RTT (20 echoes, 50 ms apart);
  - CPU: the whole machine's busy time (/proc/stat) and the given switch processes' own, in cores;
  - a private Open vSwitch (ovsdb-server + ovs-vswitchd with their own db, run dir, sockets and logs in a temporary
    directory, started inside a namespace; never /var/run/openvswitch), stopped by the pids it wrote.
Needs root, iperf3, trafgen, ping, ip (iproute2); ovs_instance needs openvswitch-switch.
"""
import contextlib
import json
import os
import re
import shutil
import signal
import statistics
import subprocess
import tempfile
import time


def sh(cmd, check=True, timeout=60, capture=True):
    """Runs cmd (a string goes through sh) in a process group of its own: on a timeout or an exception in the caller
    (SIGTERM turned into SystemExit, Ctrl-C) the whole group is killed, not just the shell, so no generator outlives
    the script."""
    with subprocess.Popen(cmd, shell=isinstance(cmd, str), start_new_session=True, text=True,
                          stdout=subprocess.PIPE if capture else None,
                          stderr=subprocess.PIPE if capture else None) as p:
        try:
            out, err = p.communicate(timeout=timeout)
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise
    if check and p.returncode != 0:
        raise RuntimeError(f"command failed ({p.returncode}): {cmd}\n{out}\n{err}")
    return out if capture else ""


def nsx(ns, cmd, **kw):
    return sh(f"ip netns exec {ns} {cmd}", **kw)


@contextlib.contextmanager
def signals_deferred():
    """Blocks SIGTERM and SIGINT for the duration (a cleanup block): a signal arriving meanwhile is delivered when the
    block ends, so it cannot cut the cleanup short and leave namespaces or daemons behind."""
    old = signal.pthread_sigmask(signal.SIG_BLOCK, {signal.SIGTERM, signal.SIGINT})
    try:
        yield
    finally:
        signal.pthread_sigmask(signal.SIG_SETMASK, old)


def run_bounded(ns, args, limit_s, stop_signal=signal.SIGINT, grace_s=10):
    """Runs args inside namespace ns, in a process group of its own, for at most limit_s seconds: then stop_signal
    goes to the whole group, and SIGKILL grace_s seconds later; an exception in the caller (SIGTERM, Ctrl-C) kills
    the group at once. Returns stdout."""
    with subprocess.Popen(["ip", "netns", "exec", ns] + args, start_new_session=True, text=True,
                          stdout=subprocess.PIPE, stderr=subprocess.PIPE) as p:
        try:
            try:
                out, _ = p.communicate(timeout=limit_s)
            except subprocess.TimeoutExpired:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(p.pid, stop_signal)
                try:
                    out, _ = p.communicate(timeout=grace_s)
                except subprocess.TimeoutExpired:
                    with contextlib.suppress(ProcessLookupError):
                        os.killpg(p.pid, signal.SIGKILL)
                    out, _ = p.communicate()
        except BaseException:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(p.pid, signal.SIGKILL)
            p.wait()
            raise
    return out


def netns_list():
    return [l.split()[0] for l in sh("ip netns list").splitlines() if l.strip()]


def remove_namespaces(prefix):
    """Deletes every namespace whose name starts with prefix (a prefix unique to the calling run)."""
    for ns in netns_list():
        if ns.startswith(prefix):
            sh(f"ip netns del {ns}", check=False)


def cpu_busy_jiffies():
    with open("/proc/stat") as f:
        parts = [int(x) for x in f.readline().split()[1:]]
    idle = parts[3] + parts[4]
    return sum(parts) - idle


def proc_jiffies(pids):
    total = 0
    for pid in pids:
        with contextlib.suppress(OSError):
            with open(f"/proc/{pid}/stat") as f:
                fields = f.read().rsplit(")", 1)[1].split()
            total += int(fields[11]) + int(fields[12])  # utime, stime
    return total


def counter(ns, ifname, name):
    return int(nsx(ns, f"cat /sys/class/net/{ifname}/statistics/{name}").strip())


class CpuMeter:
    def __init__(self, pids):
        self.pids, self.hz = pids, os.sysconf("SC_CLK_TCK")

    def __enter__(self):
        self.t0, self.b0, self.p0 = time.monotonic(), cpu_busy_jiffies(), proc_jiffies(self.pids)
        return self

    def __exit__(self, *exc):
        dt = time.monotonic() - self.t0
        self.machine = (cpu_busy_jiffies() - self.b0) / self.hz / dt
        self.switch = (proc_jiffies(self.pids) - self.p0) / self.hz / dt if self.pids else None


def measure_tcp(client_ns, server_ns, server_ip, streams, duration, pids):
    server = subprocess.Popen(["ip", "netns", "exec", server_ns, "iperf3", "-s", "-1", "-B", server_ip],
                              stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    try:
        time.sleep(0.3)
        with CpuMeter(pids) as cpu:
            # E2E_IPERF3_ARGS: extra client flags for experiments, e.g. "-C cubic" (the guests otherwise use the
            # host's default congestion control, inherited by new namespaces: bbr on this VM)
            out = run_bounded(client_ns, ["iperf3", "-c", server_ip, "-t", str(duration), "-P", str(streams), "-J"]
                              + os.environ.get("E2E_IPERF3_ARGS", "").split(),
                              duration + 20)
        try:
            res = json.loads(out)
            gbps = res["end"]["sum_received"]["bits_per_second"] / 1e9
            retr = res["end"]["sum_sent"].get("retransmits")
        except (ValueError, KeyError):
            gbps, retr = 0.0, None
        return {"gbit_s": round(gbps, 3), "retransmits": retr, "cpu_machine": round(cpu.machine, 2),
                "cpu_switch": None if cpu.switch is None else round(cpu.switch, 2)}
    finally:
        server.kill()
        server.wait()


def measure_small_frames(src_ns, dst_ns, src_mac, dst_mac, src_ip, dst_ip, duration, pids):
    conf = tempfile.NamedTemporaryFile("w", suffix=".trafgen", delete=False)
    conf.write("{\n  eth(da=%s, sa=%s, type=0x0800),\n  ipv4(saddr=%s, daddr=%s, ttl=64),\n"
               "  udp(sport=40000, dport=9),\n  fill(0x00, 18),\n}\n" % (dst_mac, src_mac, src_ip, dst_ip))
    conf.close()
    try:
        rx0, tx0 = counter(dst_ns, "eth0", "rx_packets"), counter(src_ns, "eth0", "tx_packets")
        with CpuMeter(pids) as cpu:
            # trafgen forks a sender per CPU: SIGINT to the whole group stops them all
            run_bounded(src_ns, ["trafgen", "--dev", "eth0", "--conf", conf.name, "--cpus", "1", "--qdisc-path", "-q"],
                        duration)
            time.sleep(0.2)
        rx, tx = counter(dst_ns, "eth0", "rx_packets") - rx0, counter(src_ns, "eth0", "tx_packets") - tx0
        return {"delivered_kpps": round(rx / duration / 1e3, 1), "offered_kpps": round(tx / duration / 1e3, 1),
                "loss_pct": round(100.0 * (1 - rx / tx), 1) if tx else None, "cpu_machine": round(cpu.machine, 2),
                "cpu_switch": None if cpu.switch is None else round(cpu.switch, 2)}
    finally:
        os.unlink(conf.name)


def measure_ping(src_ns, dst_ip):
    out = nsx(src_ns, f"ping -c 20 -i 0.05 -W 1 -q {dst_ip}", check=False, timeout=30)
    m = re.search(r"= [\d.]+/([\d.]+)/", out)
    loss = re.search(r"([\d.]+)% packet loss", out)
    return {"avg_ms": float(m.group(1)) if m else None, "loss_pct": float(loss.group(1)) if loss else None}


def wait_ping(src_ns, dst_ip, timeout_s=10):
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if subprocess.run(["ip", "netns", "exec", src_ns, "ping", "-c", "1", "-W", "1", dst_ip],
                          stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL).returncode == 0:
            return True
        time.sleep(0.2)
    return False


def set_tx_offload(ns, ifname, on):
    nsx(ns, f"ethtool -K {ifname} tx {'on' if on else 'off'}", check=False)


class Ovs:
    """A running private Open vSwitch: vsctl(args) runs ovs-vswitchd's ovs-vsctl against its own db."""

    def __init__(self, ns, rundir):
        self.ns, self.rundir = ns, rundir
        self.env = f"OVS_RUNDIR={rundir} OVS_LOGDIR={rundir} OVS_DBDIR={rundir}"
        self.db = f"unix:{rundir}/db.sock"
        self.vswitchd_pid = None

    def vsctl(self, args, **kw):
        return nsx(self.ns, f"env {self.env} ovs-vsctl --db={self.db} --timeout=20 {args}", **kw)

    def log_tail(self, chars=1500):
        with contextlib.suppress(OSError), open(f"{self.rundir}/vswitchd.log", errors="replace") as f:
            return f.read()[-chars:]
        return ""


@contextlib.contextmanager
def ovs_instance(ns, prefix, tso=False):
    """ovsdb-server and ovs-vswitchd started inside namespace ns with a private db and run dir (a temporary directory
    named prefix*); on exit both are stopped by the pids in their pidfiles (SIGTERM, then SIGKILL after 2 s) and the
    directory is removed, also when starting them failed half way."""
    rundir = tempfile.mkdtemp(prefix=prefix)
    ovs = Ovs(ns, rundir)
    try:
        nsx(ns, f"env {ovs.env} ovsdb-tool create {rundir}/conf.db /usr/share/openvswitch/vswitch.ovsschema")
        nsx(ns, f"env {ovs.env} ovsdb-server {rundir}/conf.db --remote=punix:{rundir}/db.sock "
                f"--pidfile={rundir}/ovsdb.pid --unixctl={rundir}/ovsdb.ctl --log-file={rundir}/ovsdb.log --detach")
        ovs.vsctl("--no-wait init")
        if tso:
            ovs.vsctl("--no-wait set Open_vSwitch . other_config:userspace-tso-enable=true")
        nsx(ns, f"env {ovs.env} ovs-vswitchd {ovs.db} --pidfile={rundir}/vswitchd.pid "
                f"--unixctl={rundir}/vswitchd.ctl --log-file={rundir}/vswitchd.log --detach")
        with open(f"{rundir}/vswitchd.pid") as fh:
            ovs.vswitchd_pid = int(fh.read().strip())
        yield ovs
    finally:
        with signals_deferred():
            stop_ovs(rundir)


def stop_ovs(rundir):
    pids = []
    for f in ("vswitchd.pid", "ovsdb.pid"):
        with contextlib.suppress(OSError, ValueError), open(f"{rundir}/{f}") as fh:
            pids.append(int(fh.read().strip()))
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGTERM)
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline and any(alive(p) for p in pids):
        time.sleep(0.05)
    for pid in pids:
        with contextlib.suppress(ProcessLookupError):
            os.kill(pid, signal.SIGKILL)
    shutil.rmtree(rundir, ignore_errors=True)


def alive(pid):
    """True while pid runs (a zombie nobody reaped yet counts as gone)."""
    try:
        with open(f"/proc/{pid}/stat") as f:
            return f.read().rsplit(")", 1)[1].split()[0] != "Z"
    except OSError:
        return False


def median_at(results, name, path):
    """The median, over the runs in results[name] (a list of nested dicts), of the number found under the keys
    `path`; None when no run has one."""
    vals = []
    for r in results.get(name, []):
        v = r
        for p in path:
            v = v.get(p) if isinstance(v, dict) else None
        if isinstance(v, (int, float)):
            vals.append(v)
    return statistics.median(vals) if vals else None


def print_table(results, cols, first="setup", first_width=8, width=15):
    """One row per setup in `results` (name -> list of runs): the median of each column's path (median_at), then
    that setup's errors."""
    print(f"{first:<{first_width}}" + "".join(f"{c:>{width}}" for c, _ in cols))
    for name in results:
        row = f"{name:<{first_width}}"
        for _, path in cols:
            v = median_at(results, name, path)
            row += f"{'-' if v is None else round(v, 3):>{width}}"
        print(row)
        for r in results[name]:
            if "error" in r:
                print(f"  {name} error: {r['error']}")


def loadavg():
    return "load average %.2f %.2f %.2f on %d CPUs" % (*os.getloadavg(), os.cpu_count())
