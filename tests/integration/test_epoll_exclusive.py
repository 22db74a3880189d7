"""EPOLLEXCLUSIVE across a reload (nginx's accept loop on Linux, accept_mutex off), at low traffic.

With EPOLLEXCLUSIVE the kernel wakes one exclusive waiter per new connection: the first epoll set on the
listener's wait queue with a thread blocked in it. The old generation's workers registered first, and
they stay blocked in epoll_wait() without a timeout when the drain begins. If one of them takes the wake-up
and its shim hides the event (it no longer accepts), nobody else is woken for that connection: it waits in
the queue until a later connection arrives. These tests send single requests one after another, each of
which must be answered within a bound, while the old generation drains held connections.

The fix: a set holding an exclusive shared registration also holds the generation's wake eventfd, hidden;
the launcher writes it before raising the drain flag, and the woken waiters re-register their shared
sockets without EPOLLEXCLUSIVE (a woken waiter has left the wait queue, so it takes no exclusive wake-up
meanwhile). Without it the first requests after the reload are not answered."""
import os
import signal
import socket
import time

from conftest import PYTHON, dual_stack_port, free_port, http_get, reply_pid, wait_accepted, wait_until
from test_real_servers import (NGINX, need, nginx_argv, nginx_config, quietly, tcp_udp_port,  # noqa: F401
                               workdir, workers_of)
from test_scale import forkhold, hold, in_group  # noqa: F401 (forkhold is a fixture)

HERE = os.path.dirname(os.path.abspath(__file__))
# A request the new generation answers takes milliseconds; one left in the queue is never answered.
REQUEST_TIMEOUT = 5.0


def test_exclusive_epoll_workers_pass_every_connection_on(launch, forkhold):  # noqa: F811
    port = free_port()
    hr = launch([forkhold, "--port", str(port), "--workers", "2", "--exclusive"], options=["--drain-timeout", "60"])
    gen1 = hr.wait_ready(1)
    hr.wait_for(r"forkhold: pid=%d 2 workers accepting" % gen1, since=0, timeout=30)
    # Connections held open keep gen 1 draining, its workers blocked in epoll_wait(-1) on the listener.
    held = hold(port, 2)
    since = hr.mark()
    hr.signal(signal.SIGHUP)
    gen2 = int(hr.wait_for(r"reload 1: gen 2 \(pid (\d+)\) serving; .* gen 1 draining", since=since,
                           timeout=30).group(1))
    hr.wait_for(r"forkhold: pid=%d 2 workers accepting" % gen2, since=since, timeout=30)
    # Low traffic: one request at a time. Each old worker takes one wake-up at most; without the fix the
    # first two requests are never answered (nothing comes after them to wake gen 2).
    for i in range(4):
        try:
            body = http_get(port, timeout=REQUEST_TIMEOUT)
        except socket.timeout:
            raise AssertionError("request %d after the reload not answered within %.0f s" % (i + 1, REQUEST_TIMEOUT))
        assert in_group(reply_pid(body), gen2), "request %d answered by %s" % (i + 1, body)
    for s, pid in held:  # the old generation still serves what it holds
        s.sendall(b"HOLD\n")
        assert s.recv(64) == b"pid=%d\n" % pid
        s.close()
    hr.wait_for(r"gen 1 gone$", since=since, timeout=20)
    assert "drain timeout" not in hr.log()
    hr.stop(30)
    hr.assert_no_process_left()


def test_nginx_answers_single_requests_while_the_old_generation_drains(workdir, launch):  # noqa: F811
    """The same with nginx itself (2 workers, accept_mutex off: EPOLLEXCLUSIVE on its listeners)."""
    need(NGINX, "nginx-light")
    port = dual_stack_port()
    conf = os.path.join(workdir, "nginx.conf")
    with open(conf, "w") as f:
        f.write(nginx_config(workdir, port))
    os.chmod(conf, 0o644)
    hr = launch(nginx_argv(workdir, conf), options=["--stop-signal", "QUIT", "--ready-timeout", "20",
                                                    "--drain-timeout", "60"], cwd=workdir)
    hr.wait_ready(1)
    old = workers_of(hr, 1, 2)
    wait_until(quietly(lambda: reply_pid(http_get(port, timeout=REQUEST_TIMEOUT)) in old), 10, "nginx to answer")
    # A request whose headers never end keeps gen 1 draining; its workers wait in epoll_wait().
    idle = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        idle.sendall(b"GET / HTTP/1.0\r\nHost: test\r\n")
        wait_accepted(idle, old)
        since = hr.mark()
        hr.signal(signal.SIGHUP)
        hr.wait_for(r"reload 1: gen 2 \(pid \d+\) serving; .* gen 1 draining 1 connection", since=since, timeout=30)
        new = workers_of(hr, 2, 2)
        for i in range(4):
            try:
                pid = reply_pid(http_get(port, timeout=REQUEST_TIMEOUT))
            except socket.timeout:
                raise AssertionError("request %d after the reload not answered within %.0f s" % (i + 1, REQUEST_TIMEOUT))
            assert pid in new, "request %d answered by %d, not by gen 2's workers %s" % (i + 1, pid, new)
    finally:
        idle.close()
    hr.wait_for(r"gen 1 gone$", since=since, timeout=20)
    hr.stop(30)
    hr.assert_no_process_left()


def test_exclusive_epoll_datagrams_reach_the_new_generation(launch):
    """The same for a UDP socket: a datagram the draining worker was woken for stays queued."""
    port = tcp_udp_port()
    hr = launch([PYTHON, os.path.join(HERE, "servers", "exclusive_udp.py"), "--port", str(port)],
                options=["--drain-timeout", "60"])
    gen1 = hr.wait_ready(1)
    hr.wait_for(r"exclusive_udp: pid=%d 2 workers waiting" % gen1, since=0, timeout=30)
    held = socket.create_connection(("127.0.0.1", port), timeout=10)
    try:
        held.sendall(b"HOLD\n")
        holder = reply_pid(held.recv(64).decode())
        assert in_group(holder, gen1)
        since = hr.mark()
        hr.signal(signal.SIGHUP)
        gen2 = int(hr.wait_for(r"reload 1: gen 2 \(pid (\d+)\) serving; .* gen 1 draining", since=since,
                               timeout=30).group(1))
        hr.wait_for(r"exclusive_udp: pid=%d 2 workers waiting" % gen2, since=since, timeout=30)
        for i in range(4):
            with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as u:
                u.settimeout(REQUEST_TIMEOUT)
                u.sendto(b"ping %d" % i, ("127.0.0.1", port))
                try:
                    pid = reply_pid(u.recv(64).decode())
                except socket.timeout:
                    raise AssertionError("datagram %d after the reload not answered within %.0f s" % (i + 1, REQUEST_TIMEOUT))
            assert in_group(pid, gen2), "datagram %d answered by %d" % (i + 1, pid)
        held.sendall(b"HOLD\n")  # the old generation still serves what it holds
        assert reply_pid(held.recv(64).decode()) == holder
    finally:
        held.close()
    hr.wait_for(r"gen 1 gone$", since=since, timeout=20)
    hr.stop(30)
    hr.assert_no_process_left()


EPOLLEXCLUSIVE = 1 << 28
HIDDEN_DATA = 0x687277616b655eed  # shim/epoll.cc kHiddenData: the wake eventfd's hidden registration


def epoll_registrations(pid):
    """(events, data) of every registration in the epoll sets process pid holds, read from the kernel."""
    out = []
    fd_dir = "/proc/%d/fd" % pid
    for name in os.listdir(fd_dir):
        try:
            if os.readlink(os.path.join(fd_dir, name)) != "anon_inode:[eventpoll]":
                continue
            with open("/proc/%d/fdinfo/%s" % (pid, name)) as f:
                for line in f:
                    parts = line.split()
                    if parts and parts[0] == "tfd:":
                        out.append((int(parts[3], 16), int(parts[5], 16)))
        except FileNotFoundError:
            continue
    return out


def exclusive_as_made(pid):
    """The worker's listener is registered with EPOLLEXCLUSIVE in the kernel, next to the hidden eventfd."""
    regs = epoll_registrations(pid)
    return (any(ev & EPOLLEXCLUSIVE and data != HIDDEN_DATA for ev, data in regs)
            and any(data == HIDDEN_DATA and not ev & EPOLLEXCLUSIVE for ev, data in regs))


def test_exclusive_registrations_come_back_after_a_called_off_drain(launch, forkhold, tmp_path):  # noqa: F811
    """A reload rolled back inside its window: the old generation stood by (its sets dropped the flag, then
    their listeners once a connection woke them), then accepts again with its registrations as the program made them, flag included
    (no lasting cost), and answers single requests."""
    port = free_port()
    gate = tmp_path / "gate"
    # Gen 2's check fails once the test has seen gen 1's workers stand by.
    check = 'test "$HOTRESTART_GENERATION" = 1 || { while [ ! -e %s ]; do sleep 0.01; done; false; }' % gate
    hr = launch([forkhold, "--port", str(port), "--workers", "2", "--exclusive"], options=["--ready-check", check])
    gen1 = hr.wait_ready(1)
    hr.wait_for(r"forkhold: pid=%d 2 workers accepting" % gen1, since=0, timeout=30)
    old = workers_of(hr, 1, 2)
    for pid in old:
        assert exclusive_as_made(pid), epoll_registrations(pid)
    since = hr.mark()
    hr.signal(signal.SIGHUP)
    hr.wait_for(r"gen 1 stops accepting", since=since, timeout=30)
    for pid in old:  # woken by the hidden registration: neither the flag nor the eventfd is left in the kernel
        wait_until(lambda: not any(ev & EPOLLEXCLUSIVE or data == HIDDEN_DATA for ev, data in epoll_registrations(pid)),
                   10, "worker %d to stand by" % pid)
    # Requests during the window: gen 2 answers them, and the old workers, woken too now that their sets
    # hold the listener without the flag, take it out of their sets. A worker sees a wake-up only if it
    # runs before gen 2 has accepted that connection (epoll re-checks a level-triggered listener before
    # returning, and goes back to sleep when the queue is empty again), so requests go on until both did.
    gen2 = hr.gen_pids[2]

    def listener_out(pid):
        return not any(data >> 32 == 1 for ev, data in epoll_registrations(pid))

    for _ in range(100):
        assert in_group(reply_pid(http_get(port, timeout=REQUEST_TIMEOUT)), gen2)
        deadline = time.monotonic() + 0.2
        while not all(listener_out(pid) for pid in old) and time.monotonic() < deadline:
            time.sleep(0.01)
        if all(listener_out(pid) for pid in old):
            break
    else:
        raise AssertionError("after 100 requests, workers %s still watch the listener"
                             % [pid for pid in old if not listener_out(pid)])
    gate.write_text("")
    hr.wait_for(r"gen 1 accepts again", since=since, timeout=30)
    for pid in old:  # each worker puts them back at its next wait (a standby wait is a 20 ms slice)
        wait_until(lambda: exclusive_as_made(pid), 10, "worker %d's exclusive registration back" % pid)
    for i in range(4):
        try:
            body = http_get(port, timeout=REQUEST_TIMEOUT)
        except socket.timeout:
            raise AssertionError("request %d after the rollback not answered within %.0f s" % (i + 1, REQUEST_TIMEOUT))
        assert in_group(reply_pid(body), gen1), "request %d answered by %s" % (i + 1, body)
    hr.stop(30)
    hr.assert_no_process_left()
