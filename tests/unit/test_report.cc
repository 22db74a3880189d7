// Unit tests for launcher/report.cc: reload and status as text and JSON, the interface a deploy script reads.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

#include <string.h>
#include <string>

#include "report.h"

using namespace hr;

namespace {

bool has(const std::string &s, const char *part) { return s.find(part) != std::string::npos; }

ReloadReport ok_report() {
    ReloadReport r;
    r.number = 7;
    r.outcome = "ok";
    r.generation = 8;
    r.pid = 4242;
    r.previous_generation = 7;
    r.started_at_ms = 1795000000123LL; // 2026-11-18T11:06:40.123Z
    r.ready_ms = 12;
    r.drained_connections = 3;
    return r;
}

void test_text_ok_while_draining(void **) {
    ReloadReport r = ok_report();
    assert_string_equal(reload_text(r).c_str(), "reload 7: gen 8 (pid 4242) serving; ready in 12 ms; gen 7 draining 3 connections");
    r.drained_connections = 1;
    assert_true(has(reload_text(r), "gen 7 draining 1 connection") && !has(reload_text(r), "connections"));
}

void test_text_ok_drained(void **) {
    ReloadReport r = ok_report();
    r.drain_ms = 840;
    r.stopped_by = "SIGQUIT";
    assert_string_equal(reload_text(r).c_str(),
                        "reload 7: gen 8 (pid 4242) serving; ready in 12 ms; gen 7 drained 3 connections in 0.84 s, "
                        "stopped by SIGQUIT");
    assert_string_equal(drain_text(r).c_str(), "reload 7: gen 7 drained 3 connections in 0.84 s, stopped by SIGQUIT");
    r.killed = true;
    assert_true(has(drain_text(r), ", killed with SIGKILL"));
}

void test_text_rolled_back_and_aborted(void **) {
    ReloadReport r = ok_report();
    r.outcome = "rolled_back";
    r.reason = "exited with status 1 before it was ready";
    assert_string_equal(reload_text(r).c_str(),
                        "reload 7 failed: gen 8 exited with status 1 before it was ready; rolled back, gen 7 keeps serving");
    ReloadReport a;
    a.outcome = "aborted";
    a.reason = "the launcher is stopping";
    assert_string_equal(reload_text(a).c_str(), "reload aborted: the launcher is stopping");
}

// A reason comes partly from the program (paths, names): it can never break the line or the JSON.
void test_escaping(void **) {
    ReloadReport r = ok_report();
    r.outcome = "rolled_back";
    r.reason = "bad \"name\"\n2026-01-01T00:00:00.000Z hotrestart[1]: forged\\\x01";
    std::string t = reload_text(r);
    assert_false(has(t, "\n"));
    assert_true(has(t, "\\x0a2026") && has(t, "\\x5c") && has(t, "\\x01"));
    std::string j = reload_json(r);
    assert_false(has(j, "\n"));
    assert_true(has(j, "\"reason\":\"bad \\\"name\\\"\\n2026"));
    assert_true(has(j, "forged\\\\\\u0001\""));
    assert_string_equal(escape_text("plain [::1]:80").c_str(), "plain [::1]:80");
}

void test_json_keys(void **) {
    ReloadReport r = ok_report();
    std::string j = reload_json(r);
    for (const char *k : {"\"outcome\":\"ok\"", "\"reload\":7", "\"generation\":8", "\"pid\":4242",
                          "\"previous_generation\":7", "\"ready_ms\":12", "\"reason\":null", "\"started_at\":\"",
                          "\"drained_connections\":3", "\"drain_ms\":null", "\"killed\":null"})
        if (!has(j, k)) fail_msg("%s not in %s", k, j.c_str());
    assert_true(j.front() == '{' && j.back() == '}');
    r.drain_ms = 5;
    r.killed = true;
    r.stopped_by = "SIGTERM";
    j = reload_json(r);
    assert_true(has(j, "\"drain_ms\":5") && has(j, "\"killed\":true") && has(j, "\"stopped_by\":\"SIGTERM\""));
}

void test_rfc3339(void **) {
    assert_string_equal(rfc3339(0).c_str(), "1970-01-01T00:00:00.000Z");
    assert_string_equal(rfc3339(1795000000123LL).c_str(), "2026-11-18T11:06:40.123Z");
}

void test_status(void **) {
    StatusReport s;
    s.launcher_pid = 10;
    s.program = {"/usr/sbin/nginx", "-g", "daemon off;"};
    s.state = "running";
    s.has_serving = true;
    s.serving.generation = 3;
    s.serving.pid = 30;
    s.serving.state = "serving";
    s.serving.connections = 2;
    GenStatus d;
    d.generation = 2;
    d.pid = 20;
    d.state = "draining";
    d.connections = 1;
    d.stop_in_s = 12.5;
    s.generations.push_back(d);
    s.listeners = {"127.0.0.1:8080", "udp:127.0.0.1:5353"};
    s.reloads_total = 2;
    s.reloads_failed = 1;
    std::string j = status_json(s);
    for (const char *k : {"\"launcher_pid\":10", "\"program\":[\"/usr/sbin/nginx\",\"-g\",\"daemon off;\"]",
                          "\"serving\":{\"generation\":3,\"pid\":30,", "\"connections\":2",
                          "\"generations\":[{\"generation\":2,\"pid\":20,\"state\":\"draining\",\"connections\":1,",
                          "\"stop_in_s\":12.500", "\"listeners\":[\"127.0.0.1:8080\",\"udp:127.0.0.1:5353\"]",
                          "\"reloads\":{\"total\":2,\"failed\":1}", "\"last_reload\":null"})
        if (!has(j, k)) fail_msg("%s not in %s", k, j.c_str());
    std::string t = status_text(s);
    assert_true(has(t, "serving: gen 3 (pid 30) since "));
    assert_true(has(t, "gen 2 (pid 20) draining, 1 connection, stop signal in 12.5 s\n"));
    assert_true(has(t, "listeners: 127.0.0.1:8080 udp:127.0.0.1:5353\n"));
    assert_true(has(t, "reloads: 2 total, 1 failed; restarts: 0\n"));
}

} // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_text_ok_while_draining), cmocka_unit_test(test_text_ok_drained),
        cmocka_unit_test(test_text_rolled_back_and_aborted), cmocka_unit_test(test_escaping),
        cmocka_unit_test(test_json_keys), cmocka_unit_test(test_rfc3339), cmocka_unit_test(test_status),
    };
    return cmocka_run_group_tests_name("report", tests, NULL, NULL);
}
