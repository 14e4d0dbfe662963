#!/usr/bin/env python3
"""Tessera benchmark: starts a release-built local cluster (3 controllers,
4 data nodes, gateway) with scripts/cluster.sh, measures the machine's raw
limits and Tessera's figures in the same run, prints a table and writes
every figure to target/bench/results.json (flat keys, numbers).

    python3 bench/bench.py --quick   # under 2 minutes (make bench-quick)
    python3 bench/bench.py           # full, under 10 minutes (make bench)
    python3 bench/bench.py --plaintext   # the same with plaintext gRPC between
                                         # the services (what mutual TLS costs);
                                         # target/bench/results-plaintext.json
"""
import argparse
import errno
import http.client
import json
import mmap
import os
import random
import shutil
import signal
import socket
import statistics
import subprocess
import sys
import tempfile
import threading
import time

ROOT = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
OUT = os.path.join(ROOT, "target", "bench")
MIB = 1024 * 1024


ADMIN_PASSWORD = "bench-admin-password"
# Rounds of the read and metadata phases (median reported).
REPEATS = 3


# /proc's CPU times are in these.
CLOCK_TICKS_PER_S = os.sysconf("SC_CLK_TCK")

# Each cluster's services listen within [base, base + PORT_SPAN).
PORT_SPAN = 200

# The services' binaries and the roles the bench reports them under.
SERVICE_ROLES = {"tessera-gateway": "gateway", "tessera-controller": "controllers",
                 "tessera-datanode": "datanodes"}


def free_port_base():
    """A TESSERA_PORT_BASE whose ports (the gateway's HTTP on BASE itself,
    controllers on BASE+1..3, data nodes on BASE+101..104, see
    scripts/cluster.sh) are all free now. Bases stay below the kernel's
    ephemeral range (32768 on), where outgoing connections take their
    ports."""
    for _ in range(200):
        base = random.randrange(10000, 32000, PORT_SPAN)
        try:
            for offset in (0, 1, 2, 3, 101, 102, 103, 104):
                with socket.socket() as s:
                    s.bind(("127.0.0.1", base + offset))
            return base
        except OSError:
            continue
    raise SystemExit("no free range of ports for the cluster's services")


def poll(what, check, timeout=120.0, interval=0.1):
    deadline = time.time() + timeout
    while True:
        try:
            value = check()
            if value:
                return value
        except Exception:
            pass
        if time.time() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(interval)


# ---------------------------------------------------------------- raw limits
def fsync_write(path, size):
    block = os.urandom(4 * MIB)
    start = time.perf_counter()
    with open(path, "wb") as f:
        for _ in range(size // len(block)):
            f.write(block)
        f.flush()
        os.fsync(f.fileno())
    return size / MIB / (time.perf_counter() - start)


def fsync_dir(path):
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def machine_cpu_s(work):
    """Runs `work()` and returns (its result, the CPU seconds the whole
    machine was busy meanwhile, less this interpreter's own user time).
    The kernel's share of a disk write is not all in the writing process:
    block completions, writeback workers and (on a journaling filesystem)
    the journal thread do part of it, on the same cores as the cluster.
    Nothing else runs while the raw limits are measured."""
    def busy():
        ticks = list(map(int, open("/proc/stat").readline().split()[1:]))
        # user nice system idle iowait irq softirq steal ...: not idle, not iowait.
        return (sum(ticks) - ticks[3] - ticks[4]) / CLOCK_TICKS_PER_S
    busy_before, user_before = busy(), os.times().user
    result = work()
    return result, busy() - busy_before - (os.times().user - user_before)


def cpu_split(cluster, work):
    """Runs `work()` and returns (its result, the CPU seconds spent
    meanwhile: the whole machine's, each service role's and the bench's
    child processes' (curl))."""
    services_before = cluster.service_cpu_s()
    children_before = os.times()
    result, machine_s = machine_cpu_s(work)
    services_after, children_after = cluster.service_cpu_s(), os.times()
    split = {role: services_after[role] - before for role, before in services_before.items()}
    split["client"] = (children_after.children_user + children_after.children_system
                       - children_before.children_user - children_before.children_system)
    split["machine"] = machine_s
    return result, split


def record_cpu_split(r, phase, split, seconds, size, cores):
    """Where a large transfer's CPU went, per GiB moved, and how busy the
    cores were: the transfer's rate is cores x busy / machine CPU per GiB,
    so it tells a transfer held back by its own work (busy near 100) from
    one left waiting (busy well below)."""
    gib = size / (1 << 30)
    for role, cpu_s in split.items():
        r[f"{phase}_{role}_cpu_s_per_gib"] = cpu_s / gib
    r[f"{phase}_busy_pct"] = 100 * split["machine"] / seconds / cores


def transfer_floors(r, chunk_runs, cores):
    """The CPU per GiB a large transfer needs at least, both ends of each
    hop, from the cheapest of `chunk_runs` (`rpc_limits` on 4 MiB chunks),
    and what the cores could move at that cost: with the transport alone
    (`*_stack_*`) and with the disk and checksum work the spec asks
    beside it (`*_spec_*`), Tessera's own code costing nothing."""
    per_gib = 1024 / 4 / 1000  # 4 MiB calls per GiB, ms to s
    big_rpc = {k: min(run[k] for run in chunk_runs) for k in chunk_runs[0]}
    r["grpc_chunk_up_cpu_s_per_gib"] = big_rpc["grpc_upload_cpu_ms"] * per_gib
    r["grpc_chunk_down_cpu_s_per_gib"] = big_rpc["grpc_download_cpu_ms"] * per_gib
    r["http_chunk_post_cpu_s_per_gib"] = big_rpc["http_post_cpu_ms"] * per_gib
    r["http_chunk_get_cpu_s_per_gib"] = big_rpc["http_get_cpu_ms"] * per_gib
    page_cache_s_per_gib = 1024 / r["page_cache_read_mb_s"]
    # Download: a page-cache read, one gRPC hop, one HTTP hop.
    download_stack = page_cache_s_per_gib + r["grpc_chunk_down_cpu_s_per_gib"] + r["http_chunk_get_cpu_s_per_gib"]
    # Upload at RF 3: one HTTP hop, three gRPC hops, the BLAKE3 file checksum.
    upload_stack = r["http_chunk_post_cpu_s_per_gib"] + 3 * r["grpc_chunk_up_cpu_s_per_gib"] + r["blake3_s_per_gib"]
    r["download_stack_ceiling_mb_s"] = cores * 1024 / download_stack
    r["upload_stack_ceiling_mb_s"] = cores * 1024 / upload_stack
    # Beside the transport, a download's CRC32C on the data node's read and
    # on the gateway's arrival; an upload's client reading its file, three
    # durable replicas (machine CPU, measured just before) and the CRC32C
    # of the gateway and each replica.
    r["download_spec_floor_cpu_s_per_gib"] = download_stack + 2 * r["crc32c_s_per_gib"]
    r["upload_spec_floor_cpu_s_per_gib"] = (upload_stack + page_cache_s_per_gib + 4 * r["crc32c_s_per_gib"]
                                            + 3 * r["chunk_write_cpu_s_per_gib"])
    r["download_spec_ceiling_mb_s"] = cores * 1024 / r["download_spec_floor_cpu_s_per_gib"]
    r["upload_spec_ceiling_mb_s"] = cores * 1024 / r["upload_spec_floor_cpu_s_per_gib"]


def run_threads(threads, work):
    """Runs `work(t)` for t in 0..threads, all at once; returns the seconds
    until the last one finished."""
    workers = [threading.Thread(target=work, args=(t,)) for t in range(threads)]
    start = time.perf_counter()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    return time.perf_counter() - start


def fsync_small_files(directory, count, threads=16, size=64 * 1024):
    """Durable creations of new 64 KiB files, `threads` at a time, laid out
    as the spec lays out chunks (`<node>/<file_id>/<index>.chk`: a new
    directory per file): make the directory, create a temp file, write,
    fsync, rename, fsync the directory and its parent. The least a replica
    write of a small file costs on this disk. Returns (files per second,
    kernel CPU milliseconds per file: this process's system time, the
    interpreter's own user time left out; and the machine's CPU
    milliseconds per file, kernel threads included, see `machine_cpu_s`)."""
    data = os.urandom(size)
    per_thread = count // threads

    def work(t):
        node = os.path.join(directory, f"t{t}")
        os.makedirs(node, exist_ok=True)
        for i in range(per_thread):
            file_dir = os.path.join(node, str(i))
            os.mkdir(file_dir)
            path = os.path.join(file_dir, "0.chk")
            fd = os.open(path + ".tmp", os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o644)
            try:
                os.write(fd, data)
                os.fsync(fd)
            finally:
                os.close(fd)
            os.rename(path + ".tmp", path)
            fsync_dir(file_dir)
            fsync_dir(node)

    system_before = os.times().system
    elapsed, machine_s = machine_cpu_s(lambda: run_threads(threads, work))
    files = per_thread * threads
    kernel_ms = (os.times().system - system_before) * 1000 / files
    # The files stay until the run ends (see where `main` makes `work`).
    return files / elapsed, kernel_ms, machine_s * 1000 / files


def aligned_buffer(data):
    """A copy of `data` in a block-aligned buffer (an anonymous mapping is),
    as O_DIRECT wants."""
    buf = mmap.mmap(-1, len(data))
    buf[:] = data
    return buf


def write_direct(path, buf):
    """Creates `path` holding `buf` as a data node writes a large chunk:
    O_DIRECT (never in the page cache), then fsync."""
    flags = os.O_WRONLY | os.O_CREAT | os.O_EXCL
    try:
        fd = os.open(path, flags | os.O_DIRECT, 0o644)
    except OSError as e:
        if e.errno != errno.EINVAL:
            raise
        # A filesystem without O_DIRECT (tmpfs): the data node falls back
        # too. Linux creates the file before it checks the flag.
        if os.path.exists(path):
            os.unlink(path)
        fd = os.open(path, flags, 0o644)
    try:
        os.write(fd, buf)
        os.fsync(fd)
    finally:
        os.close(fd)


def chunk_writes(directory, files, threads=16, size=4 * MIB):
    """Durable writes of `files` new chunk files of 4 MiB, `threads` at a
    time, as data nodes write replicas (O_DIRECT, fsync): the rate the disk
    takes replicas at when many are written at once, as during an upload at
    RF 3 (three replica writes per chunk, several chunks in flight). The
    files stay in `directory`. Returns MB/s."""
    os.makedirs(directory)
    data = os.urandom(size)

    def fill(t):
        buf = aligned_buffer(data)
        for i in range(t, files, threads):
            write_direct(os.path.join(directory, str(i)), buf)

    return files * size / MIB / run_threads(threads, fill)


def disk_copy(directory, files, threads=16, size=4 * MIB):
    """What healing asks of the disk, alone: `files` chunk files of 4 MiB
    written with O_DIRECT and fsync'd (never in the page cache, as a data
    node writes them), then each read back cold and written to a new file
    the same way (temp name, fsync, rename, directory fsync), `threads` at
    a time. Returns copied MB/s."""
    src, dst = os.path.join(directory, "src"), os.path.join(directory, "dst")
    chunk_writes(src, files, threads, size)
    os.makedirs(dst)

    def copy(t):
        buf = aligned_buffer(bytes(size))
        for i in range(t, files, threads):
            with open(os.path.join(src, str(i)), "rb", buffering=0) as f:
                f.readinto(buf)
            tmp = os.path.join(dst, f".{i}.tmp")
            write_direct(tmp, buf)
            os.rename(tmp, os.path.join(dst, str(i)))
            fsync_dir(dst)

    elapsed = run_threads(threads, copy)
    # The files stay until the run ends (see where `main` makes `work`).
    return files * size / MIB / elapsed


def page_cache_read(path):
    size = os.path.getsize(path)
    with open(path, "rb") as f:  # warm
        while f.read(16 * MIB):
            pass
    start = time.perf_counter()
    with open(path, "rb") as f:
        while f.read(16 * MIB):
            pass
    return size / MIB / (time.perf_counter() - start)


def loopback(size):
    """One TCP stream between two processes (a child sends, we receive)."""
    server = socket.socket()
    server.bind(("127.0.0.1", 0))
    server.listen(1)
    port = server.getsockname()[1]
    sender = subprocess.Popen([sys.executable, "-c", (
        "import socket,sys\n"
        f"s=socket.create_connection(('127.0.0.1',{port}))\n"
        "b=b'x'*(4<<20)\n"
        f"n={size}//len(b)\n"
        "for _ in range(n): s.sendall(b)\n"
        "s.close()\n")])
    conn, _ = server.accept()
    buf = bytearray(4 * MIB)
    view = memoryview(buf)
    got = 0
    start = time.perf_counter()
    while True:
        n = conn.recv_into(view)
        if n == 0:
            break
        got += n
    elapsed = time.perf_counter() - start
    sender.wait()
    conn.close()
    server.close()
    return got / MIB / elapsed


# ------------------------------------------------------------------ cluster
class Cluster:
    def __init__(self, data, plaintext=False):
        self.base = free_port_base()
        self.port = self.base
        self.data = data
        # The default cluster (as `make run`) speaks mutual TLS between the
        # services; plaintext only for the comparison `--plaintext` asks for.
        self.plaintext = plaintext
        env = dict(os.environ, TESSERA_HTTP_PORT=str(self.port), TESSERA_PORT_BASE=str(self.base),
                   TESSERA_INSECURE="1" if plaintext else "0",
                   TESSERA_DATA_DIR=data, TESSERA_HEARTBEAT_INTERVAL_MS="500", TESSERA_DEAD_AFTER_MS="3000",
                   TESSERA_ADMIN_PASSWORD=ADMIN_PASSWORD, RUST_LOG=os.environ.get("BENCH_RUST_LOG", "warn"))
        # Kept for restarts: a controller restarted with other settings (say
        # the default 15 s until a silent node is dead) skews later figures.
        self.env = env
        os.makedirs(data, exist_ok=True)
        self.console = os.path.join(data, "cluster.out")
        with open(self.console, "wb") as console:
            self.proc = subprocess.Popen([os.path.join(ROOT, "scripts", "cluster.sh")], cwd=ROOT, env=env,
                                         stdout=console, stderr=subprocess.STDOUT, start_new_session=True)
        self.headers = {}
        try:
            poll("cluster ready", self.ready)
        except SystemExit as e:
            # The run directory goes with the bench: say here what went wrong.
            raise SystemExit(f"{e}\n{self.failure_report()}")
        # cluster.sh creates the admin once the cluster is ready.
        self.token = poll("admin sign-in", self.login)
        self.headers = {"Authorization": f"Bearer {self.token}"}

    def ready(self):
        if self.proc.poll() is not None:
            raise SystemExit(f"scripts/cluster.sh exited with {self.proc.returncode}")
        return self.get("/readyz")[0] == 200

    def failure_report(self):
        """The cluster script's output and the head and tail of every service log."""
        parts = []
        logs = os.path.join(self.data, "logs")
        names = sorted(os.listdir(logs)) if os.path.isdir(logs) else []
        for path in [self.console] + [os.path.join(logs, n) for n in names]:
            try:
                with open(path, errors="replace") as f:
                    text = f.read()
            except OSError:
                continue
            # A start-up error is at the top (a backtrace may follow it).
            if len(text) > 2000:
                text = text[:1000] + "\n[...]\n" + text[-1000:]
            parts.append(f"--- {os.path.relpath(path, self.data)}\n{text}")
        return "\n".join(parts)

    def login(self):
        c = self.conn()
        c.request("POST", "/api/auth/login", body=json.dumps({"username": "admin", "password": ADMIN_PASSWORD}),
                  headers={"Content-Type": "application/json"})
        r = c.getresponse()
        body = r.read()
        c.close()
        return json.loads(body)["token"] if r.status == 200 else None

    def conn(self):
        return http.client.HTTPConnection("127.0.0.1", self.port, timeout=120)

    def get(self, path):
        c = self.conn()
        c.request("GET", path, headers=self.headers)
        r = c.getresponse()
        body = r.read()
        c.close()
        return r.status, body

    def json(self, path):
        status, body = self.get(path)
        return json.loads(body) if status == 200 else None

    def pid_of(self, pattern):
        out = subprocess.run(["pgrep", "-f", "--", pattern], capture_output=True, text=True).stdout.split()
        return int(out[0]) if out else None

    def gateway_pid(self):
        return self.pid_of(f"tessera-gateway --listen 127.0.0.1:{self.port}")

    def service_cpu_s(self):
        """CPU seconds this cluster's processes have used so far, by role
        (see SERVICE_ROLES), from /proc; a process is this cluster's if it
        listens within the cluster's range of ports."""
        totals = dict.fromkeys(SERVICE_ROLES.values(), 0.0)
        for pid in filter(str.isdigit, os.listdir("/proc")):
            try:
                with open(f"/proc/{pid}/cmdline", "rb") as f:
                    args = f.read().decode(errors="replace").split("\0")
                with open(f"/proc/{pid}/stat") as f:
                    fields = f.read().rsplit(")", 1)[1].split()
            except OSError:
                continue  # ended meanwhile
            role = SERVICE_ROLES.get(os.path.basename(args[0]))
            if role is None or "--listen" not in args[:-1]:
                continue
            port = args[args.index("--listen") + 1].rpartition(":")[2]
            if port.isdigit() and self.base <= int(port) < self.base + PORT_SPAN:
                # utime + stime, in clock ticks.
                totals[role] += (int(fields[11]) + int(fields[12])) / CLOCK_TICKS_PER_S
        return totals

    def controller_pid(self, cid):
        return self.pid_of(f"tessera-controller --id {cid} --listen 127.0.0.1:{self.base + cid}")

    def restart_controller(self, cid):
        peers = ",".join(f"{i}=127.0.0.1:{self.base + i}" for i in (1, 2, 3))
        log = open(os.path.join(self.data, "logs", f"controller-{cid}.log"), "ab")
        subprocess.Popen([os.path.join(ROOT, "target", "release", "tessera-controller"), "--id", str(cid),
                          "--listen", f"127.0.0.1:{self.base + cid}", "--peers", peers,
                          "--data-dir", os.path.join(self.data, f"controller-{cid}")]
                         + (["--insecure"] if self.plaintext else ["--tls-dir", os.path.join(self.data, "tls")]),
                         env=self.env, stdout=log, stderr=log, start_new_session=True)

    def stop(self):
        try:
            os.killpg(self.proc.pid, signal.SIGTERM)
        except ProcessLookupError:
            pass
        try:
            self.proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            os.killpg(self.proc.pid, signal.SIGKILL)
        subprocess.run(["pkill", "-f", "--", f"--data-dir {self.data}/controller-"], check=False)


def curl_upload(cluster, path, name):
    start = time.perf_counter()
    out = subprocess.run(["curl", "-sS", "-X", "POST", "-T", path, "-H", "Content-Type: application/octet-stream",
                          "-H", f"Authorization: Bearer {cluster.token}",
                          f"http://127.0.0.1:{cluster.port}/api/files?name={name}"],
                         capture_output=True, check=True).stdout
    return json.loads(out), time.perf_counter() - start


def curl_download(cluster, file_id):
    start = time.perf_counter()
    subprocess.run(["curl", "-sS", "-o", "/dev/null", "-H", f"Authorization: Bearer {cluster.token}",
                    f"http://127.0.0.1:{cluster.port}/api/files/{file_id}/content"],
                   check=True)
    return time.perf_counter() - start


class RssWatch(threading.Thread):
    def __init__(self, pid):
        super().__init__(daemon=True)
        self.pid, self.peak, self.running = pid, 0, True

    def run(self):
        while self.running:
            try:
                with open(f"/proc/{self.pid}/status") as f:
                    for line in f:
                        if line.startswith("VmHWM:"):
                            self.peak = max(self.peak, int(line.split()[1]) // 1024)
            except OSError:
                return
            time.sleep(0.2)


def percentile(values, p):
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * p))] * 1000 if values else 0.0


BENCH_TOOL = os.path.join(ROOT, "target", "release", "tessera-bench")


def http_requests(cluster, count, clients, path, method="POST", body=None):
    """Runs `count` requests with `clients` keep-alive connections from the
    native load generator (`tessera-bench http`; curl used 0.13-0.16 ms of
    CPU per request, a Python client far more, on the two cores the cluster
    needs); request i goes to `path(i)`, a POST sends the file `body` (or
    nothing). Returns (per second, latencies in seconds, the generator's
    CPU seconds)."""
    with tempfile.NamedTemporaryFile("w", suffix=".paths", delete=False) as paths:
        for i in range(count):
            paths.write(path(i) + "\n")
    cmd = [BENCH_TOOL, "http", "--addr", f"127.0.0.1:{cluster.port}", "--token", cluster.token,
           "--clients", str(clients), "--count", str(count), "--method", method, "--paths", paths.name]
    if body is not None:
        cmd += ["--body", body]
    out = subprocess.run(cmd, capture_output=True, text=True)
    os.unlink(paths.name)
    if out.returncode != 0:
        raise SystemExit(f"tessera-bench http: exit {out.returncode}: {out.stderr[-300:]}")
    report = json.loads(out.stdout)
    if report["failed"] or report["requests"] != count:
        raise SystemExit(f"tessera-bench http: {report['requests']} of {count} answered, {report['failed']} failed "
                         f"(e.g. {report['failures'][:3]})")
    return count / report["elapsed_s"], report["latencies_s"], report["cpu_s"]


def rpc_limits(work, calls, payload=64 * 1024, concurrency=16, plaintext=False):
    """CPU milliseconds per gRPC call over mutual TLS (plaintext with
    `plaintext`, as `--plaintext` runs the cluster; empty; a chunk of
    `payload` bytes down; one up) and per HTTP/1.1 request (a GET and a
    POST of `payload`), both ends in one process answering from memory."""
    out = subprocess.run([BENCH_TOOL, "rpc", "--scratch", tempfile.mkdtemp(dir=work, prefix="rpc-probe-"),
                          "--calls", str(calls), "--concurrency", str(concurrency),
                          "--payload-bytes", str(payload)] + (["--plaintext"] if plaintext else []),
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def listed_ids(cluster, prefix):
    """The ids of every file whose name contains `prefix`, page by page."""
    ids, cursor = [], ""
    while True:
        page = cluster.json(f"/api/files?limit=1000&q={prefix}" + (f"&cursor={cursor}" if cursor else ""))
        ids += [f["id"] for f in page["files"]]
        cursor = page.get("next_cursor")
        if not cursor:
            return ids


def pooled(r, key, rounds):
    """Records the median rate of `rounds` (http_requests results) as
    `key`, the slowest and fastest as `key`_min and _max; returns every
    latency and the load generator's CPU in all."""
    rates = [rate for rate, _, _ in rounds]
    r[key] = statistics.median(rates)
    r[key + "_min"], r[key + "_max"] = min(rates), max(rates)
    return [x for _, lat, _ in rounds for x in lat], sum(cpu for _, _, cpu in rounds)


def machine_switches():
    """Context switches on the whole machine since boot (`/proc/stat`)."""
    with open("/proc/stat") as f:
        for line in f:
            if line.startswith("ctxt "):
                return int(line.split()[1])
    raise SystemExit("/proc/stat has no ctxt line")


def wakeup_limits():
    """Two threads handing a byte back and forth, each asleep until the
    other answers (`tessera-bench wakeup`): wall time and the whole
    machine's CPU per round trip, i.e. per two wake-ups. What every hand-off
    between processes, or between a tokio worker and the blocking pool,
    costs at least on these cores."""
    def probe():
        out = subprocess.run([BENCH_TOOL, "wakeup"], capture_output=True, text=True, check=True)
        return json.loads(out.stdout)
    report, machine_s = machine_cpu_s(probe)
    return report["wall_us_per_round_trip"], machine_s * 1e6 / report["round_trips"]


def tls_limits(work):
    """One mutual-TLS stream over loopback with the cluster's certificates
    and rustls settings, the same in plaintext, and BLAKE3, SHA-256 and
    CRC32C on one core."""
    out = subprocess.run([BENCH_TOOL, "tls", "--scratch", os.path.join(work, "tls-probe")],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout)


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller sizes, under 2 minutes")
    parser.add_argument("--plaintext", action="store_true",
                        help="plaintext gRPC between the services instead of mutual TLS, to measure what "
                             "TLS costs; not the default cluster's figures (written to results-plaintext.json)")
    args = parser.parse_args()
    quick = args.quick
    results_path = os.path.join(OUT, "results-plaintext.json" if args.plaintext else "results.json")
    if args.plaintext:
        print("PLAINTEXT gRPC between the services (TESSERA_INSECURE=1): a comparison, not the default "
              "cluster's figures; the gRPC probes and the stack and spec ceilings run plaintext too, "
              "the bare TLS stream (tls_*, upload_ceiling_mb_s, download_ceiling_mb_s) still counts TLS")
    big = (256 if quick else 1024) * MIB
    small_files = 300 if quick else 2000
    meta_files = 1000 if quick else 5000
    kills = 2 if quick else 10
    os.makedirs(OUT, exist_ok=True)
    # The raw measurements' files are deleted with `work` when the run
    # ends, not after each measurement. On ext4 without a journal (this
    # machine's disk) a new inode skips every inode freed in the last minute
    # or more, each after a buffer lookup, so deleting thousands of files
    # just before a phase slows that phase's chunk creations: data nodes'
    # CPU per small upload 1.48 -> 1.88 ms right after 12,000 deletions,
    # 1.39 ms a minute and a half later.
    work = tempfile.mkdtemp(dir=OUT, prefix="run-")
    r = {}
    machine = describe_machine(r)
    print(f"machine: {machine}")
    try:
        raw = os.path.join(work, "raw.bin")
        r["fsync_write_mb_s"] = fsync_write(raw, big)
        r["page_cache_read_mb_s"] = page_cache_read(raw)
        r["loopback_mb_s"] = loopback(big)
        tls = tls_limits(work)
        r["tls_loopback_mb_s"], r["tls_cpu_s_per_gib"] = tls["tls_mb_s"], tls["tls_cpu_s_per_gib"]
        r["tcp_cpu_s_per_gib"], r["sha256_s_per_gib"] = tls["tcp_cpu_s_per_gib"], tls["sha256_s_per_gib"]
        r["crc32c_s_per_gib"], r["blake3_s_per_gib"] = tls["crc32c_s_per_gib"], tls["blake3_s_per_gib"]
        r["wakeup_round_trip_us"], r["wakeup_cpu_us"] = wakeup_limits()
        # What the machine's cores could move if Tessera's own code cost
        # nothing: the CPU each GiB needs on its way (both ends of each hop),
        # spread over every core. Download: a page-cache read, one mutual-TLS
        # hop (data node to gateway), one plain HTTP hop (gateway to client).
        # Upload at RF 3: one HTTP hop, three TLS hops, the BLAKE3 file checksum.
        cores = r["machine_cores"]  # as describe_machine recorded it
        r["download_ceiling_mb_s"] = cores * 1024 / (1024 / r["page_cache_read_mb_s"] + r["tls_cpu_s_per_gib"]
                                                     + r["tcp_cpu_s_per_gib"])
        r["upload_ceiling_mb_s"] = cores * 1024 / (r["tcp_cpu_s_per_gib"] + 3 * r["tls_cpu_s_per_gib"]
                                                   + r["blake3_s_per_gib"])
        os.remove(raw)
        r["fsync_small_files_s"], r["durable_file_kernel_ms"], r["durable_file_cpu_ms"] = fsync_small_files(
            os.path.join(work, "small-files"), small_files * 3)
        rpc = rpc_limits(work, small_files, plaintext=args.plaintext)
        r.update(rpc)
        # The same stack carrying whole 4 MiB chunks (in the services' 1 MiB
        # messages, four calls at once as a download's window):
        # CPU seconds per GiB of each hop of a large transfer, both ends.
        # The ceilings above count TLS over a bare socket; these count
        # tonic, h2 and hyper too, the transport the spec prescribes, still
        # with Tessera's own code (disk, checksums, metadata) costing nothing.
        # Each run moves 512 MiB per call kind in about a second, and this
        # host's speed drifts within minutes: two runs here and two more
        # just before the large transfers, the cheapest of the four kept
        # (a floor; a short run's first calls, buffers and windows, would
        # inflate it).
        chunk = 4 * MIB
        chunk_runs = [rpc_limits(work, 128, payload=chunk, concurrency=4, plaintext=args.plaintext) for _ in range(2)]
        # The same for small files: what the cores could serve if Tessera's
        # own code cost nothing, from the transport's measured CPU per call
        # (both ends) and the disk's kernel work per durable file. A
        # download: one HTTP request, one metadata call, one 64 KiB chunk
        # from a data node, read from the page cache. An upload at RF 3: one
        # HTTP request with the body, the plan and commit calls, three 64
        # KiB chunk uploads, three durable chunk files and the BLAKE3 file checksum.
        small_gib = 64 * 1024 / (1 << 30)
        r["small_download_ceiling_files_s"] = cores * 1000 / (
            rpc["http_get_cpu_ms"] + rpc["grpc_call_cpu_ms"] + rpc["grpc_download_cpu_ms"]
            + 1000 * small_gib * 1024 / r["page_cache_read_mb_s"])
        small_upload_calls_ms = rpc["http_post_cpu_ms"] + 2 * rpc["grpc_call_cpu_ms"] + 3 * rpc["grpc_upload_cpu_ms"]
        r["small_upload_ceiling_files_s"] = cores * 1000 / (
            small_upload_calls_ms + 3 * r["durable_file_kernel_ms"] + 1000 * small_gib * r["blake3_s_per_gib"])
        # What the spec itself asks of the machine per upload, still with
        # Tessera's own code (placement, the Raft log, the pipeline) costing
        # nothing: as above, but each durable chunk file at the CPU it costs
        # the whole machine (block completions and kernel threads included,
        # not only the writing process's system time), and the CRC32C the
        # gateway and each replica compute.
        r["small_upload_spec_ceiling_files_s"] = cores * 1000 / (
            small_upload_calls_ms + 3 * r["durable_file_cpu_ms"]
            + 1000 * small_gib * (r["blake3_s_per_gib"] + 4 * r["crc32c_s_per_gib"]))

        cluster = Cluster(os.path.join(work, "data"), plaintext=args.plaintext)
        try:
            src = os.path.join(work, "big.bin")
            with open(src, "wb") as f:
                block = os.urandom(16 * MIB)
                for _ in range(big // len(block)):
                    f.write(block)
            # The disk's rate at taking replicas, measured just before the
            # upload (this virtual disk's speed drifts within minutes).
            r["chunk_write_mb_s"], chunk_write_s = machine_cpu_s(
                lambda: chunk_writes(os.path.join(work, "chunk-writes"), big // (4 * MIB)))
            r["chunk_write_cpu_s_per_gib"] = chunk_write_s * (1 << 30) / big
            # The files stay until the run ends (see where `main` makes `work`).
            chunk_runs += [rpc_limits(work, 128, payload=chunk, concurrency=4, plaintext=args.plaintext)
                           for _ in range(2)]
            transfer_floors(r, chunk_runs, cores)
            settle()
            rss = RssWatch(cluster.gateway_pid())
            rss.start()
            (file, up_s), up_cpu = cpu_split(cluster, lambda: curl_upload(cluster, src, "big.bin"))
            r["upload_mb_s"] = big / MIB / up_s
            record_cpu_split(r, "upload", up_cpu, up_s, big, cores)
            r["upload_ratio"] = r["upload_mb_s"] / (r["fsync_write_mb_s"] / 3)
            # The figure is for page-cache warm data: large chunks are written
            # with O_DIRECT (not cached) and each read picks a replica at
            # random, so read every replica's file once before timing.
            warm_replicas(cluster.data, file["id"])
            down_s, down_cpu = min((cpu_split(cluster, lambda: curl_download(cluster, file["id"])) for _ in range(2)),
                                   key=lambda run: run[0])
            r["download_mb_s"] = big / MIB / down_s
            record_cpu_split(r, "download", down_cpu, down_s, big, cores)
            r["download_ratio"] = r["download_mb_s"] / r["loopback_mb_s"]
            rss.running = False
            r["gateway_peak_rss_mib"] = rss.peak

            payload = os.path.join(work, "small.bin")
            with open(payload, "wb") as f:
                f.write(os.urandom(64 * 1024))
            settle()
            switches_before = machine_switches()
            (rate, lat, client_cpu), split = cpu_split(cluster, lambda: http_requests(
                cluster, small_files, 16, lambda i: f"/api/files?name=small-{i}.bin", body=payload))
            switches_after = machine_switches()
            r["small_upload_files_s"], r["small_upload_p50_ms"], r["small_upload_p99_ms"] = rate, percentile(lat, .5), percentile(lat, .99)
            # Where an upload's CPU goes, per role and over the whole machine
            # (kernel threads and block completions included), and how busy
            # the cores were: the figure is CPU-bound when that is near 100.
            for role in SERVICE_ROLES.values():
                r[f"small_upload_{role}_cpu_ms"] = split[role] * 1000 / small_files
            r["small_upload_machine_cpu_ms"] = split["machine"] * 1000 / small_files
            r["small_upload_busy_pct"] = 100 * split["machine"] * rate / small_files / cores
            # Hand-offs between threads, all processes together: an upload
            # crosses the load generator, the gateway, the controllers and
            # three data nodes, and waits on nine fsyncs.
            r["small_upload_switches"] = (switches_after - switches_before) / small_files
            # The load generator's own CPU per request: it shares the cores.
            r["small_upload_client_cpu_ms"] = client_cpu * 1000 / small_files
            # Each file is three durable replica files.
            r["small_upload_ratio"] = rate / (r["fsync_small_files_s"] / 3)
            ids = listed_ids(cluster, "small-")
            if len(ids) != small_files:
                raise SystemExit(f"listed {len(ids)} small files, uploaded {small_files}")
            # Reads change nothing, so they are repeated: one phase lasts
            # about a second, and on this shared virtual machine a second
            # can lose a fifth of its CPU to steal. The median is the figure;
            # the slowest and fastest round are reported beside it.
            rounds = []
            for k in range(REPEATS):
                settle()
                rounds.append(http_requests(cluster, small_files, 16,
                                            lambda i: f"/api/files/{ids[i]}/content", method="GET"))
            lat, client_cpu = pooled(r, "small_download_files_s", rounds)
            r["small_download_p50_ms"], r["small_download_p99_ms"] = percentile(lat, .5), percentile(lat, .99)
            r["small_download_client_cpu_ms"] = client_cpu * 1000 / len(lat)

            # Empty files hold no chunks, so the rounds add nothing the
            # healing below has to copy.
            rounds = []
            for k in range(REPEATS):
                settle()
                rounds.append(http_requests(cluster, meta_files, 32, lambda i: f"/api/files?name=empty-{k}-{i}"))
            lat, client_cpu = pooled(r, "meta_commits_s", rounds)
            r["meta_p50_ms"], r["meta_p99_ms"] = percentile(lat, .5), percentile(lat, .99)
            r["meta_max_ms"] = max(lat) * 1000
            r["meta_client_cpu_ms"] = client_cpu * 1000 / len(lat)

            times = []
            for k in range(kills):
                leader = poll("leader", lambda: (cluster.json("/admin/summary") or {}).get("leader"))
                pid = cluster.controller_pid(leader)
                os.kill(pid, signal.SIGKILL)
                killed = time.perf_counter()
                poll("commit after a leader kill", lambda: cluster.conn() and
                     post_empty(cluster, f"failover-{k}") == 201, timeout=30)
                times.append(time.perf_counter() - killed)
                cluster.restart_controller(leader)
                poll("controller back", lambda: any(c["id"] == leader and c["role"] == "follower"
                                                    for c in (cluster.json("/admin/summary") or {}).get("controllers", [])))
            r["failover_median_s"] = statistics.median(times)
            r["failover_worst_s"] = max(times)

            if not quick:
                # A second large file, so the victim holds at least 1 GiB of replicas.
                curl_upload(cluster, src, "big-2.bin")
                # The node holding the most bytes (not the most chunks: small
                # files can crowd a node that holds fewer large chunks).
                held = {n["node_id"]: dir_bytes(os.path.join(cluster.data, n["node_id"]))
                        for n in cluster.json("/admin/nodes")["nodes"]}
                victim = max(held, key=held.get)
                stored = held[victim]
                r["heal_victim_mib"] = stored / MIB
                victim_chunks = chunk_sizes(os.path.join(cluster.data, victim))
                settle()
                os.kill(cluster.pid_of(f"tessera-datanode --node-id {victim} "), signal.SIGKILL)
                start = time.perf_counter()
                poll("node dead", lambda: cluster.json("/admin/summary")["nodes"].get("dead", 0) >= 1, 60)
                declared_dead = time.perf_counter()
                # Each summary counts every chunk on the leader: a lighter poll
                # than the others, so the measuring does not slow the healing.
                # The CPU split starts once the victim is gone (a dead
                # process's CPU would leave the sums) and covers the copying.
                _, heal_cpu = cpu_split(cluster, lambda: poll(
                    "healed", lambda: cluster.json("/admin/summary")["chunks"]["under_replicated"] == 0, 600,
                    interval=0.25))
                healed = time.perf_counter()
                record_cpu_split(r, "heal_copy", heal_cpu, healed - declared_dead, stored, cores)
                r["heal_s"] = healed - start
                r["heal_mb_s"] = stored / MIB / r["heal_s"]
                # heal_s includes the wait until the node is declared dead
                # (TESSERA_DEAD_AFTER_MS, a setting); the copying alone:
                r["heal_detect_s"] = declared_dead - start
                r["heal_copy_mb_s"] = stored / MIB / (healed - declared_dead)
                heal_spec_ceiling(r, victim_chunks, stored, cores)
                # The disk's own speed at copying chunks, measured just after
                # the heal (this virtual disk's speed drifts within minutes).
                # Not before it: its 2 GiB of fsync'd writes in three seconds
                # left the disk slow for the heal that followed (heal_mb_s
                # 181-214 right after it, 239-253 without it or 30 s later).
                r["disk_copy_mb_s"] = disk_copy(os.path.join(work, "disk-copy"), 256)
        finally:
            cluster.stop()
    finally:
        shutil.rmtree(work, ignore_errors=True)

    if args.plaintext:
        r["plaintext_grpc"] = 1
    with open(results_path, "w") as f:
        json.dump({k: round(v, 3) for k, v in r.items()}, f, indent=2, sort_keys=True)
    limits = {"upload_mb_s": "fsync_write_mb_s / 3, chunk_write_mb_s / 3, upload_ceiling_mb_s, "
                             "upload_stack_ceiling_mb_s, upload_spec_ceiling_mb_s",
              "download_mb_s": "loopback_mb_s, download_ceiling_mb_s, download_stack_ceiling_mb_s, "
                               "download_spec_ceiling_mb_s",
              "small_upload_files_s": "fsync_small_files_s / 3, small_upload_ceiling_files_s, "
                                      "small_upload_spec_ceiling_files_s",
              "small_download_files_s": "small_download_ceiling_files_s",
              "upload_machine_cpu_s_per_gib": "upload_spec_floor_cpu_s_per_gib",
              "download_machine_cpu_s_per_gib": "download_spec_floor_cpu_s_per_gib",
              "heal_copy_mb_s": "fsync_write_mb_s, disk_copy_mb_s",
              "heal_mb_s": "heal_spec_ceiling_mb_s",
              "heal_copy_machine_cpu_s_per_gib": "heal_spec_floor_cpu_s_per_gib"}
    print(f"{'figure':<32} {'value':>12}")
    for k in sorted(r):
        print(f"{k:<32} {r[k]:>12.2f}  {('vs ' + limits[k]) if k in limits else ''}")
    print_targets(r, quick)
    print(f"\nwritten to {results_path} ({'quick' if quick else 'full'} mode"
          f"{', PLAINTEXT gRPC' if args.plaintext else ''}; {machine})")


# The targets for the default local cluster on a 2-core machine:
# (figure, at least / below, value). docs/performance.md explains each
# one missed.
TARGETS = [("upload_mb_s", ">=", 300), ("upload_ratio", ">=", 0.5), ("download_mb_s", ">=", 1000),
           ("small_upload_files_s", ">=", 1000), ("small_download_files_s", ">=", 3000),
           ("meta_commits_s", ">=", 3000), ("failover_median_s", "<", 1.5), ("failover_worst_s", "<", 3),
           ("gateway_peak_rss_mib", "<", 150), ("heal_mb_s", ">=", 200)]


# The most a figure could be in the same run if Tessera's own code cost
# nothing: the required work alone (transport both ends of every hop,
# checksums, durable replicas; see `transfer_floors` and the small-file
# phase). A target above its ceiling is out of this machine's reach in
# that run, whatever the code does.
CEILINGS = {"upload_mb_s": "upload_spec_ceiling_mb_s", "download_mb_s": "download_spec_ceiling_mb_s",
            "small_upload_files_s": "small_upload_spec_ceiling_files_s",
            "small_download_files_s": "small_download_ceiling_files_s", "heal_mb_s": "heal_spec_ceiling_mb_s"}


def target_verdict(r, key, op, want):
    """'yes', or why not: the machine (the run's ceiling for the figure is
    itself short of the target) or the code (the ceiling was above it)."""
    met = r[key] >= want if op == ">=" else r[key] < want
    if met:
        return "yes"
    ceiling = r.get(CEILINGS.get(key, ""))
    if ceiling is None:
        return "NO"
    if ceiling < want:
        return f"NO: ceiling {ceiling:.0f} below target (machine)"
    return f"NO: ceiling {ceiling:.0f}, the figure is {100 * r[key] / ceiling:.0f} % of it (Tessera's own cost)"


def print_targets(r, quick):
    """The figures that have a target, each beside it, met or not, and
    for a miss what the run's ceiling says of it. Quick mode moves smaller
    sizes, so its figures are smoke, not results."""
    print(f"\n{'target':<24} {'value':>10} {'wanted':>10}  met" + ("  (quick mode: smaller sizes)" if quick else ""))
    for key, op, want in TARGETS:
        if key not in r:
            continue  # healing runs in full mode only
        print(f"{key:<24} {r[key]:>10.2f} {op + ' ' + format(want, 'g'):>10}  {target_verdict(r, key, op, want)}")


def describe_machine(r):
    """The machine a run measured: its figures move with the host, so a
    run names its CPU and when the machine booted (two runs with the same
    boot time ran on the same virtual machine). Records the numbers in `r`."""
    model = "unknown CPU"
    with open("/proc/cpuinfo") as f:
        for line in f:
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    with open("/proc/meminfo") as f:
        mem_kib = next((int(line.split()[1]) for line in f if line.startswith("MemTotal:")), 0)
    with open("/proc/uptime") as f:
        booted = time.time() - float(f.read().split()[0])
    r["machine_cores"] = os.cpu_count() or 1
    r["machine_memory_gib"] = mem_kib / (1 << 20)
    r["machine_booted_at_s"] = round(booted)
    return (f"{r['machine_cores']} cores, {model}, {r['machine_memory_gib']:.1f} GiB, Linux {os.uname().release}, "
            f"booted {time.strftime('%Y-%m-%d %H:%M', time.gmtime(booted))} UTC")


def settle():
    """Flushes what the bench itself left unsynced (the 1 GiB source file,
    the services' logs) before a timed phase, so its writeback does not
    stall the phase's fsyncs."""
    os.sync()


def warm_replicas(data, file_id):
    """Reads every data node's chunk files of `file_id` into the page cache."""
    for node in os.listdir(data):
        chunks = os.path.join(data, node, file_id)
        if not os.path.isdir(chunks):
            continue
        for name in os.listdir(chunks):
            with open(os.path.join(chunks, name), "rb") as f:
                while f.read(16 * MIB):
                    pass


def chunk_sizes(path):
    """Sizes of the chunk files under `path` (a data node's replicas)."""
    return [os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files if f.endswith(".chk")]


def heal_spec_ceiling(r, sizes, stored, cores):
    """What the heal's required work allows, as the other spec ceilings:
    for every chunk the victim held, one copy through gRPC over the
    cluster's transport (both ends), its CRC32C checked on both, a durable
    replica on the target (4 MiB chunks priced by `chunk_write_cpu_s_per_gib`,
    small ones by `durable_file_cpu_ms`) and the controller's call to the
    target, spread over every core, after the same wait until the node is
    declared dead. Tessera's own work (the log's events, planning, the
    source's read from disk) costs nothing here."""
    large = sum(s for s in sizes if s >= MIB) / (1 << 30)
    small = [s for s in sizes if s < MIB]
    floor_s = (large * (r["grpc_chunk_down_cpu_s_per_gib"] + r["chunk_write_cpu_s_per_gib"])
               + len(small) * (r["grpc_download_cpu_ms"] + r["durable_file_cpu_ms"]) / 1000
               + sum(sizes) / (1 << 30) * 2 * r["crc32c_s_per_gib"]
               + len(sizes) * r["grpc_call_cpu_ms"] / 1000)
    r["heal_spec_floor_cpu_s_per_gib"] = floor_s / (stored / (1 << 30))
    r["heal_spec_ceiling_mb_s"] = stored / MIB / (r["heal_detect_s"] + floor_s / cores)


def dir_bytes(path):
    """Bytes of the files under `path` (a data node's replicas)."""
    return sum(os.path.getsize(os.path.join(d, f)) for d, _, files in os.walk(path) for f in files)


def post_empty(cluster, name):
    c = cluster.conn()
    try:
        c.request("POST", f"/api/files?name={name}", body=b"", headers=cluster.headers)
        resp = c.getresponse()
        resp.read()
        return resp.status
    finally:
        c.close()


if __name__ == "__main__":
    main()
