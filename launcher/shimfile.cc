#include "shimfile.h"

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <link.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#ifndef HR_LIBDIR
#define HR_LIBDIR "/usr/local/lib/hotrestart"
#endif

namespace hr {
namespace {

bool readable(const std::string &p) { return !p.empty() && access(p.c_str(), R_OK) == 0; }

std::string dir_of(const std::string &p) {
    size_t slash = p.rfind('/');
    return slash == std::string::npos ? "." : slash == 0 ? "/" : p.substr(0, slash);
}

// A read-only map of a whole file, unmapped on scope exit.
struct Mapped {
    const unsigned char *data = nullptr;
    size_t size = 0;
    ~Mapped() {
        if (data) munmap(const_cast<unsigned char *>(data), size);
    }
};

// The ELF header of the running launcher: the class, byte order and machine a shim must share with it.
bool own_header(ElfW(Ehdr) *eh) {
    int fd = open("/proc/self/exe", O_RDONLY | O_CLOEXEC);
    if (fd < 0) return false;
    bool ok = read(fd, eh, sizeof *eh) == ssize_t(sizeof *eh);
    close(fd);
    return ok;
}

const char *type_name(int t) {
    switch (t) {
    case ET_REL: return "an ELF relocatable object (.o)";
    case ET_EXEC: return "an ELF executable";
    case ET_CORE: return "an ELF core dump";
    default: return "an ELF file of unknown type";
    }
}

} // namespace

std::vector<std::string> shim_candidates() {
    std::vector<std::string> out;
    auto add = [&out](const std::string &p) {
        for (const auto &q : out)
            if (q == p) return;
        out.push_back(p);
    };
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n > 0) {
        self[n] = '\0';
        std::string bindir = dir_of(self);
        add(bindir + "/libhotrestart.so");
        std::string prefix = dir_of(bindir); // /usr/bin -> /usr; spelt out so that it compares with LIBDIR
        add((prefix == "/" ? "" : prefix) + "/lib/hotrestart/libhotrestart.so");
    }
    add(HR_LIBDIR "/libhotrestart.so");
    return out;
}

std::string find_shim(const std::string &option, std::vector<std::string> *tried) {
    tried->clear();
    if (!option.empty()) {
        tried->push_back(option);
        if (!readable(option)) return "";
        if (option[0] == '/') return option;
        char *abs = realpath(option.c_str(), nullptr);
        std::string r = abs ? abs : "";
        free(abs);
        return r;
    }
    for (const auto &p : shim_candidates()) {
        tried->push_back(p);
        if (readable(p)) return p;
    }
    return "";
}

bool check_shim(const std::string &path, std::string *why) {
    int fd = open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) {
        *why = std::string("unreadable: ") + strerror(errno);
        return false;
    }
    struct stat st;
    if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode)) {
        close(fd);
        *why = S_ISDIR(st.st_mode) ? "a directory, not a shared object" : "not a regular file";
        return false;
    }
    Mapped m;
    m.size = size_t(st.st_size);
    if (m.size >= sizeof(ElfW(Ehdr))) {
        void *p = mmap(nullptr, m.size, PROT_READ, MAP_PRIVATE, fd, 0);
        if (p != MAP_FAILED) m.data = static_cast<const unsigned char *>(p);
    }
    close(fd);
    if (!m.data || memcmp(m.data, ELFMAG, SELFMAG) != 0) {
        *why = "not an ELF file";
        return false;
    }
    ElfW(Ehdr) self;
    if (!own_header(&self)) {
        *why = "unverifiable: the launcher cannot read its own ELF header in /proc/self/exe";
        return false;
    }
    if (m.data[EI_CLASS] != self.e_ident[EI_CLASS] || m.data[EI_DATA] != self.e_ident[EI_DATA]) {
        *why = std::string("a ") + (m.data[EI_CLASS] == ELFCLASS32 ? "32" : m.data[EI_CLASS] == ELFCLASS64 ? "64" : "?") +
               "-bit " + (m.data[EI_DATA] == ELFDATA2MSB ? "big" : "little") + "-endian ELF file; the launcher is " +
               (self.e_ident[EI_CLASS] == ELFCLASS64 ? "64" : "32") + "-bit " +
               (self.e_ident[EI_DATA] == ELFDATA2MSB ? "big" : "little") + "-endian";
        return false;
    }
    ElfW(Ehdr) eh;
    memcpy(&eh, m.data, sizeof eh);
    if (eh.e_machine != self.e_machine) {
        *why = "an ELF file for another machine (e_machine " + std::to_string(eh.e_machine) + ", the launcher's is " +
               std::to_string(self.e_machine) + ")";
        return false;
    }
    if (eh.e_type != ET_DYN) {
        *why = std::string(type_name(eh.e_type)) + ", not a shared object";
        return false;
    }
    // The dynamic symbol table and the dynamic section, found through the section headers.
    auto in_file = [&m](uint64_t off, uint64_t len) { return off <= m.size && len <= m.size - off; };
    if (eh.e_shentsize != sizeof(ElfW(Shdr)) || !in_file(eh.e_shoff, uint64_t(eh.e_shnum) * sizeof(ElfW(Shdr)))) {
        *why = "an ELF shared object without readable section headers";
        return false;
    }
    const ElfW(Shdr) *sh = reinterpret_cast<const ElfW(Shdr) *>(m.data + eh.e_shoff);
    auto section = [&](unsigned i) -> const ElfW(Shdr) * {
        if (i >= eh.e_shnum || sh[i].sh_type == SHT_NOBITS || !in_file(sh[i].sh_offset, sh[i].sh_size)) return nullptr;
        return &sh[i];
    };
    // A string of a string table, or nullptr if it runs outside it.
    auto string_at = [&](const ElfW(Shdr) *strtab, uint64_t off) -> const char * {
        if (!strtab || off >= strtab->sh_size) return nullptr;
        const char *s = reinterpret_cast<const char *>(m.data + strtab->sh_offset + off);
        return memchr(s, '\0', strtab->sh_size - off) ? s : nullptr;
    };
    std::string soname;
    bool has_dynsym = false, pie = false;
    static const char *const kWrappers[] = {"bind", "listen", "accept", "accept4", "close", "execve"};
    bool defined[sizeof kWrappers / sizeof *kWrappers] = {};
    for (unsigned i = 0; i < eh.e_shnum; ++i) {
        const ElfW(Shdr) *s = section(i);
        if (!s) continue;
        const ElfW(Shdr) *strtab = section(s->sh_link);
        if (s->sh_type == SHT_DYNAMIC && s->sh_entsize == sizeof(ElfW(Dyn))) {
            const ElfW(Dyn) *d = reinterpret_cast<const ElfW(Dyn) *>(m.data + s->sh_offset);
            for (size_t k = 0; k < s->sh_size / sizeof *d && d[k].d_tag != DT_NULL; ++k) {
                const char *name = d[k].d_tag == DT_SONAME ? string_at(strtab, d[k].d_un.d_val) : nullptr;
                if (name) soname = name;
                if (d[k].d_tag == DT_FLAGS_1 && (d[k].d_un.d_val & DF_1_PIE)) pie = true;
            }
        } else if (s->sh_type == SHT_DYNSYM && s->sh_entsize == sizeof(ElfW(Sym))) {
            has_dynsym = true;
            const ElfW(Sym) *sym = reinterpret_cast<const ElfW(Sym) *>(m.data + s->sh_offset);
            for (size_t k = 0; k < s->sh_size / sizeof *sym; ++k) {
                if (sym[k].st_shndx == SHN_UNDEF || ELF64_ST_TYPE(sym[k].st_info) != STT_FUNC) continue;
                const char *name = string_at(strtab, sym[k].st_name);
                for (size_t w = 0; name && w < sizeof kWrappers / sizeof *kWrappers; ++w)
                    if (strcmp(name, kWrappers[w]) == 0) defined[w] = true;
            }
        }
    }
    if (pie) {
        *why = "a position-independent executable, not a shared object";
        return false;
    }
    if (!has_dynsym) {
        *why = "an ELF shared object without dynamic symbols";
        return false;
    }
    if (soname != kShimSoname) {
        *why = "an ELF shared object, but not the hotrestart shim (its soname is " +
               (soname.empty() ? std::string("not set") : "'" + soname + "'") + ", expected '" + kShimSoname + "')";
        return false;
    }
    for (size_t w = 0; w < sizeof kWrappers / sizeof *kWrappers; ++w)
        if (!defined[w]) {
            *why = std::string("not a usable hotrestart shim: it does not define ") + kWrappers[w] + "()";
            return false;
        }
    return true;
}

} // namespace hr
