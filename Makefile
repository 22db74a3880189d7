# hotrestart — zero-downtime restarts for unmodified Linux servers.
#   make            build/hotrestart, build/libhotrestart.so, build/testserver
#   make demo       build, then show a reload under load with zero failed requests
#   make check      install test dependencies (make deps), run unit and integration tests
#   make sanitize   unit and integration tests against build-san/: launcher and unit tests with ASan and UBSan,
#                   the shim with UBSan (trap mode: no runtime loaded into programs)
#   make fuzz       libFuzzer targets (clang) for the shim<->launcher protocol and socket addresses, briefly each
#   make bench      benchmarks (ratios, never asserted)
#   make install    PREFIX=/usr/local (LIBDIR=$(PREFIX)/lib/hotrestart); changing either rebuilds what embeds it;
#                   the pytest plugin goes to PYTHONDIR=$(PREFIX)/lib/python3/dist-packages
#
# CPPFLAGS, CXXFLAGS, CFLAGS and LDFLAGS (command line or environment) are added to what the build needs
# (C++17, warnings, no exceptions or RTTI, the shim's -fPIC...), after it: they never replace it. Objects are
# rebuilt when the flags change.

PREFIX    ?= /usr/local
LIBDIR    ?= $(PREFIX)/lib/hotrestart
# The Python package (pytest plugin): where Debian's python3 finds it with PREFIX=/usr. For /usr/local,
# Debian's python3 looks in /usr/local/lib/python3.X/dist-packages instead: set PYTHONDIR (or PYTHONPATH).
PYTHONDIR ?= $(PREFIX)/lib/python3/dist-packages
PYTHON_SRC := python/hotrestart/__init__.py python/hotrestart/pytest_plugin.py
BUILD     ?= build
CXX       ?= g++
CC        ?= gcc
VERSION   := 0.1.0

CXXFLAGS  ?= -O2 -g
CFLAGS    ?= -O2 -g
WARN      := -Wall -Wextra -Wshadow -Wno-unused-parameter
HR_CXXFLAGS = -std=c++17 $(WARN) -D_GNU_SOURCE -fno-exceptions -fno-rtti $(CPPFLAGS) $(CXXFLAGS)
SHIM_FLAGS := -fPIC -fvisibility=hidden -fno-stack-protector
LAUNCHER_FLAGS := -Ishim -DHR_VERSION='"$(VERSION)"' -DHR_LIBDIR='"$(LIBDIR)"'
# Instrumentation of one side only (make sanitize sets them): the launcher and the unit tests may carry a
# sanitizer runtime; the shim, loaded into every program, may not.
LAUNCHER_SAN :=
SHIM_SAN  :=

SHIM_SRC     := shim/protocol.cc shim/addr.cc shim/state.cc shim/libc.cc shim/core.cc \
                shim/sockets.cc shim/accept.cc shim/fdlife.cc shim/process.cc shim/polling.cc shim/epoll.cc shim/dgram.cc \
                shim/guards.cc shim/elfkind.cc
LAUNCHER_SRC := launcher/main.cc launcher/options.cc launcher/log.cc launcher/genstate.cc \
                launcher/registry.cc launcher/spawn.cc launcher/supervisor.cc launcher/kernelscan.cc \
                launcher/control.cc launcher/client.cc launcher/report.cc launcher/notify.cc launcher/procs.cc \
                launcher/sentinel.cc launcher/shimfile.cc launcher/ctlmsg.cc launcher/pidfile.cc launcher/rendezvous.cc \
                launcher/verify.cc launcher/sdnotify.cc launcher/guards.cc launcher/listen.cc launcher/progkind.cc \
                launcher/runas.cc launcher/seccomp.cc launcher/seccomp_accept.cc \
                shim/protocol.cc shim/addr.cc shim/state.cc shim/elfkind.cc
LAUNCHER_SRC += launcher/nofile.cc
SHIM_OBJ     := $(patsubst %.cc,$(BUILD)/shimobj/%.o,$(SHIM_SRC))
LAUNCHER_OBJ := $(patsubst %.cc,$(BUILD)/obj/%.o,$(LAUNCHER_SRC))
HEADERS      := $(wildcard shim/*.h launcher/*.h)

UNIT_TESTS   := $(patsubst tests/unit/%.cc,$(BUILD)/unit/%,$(wildcard tests/unit/test_*.cc))
PRELOAD_TESTS := $(patsubst tests/unit/%.cc,$(BUILD)/unit/%,$(wildcard tests/unit/preload_*.cc))

PYTEST       ?= /usr/bin/python3 -m pytest

.PHONY: all demo check build-tests sanitize-build unit integration pytest-examples sanitize fuzz deps deps-build deps-fuzz bench install clean FORCE
all: $(BUILD)/hotrestart $(BUILD)/libhotrestart.so $(BUILD)/testserver $(BUILD)/staticserver $(BUILD)/bindserver \
     $(BUILD)/nofeature

# Everything built depends on the flags it was built with: this file changes only when they do.
FLAGS_NOW = $(subst ','\'',$(CXX) $(HR_CXXFLAGS) | $(LAUNCHER_SAN) | $(SHIM_SAN) | $(CC) $(CFLAGS) | $(LDFLAGS))
FLAGS     := $(BUILD)/flags
$(FLAGS): FORCE
	@mkdir -p $(BUILD)
	@printf '%s\n' '$(FLAGS_NOW)' | cmp -s - $@ || printf '%s\n' '$(FLAGS_NOW)' > $@

# What the launcher has compiled in (where it looks for the installed shim, its version) is kept in a stamp
# that changes only when the values do, and the objects that use them depend on it: `make install
# PREFIX=/usr` after a plain `make` rebuilds them instead of installing a launcher that looks in /usr/local.
CONFIG_STAMP := $(BUILD)/config.stamp
$(CONFIG_STAMP): FORCE
	@mkdir -p $(dir $@)
	@echo 'LIBDIR=$(LIBDIR) VERSION=$(VERSION)' > $@.tmp
	@if cmp -s $@.tmp $@; then rm -f $@.tmp; else mv -f $@.tmp $@; fi
$(BUILD)/obj/launcher/options.o $(BUILD)/obj/launcher/shimfile.o: $(CONFIG_STAMP)

$(BUILD)/shimobj/%.o: %.cc $(HEADERS) $(FLAGS)
	@mkdir -p $(dir $@)
	$(CXX) $(HR_CXXFLAGS) $(SHIM_FLAGS) $(SHIM_SAN) -c -o $@ $<

$(BUILD)/obj/%.o: %.cc $(HEADERS) $(FLAGS)
	@mkdir -p $(dir $@)
	$(CXX) $(HR_CXXFLAGS) $(LAUNCHER_FLAGS) $(LAUNCHER_SAN) -c -o $@ $<

# The shim is linked without the C++ runtime: nothing of libstdc++ may be loaded into every program.
$(BUILD)/libhotrestart.so: $(SHIM_OBJ) shim/exports.map Makefile
	@if nm $(SHIM_OBJ) | grep -q _GLOBAL__sub_I; then \
	    echo "shim: a global needs dynamic initialisation (it would run after the shim's constructor)"; exit 1; fi
	$(CC) -shared $(SHIM_SAN) -Wl,-soname,libhotrestart.so -Wl,--version-script=shim/exports.map -Wl,-z,defs \
	    -Wl,-z,now $(LDFLAGS) \
	    -o $@ $(SHIM_OBJ) -ldl -lpthread

$(BUILD)/hotrestart: $(LAUNCHER_OBJ)
	$(CXX) $(HR_CXXFLAGS) $(LAUNCHER_SAN) $(LDFLAGS) -o $@ $(LAUNCHER_OBJ)

$(BUILD)/testserver: examples/testserver.c $(FLAGS)
	@mkdir -p $(BUILD)
	$(CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra $(CPPFLAGS) $(CFLAGS) -pthread $(LDFLAGS) -o $@ $<

# Programs the integration tests run: a static one, in which the shim never runs.
TEST_PROGS   := $(BUILD)/fdreport-static
$(BUILD)/fdreport-static: tests/integration/servers/fdreport.c $(FLAGS)
	@mkdir -p $(BUILD)
	$(CC) -static -std=c11 -D_GNU_SOURCE -Wall -Wextra $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $<

# A server the shim cannot run in (no ELF interpreter), for the tests of programs that get their sockets by
# convention (LISTEN_FDS, SERVER_STARTER_PORT) and say READY=1 themselves.
$(BUILD)/staticserver: tests/integration/servers/staticserver.c $(FLAGS)
	@mkdir -p $(BUILD)
	$(CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra $(CPPFLAGS) $(CFLAGS) -static $(LDFLAGS) -o $@ $<

# A static server that binds and listens itself, knowing nothing of hotrestart (--seccomp's tests), and a
# wrapper that hides a kernel feature --seccomp needs behind a seccomp filter (its probe's tests).
$(BUILD)/bindserver: tests/integration/servers/bindserver.c $(FLAGS)
	@mkdir -p $(BUILD)
	$(CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra $(CPPFLAGS) $(CFLAGS) -static $(LDFLAGS) -o $@ $<

$(BUILD)/nofeature: tests/integration/servers/nofeature.c $(FLAGS)
	@mkdir -p $(BUILD)
	$(CC) -std=c11 -D_GNU_SOURCE -Wall -Wextra $(CPPFLAGS) $(CFLAGS) $(LDFLAGS) -o $@ $<

# Unit tests link the modules they test directly (no preload needed for them).
UNIT_LINK    := shim/protocol.cc shim/addr.cc shim/state.cc launcher/genstate.cc launcher/report.cc launcher/options.cc \
                launcher/shimfile.cc launcher/registry.cc launcher/ctlmsg.cc launcher/log.cc launcher/sdnotify.cc \
                launcher/listen.cc launcher/progkind.cc shim/elfkind.cc
$(BUILD)/unit/%: tests/unit/%.cc $(UNIT_LINK) $(HEADERS) $(FLAGS)
	@mkdir -p $(dir $@)
	$(CXX) $(HR_CXXFLAGS) $(LAUNCHER_SAN) -Ishim -Ilauncher $(LDFLAGS) -o $@ $< $(UNIT_LINK) -lcmocka

# Preloaded tests exercise the wrappers in a real generation: they run under the launcher, with the shim
# (so they are instrumented as the shim is: an ASan runtime cannot come after a preloaded library).
$(BUILD)/unit/preload_%: tests/unit/preload_%.cc $(FLAGS)
	@mkdir -p $(dir $@)
	$(CXX) $(HR_CXXFLAGS) $(SHIM_SAN) $(LDFLAGS) -o $@ $< -lcmocka

unit: all $(UNIT_TESTS) $(PRELOAD_TESTS) $(TEST_PROGS)
	@set -e; for t in $(UNIT_TESTS); do echo "== $$t"; $$t; done; \
	for t in $(PRELOAD_TESTS); do echo "== $(BUILD)/hotrestart -- $$t"; $(BUILD)/hotrestart -- $$t; done

integration: all $(TEST_PROGS)
	$(PYTEST) -q tests/integration

# The example suite users copy (examples/pytest), with the plugin from this tree and the launcher just built.
pytest-examples: all
	HOTRESTART_LAUNCHER=$(abspath $(BUILD))/hotrestart PYTHONPATH=$(abspath python) $(PYTEST) -q -p no:cacheprovider examples/pytest

# The same tests against instrumented binaries in their own build directory (the harness takes them from
# $HOTRESTART_BUILD). The shim's UBSan is in trap mode: libubsan would load libstdc++ into every program, so
# undefined behaviour there kills the program (SIGILL) instead of printing a report; the tests see it die.
# A sanitizer report of the launcher fails the test that started it (conftest.py).
SAN_BUILD    := build-san
SAN_LAUNCHER := -fsanitize=address,undefined -fno-sanitize-recover=all -fno-omit-frame-pointer
SAN_SHIM     := -fsanitize=undefined -fsanitize-undefined-trap-on-error
SAN_ENV      := ASAN_OPTIONS=detect_leaks=1:strict_string_checks=1 UBSAN_OPTIONS=print_stacktrace=1:halt_on_error=1
# Everything the tests run, built without running anything: `make -jN build-tests` (CI) compiles in parallel,
# then `make check` runs the tests one at a time. sanitize-build does the same for the sanitized binaries.
build-tests: all $(UNIT_TESTS) $(PRELOAD_TESTS) $(TEST_PROGS)

sanitize-build: deps
	$(MAKE) --no-print-directory BUILD=$(SAN_BUILD) LAUNCHER_SAN='$(SAN_LAUNCHER)' SHIM_SAN='$(SAN_SHIM)' build-tests

sanitize: deps
	$(SAN_ENV) $(MAKE) --no-print-directory BUILD=$(SAN_BUILD) LAUNCHER_SAN='$(SAN_LAUNCHER)' SHIM_SAN='$(SAN_SHIM)' unit
	$(SAN_ENV) HOTRESTART_BUILD=$(SAN_BUILD) $(PYTEST) -q tests/integration

# libFuzzer targets, one per parser a peer feeds: each runs FUZZ_TIME seconds from the committed seeds
# (tests/fuzz/corpus/NAME), writing what it finds under $(BUILD)/fuzz/, never into the seeds. Inputs up to
# 4096 bytes, but a configuration text up to its longest (Shared::exec_state with 1,024 sockets and more).
FUZZ_CXX     ?= clang++
FUZZ_TIME    ?= 20
FUZZ_FLAGS   := -std=c++17 -D_GNU_SOURCE -fno-exceptions -fno-rtti -g -O1 -Ishim \
                -fsanitize=fuzzer,address,undefined -fno-sanitize-recover=all
FUZZ_TARGETS := config_decode msg_check key_from_sockaddr
FUZZ_BINS    := $(patsubst %,$(BUILD)/fuzz/fuzz_%,$(FUZZ_TARGETS))
$(BUILD)/fuzz/fuzz_%: tests/fuzz/fuzz_%.cc shim/protocol.cc shim/addr.cc $(HEADERS)
	@mkdir -p $(dir $@)
	$(FUZZ_CXX) $(FUZZ_FLAGS) -o $@ $< shim/protocol.cc shim/addr.cc

fuzz: deps-fuzz
	@$(MAKE) --no-print-directory $(FUZZ_BINS)
	@set -e; for t in $(FUZZ_TARGETS); do \
	    out=$(BUILD)/fuzz/$$t; rm -rf $$out; mkdir -p $$out/corpus; \
	    echo "== fuzz_$$t: $(FUZZ_TIME) s"; \
	    len=4096; [ $$t != config_decode ] || len=36000; \
	    if ! $(BUILD)/fuzz/fuzz_$$t -max_total_time=$(FUZZ_TIME) -max_len=$$len -artifact_prefix=$$out/ \
	            $$out/corpus tests/fuzz/corpus/$$t > $$out/log 2>&1; then \
	        tail -n 40 $$out/log; echo "fuzz_$$t failed: see $$out/"; exit 1; fi; \
	    grep -E '^#[0-9]+.*DONE' $$out/log | tail -n 1; \
	done

deps:
	@sh tests/deps.sh

deps-build:
	@sh tests/deps.sh build

deps-fuzz:
	@sh tests/deps.sh fuzz

check: deps all unit integration pytest-examples

demo: deps-build
	@$(MAKE) --no-print-directory all
	@/usr/bin/python3 examples/demo.py

bench: all
	@sh bench/run.sh

install: all
	install -d $(DESTDIR)$(PREFIX)/bin $(DESTDIR)$(LIBDIR) $(DESTDIR)$(PREFIX)/share/man/man1
	install -m 755 $(BUILD)/hotrestart $(DESTDIR)$(PREFIX)/bin/hotrestart
	install -m 644 $(BUILD)/libhotrestart.so $(DESTDIR)$(LIBDIR)/libhotrestart.so
	install -m 644 man/hotrestart.1 $(DESTDIR)$(PREFIX)/share/man/man1/hotrestart.1
	install -d $(DESTDIR)$(PYTHONDIR)/hotrestart
	install -m 644 $(PYTHON_SRC) $(DESTDIR)$(PYTHONDIR)/hotrestart/

clean:
	rm -rf $(BUILD) $(SAN_BUILD)
