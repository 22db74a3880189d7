// Unit tests for launcher/options.cc: what the command line accepts, what it refuses and how it says so.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <string>
#include <vector>

#include "options.h"

using namespace hr;

namespace {

bool has(const std::string &s, const char *part) { return s.find(part) != std::string::npos; }

ParseResult parse(std::vector<const char *> args, Options *o, std::string *msg) {
    static char *argv[32];
    int argc = 0;
    argv[argc++] = const_cast<char *>("hotrestart");
    for (const char *a : args) argv[argc++] = const_cast<char *>(a);
    argv[argc] = nullptr;
    return parse_options(argc, argv, o, msg);
}

// The verbosity a command line gives, or -1 if it is refused.
int verbosity(std::vector<const char *> args, std::string *msg) {
    args.push_back("--");
    args.push_back("srv");
    Options o;
    return parse(args, &o, msg) == PARSE_RUN ? o.verbose : -1;
}

void test_verbose_levels(void **) {
    std::string msg;
    assert_int_equal(verbosity({}, &msg), 0);
    assert_int_equal(verbosity({"-v"}, &msg), 1);
    assert_int_equal(verbosity({"-vv"}, &msg), 2);
    assert_int_equal(verbosity({"-vvv"}, &msg), 3);
    assert_int_equal(verbosity({"-vvvvv"}, &msg), 3); // more v's add nothing
    assert_int_equal(verbosity({"-v", "-vv"}, &msg), 3);
    assert_int_equal(verbosity({"--verbose"}, &msg), 1);
    assert_int_equal(verbosity({"--verbose", "--verbose", "--verbose"}, &msg), 3);
    assert_int_equal(verbosity({"--verbose", "-v"}, &msg), 2);
    for (const char *n : {"0", "1", "2", "3"}) {
        std::string a = std::string("--verbose=") + n;
        assert_int_equal(verbosity({"-vvv", a.c_str()}, &msg), n[0] - '0'); // sets, does not add
    }
    for (const char *bad : {"--verbose=4", "--verbose=", "--verbose=x", "--verbose=-1", "--verbose=01"}) {
        msg.clear();
        if (verbosity({bad}, &msg) != -1) fail_msg("%s accepted", bad);
        assert_true(has(msg, "--verbose") && has(msg, "0, 1, 2 or 3"));
    }
    for (const char *bad : {"-vx", "-V", "-"}) {
        if (verbosity({bad}, &msg) != -1) fail_msg("%s accepted", bad);
    }
}

void test_seconds(void **) {
    double v = -1;
    const struct { const char *s; double v; } good[] = {
        {"30", 30}, {"1.5", 1.5}, {"0.001", 0.001}, {"007", 7}, {"604800", 604800}, {"604800.0", 604800}};
    for (const auto &g : good) {
        if (!parse_seconds(g.s, &v)) fail_msg("'%s' refused", g.s);
        assert_true(v == g.v);
    }
    for (const char *bad : {"", "0", "0.0", "0x10", " 5", "5 ", "+5", "-1", "1e3", "inf", "nan", ".5", "5.", "1.2.3",
                            "604800.001", "604801", "99999999999999999999", "5s", "1,5"}) {
        if (parse_seconds(bad, &v)) fail_msg("'%s' accepted", bad);
    }
}

void test_seconds_options_state_the_real_limit(void **) {
    Options o;
    std::string msg;
    for (const char *opt : {"--ready-timeout", "--drain-timeout", "--kill-timeout", "--ready"}) {
        for (const char *bad : {"604801", "0x10", " 5", "0"}) {
            msg.clear();
            if (parse({opt, bad, "--", "srv"}, &o, &msg) != PARSE_ERROR) fail_msg("%s '%s' accepted", opt, bad);
            if (!has(msg, opt) || !has(msg, "> 0 and <= 604800 (7 days)")) fail_msg("%s", msg.c_str());
        }
    }
    assert_int_equal(parse({"--drain-timeout", "604800", "--kill-timeout=0.5", "--", "srv"}, &o, &msg), PARSE_RUN);
    assert_true(o.drain_timeout == 604800 && o.kill_timeout == 0.5);
    assert_int_equal(parse({"--rollback-window", "0", "--", "srv"}, &o, &msg), PARSE_RUN);
    assert_true(o.rollback_window == 0);
    assert_int_equal(parse({"--rollback-window", "604801", "--", "srv"}, &o, &msg), PARSE_ERROR);
    assert_true(has(msg, "--rollback-window") && has(msg, ">= 0 and <= 604800 (7 days)"));
    assert_int_equal(parse({"--rollback-window", "0x0", "--", "srv"}, &o, &msg), PARSE_ERROR);
}

void test_signal_names(void **) {
    const struct { const char *s; int sig; } good[] = {
        {"TERM", SIGTERM},   {"sigterm", SIGTERM}, {"15", SIGTERM},       {"TSTP", SIGTSTP},   {"SIGPWR", SIGPWR},
        {"TTIN", SIGTTIN},   {"ttou", SIGTTOU},    {"URG", SIGURG},       {"XCPU", SIGXCPU},   {"XFSZ", SIGXFSZ},
        {"VTALRM", SIGVTALRM}, {"PROF", SIGPROF},  {"IO", SIGIO},         {"POLL", SIGIO},     {"SYS", SIGSYS},
        {"CHLD", SIGCHLD},   {"CLD", SIGCHLD},     {"CONT", SIGCONT},     {"PIPE", SIGPIPE},   {"IOT", SIGABRT},
        {"TRAP", SIGTRAP},   {"STKFLT", SIGSTKFLT}, {"RTMIN", SIGRTMIN},  {"SIGRTMIN+3", SIGRTMIN + 3},
        {"rtmin+0", SIGRTMIN}, {"RTMAX", SIGRTMAX}, {"RTMAX-2", SIGRTMAX - 2}, {"KILL", SIGKILL}, {"STOP", SIGSTOP},
    };
    for (const auto &g : good) {
        if (parse_signal(g.s) != g.sig) fail_msg("'%s' -> %d, expected %d", g.s, parse_signal(g.s), g.sig);
    }
    for (const char *bad : {"", "BOGUS", "SIG", "RTMIN-1", "RTMAX+1", "RTMIN+", "RTMIN+x", "RTMIN++1", "0", "65",
                            "32", "1000", "RTMIN+99", "TERM "}) {
        if (parse_signal(bad) != -1) fail_msg("'%s' accepted as %d", bad, parse_signal(bad));
    }
    char n[16];
    snprintf(n, sizeof n, "%d", SIGRTMIN + 1);
    assert_int_equal(parse_signal(n), SIGRTMIN + 1);
    // Every signal from 1 to SIGRTMAX that has a name round-trips through it.
    for (int sig = 1; sig <= SIGRTMAX; ++sig) {
        std::string name = signal_name(sig);
        if (name.compare(0, 7, "signal ") == 0) {
            assert_true(sig > SIGSYS && sig < SIGRTMIN); // only the C library's reserved ones lack a name
            continue;
        }
        if (parse_signal(name) != sig) fail_msg("%s -> %d, expected %d", name.c_str(), parse_signal(name), sig);
    }
    assert_string_equal(signal_name(SIGTERM), "SIGTERM");
    assert_string_equal(signal_name(SIGTSTP), "SIGTSTP");
    assert_string_equal(signal_name(SIGPWR), "SIGPWR");
    assert_string_equal(signal_name(SIGKILL), "SIGKILL");
    assert_string_equal(signal_name(SIGABRT), "SIGABRT"); // the canonical name, not IOT
    assert_string_equal(signal_name(SIGCHLD), "SIGCHLD");
    assert_string_equal(signal_name(SIGRTMIN), "SIGRTMIN");
    assert_string_equal(signal_name(SIGRTMIN + 3), "SIGRTMIN+3");
    assert_string_equal(signal_name(SIGRTMAX), "SIGRTMAX");
}

void test_stop_signal_option(void **) {
    Options o;
    std::string msg;
    assert_int_equal(parse({"--stop-signal", "RTMIN+3", "--", "srv"}, &o, &msg), PARSE_RUN);
    assert_int_equal(o.stop_signal, SIGRTMIN + 3);
    assert_int_equal(parse({"--stop-signal=TSTP", "--", "srv"}, &o, &msg), PARSE_RUN);
    assert_int_equal(o.stop_signal, SIGTSTP);
    assert_int_equal(parse({"--stop-signal", "KILL", "--", "srv"}, &o, &msg), PARSE_ERROR);
    assert_true(has(msg, "'KILL'") && has(msg, "SIGKILL"));
    assert_int_equal(parse({"--stop-signal", "19", "--", "srv"}, &o, &msg), PARSE_ERROR);
    assert_true(has(msg, "'19'") && has(msg, "SIGSTOP"));
    assert_int_equal(parse({"--stop-signal", "BOGUS", "--", "srv"}, &o, &msg), PARSE_ERROR);
    assert_true(has(msg, "'BOGUS'") && has(msg, "signal name"));
}

void test_chdir_option(void **) {
    Options o;
    std::string msg;
    assert_true(o.chdir.empty());
    assert_int_equal(parse({"--chdir", "/srv/app/current", "--", "./server"}, &o, &msg), PARSE_RUN);
    assert_string_equal(o.chdir.c_str(), "/srv/app/current");
    assert_int_equal(parse({"--chdir=", "--", "./server"}, &o, &msg), PARSE_ERROR);
    assert_true(has(msg, "--chdir"));
    assert_int_equal(parse({"--chdir"}, &o, &msg), PARSE_ERROR);
}

void test_instance_lock_option(void **) {
    Options o;
    std::string msg;
    assert_int_equal(parse({"--instance-lock", "run/app.lock", "--instance-lock=/var/lock/app", "--", "srv"}, &o, &msg),
                     PARSE_RUN);
    assert_int_equal(o.instance_locks.size(), 2);
    assert_string_equal(o.instance_locks[0].c_str(), "run/app.lock");
    assert_string_equal(o.instance_locks[1].c_str(), "/var/lock/app");
    assert_int_equal(parse({"--instance-lock=", "--", "srv"}, &o, &msg), PARSE_ERROR);
    assert_true(has(msg, "--instance-lock"));
    assert_int_equal(parse({"--instance-lock", "a\nb", "--", "srv"}, &o, &msg), PARSE_ERROR);
    assert_true(has(msg, "newline"));
}

void test_pid_file_check(void **) {
    char dir[] = "/tmp/hr-pidfile-XXXXXX";
    assert_non_null(mkdtemp(dir));
    std::string d = dir, why;
    assert_true(check_pid_file(d + "/hr.pid", &why));
    assert_false(check_pid_file(d + "/missing/hr.pid", &why));
    assert_string_equal(why.c_str(), ("directory " + d + "/missing: No such file or directory").c_str());
    FILE *f = fopen((d + "/file").c_str(), "w");
    assert_non_null(f);
    fclose(f);
    assert_false(check_pid_file(d + "/file/hr.pid", &why));
    assert_string_equal(why.c_str(), (d + "/file is not a directory").c_str());
    assert_false(check_pid_file(d, &why));
    assert_string_equal(why.c_str(), "it is a directory");
    assert_true(check_pid_file("relative.pid", &why) == (access(".", W_OK | X_OK) == 0));
    unlink((d + "/file").c_str());
    rmdir(dir);
}

// --control, --ready, --ready-check, --rollback-window, --restart.
void test_reload_options(void **) {
    Options o;
    std::string msg;
    assert_int_equal(parse({"--control", "/run/x.sock", "--ready", "notify", "--ready-check", "true",
                            "--rollback-window", "0", "--", "srv"}, &o, &msg), PARSE_RUN);
    assert_string_equal(o.control.c_str(), "/run/x.sock");
    assert_int_equal(o.ready, READY_NOTIFY);
    assert_string_equal(o.ready_check.c_str(), "true");
    assert_true(o.rollback_window == 0);
    Options d;
    assert_int_equal(parse({"--", "srv"}, &d, &msg), PARSE_RUN);
    assert_int_equal(d.ready, READY_LISTEN);
    assert_true(d.rollback_window == 2);
    Options s;
    assert_int_equal(parse({"--ready=1.5", "--ready", "listen", "--ready", "2", "--", "srv"}, &s, &msg), PARSE_RUN);
    assert_int_equal(s.ready, READY_DELAY);
    assert_true(s.ready_delay == 2);
    Options r;
    assert_int_equal(parse({"--restart", "on-failure", "--", "srv"}, &r, &msg), PARSE_RUN);
    assert_int_equal(r.restart, RESTART_ON_FAILURE);
    assert_int_equal(d.restart, RESTART_NO);
    const char *bad[][2] = {{"--restart", "sometimes"}, {"--ready", "soon"}, {"--ready", "0"}, {"--rollback-window", "-1"},
                            {"--rollback-window", "x"}, {"--control", ""}, {"--ready-check", ""}};
    for (auto &b : bad) {
        Options e;
        if (parse({b[0], b[1], "--", "srv"}, &e, &msg) != PARSE_ERROR) fail_msg("%s '%s' accepted", b[0], b[1]);
    }
}


} // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verbose_levels),
        cmocka_unit_test(test_seconds),
        cmocka_unit_test(test_seconds_options_state_the_real_limit),
        cmocka_unit_test(test_signal_names),
        cmocka_unit_test(test_stop_signal_option),
        cmocka_unit_test(test_pid_file_check),
        cmocka_unit_test(test_chdir_option),
        cmocka_unit_test(test_instance_lock_option),
        cmocka_unit_test(test_reload_options),
    };
    return cmocka_run_group_tests_name("options", tests, NULL, NULL);
}
