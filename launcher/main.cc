// hotrestart [OPTIONS] -- PROGRAM [ARGS...]
// hotrestart reload|status|stop [--control PATH] ...
#include "client.h"
#include "log.h"
#include "options.h"
#include "supervisor.h"

#include <stdio.h>
#include <string>

int main(int argc, char **argv) {
    int status = 0;
    if (hr::run_client(argc, argv, &status)) return status;
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
    std::string shim = hr::find_shim(opts.shim);
    if (shim.empty()) {
        if (opts.shim.empty())
            fprintf(stderr, "hotrestart: fatal: unable to find libhotrestart.so next to the launcher or in the "
                            "installed location (use --shim PATH)\n");
        else
            fprintf(stderr, "hotrestart: fatal: unable to read the shim '%s'\n", opts.shim.c_str());
        return hr::kExitLauncherError;
    }
    hr::log_set_verbose(opts.verbose);
    hr::Supervisor sup(opts, shim);
    return sup.run();
}
