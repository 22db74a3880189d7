#include "elfkind.h"

#include <elf.h>
#include <fcntl.h>
#include <string.h>
#include <unistd.h>

namespace hr {
namespace {

// Reads exactly n bytes at off; false on a short file.
bool read_at(int fd, void *buf, unsigned long n, off_t off) {
    unsigned long done = 0;
    while (done < n) {
        ssize_t r = pread(fd, static_cast<char *>(buf) + done, n - done, off + off_t(done));
        if (r <= 0) return false;
        done += static_cast<unsigned long>(r);
    }
    return true;
}

// The loader is told from a static-pie executable (both ET_DYN without PT_INTERP) by its DT_SONAME: a
// shared object's.
template <class Ehdr, class Phdr, class Dyn> int interp_of(int fd) {
    Ehdr eh;
    if (!read_at(fd, &eh, sizeof eh, 0) || eh.e_phentsize != sizeof(Phdr)) return -1;
    Phdr dynamic{};
    for (unsigned i = 0; i < eh.e_phnum; ++i) {
        Phdr ph;
        if (!read_at(fd, &ph, sizeof ph, off_t(eh.e_phoff + i * sizeof(Phdr)))) return -1;
        if (ph.p_type == PT_INTERP) return 1;
        if (ph.p_type == PT_DYNAMIC) dynamic = ph;
    }
    if (eh.e_type != ET_DYN || dynamic.p_type != PT_DYNAMIC) return 0;
    for (unsigned long off = 0; off + sizeof(Dyn) <= dynamic.p_filesz && off < 64 * 1024; off += sizeof(Dyn)) {
        Dyn d;
        if (!read_at(fd, &d, sizeof d, off_t(dynamic.p_offset + off)) || d.d_tag == DT_NULL) break;
        if (d.d_tag == DT_SONAME) return 1;
    }
    return 0;
}

int runs_loader(int fd, int depth) {
    char head[256];
    ssize_t n = pread(fd, head, sizeof head - 1, 0);
    if (n >= 2 && head[0] == '#' && head[1] == '!') {
        if (depth > 0) return -1;
        head[n] = '\0';
        char *p = head + 2;
        while (*p == ' ' || *p == '\t') ++p;
        size_t len = strcspn(p, " \t\n");
        if (len == 0) return -1;
        p[len] = '\0';
        int ifd = open(p, O_RDONLY | O_CLOEXEC);
        if (ifd < 0) return -1;
        int r = runs_loader(ifd, depth + 1);
        close(ifd);
        return r;
    }
    return elf_has_interp(fd);
}

} // namespace

int elf_has_interp(int fd) {
    unsigned char ident[EI_NIDENT];
    if (!read_at(fd, ident, sizeof ident, 0) || memcmp(ident, ELFMAG, SELFMAG) != 0) return -1;
    if (ident[EI_CLASS] == ELFCLASS64) return interp_of<Elf64_Ehdr, Elf64_Phdr, Elf64_Dyn>(fd);
    if (ident[EI_CLASS] == ELFCLASS32) return interp_of<Elf32_Ehdr, Elf32_Phdr, Elf32_Dyn>(fd);
    return -1;
}

int exec_runs_loader_fd(int fd) { return runs_loader(fd, 0); }

int exec_runs_loader(const char *path) {
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) return -1;
    int r = runs_loader(fd, 0);
    close(fd);
    return r;
}

} // namespace hr
