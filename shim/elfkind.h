// Whether an executable runs the dynamic loader (and so honours LD_PRELOAD): read from its ELF program
// headers. Shared by the launcher (what kind of PROGRAM a generation runs) and the shim (what the main
// process execs). System calls only (pread, open, close): safe in an exec wrapper, after vfork too.
#pragma once

namespace hr {

// 1: has PT_INTERP, or is the dynamic loader itself (`ld-linux-x86-64.so.2 PROGRAM`: it loads PROGRAM and
// honours LD_PRELOAD); 0: ELF without (static, static-pie); -1: not ELF (or unreadable headers).
int elf_has_interp(int fd);

// What exec(path) would run, followed through one "#!" line to the interpreter (the kernel's first step):
// 1 the loader runs, 0 a static executable, -1 unknown (not found, unreadable, not ELF).
int exec_runs_loader(const char *path);
// The same for an open file (fexecve).
int exec_runs_loader_fd(int fd);

} // namespace hr
