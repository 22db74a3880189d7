"""Small pieces shared by the model servers of test_hardcases.py (imported from the servers' own directory).

The servers stop the way careful servers do: SIGTERM/SIGINT are blocked in every thread and taken by the
main thread with sigwait(); it then lets the requests in flight finish (bounded) and exits 0."""
import os
import signal
import socket
import sys
import threading
import time

STOP_SIGNALS = {signal.SIGTERM, signal.SIGINT}


def log(prog, msg):
    sys.stderr.write("%s: %s\n" % (prog, msg))
    sys.stderr.flush()


def tcp_listener(port, host="127.0.0.1", backlog=128):
    """A listening TCP socket on host:port (SO_REUSEADDR, as servers set it)."""
    ls = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    ls.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    ls.bind((host, port))
    ls.listen(backlog)
    return ls


def block_stop_signals():
    """Call before starting any thread: the threads inherit the mask, the main thread sigwait()s."""
    signal.pthread_sigmask(signal.SIG_BLOCK, STOP_SIGNALS)


class Inflight:
    def __init__(self):
        self.n = 0
        self.cond = threading.Condition()

    def __enter__(self):
        with self.cond:
            self.n += 1

    def __exit__(self, *exc):
        with self.cond:
            self.n -= 1
            self.cond.notify_all()

    def wait_zero(self, timeout):
        deadline = time.monotonic() + timeout
        with self.cond:
            while self.n > 0 and time.monotonic() < deadline:
                self.cond.wait(0.05)


INFLIGHT = Inflight()


def wait_stop_and_exit(prog, before_exit=None, grace=5.0):
    sig = signal.sigwait(STOP_SIGNALS)
    INFLIGHT.wait_zero(grace)
    if before_exit:
        before_exit()
    log(prog, "pid=%d stopping on signal %d" % (os.getpid(), sig))
    os._exit(0)


def read_request(conn, timeout=10.0):
    conn.settimeout(timeout)
    data = b""
    while b"\r\n\r\n" not in data and len(data) < 65536:
        chunk = conn.recv(65536)
        if not chunk:
            break
        data += chunk
    return data


def http_reply(conn, body):
    if isinstance(body, str):
        body = body.encode()
    head = ("HTTP/1.0 200 OK\r\nContent-Type: text/plain\r\nConnection: close\r\n"
            "Content-Length: %d\r\n\r\n" % len(body)).encode()
    conn.sendall(head + body)


def serve_http_conn(conn, body_fn, close=True):
    """One request on conn; body_fn(request_bytes) -> body. Closes conn unless close=False."""
    with INFLIGHT:
        try:
            req = read_request(conn)
            if req:
                http_reply(conn, body_fn(req))
        except OSError:
            pass
        finally:
            if close:
                conn.close()


def accept_forever(prog, lsock, on_conn):
    """Blocking accept loop (run it in a thread). Transient errors are retried; anything else is fatal."""
    while True:
        try:
            conn, _ = lsock.accept()
        except (ConnectionAbortedError, InterruptedError):
            continue
        except OSError as e:
            log(prog, "fatal: accept: %s (pid %d)" % (e, os.getpid()))
            os._exit(2)
        on_conn(conn)


def start_thread(fn, *args):
    t = threading.Thread(target=fn, args=args, daemon=True)
    t.start()
    return t
