// Unit tests for launcher/options.cc: what the command line accepts, what it refuses and how it says so.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

#include <signal.h>
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

} // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_verbose_levels),
    };
    return cmocka_run_group_tests_name("options", tests, NULL, NULL);
}
