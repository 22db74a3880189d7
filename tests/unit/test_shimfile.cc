// Unit tests for launcher/shimfile.cc: the shim is found where it is installed or built, and anything that is
// not the shim is refused before a program runs without hot restart.
#include <stdarg.h>
#include <stddef.h>
#include <setjmp.h>
#include <stdint.h>
extern "C" {
#include <cmocka.h>
}

#include <dlfcn.h>
#include <gnu/libc-version.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <string>
#include <sys/stat.h>
#include <unistd.h>
#include <vector>

#include "shimfile.h"

using namespace hr;

namespace {

bool has(const std::string &s, const char *part) { return s.find(part) != std::string::npos; }

std::string exe_dir() {
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    assert_true(n > 0);
    self[n] = '\0';
    std::string p = self;
    return p.substr(0, p.rfind('/'));
}

// build/unit/test_shimfile -> build/libhotrestart.so (make unit builds it first).
std::string built_shim() { return exe_dir() + "/../libhotrestart.so"; }

std::string why_refused(const std::string &path) {
    std::string why;
    if (check_shim(path, &why)) fail_msg("%s accepted as the shim", path.c_str());
    assert_false(why.empty());
    return why;
}

// A copy of the first n bytes of from, in a temporary file; its path.
std::string truncated_copy(const std::string &from, size_t n) {
    char path[] = "/tmp/hr-shimfile-XXXXXX";
    int fd = mkstemp(path);
    assert_true(fd >= 0);
    FILE *in = fopen(from.c_str(), "rb");
    assert_non_null(in);
    std::vector<char> buf(n);
    size_t got = fread(buf.data(), 1, n, in);
    fclose(in);
    assert_int_equal(write(fd, buf.data(), got), ssize_t(got));
    close(fd);
    return path;
}

void test_the_built_shim_is_accepted(void **) {
    std::string why;
    if (!check_shim(built_shim(), &why)) fail_msg("%s refused: %s", built_shim().c_str(), why.c_str());
}

void test_other_files_are_refused_with_a_reason(void **) {
    assert_string_equal(why_refused("/etc/passwd").c_str(), "not an ELF file");
    assert_true(has(why_refused("/tmp"), "directory"));
    assert_true(has(why_refused("/dev/null"), "not a regular file"));
    assert_true(has(why_refused("/nonexistent.so"), "No such file"));
    // A shared library that is not the shim (the C library defines every wrapper, under another soname). Found
    // through a function no sanitizer runtime intercepts (ASan's defines fopen and the like itself).
    Dl_info info;
    assert_true(dladdr(reinterpret_cast<void *>(&gnu_get_libc_version), &info) && info.dli_fname);
    std::string why = why_refused(info.dli_fname);
    assert_true(has(why, "not the hotrestart shim") && has(why, "libc.so.6"));
    // A position-independent executable is ET_DYN too.
    assert_true(has(why_refused("/proc/self/exe"), "position-independent executable"));
    assert_true(has(why_refused(exe_dir() + "/../obj/launcher/main.o"), "relocatable object"));
}

void test_truncated_shims_are_refused(void **) {
    struct stat st;
    assert_int_equal(stat(built_shim().c_str(), &st), 0);
    for (size_t n : {size_t(0), size_t(3), size_t(40), size_t(64), size_t(4096), size_t(st.st_size / 2),
                     size_t(st.st_size - 1)}) {
        std::string p = truncated_copy(built_shim(), n);
        std::string why;
        bool ok = check_shim(p, &why);
        unlink(p.c_str());
        if (ok) fail_msg("the first %zu bytes of the shim accepted", n);
    }
}

void test_candidates(void **) {
    std::vector<std::string> c = shim_candidates();
    std::string dir = exe_dir();                       // .../build/unit
    std::string prefix = dir.substr(0, dir.rfind('/')); // .../build
    assert_true(c.size() == 3);
    assert_string_equal(c[0].c_str(), (dir + "/libhotrestart.so").c_str());
    assert_string_equal(c[1].c_str(), (prefix + "/lib/hotrestart/libhotrestart.so").c_str());
    assert_true(has(c[2], "/lib/hotrestart/libhotrestart.so"));
    std::vector<std::string> tried;
    assert_true(find_shim("/nonexistent.so", &tried).empty());
    assert_true(tried.size() == 1 && tried[0] == "/nonexistent.so");
    std::string found = find_shim("", &tried); // none next to build/unit/, normally none installed
    if (found.empty()) assert_true(tried == c);
    else assert_true(found == c[tried.size() - 1]);
}

} // namespace

int main(void) {
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_the_built_shim_is_accepted),
        cmocka_unit_test(test_other_files_are_refused_with_a_reason),
        cmocka_unit_test(test_truncated_shims_are_refused),
        cmocka_unit_test(test_candidates),
    };
    return cmocka_run_group_tests_name("shimfile", tests, NULL, NULL);
}
