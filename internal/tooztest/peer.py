#!/usr/bin/python3
"""A tooz member driven over stdin/stdout, for baton's mixed-fleet tests.

Usage: peer.py URL MEMBER_ID

Each input line is a JSON object {"op": ..., args...}; each answer is one
JSON line: {"ok": true, "result": ...} or {"ok": false, "error": "...",
"type": "ExceptionClass"}. Strings are sent and received as UTF-8; member
and group ids are bytes in tooz and are encoded here. Capabilities travel
as JSON values and are stored by tooz with its own serialization.

The coordinator is started with its heartbeat thread, as tooz users do; a
background thread runs the watchers (leader election and join/leave
callbacks) every 50 ms, and the events seen are kept for the "events" op.
"""

import json
import sys
import threading
import time
import traceback

from tooz import coordination
from tooz import hashring
from tooz import partitioner

lock = threading.Lock()
events = []
elected = {}
locks = {}
parts = {}


def b(s):
    return s.encode("utf-8")


def s(v):
    if isinstance(v, bytes):
        return v.decode("utf-8")
    return v


def plain(v):
    """Converts tooz's values (bytes, sets, dicts) to JSON's."""
    if isinstance(v, bytes):
        try:
            return v.decode("utf-8")
        except UnicodeDecodeError:
            return list(v)
    if isinstance(v, (set, frozenset, list, tuple)):
        return sorted((plain(x) for x in v), key=str)
    if isinstance(v, dict):
        return {str(plain(k)): plain(x) for k, x in v.items()}
    return v


def caps_of(req):
    """Capabilities: "caps_bytes" (a string sent as bytes), "caps" (any
    JSON value) or none (tooz's default, b"")."""
    if "caps_bytes" in req:
        return b(req["caps_bytes"])
    return req.get("caps", b"")


def on_event(ev):
    with lock:
        events.append({"type": type(ev).__name__,
                       "group": s(getattr(ev, "group_id", None)),
                       "member": s(getattr(ev, "member_id", None))})


def on_elected(ev):
    with lock:
        elected[s(ev.group_id)] = True
    on_event(ev)


def watcher_loop(coord, stop):
    while not stop.is_set():
        try:
            coord.run_watchers(timeout=1)
        except Exception:  # a watcher failing must not end the peer
            traceback.print_exc(file=sys.stderr)
        stop.wait(0.05)


def handle(coord, req):
    op = req["op"]
    g = b(req["group"]) if "group" in req else None
    if op == "ping":
        return "pong"
    if op == "create_group":
        return coord.create_group(g).get()
    if op == "delete_group":
        return coord.delete_group(g).get()
    if op == "get_groups":
        return plain(coord.get_groups().get())
    if op == "join":
        caps = caps_of(req)
        return coord.join_group(g, capabilities=caps).get()
    if op == "join_create":
        caps = caps_of(req)
        return coord.join_group_create(g, capabilities=caps)
    if op == "leave":
        return coord.leave_group(g).get()
    if op == "members":
        return plain(coord.get_members(g).get())
    if op == "capabilities":
        return plain(coord.get_member_capabilities(g, b(req["member"])).get())
    if op == "update_capabilities":
        return coord.update_capabilities(g, caps_of(req)).get()
    if op == "heartbeat":
        return coord.heartbeat()
    if op == "watch_join":
        return coord.watch_join_group(g, on_event)
    if op == "watch_leave":
        return coord.watch_leave_group(g, on_event)
    if op == "events":
        with lock:
            out = list(events)
            events.clear()
        return out
    if op == "elect":
        coord.watch_elected_as_leader(g, on_elected)
        return None
    if op == "is_leader":
        with lock:
            return elected.get(req["group"], False)
    if op == "stand_down":
        with lock:
            elected.pop(req["group"], None)
        coord.unwatch_elected_as_leader(g, on_elected)
        coord.stand_down_group_leader(g)
        return None
    if op == "leader":
        return s(coord.get_leader(g).get())
    if op == "lock_acquire":
        name = req["name"]
        lk = locks.get(name) or coord.get_lock(b(name))
        locks[name] = lk
        blocking = req.get("blocking", False)
        if "timeout" in req:
            blocking = req["timeout"]
        return bool(lk.acquire(blocking=blocking))
    if op == "lock_release":
        return bool(locks[req["name"]].release())
    if op == "lock_heartbeat":
        return bool(locks[req["name"]].heartbeat())
    if op == "ring":
        ring = hashring.HashRing(req["nodes"],
                                 partitions=req.get("partitions", 32))
        return {k: plain(ring.get_nodes(b(k), replicas=req.get("replicas", 1)))
                for k in req["keys"]}
    if op == "partitioner_join":
        p = coord.join_partitioned_group(
            g, weight=req.get("weight", 1),
            partitions=req.get("partitions", 32))
        parts[req["group"]] = p
        return None
    if op == "partitioner_refresh":
        # The Partitioner follows joins and leaves through watchers run by
        # the watcher thread; this rebuilds it from the group as it is now.
        p = partitioner.Partitioner(coord, g,
                                    partitions=req.get("partitions", 32))
        parts[req["group"]] = p
        return None
    if op == "members_for":
        p = parts[req["group"]]
        return {k: plain(p.members_for_object(k, replicas=req.get("replicas", 1)))
                for k in req["objects"]}
    raise ValueError("unknown op %r" % op)


def patch_etcd3gw():
    """tooz 3.1's etcd3gw driver passes api_path to etcd3gw.client(), which
    Debian's python3-etcd3gw 2.0.0 does not take (only Etcd3Client does):
    without this the driver cannot start at all. Forwarding the argument
    runs tooz's own driver code unchanged."""
    import etcd3gw

    def client(host='localhost', port=2379, ca_cert=None, cert_key=None,
               cert_cert=None, timeout=None, protocol="http",
               api_path='/v3alpha/'):
        return etcd3gw.Etcd3Client(
            host=host, port=port, ca_cert=ca_cert, cert_key=cert_key,
            cert_cert=cert_cert, timeout=timeout, protocol=protocol,
            api_path=api_path)

    etcd3gw.client = client


def main():
    url, member = sys.argv[1], sys.argv[2]
    if url.startswith("etcd3+"):
        patch_etcd3gw()
    coord = coordination.get_coordinator(url, b(member))
    coord.start(start_heart=True)
    stop = threading.Event()
    t = threading.Thread(target=watcher_loop, args=(coord, stop), daemon=True)
    t.start()
    print(json.dumps({"ok": True, "result": "started"}), flush=True)
    for line in sys.stdin:
        line = line.strip()
        if not line:
            continue
        req = json.loads(line)
        if req["op"] == "stop":
            break
        try:
            res = handle(coord, req)
            out = {"ok": True, "result": plain(res)}
        except Exception as e:
            out = {"ok": False, "error": str(e), "type": type(e).__name__}
        print(json.dumps(out), flush=True)
    stop.set()
    t.join()
    coord.stop()
    print(json.dumps({"ok": True, "result": "stopped"}), flush=True)


if __name__ == "__main__":
    main()
