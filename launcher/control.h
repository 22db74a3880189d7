// The launcher's control socket (--control PATH): a unix stream socket, mode 0600, that only root and the
// launcher's own user may use (SO_PEERCRED). One request line per connection, "<command>[ json]\n"
// (command: reload, status, stop); the reply is "<exit status>\n<body>", after which the launcher closes the
// connection. A stop is answered only when the launcher exits, with its exit status.
//
// This file knows sockets and framing only; what a command does is the supervisor's (it reads requests
// with take() and answers with reply()).
#pragma once

#include <poll.h>
#include <stdint.h>
#include <string>
#include <sys/types.h>
#include <vector>

namespace hr {

struct ControlRequest {
    int client = -1;     // handle for reply()
    std::string command; // "reload", "status", "stop"
    bool json = false;
};

class Control {
public:
    ~Control();
    // Creates the socket at path. A stale socket file (nobody answers) is replaced; a live launcher's is
    // an error, and so is a path that is not a socket. On error returns false with one line in *err.
    bool open(const std::string &path, std::string *err);
    bool active() const { return lfd_ >= 0; }
    // Descriptors to poll (listener, clients), appended to pfds; service() then reads their revents.
    void add_pollfds(std::vector<pollfd> *pfds, int64_t now);
    // Accepts, reads and writes what poll reported, from pfds[first...]. Returns complete requests.
    std::vector<ControlRequest> service(const std::vector<pollfd> &pfds, size_t first, int64_t now);
    // Earliest deadline of a client (a request that does not arrive in time is dropped); -1: none.
    int64_t next_deadline() const;
    // Queues text for a client; with close_after the connection is closed once it is written.
    void reply(int client, const std::string &text, bool close_after);
    // The launcher is exiting: writes what is queued (briefly blocking), closes every connection and
    // removes the socket file if it is still ours.
    void shutdown();

private:
    struct Client {
        int id = 0;
        int fd = -1;
        std::string in, out;
        bool have_request = false;
        bool close_after = false;
        int64_t deadline = 0; // for the request line to arrive
    };
    // Closes a client's connection. Its entry stays (fd -1) until the next add_pollfds(): between
    // add_pollfds() and service(), entries must keep their places (service() reads revents by index).
    void drop(size_t i);
    bool flush(Client &c);
    int lfd_ = -1;
    std::string path_;
    dev_t dev_ = 0;
    ino_t ino_ = 0;
    std::vector<Client> clients_;
    int next_id_ = 1;
};

} // namespace hr
