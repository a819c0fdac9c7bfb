"""A small fork server for the fuzz runner: imports tf2torch once, then for each request (a
JSON line on stdin) forks a child that runs the CLI's main() with a memory limit, stdout
and stderr redirected to files and TMPDIR pointed at the case's own directory; kills it at
the time limit; answers with its exit status (null: killed at the time limit).

A fresh interpreter per case would spend ~1 s importing; this process imports no
TensorFlow and starts no threads, so forking it is safe.
"""

from __future__ import annotations

import json
import os
import resource
import signal
import sys
import tempfile
import time
import traceback


def run_child(request: dict) -> None:
    """In the forked child: never returns."""
    for fd, path in ((1, request["stdout"]), (2, request["stderr"])):
        handle = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC)
        os.dup2(handle, fd)
        os.close(handle)
    resource.setrlimit(resource.RLIMIT_AS, (request["memory"], request["memory"]))
    os.environ["TMPDIR"] = request["tmpdir"]
    tempfile.tempdir = None
    code = 1
    try:
        from tf2torch import cli

        code = cli.main(request["argv"])
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else 1
    except BaseException:  # noqa: BLE001  (what the interpreter would do: print it, exit 1)
        traceback.print_exc()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


def serve() -> None:
    from tf2torch import api, cli  # noqa: F401  (imported once, shared by every child)

    for line in sys.stdin:
        request = json.loads(line)
        pid = os.fork()
        if pid == 0:
            run_child(request)
        deadline = time.monotonic() + request["time_limit"]
        code = None
        while True:
            done, status = os.waitpid(pid, os.WNOHANG)
            if done:
                code = os.waitstatus_to_exitcode(status)
                break
            if time.monotonic() > deadline:
                os.kill(pid, signal.SIGKILL)
                os.waitpid(pid, 0)
                break
            time.sleep(0.005)
        sys.stdout.write(json.dumps({"code": code}) + "\n")
        sys.stdout.flush()


if __name__ == "__main__":
    serve()
