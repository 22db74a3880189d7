// libFuzzer target: msg_check() (shim/protocol.cc), the launcher's first look at a record from the control
// socket, then what the launcher does with the address of a record that passes (MSG_BINDFAIL: its socket
// key, formatted for the log). Input: one byte for the number of descriptors that came with the record
// (0..3), then the record. Properties: no crash or undefined behaviour; an accepted record has the exact
// size, a known type, the descriptor count its type requires (one for MSG_REGISTER and MSG_LOCK_HANDOVER),
// an address length within the record and, for MSG_CLAIMED, an index in range.
#include "addr.h"
#include "protocol.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

using namespace hr;

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const int nfds = data[0] % 4;
    const size_t len = size - 1;
    if (len > sizeof(Msg) + 16) return 0;
    // As recvmsg() leaves it: a record-sized buffer, the bytes received at its start.
    Msg m;
    memset(&m, 0xa5, sizeof m);
    memcpy(&m, data + 1, len < sizeof m ? len : sizeof m);
    const char *bad = msg_check(&m, len, nfds);
    if (bad) return 0;
    if (len != sizeof(Msg) || m.addrlen > sizeof(m.addr) || m.magic != kMagic) abort();
    if (m.type < MSG_HELLO || m.type > MSG_LOCK_HANDOVER) abort();
    const bool carries_fd = m.type == MSG_REGISTER || m.type == MSG_LOCK_HANDOVER;
    if (carries_fd != (nfds == 1) || (!carries_fd && nfds != 0)) abort();
    if (m.type == MSG_CLAIMED && (m.arg < 0 || m.arg >= kMaxInherited)) abort();
    SockKey k;
    char name[160];
    if (key_from_sockaddr(reinterpret_cast<const sockaddr *>(&m.addr), m.addrlen, SOCK_STREAM, 0, &k)) {
        key_format(k, name, sizeof name);
        if (!memchr(name, '\0', sizeof name)) abort();
    }
    return 0;
}
