// hotrestart [OPTIONS] -- PROGRAM [ARGS...]
// hotrestart reload|status|stop [--control PATH] ...
// hotrestart verify [OPTIONS] [LAUNCHER OPTIONS] -- PROGRAM [ARGS...]
#include "client.h"
#include "log.h"
#include "nofile.h"
#include "options.h"
#include "shimfile.h"
#include "spawn.h"
#include "supervisor.h"
#include "verify.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <string>
#include <vector>

int main(int argc, char **argv) {
    int status = 0;
    if (hr::run_client(argc, argv, &status)) return status;
    if (hr::run_verify(argc, argv, &status)) return status;
    hr::Options opts;
    std::string msg;
    switch (hr::parse_options(argc, argv, &opts, &msg)) {
    case hr::PARSE_EXIT_OK:
        printf("%s\n", msg.c_str());
        return 0;
    case hr::PARSE_ERROR:
        fprintf(stderr, "hotrestart: %s\n", msg.c_str());
        return hr::kExitLauncherError;
    case hr::PARSE_RUN: break;
    }
    std::vector<std::string> tried;
    std::string shim = hr::find_shim(opts.shim, &tried);
    if (shim.empty()) {
        if (opts.shim.empty()) {
            std::string paths;
            for (const auto &p : tried) paths += (paths.empty() ? "" : ", ") + p;
            fprintf(stderr, "hotrestart: fatal: unable to find libhotrestart.so (tried %s); use --shim PATH\n",
                    paths.c_str());
        } else {
            fprintf(stderr, "hotrestart: fatal: unable to read the shim '%s': %s\n", opts.shim.c_str(),
                    strerror(errno));
        }
        return hr::kExitLauncherError;
    }
    std::string why;
    if (!hr::check_shim(shim, &why)) {
        fprintf(stderr, "hotrestart: fatal: the shim '%s' is %s\n", shim.c_str(), why.c_str());
        return hr::kExitLauncherError;
    }
    // The pid file is written once the launcher is set up; a path it cannot be written to is an error now,
    // before any generation starts, not a warning after (a service manager would wait for it in vain).
    if (!opts.pid_file.empty() && !hr::check_pid_file(opts.pid_file, &why)) {
        fprintf(stderr, "hotrestart: fatal: --pid-file %s: %s\n", opts.pid_file.c_str(), why.c_str());
        return hr::kExitLauncherError;
    }
    if (!opts.chdir.empty()) {
        if (int e = hr::workdir_error(opts.chdir)) {
            fprintf(stderr, "hotrestart: fatal: --chdir %s: %s\n", opts.chdir.c_str(), strerror(e));
            return hr::kExitLauncherError;
        }
        hr::spawn_set_workdir(opts.chdir);
    }
    hr::log_set_verbose(opts.verbose);
    hr::nofile_raise();
    hr::Supervisor sup(opts, shim);
    return sup.run();
}
