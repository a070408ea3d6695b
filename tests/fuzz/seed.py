#!/usr/bin/env python3
"""Writes the fuzz targets' seed corpora (one directory per target) from the
shared Redfish mockups and a few hand-written inputs. Run by tests/fuzz.sh
into a cache directory outside the repository: no mockup data is committed.

usage: seed.py MOCKUPS_DIR OUT_DIR
"""

import json
import os
import struct
import sys

EXPAND = "$expand=.($levels=1)"
# A whole discovery of the largest real mockup reads ~238 KB; a seed per
# model up to this size, and a small one with the anchors only.
FULL_BYTES = 256 << 10


def resources(model_dir):
    """{"/redfish/v1/...": body bytes} for one mockup folder."""
    out = {}
    base = os.path.join(model_dir, "redfish")
    for d, _, files in os.walk(base):
        if "index.json" in files:
            rel = os.path.relpath(d, model_dir).replace(os.sep, "/")
            with open(os.path.join(d, "index.json"), "rb") as f:
                out["/" + rel] = f.read()
    return out


def supports_expand(root):
    q = (root or {}).get("ProtocolFeaturesSupported", {}).get("ExpandQuery", {})
    if not isinstance(q, dict):
        return False
    return (q.get("NoLinks") is True or q.get("ExpandAll") is True) and q.get("Levels") is True


def expanded(path, body, res):
    """A collection as `$expand=.($levels=1)` answers it, else None."""
    try:
        v = json.loads(body)
    except ValueError:
        return None
    members = v.get("Members") if isinstance(v, dict) else None
    if not isinstance(members, list):
        return None
    full = []
    for m in members:
        link = m.get("@odata.id") if isinstance(m, dict) else None
        b = res.get(link.rstrip("/")) if isinstance(link, str) else None
        try:
            full.append(json.loads(b) if b else m)
        except ValueError:
            full.append(m)
    v["Members"] = full
    return json.dumps(v, separators=(",", ":")).encode()


def record(path, body):
    return path.encode() + b"\n" + body


def inventory_seeds(mockups):
    seeds = {}
    for model in sorted(os.listdir(mockups)):
        d = os.path.join(mockups, model)
        if not os.path.isdir(os.path.join(d, "redfish")):
            continue
        res = resources(d)
        try:
            root = json.loads(res.get("/redfish/v1", b"null"))
        except ValueError:
            root = None
        expand = supports_expand(root if isinstance(root, dict) else None)
        # Shallow first: the root, the collections, their members, then
        # sub-resources, as the walk reaches them.
        order = sorted(res, key=lambda p: (p.count("/"), p))
        recs = []
        for p in order:
            recs.append(record(p, res[p]))
            if expand:
                e = expanded(p, res[p], res)
                if e is not None:
                    recs.append(record(p + "?" + EXPAND, e))
        core = [r for r, p in zip(recs, order) if p.count("/") <= 4]
        full, size = [], 0
        for r in recs:
            if size + len(r) > FULL_BYTES:
                break
            full.append(r)
            size += len(r) + 1
        seeds[model + "-core"] = b"\0".join(core)
        seeds[model + "-full"] = b"\0".join(full)
    return seeds


def json_seeds(mockups):
    seeds = {}
    for model in sorted(os.listdir(mockups)):
        d = os.path.join(mockups, model)
        if not os.path.isdir(os.path.join(d, "redfish")):
            continue
        for p, b in resources(d).items():
            name = (model + p).replace("/", "_").replace("%", "_").replace(":", "_")
            seeds[name] = b
    return seeds


def hostname_seeds(mockups):
    names = {
        "us3-cab10-ru17-idrac", "us3-cab10-ru17-18-idrac", "US3-CAB10-RU17",
        "idrac-F54P1G3", "ilo-MXQ302099S.example.net.", "fra1-r04-ru42-44-xcc",
        "site_a-rack_b-ru0", "a-b-ru101", "a-b-ru9-3", "x", "", " \t\n", "\u202e-x-y",
    }
    for model in sorted(os.listdir(mockups)):
        d = os.path.join(mockups, model)
        if not os.path.isdir(os.path.join(d, "redfish")):
            continue
        for b in resources(d).values():
            try:
                v = json.loads(b)
            except ValueError:
                continue
            if isinstance(v, dict):
                for k in ("HostName", "FQDN"):
                    if isinstance(v.get(k), str):
                        names.add(v[k])
    return {f"host{i}": n.encode() for i, n in enumerate(sorted(names))}


# struct bmc_lease_event (include/bmc_discovery.h), x86-64 layout.
LEASE = struct.Struct("<QqIIIHBBBBBB20s64s128s255s")


def lease(kind, mac, hostname, vendor, client_id, subnet=1, lie=None):
    lens = [len(mac), len(client_id), len(vendor), len(hostname)]
    if lie:
        lens = lie
    b = LEASE.pack(0, 1764547200, 0x0A000511, subnet, 3600, 1, kind, 0,
                   lens[0], lens[1], lens[2], lens[3], mac, client_id, vendor, hostname)
    return b + b"\0" * (-len(b) % 8)


def lease_seeds():
    mac = bytes.fromhex("b07b25d65182")
    return {
        "select": lease(1, mac, b"us3-cab10-ru17-idrac", b"iDRAC", b"\x01" + mac),
        "renew": lease(2, bytes.fromhex("141877aabbcc"), b"ilo-x", b"CPQRIB3", b""),
        "unknown-kind": lease(9, mac, b"", b"", b"", subnet=7),
        "lying-lengths": lease(1, mac, b"h" * 255, b"v" * 128, b"c" * 64, lie=[255, 255, 255, 255]),
        "no-mac": lease(1, b"", "h\u00e9\u202e".encode(), b"", b""),
        "long-hw": lease(1, b"\x02" * 20, b"bmc-", b"Supermicro", b""),
    }


def command_seeds():
    cmds = [
        {"command": "bmc-status"},
        {"command": "bmc-list"},
        {"command": "bmc-list", "arguments": {"state": "failed", "site": "us3", "limit": 10}},
        {"command": "bmc-get", "arguments": {"mac": "b0:7b:25:d6:51:82"}},
        {"command": "bmc-get", "arguments": {"ip": "10.0.5.17"}},
        {"command": "bmc-retry", "arguments": {"mac": "B0-7B-25-D6-51-82", "forget-tls-pin": True}},
        {"command": "bmc-discover", "arguments": {"ip": "10.0.5.17"}},
        {"command": "bmc-inventory", "arguments": {"site": "us3"}},
        {"command": "bmc-reconcile", "arguments": {}},
        {"command": "bmc-pool-report", "arguments": {"subnet-id": 1, "all": True}},
        {"command": "bmc-nope", "arguments": [1]},
    ]
    return {f"cmd{i}": json.dumps(c).encode() for i, c in enumerate(cmds)}


def credentials_seeds(repo):
    out = {}
    ex = os.path.join(repo, "kea-config", "bmc-credentials.example.json")
    if os.path.exists(ex):
        with open(ex, "rb") as f:
            out["example"] = f.read()
    out["full"] = json.dumps([
        {"username": "root", "password": "calvin", "vendor": "Dell", "oui": ["b0:7b:25", "14-18-77"]},
        {"username": "Administrator", "password_env": "HOME", "vendor": "hpe"},
        {"username": "admin", "password": "p\u00e4ss\n", "oui": ["0894ef"]},
    ]).encode()
    out["bad"] = b'[{"username": " ", "password": "x"}, {"user": 1}]'
    return out


def config_seeds(repo):
    out = {
        "minimal": b"{}",
        "full": json.dumps({
            "workers": 4, "queue-capacity": 1024, "subnet-ids": [1, 2],
            "hostname-pattern": "(?i)^(idrac|ilo)-", "vendor-class-patterns": ["^iDRAC"],
            "mac-ouis": ["b0:7b:25"], "state-file": "/tmp/x.sqlite", "retry-attempts": 3,
            "retry-backoff-s": 30, "retry-backoff-max-s": 600, "reconcile-interval-s": 300,
            "pool-alert-levels": {"warning": 80, "critical": 95},
            "redfish": {"credentials-file": "/nonexistent/creds.json", "tls-mode": "pin"},
            "netbox": {"url": "http://127.0.0.1:1", "token-file": "/nonexistent/token",
                       "placement-pattern": "^(?P<site>[a-z]+)-(?P<rack>[a-z0-9]+)"},
        }).encode(),
    }
    # The hook parameters of the shipped example configurations.
    d = os.path.join(repo, "kea-config")
    for name in sorted(os.listdir(d)) if os.path.isdir(d) else []:
        if not name.endswith(".conf"):
            continue
        try:
            with open(os.path.join(d, name)) as f:
                conf = json.loads("\n".join(l for l in f if not l.lstrip().startswith(("//", "#"))))
        except ValueError:
            continue
        for i, lib in enumerate(conf.get("Dhcp4", {}).get("hooks-libraries", [])):
            if "parameters" in lib:
                out[f"{name}-{i}"] = json.dumps(lib["parameters"]).encode()
    return out


def main():
    mockups, out = sys.argv[1], sys.argv[2]
    repo = os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
    corpora = {
        "redfish_inventory": inventory_seeds(mockups),
        "redfish_json": json_seeds(mockups),
        "placement": hostname_seeds(mockups),
        "lease_event": lease_seeds(),
        "command_args": command_seeds(),
        "credentials": credentials_seeds(repo),
        "hook_config": config_seeds(repo),
    }
    for target, seeds in corpora.items():
        d = os.path.join(out, target)
        os.makedirs(d, exist_ok=True)
        for name, data in seeds.items():
            with open(os.path.join(d, name), "wb") as f:
                f.write(data)
        print(f"seed: {target}: {len(seeds)} inputs in {d}")


if __name__ == "__main__":
    main()
