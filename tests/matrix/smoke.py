#!/usr/bin/env python3
"""The hook against this machine's Kea, end to end, on any Kea from 2.2 on.

tests/kea-matrix.sh runs it in each suite's root, in a network namespace of
its own, after `cargo build --release --lib --bins --examples`; it also runs
on a host (root, in `unshare -n`). It uses only real parts: kea-dhcp4 loading
target/release's hook, perfdhcp, the Redfish emulator serving the shared
mockups, kea-ctrl-agent (Kea 2.x) or kea-dhcp4's own HTTP control socket
(Kea 3.0 and later), and checks:

  - `kea-dhcp4 -t` passes the configuration and refuses a bad parameter,
    naming it; so does `kea-dhcp4 -T` (Kea >= 2.4);
  - 10 BMC leases and 5 others under perfdhcp: exactly 10 accepted and 5
    filtered out (bmc-status), the 10 emulated BMCs discovered;
  - `kea-dhcp4 -T` beside the running server with the same configuration
    passes and leaves it alone: its metrics port still served by it, its
    state file byte for byte the same, its threads as many;
  - every bmc-* command over the unix socket and over HTTP answers the same,
    with the documented result;
  - SIGTERM: Kea stops within 20 s and the hook logs its unload.

Kea 2.6.3 and later accept hook libraries, lease files, logs and unix
sockets only in their own directories; KEA_HOOKS_PATH, KEA_DHCP_DATA_DIR,
KEA_LOG_FILE_DIR and KEA_CONTROL_SOCKET_DIR point them at this run's
directories (Kea 2.2 ignores them).
"""

import base64
import hashlib
import json
import os
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request

REPO = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", ".."))
LIB = os.path.join(REPO, "target/release/libdhcp_bmc_discovery.so")
EMULATOR = os.path.join(REPO, "target/release/examples/redfish-emulator")
HTTP_PORT = 18080
METRICS = "127.0.0.1:19547"
BMCS, OTHERS = 10, 5
USER, PASSWORD = "matrix", base64.b64encode(os.urandom(12)).decode()

failures = []
procs = []


def say(msg):
    print(f"smoke: {msg}", flush=True)


def check(ok, what, detail=""):
    say(f"{'ok  ' if ok else 'FAIL'} {what}" + ("" if ok or not detail else f": {detail}"))
    if not ok:
        failures.append(what)
    return ok


def wait_for(what, limit, f):
    end = time.monotonic() + limit
    while time.monotonic() < end:
        v = f()
        if v:
            return v
        time.sleep(0.1)
    return None


def kea_version():
    out = subprocess.run(["kea-dhcp4", "-v"], capture_output=True, text=True).stdout.strip()
    return tuple(int(x) for x in re.findall(r"\d+", out)[:3]), out


def run(args, env, timeout=60):
    p = subprocess.run(args, env=env, capture_output=True, text=True, timeout=timeout)
    return p.returncode, p.stdout + p.stderr


def tail(text, n=15):
    return "\n" + "\n".join(text.splitlines()[-n:])


def config(w, version, parameters):
    sockets = [{"socket-type": "unix", "socket-name": f"{w}/sock/kea4.sock"}]
    if version >= (3, 0, 0):
        # Kea 3.0 answers commands over HTTP itself (kea-ctrl-agent is gone in 3.2).
        sockets.append({
            "socket-type": "http", "socket-address": "127.0.0.1", "socket-port": HTTP_PORT,
            "authentication": {"type": "basic", "realm": "kea-matrix",
                               "clients": [{"user": USER, "password": PASSWORD}]},
        })
    return {"Dhcp4": {
        "interfaces-config": {"interfaces": ["lo/127.0.0.1"], "dhcp-socket-type": "udp"},
        # Kea 2.x knows only the one "control-socket" map.
        **({"control-sockets": sockets} if version >= (3, 0, 0) else {"control-socket": sockets[0]}),
        "lease-database": {"type": "memfile", "persist": True,
                           "name": f"{w}/data/leases4.csv", "lfc-interval": 0},
        "multi-threading": {"enable-multi-threading": True, "thread-pool-size": 4,
                            "packet-queue-size": 64},
        "valid-lifetime": 3600,
        "hooks-libraries": [{"library": f"{w}/hooks/libdhcp_bmc_discovery.so",
                             "parameters": parameters}],
        "subnet4": [
            {"id": 1, "subnet": "127.1.0.0/16", "pools": [{"pool": "127.1.0.10 - 127.1.3.250"}],
             "relay": {"ip-addresses": ["127.0.0.2"]},
             "user-context": {"bmc-discovery": True, "site": "us3"}},
            {"id": 2, "subnet": "127.2.0.0/16", "pools": [{"pool": "127.2.0.10 - 127.2.3.250"}],
             "relay": {"ip-addresses": ["127.0.0.3"]}},
        ],
        "loggers": [{"name": "kea-dhcp4", "severity": "INFO",
                     "output_options": [{"output": f"{w}/log/kea-dhcp4.log"}]}],
    }}


def unix_command(path, command, arguments=None):
    request = {"command": command}
    if arguments is not None:
        request["arguments"] = arguments
    with socket.socket(socket.AF_UNIX) as s:
        s.settimeout(30)
        s.connect(path)
        s.sendall(json.dumps(request).encode())
        data = b""
        while True:
            chunk = s.recv(65536)
            if not chunk:
                break
            data += chunk
            try:
                return json.loads(data)
            except ValueError:
                continue
    return json.loads(data)


def http_command(version, command, arguments=None):
    request = {"command": command}
    if version < (3, 0, 0):
        request["service"] = ["dhcp4"]
    if arguments is not None:
        request["arguments"] = arguments
    req = urllib.request.Request(
        f"http://127.0.0.1:{HTTP_PORT}/", data=json.dumps(request).encode(),
        headers={"Content-Type": "application/json",
                 "Authorization": "Basic " + base64.b64encode(f"{USER}:{PASSWORD}".encode()).decode()})
    with urllib.request.urlopen(req, timeout=30) as r:
        answer = json.loads(r.read())
    # Both kea-ctrl-agent and kea-dhcp4's HTTP socket wrap the answer in a list.
    return answer[0] if isinstance(answer, list) else answer


def files_digest(paths):
    """File name -> sha256 of its bytes (None when absent)."""
    digest = {}
    for p in paths:
        try:
            with open(p, "rb") as f:
                digest[os.path.basename(p)] = hashlib.sha256(f.read()).hexdigest()[:12]
        except FileNotFoundError:
            digest[os.path.basename(p)] = None
    return digest


def metrics_page():
    """The hook's metrics page; None (and why, on stdout) when not served."""
    try:
        with urllib.request.urlopen(f"http://{METRICS}/metrics", timeout=5) as r:
            return r.read().decode()
    except OSError as e:
        say(f"GET http://{METRICS}/metrics: {e}")
        return None


def main():
    if os.geteuid() != 0:
        sys.exit("smoke: run as root (loopback addresses, port 67), in `unshare -n`")
    for f in (LIB, EMULATOR):
        if not os.path.exists(f):
            sys.exit(f"smoke: {f} missing: cargo build --release --lib --bins --examples first")
    version, version_text = kea_version()
    say(f"kea-dhcp4 {version_text}, hook {LIB}")
    w = tempfile.mkdtemp(prefix="kea-matrix-smoke.")
    for d in ("hooks", "data", "log", "sock", "inventory", "run"):
        os.makedirs(f"{w}/{d}")
    os.chmod(f"{w}/sock", 0o750)  # Kea 3.0 refuses a socket dir more open than 0750
    os.symlink(LIB, f"{w}/hooks/libdhcp_bmc_discovery.so")
    creds = f"{w}/bmc-credentials.json"
    with open(os.open(creds, os.O_WRONLY | os.O_CREAT, 0o600), "w") as f:
        json.dump([{"username": "root", "password_env": "BMC_PASSWORD"}], f)
    env = dict(os.environ, BMC_PASSWORD="calvin",
               KEA_HOOKS_PATH=f"{w}/hooks", KEA_DHCP_DATA_DIR=f"{w}/data",
               KEA_LOG_FILE_DIR=f"{w}/log", KEA_CONTROL_SOCKET_DIR=f"{w}/sock",
               KEA_PIDFILE_DIR=f"{w}/run", KEA_LOCKFILE_DIR=f"{w}/run")
    for addr in ("127.0.0.2", "127.0.0.3"):
        subprocess.run(["ip", "addr", "replace", f"{addr}/32", "dev", "lo"], check=True)

    params = {
        "workers": 4, "queue-capacity": 1024, "subnet-ids": [1],
        "state-file": f"{w}/data/bmc-state.sqlite",
        "ansible-inventory-dir": f"{w}/inventory",
        "metrics-listen": METRICS,
        # Nothing but this run's leases and commands writes the state file.
        "reconcile-interval-s": 0,
        "redfish": {"credentials-file": creds, "port": 8443, "tls-mode": "pin",
                    "tls-pin-file": f"{w}/data/tls-pins.json"},
    }
    good, bad = f"{w}/kea-dhcp4.conf", f"{w}/bad.conf"
    with open(good, "w") as f:
        json.dump(config(w, version, params), f, indent=2)
    with open(bad, "w") as f:
        json.dump(config(w, version, dict(params, workers=0)), f, indent=2)
    refusal = "parameter 'workers' must be 1..=256, got 0"

    # -t: only version() runs (and multi_threading_compatible()).
    rc, out = run(["kea-dhcp4", "-t", good], env)
    check(rc == 0, "kea-dhcp4 -t passes the configuration", tail(out))
    rc, out = run(["kea-dhcp4", "-t", bad], env)
    check(rc != 0 and refusal in out, f"kea-dhcp4 -t refuses workers 0 naming it", tail(out))
    if version >= (2, 4, 0):
        rc, out = run(["kea-dhcp4", "-T", bad], env)
        check(rc != 0 and refusal in out, "kea-dhcp4 -T refuses workers 0 naming it", tail(out))

    emu = subprocess.Popen([EMULATOR, "--port", "8443", "--all", "127.1.0.10"],
                           stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    procs.append(emu)
    served = [emu.stdout.readline() for _ in range(BMCS)]
    check(all(s.startswith("https://127.1.0.") for s in served),
          f"redfish-emulator serves {BMCS} BMCs from 127.1.0.10", "".join(served))

    kea_out = open(f"{w}/kea.out", "w")
    kea = subprocess.Popen(["kea-dhcp4", "-c", good], env=env, stdout=kea_out, stderr=subprocess.STDOUT)
    procs.append(kea)
    sock = f"{w}/sock/kea4.sock"

    def status():
        try:
            a = unix_command(sock, "bmc-status")
            return a["arguments"] if a.get("result") == 0 else None
        except (OSError, ValueError):
            return None

    def log():
        try:
            with open(f"{w}/log/kea-dhcp4.log") as f:
                return f.read()
        except OSError:
            return ""

    if not check(wait_for("Kea", 30, status) is not None, "kea-dhcp4 starts with the hook",
                 tail(log() + open(f"{w}/kea.out").read())):
        return

    base = "14:18:77:00:00:00"
    for relay, n, mac in (("127.0.0.2", BMCS, base), ("127.0.0.3", OTHERS, "02:00:00:00:00:00")):
        rc, out = run(["perfdhcp", "-4", "-l", relay, "--scenario", "avalanche", "-R", str(n),
                       "-b", f"mac={mac}", "127.0.0.1"], env, timeout=120)
        check(rc == 0, f"perfdhcp: {n} DORA exchanges via relay {relay}", tail(out))

    def settled():
        s = status()
        if s and s["bmcs"].get("discovered", 0) + s["bmcs"].get("failed", 0) + s["bmcs"].get("dead", 0) >= BMCS \
                and s["queue"]["in-flight"] == 0:
            return s
        return None

    s = wait_for("discoveries", 90, settled) or status() or {}
    ev = s.get("events", {})
    check(ev.get("accepted") == BMCS and ev.get("filtered-out") == OTHERS
          and ev.get("not-opted-in") == OTHERS and ev.get("dropped-queue-full") == 0,
          f"bmc-status: exactly {BMCS} accepted, {OTHERS} filtered out (not opted in), 0 dropped",
          json.dumps(ev))
    check(s.get("bmcs", {}).get("discovered") == BMCS,
          f"{BMCS} emulated BMCs discovered end to end", json.dumps(s.get("bmcs")) + tail(log()))
    discovered = len(re.findall(r"discovered BMC 14:18:77:00:00:0\d at 127\.1\.0\.1\d: ", log()))
    check(discovered == BMCS, f"Kea's log has {BMCS} 'discovered BMC' lines", f"{discovered}")
    # The page is rendered at Kea's timer tick, every second.
    start = time.monotonic()
    page = wait_for("metrics", 10, metrics_page)
    check(page is not None and "bmc_discovery_info{" in page,
          f"the running server serves its metrics at {METRICS} "
          f"({time.monotonic() - start:.1f} s after the discoveries)", str(page)[:200])

    # -T beside the running server, same configuration: it must pass and
    # leave the running hook's port, state and threads alone.
    if version >= (2, 4, 0):
        state = [f"{w}/data/bmc-state.sqlite" + x for x in ("", "-wal", "-shm")] + [f"{w}/data/tls-pins.json"]
        before = files_digest(state)
        time.sleep(1)
        if not check(files_digest(state) == before, "the running server, idle, leaves its state file alone",
                     f"{before} -> {files_digest(state)}"):
            before = files_digest(state)
        threads = len(os.listdir(f"/proc/{kea.pid}/task"))
        start = time.monotonic()
        try:
            rc, out = run(["kea-dhcp4", "-T", good], env, timeout=60)
        except subprocess.TimeoutExpired:
            rc, out = -1, "timed out after 60 s"
        took = time.monotonic() - start
        check(rc == 0, f"kea-dhcp4 -T beside the running server passes ({took:.1f} s)", tail(out))
        check("metrics-listen" not in out, "kea-dhcp4 -T does not bind the metrics port", tail(out))
        after = files_digest(state)
        check(after == before, "kea-dhcp4 -T leaves the state and pin files untouched",
              f"before {before}, after {after}")
        after = len(os.listdir(f"/proc/{kea.pid}/task"))
        check(after == threads, f"the running server keeps its {threads} threads", f"{after} after -T")
        page = metrics_page()
        check(page is not None and "bmc_discovery_info{" in page, "the running server still serves its metrics")
        s2 = status() or {}
        check(s2.get("events", {}).get("accepted") == BMCS, "the running server still answers bmc-status",
              json.dumps(s2.get("events")))

    # Every command, over the unix socket and over HTTP.
    agent = None
    if version < (3, 0, 0):
        agent_conf = f"{w}/kea-ctrl-agent.conf"
        with open(agent_conf, "w") as f:
            json.dump({"Control-agent": {
                "http-host": "127.0.0.1", "http-port": HTTP_PORT,
                "authentication": {"type": "basic", "realm": "kea-matrix",
                                   "clients": [{"user": USER, "password": PASSWORD}]},
                "control-sockets": {"dhcp4": {"socket-type": "unix", "socket-name": sock}},
                "loggers": [{"name": "kea-ctrl-agent", "severity": "WARN",
                             "output_options": [{"output": f"{w}/log/kea-ctrl-agent.log"}]}],
            }}, f)
        agent = subprocess.Popen(["kea-ctrl-agent", "-c", agent_conf], env=env,
                                 stdout=subprocess.DEVNULL, stderr=subprocess.STDOUT)
        procs.append(agent)
    via = "kea-ctrl-agent" if agent else "kea-dhcp4's HTTP control socket"

    def http_up():
        try:
            return http_command(version, "bmc-status").get("result") == 0
        except (OSError, ValueError):
            return False

    if check(wait_for("HTTP", 20, http_up), f"bmc-status over {via} (basic authentication)"):
        try:
            req = urllib.request.Request(f"http://127.0.0.1:{HTTP_PORT}/",
                                         data=b'{"command": "bmc-status", "service": ["dhcp4"]}',
                                         headers={"Content-Type": "application/json"})
            urllib.request.urlopen(req, timeout=10)
            check(False, f"{via} refuses a request without credentials")
        except urllib.error.HTTPError as e:
            check(e.code == 401, f"{via} refuses a request without credentials", f"HTTP {e.code}")
        ip = "127.1.0.10"
        cases = [
            ("bmc-status", None, 0, "workers"),
            ("bmc-status", {"x": 1}, 1, "takes no arguments"),
            ("bmc-list", {"state": "discovered"}, 0, ""),
            ("bmc-list", {"state": "lost"}, 1, "'state' must be one of"),
            ("bmc-get", {"ip": ip}, 0, "discovered"),
            ("bmc-get", {"mac": "zz"}, 1, "'mac' must be like"),
            ("bmc-get", {"mac": "02:00:00:00:00:99"}, 3, "no BMC"),
            ("bmc-retry", {"ip": ip}, 1, "not failed or dead"),
            ("bmc-retry", None, 1, "needs 'mac' or 'ip'"),
            ("bmc-discover", {"ip": ip}, 0, "queued"),
            ("bmc-discover", {"ip": "10.0.0.300"}, 1, "'ip' must be an IPv4"),
            ("bmc-reconcile", None, 0, "active leases"),
            ("bmc-reconcile", {"subnet": 1}, 1, "takes no arguments"),
            ("bmc-inventory", None, 0, "BMCs in"),
            ("bmc-inventory", {"site": 3}, 1, "'site' must be a string"),
            ("bmc-pool-report", None, 0, "fullest: subnet 1"),
            ("bmc-pool-report", {"subnet-id": 0}, 1, "'subnet-id' must be a subnet id"),
        ]
        for command, arguments, result, text in cases:
            answers = {}
            for how, ask in (("socket", lambda: unix_command(sock, command, arguments)),
                             (via, lambda: http_command(version, command, arguments))):
                # A bmc-discover while the last one is in a worker is refused.
                wait_for("an idle queue", 30, lambda: (status() or {}).get("queue", {}).get("in-flight") == 0)
                try:
                    answers[how] = ask()
                except (OSError, ValueError) as e:
                    answers[how] = {"error": str(e)}
            same = all(a.get("result") == result and text in str(a.get("text", "")) for a in answers.values())
            if command not in ("bmc-status", "bmc-discover"):
                same = same and answers["socket"].get("text") == answers[via].get("text")
            check(same, f"{command} {json.dumps(arguments) if arguments else ''}: result {result} "
                  f"over the socket and {via}", json.dumps(answers)[:600])
        rows = unix_command(sock, "bmc-list").get("arguments", {})
        check(len(rows.get("bmcs", rows) if isinstance(rows, dict) else rows) >= BMCS,
              f"bmc-list lists the {BMCS} BMCs", json.dumps(rows)[:300])

    kea.send_signal(signal.SIGTERM)
    try:
        rc = kea.wait(timeout=20)
        check(rc == 0, "kea-dhcp4 stops on SIGTERM within 20 s", f"exit {rc}")
    except subprocess.TimeoutExpired:
        check(False, "kea-dhcp4 stops on SIGTERM within 20 s")
    check("unloaded" in log(), "the hook logs its unload", tail(log()))


if __name__ == "__main__":
    try:
        main()
    finally:
        for p in reversed(procs):
            if p.poll() is None:
                p.kill()
                p.wait()
    if failures:
        say(f"FAIL: {len(failures)} check(s) failed: {'; '.join(failures)}")
        sys.exit(1)
    say("ok")
