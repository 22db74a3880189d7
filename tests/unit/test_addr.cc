// Unit tests for shim/addr.cc: socket identity (key_from_sockaddr, key_match) and key_format.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
// cmocka 1.1.5 declares its functions without extern "C" for C++ callers.
extern "C" {
#include <cmocka.h>
}

#include <arpa/inet.h>
#include <netinet/in.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/un.h>

#include "addr.h"

using hr::SockKey;

// sockaddr_in/in6/un all start with their family: one helper to read it for messages.
#define FAMILY_OF(a) (reinterpret_cast<const sockaddr *>(&(a))->sa_family)

namespace {

const socklen_t kUnOff = socklen_t(offsetof(sockaddr_un, sun_path));

sockaddr_in v4(const char *ip, uint16_t port) {
    sockaddr_in a;
    memset(&a, 0, sizeof a);
    a.sin_family = AF_INET;
    a.sin_port = htons(port);
    assert_int_equal(inet_pton(AF_INET, ip, &a.sin_addr), 1);
    return a;
}

sockaddr_in6 v6(const char *ip, uint16_t port, uint32_t scope = 0, uint32_t flow = 0) {
    sockaddr_in6 a;
    memset(&a, 0, sizeof a);
    a.sin6_family = AF_INET6;
    a.sin6_port = htons(port);
    a.sin6_scope_id = scope;
    a.sin6_flowinfo = htonl(flow);
    assert_int_equal(inet_pton(AF_INET6, ip, &a.sin6_addr), 1);
    return a;
}

// A unix address holding `n` bytes of `path` (which may contain NULs) in sun_path.
sockaddr_un un(const char *path, size_t n) {
    sockaddr_un a;
    memset(&a, 0, sizeof a);
    a.sun_family = AF_UNIX;
    memcpy(a.sun_path, path, n);
    return a;
}

template <class A> SockKey must_key(const A &a, socklen_t len, int type = SOCK_STREAM, int v6only = 0) {
    SockKey k;
    if (!hr::key_from_sockaddr(reinterpret_cast<const sockaddr *>(&a), len, type, v6only, &k))
        fail_msg("key_from_sockaddr rejected a valid address (family %d, len %u)", int(FAMILY_OF(a)), unsigned(len));
    return k;
}

template <class A> bool accepts(const A &a, socklen_t len, int type = SOCK_STREAM, int v6only = 0) {
    SockKey k;
    return hr::key_from_sockaddr(reinterpret_cast<const sockaddr *>(&a), len, type, v6only, &k);
}

template <class A, class B>
bool match(const A &a, socklen_t alen, const B &b, socklen_t blen, int atype = SOCK_STREAM, int btype = SOCK_STREAM,
           int av6 = 0, int bv6 = 0) {
    SockKey ka = must_key(a, alen, atype, av6);
    SockKey kb = must_key(b, blen, btype, bv6);
    bool m = hr::key_match(ka, kb);
    // key_match is symmetric
    assert_int_equal(m, hr::key_match(kb, ka));
    return m;
}

// ---------------------------------------------------------------- IPv4

void test_ipv4_same_and_different(void **) {
    sockaddr_in a = v4("127.0.0.1", 8080), b = v4("127.0.0.1", 8080);
    assert_true(match(a, sizeof a, b, sizeof b));
    sockaddr_in c = v4("127.0.0.2", 8080);
    assert_false(match(a, sizeof a, c, sizeof c));
    sockaddr_in d = v4("127.0.0.1", 8081);
    assert_false(match(a, sizeof a, d, sizeof d));
    // A key matches itself.
    SockKey k = must_key(a, sizeof a);
    assert_true(hr::key_match(k, k));
}

void test_ipv4_sin_zero_ignored(void **) {
    sockaddr_in a = v4("10.1.2.3", 443), b = v4("10.1.2.3", 443);
    memset(b.sin_zero, 0xa5, sizeof b.sin_zero);
    assert_true(match(a, sizeof a, b, sizeof b));
    // A longer socklen (trailing bytes the kernel ignores) is fine too.
    sockaddr_storage big;
    memset(&big, 0x5a, sizeof big);
    memcpy(&big, &a, sizeof a);
    assert_true(match(a, sizeof a, big, sizeof big));
}

void test_ipv4_rejections(void **) {
    sockaddr_in a = v4("127.0.0.1", 0);
    assert_false(accepts(a, sizeof a)); // port 0: the kernel picks a port, never an inherited socket
    sockaddr_in b = v4("127.0.0.1", 80);
    assert_false(accepts(b, sizeof b - 1));
    assert_false(accepts(b, sizeof(sa_family_t)));
    assert_false(accepts(b, 0));
    assert_false(accepts(b, socklen_t(sizeof(sockaddr_storage) + 1)));
    SockKey k;
    k.family = 1234;
    assert_false(hr::key_from_sockaddr(nullptr, sizeof b, SOCK_STREAM, 0, &k));
    assert_int_equal(k.family, 1234); // out untouched on failure
}

// ---------------------------------------------------------------- IPv6

void test_ipv6_loopback(void **) {
    sockaddr_in6 a = v6("::1", 80), b = v6("::1", 80);
    assert_true(match(a, sizeof a, b, sizeof b));
    sockaddr_in6 c = v6("::1", 81);
    assert_false(match(a, sizeof a, c, sizeof c));
    sockaddr_in6 d = v6("::2", 80);
    assert_false(match(a, sizeof a, d, sizeof d));
}

void test_ipv6_scope_flow_v6only(void **) {
    sockaddr_in6 a = v6("fe80::1", 80, 1), b = v6("fe80::1", 80, 2);
    assert_false(match(a, sizeof a, b, sizeof b)); // scope id is part of the address
    sockaddr_in6 c = v6("fe80::1", 80, 1, 0x12345);
    assert_true(match(a, sizeof a, c, sizeof c)); // flow info is not
    // V6ONLY tells wildcard sockets apart...
    sockaddr_in6 d = v6("::", 80), e = v6("::", 80);
    assert_false(match(d, sizeof d, e, sizeof e, SOCK_STREAM, SOCK_STREAM, 0, 1));
    assert_true(match(d, sizeof d, e, sizeof e, SOCK_STREAM, SOCK_STREAM, 1, 1));
    // any non-zero v6only value means "on"
    assert_true(match(d, sizeof d, e, sizeof e, SOCK_STREAM, SOCK_STREAM, 1, 7));
    // ...but not sockets on a specific address, where the kernel forces it on after bind (the program's
    // socket reads 0 before bind, the inherited one 1 after).
    sockaddr_in6 f = v6("::1", 80), h = v6("::1", 80);
    assert_true(match(f, sizeof f, h, sizeof h, SOCK_STREAM, SOCK_STREAM, 0, 1));
    sockaddr_in6 m1 = v6("::ffff:127.0.0.1", 80), m2 = v6("::ffff:127.0.0.1", 80);
    assert_true(match(m1, sizeof m1, m2, sizeof m2, SOCK_STREAM, SOCK_STREAM, 0, 1));
}

void test_ipv6_rejections(void **) {
    sockaddr_in6 a = v6("::1", 0);
    assert_false(accepts(a, sizeof a));
    sockaddr_in6 b = v6("::1", 80);
    assert_false(accepts(b, sizeof b - 1));
    assert_false(accepts(b, sizeof(sockaddr_in)));
}

void test_wildcards_exact(void **) {
    sockaddr_in any4 = v4("0.0.0.0", 8000), lo4 = v4("127.0.0.1", 8000);
    assert_false(match(any4, sizeof any4, lo4, sizeof lo4));
    assert_true(match(any4, sizeof any4, any4, sizeof any4));
    sockaddr_in6 any6 = v6("::", 8000), any6b = v6("::", 8000), lo6 = v6("::1", 8000);
    assert_true(match(any6, sizeof any6, any6b, sizeof any6b));
    assert_false(match(any6, sizeof any6, lo6, sizeof lo6));
    // [::] and 0.0.0.0 are different sockets
    assert_false(match(any6, sizeof any6, any4, sizeof any4));
}

void test_v4_mapped(void **) {
    sockaddr_in6 mapped = v6("::ffff:127.0.0.1", 9000), mapped2 = v6("::ffff:127.0.0.1", 9000);
    sockaddr_in plain = v4("127.0.0.1", 9000);
    assert_false(match(mapped, sizeof mapped, plain, sizeof plain));
    assert_true(match(mapped, sizeof mapped, mapped2, sizeof mapped2));
}

// ---------------------------------------------------------------- type

void test_type(void **) {
    sockaddr_in a = v4("127.0.0.1", 53);
    assert_false(match(a, sizeof a, a, sizeof a, SOCK_STREAM, SOCK_DGRAM));
    assert_true(match(a, sizeof a, a, sizeof a, SOCK_DGRAM, SOCK_DGRAM));
    assert_true(match(a, sizeof a, a, sizeof a, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, SOCK_STREAM));
    assert_true(match(a, sizeof a, a, sizeof a, SOCK_DGRAM | SOCK_CLOEXEC, SOCK_DGRAM | SOCK_NONBLOCK));
    assert_false(match(a, sizeof a, a, sizeof a, SOCK_STREAM | SOCK_NONBLOCK, SOCK_DGRAM | SOCK_NONBLOCK));
    SockKey k = must_key(a, sizeof a, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC);
    assert_int_equal(k.type, SOCK_STREAM);
}

// ---------------------------------------------------------------- AF_UNIX

void test_unix_pathname(void **) {
    sockaddr_un a = un("/tmp/a", 6);
    const socklen_t alen = socklen_t(kUnOff + 6);
    // The same path given with sizeof(sockaddr_un) (trailing NULs) and with strlen+1.
    assert_true(match(a, alen, a, sizeof a));
    assert_true(match(a, alen, a, socklen_t(kUnOff + 7)));
    sockaddr_un b = un("/tmp/b", 6);
    assert_false(match(a, sizeof a, b, sizeof b));
    sockaddr_un c = un("/tmp/a/", 7);
    assert_false(match(a, sizeof a, c, sizeof c));
    sockaddr_un d = un("/tmp/", 5);
    assert_false(match(a, sizeof a, d, sizeof d));
    // The kernel stops at the first NUL of a pathname: bytes after it do not count.
    sockaddr_un e = un("/tmp/a\0junk", 11);
    assert_true(match(a, alen, e, sizeof e));
}

void test_unix_unnamed_rejected(void **) {
    sockaddr_un a = un("", 0);
    assert_false(accepts(a, kUnOff));
    assert_false(accepts(a, socklen_t(sizeof(sa_family_t))));
}

void test_unix_abstract(void **) {
    const char name[] = "\0name";
    sockaddr_un a = un(name, 5), b = un(name, 5);
    assert_true(match(a, socklen_t(kUnOff + 5), b, socklen_t(kUnOff + 5)));
    // Abstract names are exactly len bytes: one more (NUL) byte is another name, one less too.
    assert_false(match(a, socklen_t(kUnOff + 5), b, socklen_t(kUnOff + 6)));
    assert_false(match(a, socklen_t(kUnOff + 5), b, socklen_t(kUnOff + 4)));
    // And the same length with other bytes.
    sockaddr_un c = un("\0namf", 5);
    assert_false(match(a, socklen_t(kUnOff + 5), c, socklen_t(kUnOff + 5)));
    // Abstract vs pathname with the same visible characters.
    sockaddr_un p = un("name", 4);
    assert_false(match(a, socklen_t(kUnOff + 5), p, socklen_t(kUnOff + 4)));
}

void test_unix_abstract_inner_nul(void **) {
    sockaddr_un a = un("\0a\0b", 4), b = un("\0a\0b", 4), c = un("\0a\0c", 4);
    assert_true(match(a, socklen_t(kUnOff + 4), b, socklen_t(kUnOff + 4)));
    assert_false(match(a, socklen_t(kUnOff + 4), c, socklen_t(kUnOff + 4)));
    // "\0a" (2 bytes) is not "\0a\0b" (4 bytes) even though both read "a" as C strings.
    assert_false(match(a, socklen_t(kUnOff + 4), a, socklen_t(kUnOff + 2)));
}

void test_unix_vs_inet(void **) {
    sockaddr_un u = un("/tmp/a", 6);
    sockaddr_in i = v4("127.0.0.1", 80);
    sockaddr_in6 i6 = v6("::1", 80);
    assert_false(match(u, sizeof u, i, sizeof i));
    assert_false(match(u, sizeof u, i6, sizeof i6));
    assert_false(match(i, sizeof i, i6, sizeof i6));
}

void test_unknown_family(void **) {
    sockaddr_storage s;
    memset(&s, 0x11, sizeof s);
    s.ss_family = AF_PACKET;
    assert_false(accepts(s, sizeof s));
    s.ss_family = AF_UNSPEC;
    assert_false(accepts(s, sizeof s));
    // Two keys of an unknown family (built by hand) never match.
    SockKey a, b;
    a.family = b.family = AF_PACKET;
    assert_false(hr::key_match(a, b));
}

// ---------------------------------------------------------------- key_format

void test_format(void **) {
    char buf[128];
    sockaddr_in a = v4("127.0.0.1", 80);
    assert_string_equal(hr::key_format(must_key(a, sizeof a), buf, sizeof buf), "127.0.0.1:80");
    sockaddr_in6 b = v6("::1", 80);
    assert_string_equal(hr::key_format(must_key(b, sizeof b), buf, sizeof buf), "[::1]:80");
    sockaddr_in6 c = v6("::", 80);
    assert_string_equal(hr::key_format(must_key(c, sizeof c, SOCK_STREAM, 1), buf, sizeof buf), "[::]:80 (v6only)");
    sockaddr_in d = v4("127.0.0.1", 53);
    assert_string_equal(hr::key_format(must_key(d, sizeof d, SOCK_DGRAM), buf, sizeof buf), "udp:127.0.0.1:53");
    sockaddr_un e = un("/run/x.sock", 11);
    assert_string_equal(hr::key_format(must_key(e, sizeof e), buf, sizeof buf), "unix:/run/x.sock");
    sockaddr_un f = un("\0name", 5);
    assert_string_equal(hr::key_format(must_key(f, socklen_t(kUnOff + 5)), buf, sizeof buf), "unix:@name");
    // The returned pointer is buf.
    assert_ptr_equal(hr::key_format(must_key(a, sizeof a), buf, sizeof buf), buf);
}

void test_format_small_buffers(void **) {
    sockaddr_in a = v4("127.0.0.1", 80);
    SockKey k = must_key(a, sizeof a);
    char buf[8];
    memset(buf, 'X', sizeof buf);
    hr::key_format(k, buf, 4);
    assert_string_equal(buf, "127");
    assert_int_equal(buf[4], 'X');
    memset(buf, 'X', sizeof buf);
    hr::key_format(k, buf, 1);
    assert_int_equal(buf[0], '\0');
    assert_int_equal(buf[1], 'X');
    memset(buf, 'X', sizeof buf);
    assert_ptr_equal(hr::key_format(k, buf, 0), buf);
    for (char ch : buf) assert_int_equal(ch, 'X');
    // Long unix path into a tiny buffer.
    sockaddr_un u = un("/a/very/long/path/to/some.sock", 30);
    memset(buf, 'X', sizeof buf);
    hr::key_format(must_key(u, sizeof u), buf, 4);
    assert_string_equal(buf, "uni");
    assert_int_equal(buf[4], 'X');
}

} // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_ipv4_same_and_different),
        cmocka_unit_test(test_ipv4_sin_zero_ignored),
        cmocka_unit_test(test_ipv4_rejections),
        cmocka_unit_test(test_ipv6_loopback),
        cmocka_unit_test(test_ipv6_scope_flow_v6only),
        cmocka_unit_test(test_ipv6_rejections),
        cmocka_unit_test(test_wildcards_exact),
        cmocka_unit_test(test_v4_mapped),
        cmocka_unit_test(test_type),
        cmocka_unit_test(test_unix_pathname),
        cmocka_unit_test(test_unix_unnamed_rejected),
        cmocka_unit_test(test_unix_abstract),
        cmocka_unit_test(test_unix_abstract_inner_nul),
        cmocka_unit_test(test_unix_vs_inet),
        cmocka_unit_test(test_unknown_family),
        cmocka_unit_test(test_format),
        cmocka_unit_test(test_format_small_buffers),
    };
    return cmocka_run_group_tests_name("addr", tests, NULL, NULL);
}
