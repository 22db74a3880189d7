// Unit tests for shim/protocol.cc: the configuration encoding the rendezvous hands over (config_encode /
// strict config_decode), the rendezvous' address, and the shim->launcher message check (msg_check).
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
// cmocka 1.1.5 declares its functions without extern "C" for C++ callers.
extern "C" {
#include <cmocka.h>
}

#include <netinet/in.h>
#include <stdio.h>
#include <string.h>

#include "protocol.h"

using hr::Config;
using hr::Msg;

namespace {

const char *const kValid = "v1;ctl=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-";

// Decodes text expecting a rejection; checks that err is NUL-terminated, non-empty and that out is untouched.
void expect_reject(const char *text) {
    Config out;
    out.ctl = 4242;
    char err[128];
    memset(err, 'X', sizeof err);
    bool ok = hr::config_decode(text, &out, err, sizeof err);
    if (ok) fail_msg("accepted: %s", text ? text : "(null)");
    assert_non_null(memchr(err, '\0', sizeof err));
    assert_true(strlen(err) > 0);
    assert_int_equal(out.ctl, 4242);
}

void expect_accept(const char *text, Config *out) {
    char err[128];
    memset(err, 'X', sizeof err);
    bool ok = hr::config_decode(text, out, err, sizeof err);
    if (!ok) fail_msg("rejected (%s): %s", err, text);
    assert_non_null(memchr(err, '\0', sizeof err));
}

// kValid with one field's "key=value" replaced (field given as "key=").
void with_field(char *buf, size_t len, const char *key, const char *value) {
    const char *keys[] = {"ctl", "wake", "shm", "gen", "main", "launcher", "verbose", "fds"};
    const char *vals[] = {"5", "6", "7", "2", "1234", "1200", "0", "8,9,-"};
    size_t pos = 0;
    pos += size_t(snprintf(buf + pos, len - pos, "v1"));
    for (size_t i = 0; i < sizeof keys / sizeof keys[0]; ++i) {
        const char *v = strcmp(keys[i], key) == 0 ? value : vals[i];
        pos += size_t(snprintf(buf + pos, len - pos, ";%s=%s", keys[i], v));
    }
}

Config sample() {
    Config c;
    c.ctl = 5;
    c.wake = 6;
    c.shm = 7;
    c.gen = 2;
    c.main_pid = 1234;
    c.launcher_pid = 1200;
    c.verbose = 0;
    c.nfds = 3;
    c.fds[0] = 8;
    c.fds[1] = 9;
    c.fds[2] = -1;
    return c;
}

void assert_config_equal(const Config &a, const Config &b) {
    assert_int_equal(a.ctl, b.ctl);
    assert_int_equal(a.wake, b.wake);
    assert_int_equal(a.shm, b.shm);
    assert_int_equal(a.gen, b.gen);
    assert_int_equal(a.main_pid, b.main_pid);
    assert_int_equal(a.launcher_pid, b.launcher_pid);
    assert_int_equal(a.verbose, b.verbose);
    assert_int_equal(a.nfds, b.nfds);
    for (int i = 0; i < a.nfds; ++i) assert_int_equal(a.fds[i], b.fds[i]);
}

// ---------------------------------------------------------------- config encode / decode

void test_decode_documented_example(void **) {
    Config c;
    expect_accept(kValid, &c);
    assert_config_equal(c, sample());
}

void test_roundtrip_with_claimed_slots(void **) {
    Config c = sample();
    c.verbose = 3;
    c.nfds = 5;
    c.fds[0] = -1;
    c.fds[1] = 10;
    c.fds[2] = -1;
    c.fds[3] = 1 << 20;
    c.fds[4] = 3 + 100;
    char buf[512];
    int n = hr::config_encode(c, buf, sizeof buf);
    assert_true(n > 0);
    assert_int_equal(size_t(n), strlen(buf));
    assert_string_equal(buf, "v1;ctl=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=3;fds=-,10,-,1048576,103");
    Config d;
    expect_accept(buf, &d);
    assert_config_equal(d, c);
}

void test_roundtrip_documented_example(void **) {
    char buf[256];
    int n = hr::config_encode(sample(), buf, sizeof buf);
    assert_int_equal(n, int(strlen(kValid)));
    assert_string_equal(buf, kValid);
}

void test_roundtrip_empty_fds(void **) {
    Config c = sample();
    c.nfds = 0;
    char buf[256];
    int n = hr::config_encode(c, buf, sizeof buf);
    assert_true(n > 0);
    assert_string_equal(buf, "v1;ctl=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=");
    Config d;
    d.nfds = 17;
    expect_accept(buf, &d);
    assert_config_equal(d, c);
    assert_int_equal(d.nfds, 0);
}

void test_roundtrip_max_fds(void **) {
    Config c = sample();
    c.ctl = 3;
    c.wake = 4;
    c.shm = 5;
    c.gen = 1 << 30;
    c.main_pid = 1 << 30;
    c.launcher_pid = 1;
    c.verbose = 9;
    c.nfds = hr::kMaxInherited;
    for (int i = 0; i < c.nfds; ++i) c.fds[i] = (i % 5 == 4) ? -1 : hr::kMaxFdNumber - i;
    static char buf[hr::kExecStateLen];
    int n = hr::config_encode(c, buf, sizeof buf);
    assert_true(n > 0);
    assert_int_equal(size_t(n), strlen(buf));
    Config d;
    expect_accept(buf, &d);
    assert_config_equal(d, c);
    assert_int_equal(d.nfds, 1024);
    // The longest text there is: every socket listed with the longest numbers, as many own ones after an
    // exec. It fits Shared::exec_state.
    for (int i = 0; i < c.nfds; ++i) c.fds[i] = hr::kMaxFdNumber - i;
    c.nown = hr::kMaxInherited;
    for (int i = 0; i < c.nown; ++i) {
        c.own[i] = hr::kMaxFdNumber - hr::kMaxInherited - i;
        c.own_kind[i] = 'L';
    }
    n = hr::config_encode(c, buf, sizeof buf);
    assert_true(n > 0);
    Config e;
    expect_accept(buf, &e);
    assert_int_equal(e.nown, 1024);
    assert_int_equal(e.own[1023], c.own[1023]);
}

void test_encode_too_small_buffer(void **) {
    Config c = sample();
    char buf[256];
    int n = hr::config_encode(c, buf, sizeof buf);
    assert_true(n > 0);
    // Exactly enough room for the text and its NUL.
    char exact[256];
    assert_int_equal(hr::config_encode(c, exact, size_t(n) + 1), n);
    assert_string_equal(exact, buf);
    // One byte less: does not fit.
    char small[256];
    memset(small, 'X', sizeof small);
    assert_int_equal(hr::config_encode(c, small, size_t(n)), -1);
    assert_true(memchr(small, '\0', size_t(n)) != nullptr); // never left unterminated
    assert_int_equal(small[n], 'X');                        // never writes past len
    // Tiny and zero-length buffers.
    char tiny[4] = {'X', 'X', 'X', 'X'};
    assert_int_equal(hr::config_encode(c, tiny, sizeof tiny), -1);
    assert_int_equal(hr::config_encode(c, tiny, 1), -1);
    assert_int_equal(tiny[0], '\0');
    char none = 'X';
    assert_int_equal(hr::config_encode(c, &none, 0), -1);
    assert_int_equal(none, 'X');
    // Buffers too small for the fds part only.
    c.nfds = hr::kMaxInherited;
    for (int i = 0; i < c.nfds; ++i) c.fds[i] = 100 + i;
    assert_int_equal(hr::config_encode(c, buf, sizeof buf), -1);
}

void test_reject_null_and_empty(void **) {
    expect_reject(nullptr);
    expect_reject("");
    expect_reject("v1");
    expect_reject("v1;");
}

void test_reject_wrong_version(void **) {
    expect_reject("v2;ctl=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-");
    expect_reject("v0;ctl=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-");
    expect_reject("V1;ctl=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-");
    expect_reject("ctl=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-");
    expect_reject("v1,ctl=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-");
}

void test_reject_missing_field(void **) {
    const char *const texts[] = {
        "v1;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-",
        "v1;ctl=5;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-",
        "v1;ctl=5;wake=6;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-",
        "v1;ctl=5;wake=6;shm=7;main=1234;launcher=1200;verbose=0;fds=8,9,-",
        "v1;ctl=5;wake=6;shm=7;gen=2;launcher=1200;verbose=0;fds=8,9,-",
        "v1;ctl=5;wake=6;shm=7;gen=2;main=1234;verbose=0;fds=8,9,-",
        "v1;ctl=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;fds=8,9,-",
        "v1;ctl=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0",
    };
    for (const char *t : texts) expect_reject(t);
}

void test_reject_duplicate_field(void **) {
    expect_reject("v1;ctl=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-;gen=2");
    expect_reject("v1;ctl=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-;fds=");
    expect_reject("v1;ctl=5;ctl=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-");
}

void test_reject_unknown_field(void **) {
    expect_reject("v1;ctl=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-;extra=1");
    expect_reject("v1;ctlx=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-");
    expect_reject("v1;CTL=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-");
    expect_reject("v1;=5;ctl=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-");
}

void test_reject_bad_numbers(void **) {
    char buf[512];
    struct { const char *key, *value; } cases[] = {
        {"ctl", "abc"}, {"ctl", "5x"}, {"ctl", ""}, {"ctl", " 5"}, {"ctl", "+5"},
        {"ctl", "05"},  {"ctl", "00"}, {"ctl", "-5"}, {"ctl", "0"}, {"ctl", "1"}, {"ctl", "2"},
        {"ctl", "1048577"}, {"ctl", "99999999999"}, {"ctl", "4294967301"},
        {"wake", "2"}, {"shm", "1048577"}, {"shm", "007"},
        {"gen", "0"}, {"gen", "-1"}, {"gen", "01"}, {"gen", "1073741825"},
        {"main", "0"}, {"launcher", "0"}, {"verbose", "10"}, {"verbose", "-1"}, {"verbose", "01"},
        {"fds", "8,x"}, {"fds", "08"}, {"fds", "-8"}, {"fds", "2"}, {"fds", "0"},
        {"fds", "1048577"}, {"fds", "--"}, {"fds", "8,,9"}, {"fds", ",8"}, {"fds", ","},
    };
    for (const auto &cs : cases) {
        with_field(buf, sizeof buf, cs.key, cs.value);
        expect_reject(buf);
    }
    // The limits themselves are accepted.
    Config c;
    with_field(buf, sizeof buf, "fds", "3,1048576");
    // ctl=5, wake=6, shm=7 do not collide with 3 or 1<<20
    expect_accept(buf, &c);
    assert_int_equal(c.fds[0], 3);
    assert_int_equal(c.fds[1], 1 << 20);
    with_field(buf, sizeof buf, "gen", "1073741824");
    expect_accept(buf, &c);
    assert_int_equal(c.gen, 1 << 30);
    with_field(buf, sizeof buf, "verbose", "9");
    expect_accept(buf, &c);
    assert_int_equal(c.verbose, 9);
}

void test_reject_trailing_separators(void **) {
    expect_reject("v1;ctl=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-;");
    expect_reject("v1;ctl=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,");
    expect_reject("v1;ctl=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-,");
    expect_reject("v1;ctl=5;;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-");
    expect_reject("v1;;ctl=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-");
}

void test_reject_too_many_fds(void **) {
    static char fds[hr::kExecStateLen];
    size_t pos = 0;
    for (int i = 0; i < hr::kMaxInherited; ++i) pos += size_t(snprintf(fds + pos, sizeof fds - pos, "%s%d", i ? "," : "", 100 + i));
    static char buf[hr::kExecStateLen];
    with_field(buf, sizeof buf, "fds", fds);
    Config c;
    expect_accept(buf, &c); // 1024: the maximum
    assert_int_equal(c.nfds, 1024);
    snprintf(fds + pos, sizeof fds - pos, ",%d", 100 + hr::kMaxInherited);
    with_field(buf, sizeof buf, "fds", fds);
    expect_reject(buf); // 1025
    // 1025 with the extra one a "-" placeholder: still too many.
    snprintf(fds + pos, sizeof fds - pos, ",-");
    with_field(buf, sizeof buf, "fds", fds);
    expect_reject(buf);
}

void test_reject_descriptor_twice(void **) {
    expect_reject("v1;ctl=5;wake=5;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-");
    expect_reject("v1;ctl=5;wake=6;shm=5;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-");
    expect_reject("v1;ctl=5;wake=6;shm=6;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-");
    expect_reject("v1;ctl=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,5,-");
    expect_reject("v1;ctl=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=7");
    expect_reject("v1;ctl=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,8");
    // Several "-" placeholders are not duplicates.
    Config c;
    expect_accept("v1;ctl=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=-,-,-", &c);
    assert_int_equal(c.nfds, 3);
    assert_int_equal(c.fds[0], -1);
    assert_int_equal(c.fds[2], -1);
}

void test_reject_overlong(void **) {
    // kValid followed by a long run of digits: kExecStateLen + 1000 characters in all.
    static char buf[hr::kExecStateLen + 1001];
    int n = snprintf(buf, sizeof buf, "%s", kValid);
    memset(buf + n, '1', sizeof buf - 1 - size_t(n));
    buf[sizeof buf - 1] = '\0';
    assert_int_equal(strlen(buf), hr::kExecStateLen + 1000);
    expect_reject(buf);
    char err[64];
    Config c;
    assert_false(hr::config_decode(buf, &c, err, sizeof err));
    assert_string_equal(err, "too long");
    // The limit is kExecStateLen - 1 characters: one more is "too long", that many is parsed (and rejected for
    // its content).
    buf[hr::kExecStateLen] = '\0';
    assert_false(hr::config_decode(buf, &c, err, sizeof err));
    assert_string_equal(err, "too long");
    buf[hr::kExecStateLen - 1] = '\0';
    assert_false(hr::config_decode(buf, &c, err, sizeof err));
    assert_string_not_equal(err, "too long");
}

void test_reject_field_without_equals(void **) {
    expect_reject("v1;ctl;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-");
    expect_reject("v1;ctl=5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-;x");
    expect_reject("v1;ctl5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-");
    expect_reject("v1;ctl==5;wake=6;shm=7;gen=2;main=1234;launcher=1200;verbose=0;fds=8,9,-");
}

void test_err_buffer_sizes(void **) {
    // Success clears err.
    char err[32];
    memset(err, 'X', sizeof err);
    Config c;
    assert_true(hr::config_decode(kValid, &c, err, sizeof err));
    assert_string_equal(err, "");
    // errlen 1: only the terminator fits.
    char one = 'X';
    assert_false(hr::config_decode("v2;", &c, &one, 1));
    assert_int_equal(one, '\0');
    // errlen 4: truncated, terminated, nothing written past it.
    char small[8];
    memset(small, 'X', sizeof small);
    assert_false(hr::config_decode("v2;", &c, small, 4));
    assert_int_equal(strlen(small), 3);
    assert_int_equal(small[4], 'X');
    // errlen 0: err untouched (may even be null).
    assert_false(hr::config_decode("v2;", &c, nullptr, 0));
    assert_true(hr::config_decode(kValid, &c, nullptr, 0));
}

// ---------------------------------------------------------------- msg_check

Msg make_msg(uint16_t type) {
    Msg m;
    memset(&m, 0, sizeof m);
    m.magic = hr::kMagic;
    m.version = uint16_t(hr::kProtocolVersion);
    m.type = type;
    m.pid = 1234;
    return m;
}

void test_msg_valid(void **) {
    const uint16_t zero_fd_types[] = {hr::MSG_HELLO, hr::MSG_CLAIMED, hr::MSG_IDLE, hr::MSG_BINDFAIL,
                                      hr::MSG_ACCEPTING, hr::MSG_CLOSED, hr::MSG_LOCKED};
    for (uint16_t t : zero_fd_types) {
        Msg m = make_msg(t);
        const char *why = hr::msg_check(&m, sizeof m, 0);
        if (why) fail_msg("type %u rejected: %s", unsigned(t), why);
    }
    Msg r = make_msg(hr::MSG_REGISTER);
    assert_null(hr::msg_check(&r, sizeof r, 1));
    Msg h = make_msg(hr::MSG_LOCK_HANDOVER);
    assert_null(hr::msg_check(&h, sizeof h, 1));
    assert_non_null(hr::msg_check(&h, sizeof h, 0));
    Msg c = make_msg(hr::MSG_CLAIMED);
    c.arg = hr::kMaxInherited - 1;
    assert_null(hr::msg_check(&c, sizeof c, 0));
    Msg b = make_msg(hr::MSG_BINDFAIL);
    b.addrlen = sizeof(sockaddr_storage);
    b.err = 98;
    assert_null(hr::msg_check(&b, sizeof b, 0));
}

void test_msg_wrong_size(void **) {
    Msg m = make_msg(hr::MSG_HELLO);
    assert_non_null(hr::msg_check(&m, sizeof m - 1, 0));
    assert_non_null(hr::msg_check(&m, sizeof m + 1, 0));
    assert_non_null(hr::msg_check(&m, 0, 0));
}

void test_msg_bad_magic_version_type(void **) {
    Msg m = make_msg(hr::MSG_HELLO);
    m.magic = hr::kMagic ^ 1;
    assert_non_null(hr::msg_check(&m, sizeof m, 0));
    m = make_msg(hr::MSG_HELLO);
    m.version = uint16_t(hr::kProtocolVersion + 1);
    assert_non_null(hr::msg_check(&m, sizeof m, 0));
    m.version = 0;
    assert_non_null(hr::msg_check(&m, sizeof m, 0));
    const uint16_t bad_types[] = {0, 10, 11, 0x100, 0xffff};
    for (uint16_t t : bad_types) {
        m = make_msg(t);
        assert_non_null(hr::msg_check(&m, sizeof m, 0));
        assert_non_null(hr::msg_check(&m, sizeof m, 1));
    }
}

void test_msg_fd_counts(void **) {
    Msg r = make_msg(hr::MSG_REGISTER);
    assert_non_null(hr::msg_check(&r, sizeof r, 0));
    assert_non_null(hr::msg_check(&r, sizeof r, 2));
    Msg h = make_msg(hr::MSG_HELLO);
    assert_non_null(hr::msg_check(&h, sizeof h, 1));
    const uint16_t zero_fd_types[] = {hr::MSG_CLAIMED, hr::MSG_IDLE, hr::MSG_BINDFAIL, hr::MSG_ACCEPTING,
                                      hr::MSG_CLOSED, hr::MSG_LOCKED};
    for (uint16_t t : zero_fd_types) {
        Msg m = make_msg(t);
        assert_non_null(hr::msg_check(&m, sizeof m, 1));
    }
}

void test_msg_claimed_index(void **) {
    Msg m = make_msg(hr::MSG_CLAIMED);
    m.arg = -1;
    assert_non_null(hr::msg_check(&m, sizeof m, 0));
    m.arg = hr::kMaxInherited;
    assert_non_null(hr::msg_check(&m, sizeof m, 0));
    m.arg = 0x7fffffff;
    assert_non_null(hr::msg_check(&m, sizeof m, 0));
    m.arg = 0;
    assert_null(hr::msg_check(&m, sizeof m, 0));
}

void test_msg_addrlen(void **) {
    const uint16_t types[] = {hr::MSG_HELLO, hr::MSG_BINDFAIL, hr::MSG_REGISTER};
    for (uint16_t t : types) {
        Msg m = make_msg(t);
        m.addrlen = sizeof(sockaddr_storage) + 1;
        assert_non_null(hr::msg_check(&m, sizeof m, t == hr::MSG_REGISTER ? 1 : 0));
        m.addrlen = 0xffffffffu;
        assert_non_null(hr::msg_check(&m, sizeof m, t == hr::MSG_REGISTER ? 1 : 0));
    }
}

} // namespace

// The launcher binds and the shim connects to the same abstract name, computed by both from the launcher's pid.
void test_rendezvous_address(void **) {
    sockaddr_un a;
    socklen_t len = hr::rendezvous_address(4194304, &a);
    const char want[] = "hotrestart/4194304/rendezvous";
    assert_int_equal(a.sun_family, AF_UNIX);
    assert_int_equal(a.sun_path[0], '\0'); // abstract: no file anyone could replace
    assert_int_equal(len, offsetof(sockaddr_un, sun_path) + 1 + sizeof want - 1);
    assert_memory_equal(a.sun_path + 1, want, sizeof want - 1);
    len = hr::rendezvous_address(1, &a);
    assert_int_equal(len, offsetof(sockaddr_un, sun_path) + 1 + strlen("hotrestart/1/rendezvous"));
    assert_memory_equal(a.sun_path + 1, "hotrestart/1/rendezvous", strlen("hotrestart/1/rendezvous"));
}

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_decode_documented_example),
        cmocka_unit_test(test_roundtrip_with_claimed_slots),
        cmocka_unit_test(test_roundtrip_documented_example),
        cmocka_unit_test(test_roundtrip_empty_fds),
        cmocka_unit_test(test_roundtrip_max_fds),
        cmocka_unit_test(test_encode_too_small_buffer),
        cmocka_unit_test(test_reject_null_and_empty),
        cmocka_unit_test(test_reject_wrong_version),
        cmocka_unit_test(test_reject_missing_field),
        cmocka_unit_test(test_reject_duplicate_field),
        cmocka_unit_test(test_reject_unknown_field),
        cmocka_unit_test(test_reject_bad_numbers),
        cmocka_unit_test(test_reject_trailing_separators),
        cmocka_unit_test(test_reject_too_many_fds),
        cmocka_unit_test(test_reject_descriptor_twice),
        cmocka_unit_test(test_reject_overlong),
        cmocka_unit_test(test_reject_field_without_equals),
        cmocka_unit_test(test_err_buffer_sizes),
        cmocka_unit_test(test_msg_valid),
        cmocka_unit_test(test_msg_wrong_size),
        cmocka_unit_test(test_msg_bad_magic_version_type),
        cmocka_unit_test(test_msg_fd_counts),
        cmocka_unit_test(test_msg_claimed_index),
        cmocka_unit_test(test_msg_addrlen),
        cmocka_unit_test(test_rendezvous_address),
    };
    return cmocka_run_group_tests_name("protocol", tests, NULL, NULL);
}
