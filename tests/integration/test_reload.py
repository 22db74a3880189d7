"""Core promise: any number of reloads under continuous load, nothing refused, reset or dropped.

One test per server design; every reply names the pid that served it, so we can tell the generations
apart and check that the old ones are gone. Written with the project's pytest plugin (python/hotrestart),
as a user would write it."""
import pytest

from conftest import group_alive, pid_alive, server_argv
from hotrestart import assert_no_failures, http_get, load, reply_pid

MODELS = ["iterative", "accept4", "threads", "prefork", "epoll", "python"]
RELOADS = 20


@pytest.mark.parametrize("model", MODELS)
def test_reloads_under_load_lose_nothing(model, hotrestart_launch, hotrestart_port):
    port = hotrestart_port
    srv = hotrestart_launch(server_argv(model, port), rollback_window=0.1)
    with load(lambda: reply_pid(http_get(port)), clients=4) as ld:
        ld.wait(20)
        for _ in range(RELOADS):
            old = max(srv.gen_pids)
            rep = srv.reload()  # returns once the old generation has exited
            gen = rep["generation"]
            assert rep["outcome"] == "ok" and rep["previous_generation"] == old, rep
            # The old generation is gone (reaped, its whole process group), the new one answers.
            assert not group_alive(srv.gen_pids[old]), "gen %d still has processes" % old
            ld.wait_for(lambda p, g=gen: srv.generation_of(p) == g, count=10)
    assert_no_failures(ld)
    assert ld.ok > RELOADS * 5
    if model != "prefork":  # prefork replies come from workers, which are gone with their generation
        served_gens = {srv.generation_of(p) for p in ld.values} - {None}
        assert len(served_gens) == RELOADS + 1, "replies from gens %s" % sorted(served_gens)
    assert srv.stop() == 0
    for gen, pid in srv.gen_pids.items():
        assert not pid_alive(pid) and not group_alive(pid), "gen %d still runs" % gen
