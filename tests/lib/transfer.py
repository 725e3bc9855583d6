"""A TCP transfer whose bytes are checked end to end: the client sends a deterministic pseudo-random stream and hashes
it, the server hashes what it receives, both SHA-256. Checks that a datapath neither loses nor corrupts payload
(iperf3 never looks at its bytes): frames handed over from ring slots, GSO super-frames segmented or coalesced, inner
checksums fused with copies. The server holds its first read back for `hold_s` so the stream piles up in its socket
queue (more frames than any ring has slots), then reads in pauses.

Runs `python3 -c` in the two namespaces with `ip netns exec`; every wait is bounded by `timeout` seconds."""
import subprocess
import time

_SERVER = r'''
import hashlib, socket, sys, time
port, hold = int(sys.argv[1]), float(sys.argv[2])
l = socket.socket(); l.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1); l.bind(("0.0.0.0", port)); l.listen(1)
l.settimeout(60)
c, _ = l.accept(); c.settimeout(60); h = hashlib.sha256(); n = 0; i = 0
time.sleep(hold)
while True:
    b = c.recv(1 << 16)
    if not b:
        break
    h.update(b); n += len(b); i += 1
    if i % 256 == 0:
        time.sleep(0.01)
print(h.hexdigest(), n, flush=True)
'''

_CLIENT = r'''
import hashlib, socket, sys, time
addr, port, mbytes = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
deadline = time.monotonic() + 20
while True:
    try:
        s = socket.create_connection((addr, port), timeout=5); break
    except OSError:
        if time.monotonic() > deadline: raise
        time.sleep(0.1)
s.settimeout(60); h = hashlib.sha256(); n = 0
for i in range(mbytes * 16):
    b = hashlib.sha512(i.to_bytes(8, "little")).digest() * 1024  # 64 KiB, different for every i
    h.update(b); s.sendall(b); n += len(b)
s.shutdown(socket.SHUT_WR)
s.recv(1)
s.close()
print(h.hexdigest(), n, flush=True)
'''


def tcp_transfer(server_ns, client_ns, server_ip, mbytes=64, port=5299, hold_s=0.5, timeout=120):
    """Sends `mbytes` MiB from client_ns to server_ip:port (a server in server_ns). Returns
    {"sent": (sha256, bytes), "received": (sha256, bytes), "seconds": s}; raises AssertionError when either side
    failed or did not finish within `timeout`."""
    srv = subprocess.Popen(["ip", "netns", "exec", server_ns, "python3", "-c", _SERVER, str(port), str(hold_s)],
                           stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        t0 = time.monotonic()
        cli = subprocess.run(["ip", "netns", "exec", client_ns, "python3", "-c", _CLIENT, server_ip, str(port),
                              str(mbytes)], capture_output=True, text=True, timeout=timeout)
        out, err = srv.communicate(timeout=timeout)
        seconds = time.monotonic() - t0
    finally:
        if srv.poll() is None:
            srv.kill()
            srv.wait()
    if cli.returncode != 0 or srv.returncode != 0:
        raise AssertionError("transfer failed: client rc %s %s; server rc %s %s"
                             % (cli.returncode, cli.stderr[-1500:], srv.returncode, err[-1500:]))
    sent, received = cli.stdout.split(), out.split()
    return {"sent": (sent[0], int(sent[1])), "received": (received[0], int(received[1])), "seconds": seconds}
