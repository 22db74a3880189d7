// Unit tests for launcher/options.cc: what the command line accepts, what it refuses and how it says so.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

#include <string.h>
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

} // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verbose_levels),
        cmocka_unit_test(test_seconds),
        cmocka_unit_test(test_seconds_options_state_the_real_limit),
    };
    return cmocka_run_group_tests_name("options", tests, NULL, NULL);
}
