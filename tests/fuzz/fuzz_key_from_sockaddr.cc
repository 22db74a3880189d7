// libFuzzer target: key_from_sockaddr(), key_match() and key_format() (shim/addr.cc): what the shim's
// bind() makes of any address a program passes, and the launcher of any address a record carries. Input:
// one byte of type and IPV6_V6ONLY bits, then the address (its length is the rest of the input).
// Properties: no crash or undefined behaviour; a key matches itself, is found again from its own address,
// and formats into a terminated string whatever the buffer size.
#include "addr.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>

using namespace hr;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1 || size - 1 > sizeof(sockaddr_storage) + 8) return 0;
    const int type = (data[0] & 1) ? SOCK_DGRAM : SOCK_STREAM;
    const int v6only = (data[0] >> 1) & 1;
    const socklen_t len = socklen_t(size - 1);
    // The caller's buffer: exactly the bytes it passed (ASan sees any read beyond them).
    uint8_t *addr = static_cast<uint8_t *>(malloc(len ? len : 1));
    memcpy(addr, data + 1, len);
    SockKey k;
    if (key_from_sockaddr(reinterpret_cast<const sockaddr *>(addr), len, type, v6only, &k)) {
        if (!key_match(k, k)) abort();
        SockKey again;
        if (!key_from_sockaddr(reinterpret_cast<const sockaddr *>(&k.addr), k.len, k.type, k.v6only, &again) ||
            !key_match(k, again))
            abort();
        static const size_t caps[] = {1, 7, 40, 160};
        for (size_t cap : caps) {
            char buf[160];
            memset(buf, 'x', sizeof buf);
            key_format(k, buf, cap);
            if (!memchr(buf, '\0', cap)) abort();
        }
    }
    free(addr);
    return 0;
}
