// Unit tests for --seccomp and --seccomp-accept on the command line (launcher/options.cc): flags, off by
// default, no value; --seccomp-accept implies --seccomp.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

#include <string>
#include <vector>

#include "options.h"

using namespace hr;

namespace {

ParseResult parse(std::vector<const char *> args, Options *o, std::string *msg) {
    static char *argv[32];
    int argc = 0;
    argv[argc++] = const_cast<char *>("hotrestart");
    for (const char *a : args) argv[argc++] = const_cast<char *>(a);
    argv[argc] = nullptr;
    return parse_options(argc, argv, o, msg);
}

void test_seccomp_flag(void **) {
    std::string msg;
    Options d;
    assert_int_equal(parse({"--", "srv"}, &d, &msg), PARSE_RUN);
    assert_false(d.seccomp);
    Options o;
    assert_int_equal(parse({"--seccomp", "--listen", "127.0.0.1:80", "--", "srv", "--seccomp=x"}, &o, &msg), PARSE_RUN);
    assert_true(o.seccomp);
    assert_int_equal(int(o.argv.size()), 2); // PROGRAM's own arguments are its own
    Options e;
    assert_int_equal(parse({"--seccomp=yes", "--", "srv"}, &e, &msg), PARSE_ERROR);
    assert_string_equal(msg.c_str(), "option --seccomp takes no value (try --help)");
    Options h;
    assert_int_equal(parse({"--help"}, &h, &msg), PARSE_EXIT_OK);
    assert_true(msg.find("--seccomp") != std::string::npos);
}

void test_seccomp_accept_flag(void **) {
    std::string msg;
    Options d;
    assert_int_equal(parse({"--seccomp", "--", "srv"}, &d, &msg), PARSE_RUN);
    assert_false(d.seccomp_accept);
    Options o;
    assert_int_equal(parse({"--seccomp-accept", "--", "srv"}, &o, &msg), PARSE_RUN);
    assert_true(o.seccomp_accept);
    assert_true(o.seccomp);
    Options e;
    assert_int_equal(parse({"--seccomp-accept=1", "--", "srv"}, &e, &msg), PARSE_ERROR);
    assert_string_equal(msg.c_str(), "option --seccomp-accept takes no value (try --help)");
    Options h;
    assert_int_equal(parse({"--help"}, &h, &msg), PARSE_EXIT_OK);
    assert_true(msg.find("--seccomp-accept") != std::string::npos);
}

} // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_seccomp_flag),
        cmocka_unit_test(test_seccomp_accept_flag),
    };
    return cmocka_run_group_tests_name("seccomp options", tests, NULL, NULL);
}
