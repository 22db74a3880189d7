// Unit tests for launcher/progkind.cc (what kind of executable PROGRAM is, before exec) and the parsers of
// launcher/listen.cc (--listen addresses, the variables of the conventions), on real files in a temporary
// directory: hand-made ELF headers with and without PT_INTERP, scripts, mode bits, xattrs.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

#include <elf.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/xattr.h>
#include <unistd.h>

#include <string>
#include <vector>

#include "elfkind.h"
#include "listen.h"
#include "options.h"
#include "progkind.h"

using namespace hr;

namespace {

std::string g_dir;

std::string path_of(const char *name) { return g_dir + "/" + name; }

void write_file(const std::string &path, const void *data, size_t len, mode_t mode) {
    int fd = open(path.c_str(), O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
    assert_true(fd >= 0);
    assert_int_equal(write(fd, data, len), ssize_t(len));
    close(fd);
    assert_int_equal(chmod(path.c_str(), mode), 0);
}

// A 64-bit ELF executable header with one program header: PT_INTERP (dynamic) or PT_LOAD (static).
void init_ehdr(Elf64_Ehdr *eh, uint16_t type) {
    memcpy(eh->e_ident, ELFMAG, SELFMAG);
    eh->e_ident[EI_CLASS] = ELFCLASS64;
    eh->e_ident[EI_DATA] = ELFDATA2LSB;
    eh->e_ident[EI_VERSION] = EV_CURRENT;
    eh->e_type = type;
    eh->e_phoff = sizeof(Elf64_Ehdr);
    eh->e_phentsize = sizeof(Elf64_Phdr);
    eh->e_phnum = 2;
}

void write_elf(const std::string &path, bool interp, mode_t mode) {
    struct {
        Elf64_Ehdr eh;
        Elf64_Phdr ph[2];
    } img;
    memset(&img, 0, sizeof img);
    init_ehdr(&img.eh, ET_EXEC);
    img.ph[0].p_type = PT_LOAD;
    img.ph[1].p_type = interp ? PT_INTERP : PT_NOTE;
    write_file(path, &img, sizeof img, mode);
}

// A shared object run as a program (ET_DYN, no PT_INTERP) with a PT_DYNAMIC segment that has DT_SONAME
// (the dynamic loader) or not (a static-pie executable).
void write_et_dyn(const std::string &path, bool soname) {
    struct {
        Elf64_Ehdr eh;
        Elf64_Phdr ph[2];
        Elf64_Dyn dyn[3];
    } img;
    memset(&img, 0, sizeof img);
    init_ehdr(&img.eh, ET_DYN);
    img.ph[0].p_type = PT_LOAD;
    img.ph[1].p_type = PT_DYNAMIC;
    img.ph[1].p_offset = offsetof(decltype(img), dyn);
    img.ph[1].p_filesz = sizeof img.dyn;
    img.dyn[0].d_tag = DT_HASH;
    img.dyn[1].d_tag = soname ? DT_SONAME : DT_DEBUG;
    img.dyn[2].d_tag = DT_NULL;
    write_file(path, &img, sizeof img, 0755);
}

int setup(void **) {
    char tmpl[] = "/tmp/hr-progkind-XXXXXX";
    assert_non_null(mkdtemp(tmpl));
    g_dir = tmpl;
    return 0;
}

int teardown(void **) {
    std::string cmd = "rm -rf '" + g_dir + "'";
    return system(cmd.c_str()) == 0 ? 0 : -1;
}

void test_elf_interpreter(void **) {
    write_elf(path_of("dyn"), true, 0755);
    write_elf(path_of("static"), false, 0755);
    assert_int_equal(prog_classify(path_of("dyn"), getuid(), getgid()).kind, PK_DYNAMIC);
    assert_int_equal(prog_classify(path_of("static"), getuid(), getgid()).kind, PK_STATIC);
    // `ld-linux-x86-64.so.2 --library-path ... PROGRAM` (a bundle) loads PROGRAM dynamically, LD_PRELOAD too.
    write_et_dyn(path_of("loader"), true);
    write_et_dyn(path_of("static-pie"), false);
    assert_int_equal(prog_classify(path_of("loader"), getuid(), getgid()).kind, PK_DYNAMIC);
    assert_int_equal(prog_classify(path_of("static-pie"), getuid(), getgid()).kind, PK_STATIC);
    if (access("/lib64/ld-linux-x86-64.so.2", X_OK) == 0)
        assert_int_equal(prog_classify("/lib64/ld-linux-x86-64.so.2", getuid(), getgid()).kind, PK_DYNAMIC);
    assert_true(prog_shimless(PK_STATIC));
    assert_false(prog_shimless(PK_DYNAMIC));
    assert_false(prog_shimless(PK_UNKNOWN));
}

// What the shim's exec wrapper asks (shim/elfkind.cc): does the image exec runs load the shim?
void test_exec_runs_loader(void **) {
    write_elf(path_of("x-dyn"), true, 0755);
    write_elf(path_of("x-static"), false, 0755);
    write_et_dyn(path_of("x-static-pie"), false);
    const std::string to_static = "#! " + path_of("x-static") + " -a\n", to_dyn = "#!" + path_of("x-dyn") + "\n";
    const std::string nested = "#!" + path_of("x-script-static") + "\n";
    write_file(path_of("x-script-static"), to_static.data(), to_static.size(), 0755);
    write_file(path_of("x-script-dyn"), to_dyn.data(), to_dyn.size(), 0755);
    write_file(path_of("x-script-nested"), nested.data(), nested.size(), 0755);
    assert_int_equal(exec_runs_loader(path_of("x-dyn").c_str()), 1);
    assert_int_equal(exec_runs_loader(path_of("x-static").c_str()), 0);
    assert_int_equal(exec_runs_loader(path_of("x-static-pie").c_str()), 0);
    assert_int_equal(exec_runs_loader(path_of("x-script-static").c_str()), 0);
    assert_int_equal(exec_runs_loader(path_of("x-script-dyn").c_str()), 1);
    assert_int_equal(exec_runs_loader(path_of("x-script-nested").c_str()), -1); // one level, like the kernel's first
    assert_int_equal(exec_runs_loader(path_of("x-missing").c_str()), -1);
    int fd = open(path_of("x-static").c_str(), O_RDONLY | O_CLOEXEC);
    assert_true(fd >= 0);
    assert_int_equal(exec_runs_loader_fd(fd), 0);
    close(fd);
}

void test_setid_counts_only_when_it_changes_identity(void **) {
    write_elf(path_of("suid"), true, 04755);
    write_elf(path_of("sgid"), true, 02755);
    const uid_t me = getuid(), other = me + 1;
    const gid_t gme = getgid(), gother = gme + 1;
    // The file is ours: run as us, no identity change (no AT_SECURE); run as someone else, it is one.
    assert_int_equal(prog_classify(path_of("suid"), me, gme).kind, PK_DYNAMIC);
    assert_int_equal(prog_classify(path_of("suid"), other, gme).kind, PK_SETID);
    assert_int_equal(prog_classify(path_of("sgid"), me, gme).kind, PK_DYNAMIC);
    assert_int_equal(prog_classify(path_of("sgid"), me, gother).kind, PK_SETID);
    // A static setuid program is still one the shim cannot enter, whichever name it gets.
    write_elf(path_of("suid-static"), false, 04755);
    assert_true(prog_shimless(prog_classify(path_of("suid-static"), other, gme).kind));
}

void test_file_capabilities(void **) {
    write_elf(path_of("caps"), true, 0755);
    // cap_net_bind_service=ep as the kernel stores it (VFS_CAP_REVISION_2).
    const uint32_t cap[5] = {0x02000001, 1u << 10, 0, 0, 0};
    if (setxattr(path_of("caps").c_str(), "security.capability", cap, sizeof cap, 0) < 0) {
        assert_true(errno == EPERM || errno == ENOTSUP);
        skip(); // needs CAP_SETFCAP and a file system with xattrs
    }
    assert_int_equal(prog_classify(path_of("caps"), getuid(), getgid()).kind, PK_CAPABILITIES);
}

void test_scripts_and_others(void **) {
    write_elf(path_of("interp-static"), false, 0755);
    std::string script = "#!" + path_of("interp-static") + " -x\necho\n";
    write_file(path_of("script"), script.data(), script.size(), 0755);
    ProgInfo p = prog_classify(path_of("script"), getuid(), getgid());
    assert_int_equal(p.kind, PK_STATIC);
    assert_string_equal(p.path.c_str(), path_of("interp-static").c_str());
    const char sh[] = "#!/bin/sh\necho\n";
    write_file(path_of("shscript"), sh, sizeof sh - 1, 04755); // setuid scripts: the kernel ignores the bit
    assert_int_equal(prog_classify(path_of("shscript"), getuid() + 1, getgid()).kind, prog_classify("/bin/sh", getuid() + 1, getgid()).kind);
    const char text[] = "not an executable";
    write_file(path_of("text"), text, sizeof text - 1, 0755);
    assert_int_equal(prog_classify(path_of("text"), getuid(), getgid()).kind, PK_UNKNOWN);
    assert_int_equal(prog_classify(path_of("missing"), getuid(), getgid()).kind, PK_UNKNOWN);
    write_file(path_of("short"), ELFMAG, SELFMAG, 0755); // a truncated header
    assert_int_equal(prog_classify(path_of("short"), getuid(), getgid()).kind, PK_UNKNOWN);
}

void test_resolve(void **) {
    write_elf(path_of("found-here"), false, 0755);
    const char *old = getenv("PATH");
    std::string saved = old ? old : "";
    setenv("PATH", ("/nonexistent:" + g_dir).c_str(), 1);
    assert_string_equal(prog_resolve("found-here", "").c_str(), path_of("found-here").c_str());
    assert_string_equal(prog_resolve("not-there", "").c_str(), "");
    setenv("PATH", saved.c_str(), 1);
    assert_string_equal(prog_resolve("./x", "/srv/app").c_str(), "/srv/app/./x");
    assert_string_equal(prog_resolve("/bin/sh", "/srv/app").c_str(), "/bin/sh");
}

void test_listen_addresses(void **) {
    ListenAddr a;
    std::string why;
    assert_true(listen_parse("127.0.0.1:8080", &a, &why));
    assert_int_equal(a.addr.ss_family, AF_INET);
    assert_int_equal(a.type, SOCK_STREAM);
    assert_true(listen_parse("[::1]:443", &a, &why));
    assert_int_equal(a.addr.ss_family, AF_INET6);
    assert_true(listen_parse("udp:0.0.0.0:53", &a, &why));
    assert_int_equal(a.type, SOCK_DGRAM);
    assert_true(listen_parse("unix:/run/x.sock", &a, &why));
    assert_int_equal(a.addr.ss_family, AF_UNIX);
    for (const char *bad : {"8080", ":8080", "localhost:80", "127.0.0.1:0", "127.0.0.1:65536", "[::1]80",
                            "::1:80", "unix:", "127.0.0.1:8o", "udp:unix:/x"}) {
        why.clear();
        assert_false(listen_parse(bad, &a, &why));
        assert_false(why.empty());
    }
}

void test_convention_variables(void **) {
    assert_true(convention_env({}).empty());
    std::vector<std::string> env = convention_env({{"web", "127.0.0.1:8080"}, {"dns", ""}, {"unknown", "[::1]:8080"}});
    assert_int_equal(env.size(), 3);
    assert_string_equal(env[0].c_str(), "LISTEN_FDS=3");
    assert_string_equal(env[1].c_str(), "LISTEN_FDNAMES=web:dns:unknown");
    assert_string_equal(env[2].c_str(), "SERVER_STARTER_PORT=127.0.0.1:8080=3;[::1]:8080=5");
}

ParseResult parse(std::vector<const char *> args, Options *o, std::string *msg) {
    static char *argv[32];
    int argc = 0;
    argv[argc++] = const_cast<char *>("hotrestart");
    for (const char *a : args) argv[argc++] = const_cast<char *>(a);
    argv[argc] = nullptr;
    return parse_options(argc, argv, o, msg);
}

void test_listen_and_user_options(void **) {
    Options o;
    std::string msg;
    assert_int_equal(parse({"--listen", "127.0.0.1:80", "--listen=[::]:80", "--user", "www-data:www", "--", "srv"},
                           &o, &msg), PARSE_RUN);
    assert_int_equal(o.listen.size(), 2);
    assert_string_equal(o.listen[1].c_str(), "[::]:80");
    assert_string_equal(o.user.c_str(), "www-data:www");
    Options bad;
    assert_int_equal(parse({"--listen", "localhost:80", "--", "srv"}, &bad, &msg), PARSE_ERROR);
    assert_true(msg.rfind("invalid --listen 'localhost:80': expected HOST:PORT", 0) == 0);
    assert_int_equal(parse({"--user", "nobody:", "--", "srv"}, &bad, &msg), PARSE_ERROR);
    assert_string_equal(msg.c_str(), "invalid --user 'nobody:': expected USER or USER:GROUP");
    assert_int_equal(parse({"--user", "", "--", "srv"}, &bad, &msg), PARSE_ERROR);
}

} // namespace

int main() {
    const CMUnitTest tests[] = {
        cmocka_unit_test(test_elf_interpreter),
        cmocka_unit_test(test_exec_runs_loader),
        cmocka_unit_test(test_setid_counts_only_when_it_changes_identity),
        cmocka_unit_test(test_file_capabilities),
        cmocka_unit_test(test_scripts_and_others),
        cmocka_unit_test(test_resolve),
        cmocka_unit_test(test_listen_addresses),
        cmocka_unit_test(test_convention_variables),
        cmocka_unit_test(test_listen_and_user_options),
    };
    return cmocka_run_group_tests(tests, setup, teardown);
}
