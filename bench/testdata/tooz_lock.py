"""Uncontended tooz lock acquire+release loop, driven over stdin.

Usage: python3 tooz_lock.py URL LOCK_NAME

Connects with tooz.coordination.get_coordinator(URL, member).start(), then
prints "ready" and serves commands, one a line, on stdin:

  run SECONDS   acquire (non-blocking) and release the lock repeatedly for
                SECONDS; print "OPS ELAPSED_SECONDS"
  quit          stop the coordinator and exit

Any failure is printed as "error MESSAGE" and ends the process with
status 1. Run with the system interpreter that sees Debian's tooz.
"""

import sys
import time
import uuid

from tooz import coordination


def main():
    url, name = sys.argv[1], sys.argv[2]
    member = ("bench-" + uuid.uuid4().hex[:12]).encode()
    coord = coordination.get_coordinator(url, member)
    coord.start()
    try:
        lock = coord.get_lock(name.encode())
        print("ready", flush=True)
        for line in sys.stdin:
            words = line.split()
            if not words:
                continue
            if words[0] == "quit":
                break
            if words[0] != "run" or len(words) != 2:
                raise ValueError("bad command %r" % line)
            seconds = float(words[1])
            ops = 0
            start = time.perf_counter()
            deadline = start + seconds
            now = start
            while now < deadline:
                if not lock.acquire(blocking=False):
                    raise RuntimeError("uncontended acquire failed")
                lock.release()
                ops += 1
                now = time.perf_counter()
            print("%d %.9f" % (ops, now - start), flush=True)
    finally:
        coord.stop()


if __name__ == "__main__":
    try:
        main()
    except Exception as e:  # report, then fail
        print("error %s: %s" % (type(e).__name__, e), flush=True)
        sys.exit(1)
