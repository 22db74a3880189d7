// libFuzzer target: config_decode() (shim/protocol.cc), the configuration a generation's shim parses in its
// constructor (the rendezvous' answer, and Shared::exec_state after an exec). The input is that text. Properties: no crash or undefined behaviour,
// the error text is always terminated, and whatever decodes encodes again into text that decodes to the
// same record.
#include "protocol.h"

#include <stdint.h>
#include <stdlib.h>
#include <string.h>

using namespace hr;

namespace {

bool same(const Config &a, const Config &b) {
    if (a.ctl != b.ctl || a.wake != b.wake || a.shm != b.shm || a.gen != b.gen || a.main_pid != b.main_pid ||
        a.launcher_pid != b.launcher_pid || a.verbose != b.verbose || a.nfds != b.nfds || a.nown != b.nown)
        return false;
    for (int i = 0; i < a.nfds; ++i)
        if (a.fds[i] != b.fds[i]) return false;
    for (int i = 0; i < a.nown; ++i)
        if (a.own[i] != b.own[i] || a.own_kind[i] != b.own_kind[i]) return false;
    return true;
}

} // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size > 2 * kExecStateLen) return 0;
    char *text = static_cast<char *>(malloc(size + 1));
    memcpy(text, data, size);
    text[size] = '\0';
    Config c;
    char err[64];
    memset(err, 'x', sizeof err);
    bool ok = config_decode(text, &c, err, sizeof err);
    if (!memchr(err, '\0', sizeof err)) abort();
    if (ok) {
        static char buf[kExecStateLen];
        int n = config_encode(c, buf, sizeof buf);
        if (n < 0 || size_t(n) != strlen(buf)) abort();
        Config again;
        if (!config_decode(buf, &again, err, sizeof err) || !same(c, again)) abort();
    }
    free(text);
    return 0;
}
