"""Core promise: any number of reloads under continuous load, nothing refused, reset or dropped.

One test per server design; every reply names the pid that served it, so we can tell the generations
apart and check that the old ones are gone."""
import pytest

from conftest import free_port, group_alive, pid_alive, server_argv, wait_until

MODELS = ["iterative", "accept4", "threads", "prefork", "epoll", "python"]
RELOADS = 20


@pytest.mark.parametrize("model", MODELS)
def test_reloads_under_load_lose_nothing(model, launch, load):
    port = free_port()
    hr = launch(server_argv(model, port))
    hr.wait_ready(1)
    ld = load(port, threads=4)
    ld.wait_requests(20)
    for _ in range(RELOADS):
        old = max(hr.gen_pids)
        gen = hr.reload()
        # The old generation is gone (reaped, its whole process group), the new one answers.
        assert not group_alive(hr.gen_pids[old]), "gen %d still has processes" % old
        ld.wait_served_by(lambda p, g=gen: p == hr.gen_pids[g] or (model == "prefork" and p not in hr.gen_pids.values()
                                                                    and pid_alive(p)), count=10)
    ld.stop()
    assert ld.failures == [], "%d failed requests of %d: %s" % (len(ld.failures), ld.ok + len(ld.failures), ld.failures[:5])
    assert ld.ok > RELOADS * 5
    if model != "prefork":  # prefork replies come from workers, whose pids the launcher does not log
        served_gens = {g for g, p in hr.gen_pids.items() if p in ld.by_pid}
        assert len(served_gens) == RELOADS + 1, "replies from gens %s" % sorted(served_gens)
    assert hr.stop() == 0
    hr.assert_no_process_left()
