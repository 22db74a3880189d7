// gohttp: a static Go net/http server that knows nothing of hotrestart: net.Listen binds and listens
// itself (Go's raw syscalls, from whichever thread runs it). SIGTERM: http.Server.Shutdown, a graceful stop.
//
//	gohttp -listen 127.0.0.1:8080 [-tag TAG]
//
// Every reply: "pid=<pid> tag=<tag> ino=<inode of its listening socket> go=<version>".
package main

import (
	"context"
	"flag"
	"fmt"
	"net"
	"net/http"
	"os"
	"os/signal"
	"runtime"
	"syscall"
	"time"
)

func main() {
	addr := flag.String("listen", "127.0.0.1:8080", "address to listen on")
	tag := flag.String("tag", "go", "tag in every reply")
	flag.Parse()
	ln, err := net.Listen("tcp", *addr)
	if err != nil {
		fmt.Fprintln(os.Stderr, "gohttp:", err)
		os.Exit(1)
	}
	// The inode through the raw descriptor (File() would dup it, sharing its blocking mode).
	var ino uint64
	if rc, err := ln.(*net.TCPListener).SyscallConn(); err == nil {
		rc.Control(func(fd uintptr) {
			var st syscall.Stat_t
			if syscall.Fstat(int(fd), &st) == nil {
				ino = st.Ino
			}
		})
	}
	srv := &http.Server{Handler: http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Connection", "close")
		fmt.Fprintf(w, "pid=%d tag=%s ino=%d go=%s\n", os.Getpid(), *tag, ino, runtime.Version())
	})}
	stop := make(chan os.Signal, 1)
	signal.Notify(stop, syscall.SIGTERM)
	done := make(chan struct{})
	go func() {
		<-stop
		srv.Shutdown(context.Background())
		close(done)
	}()
	if err := srv.Serve(ln); err != http.ErrServerClosed {
		// A final stop of the launcher sends SIGTERM, then stops the shared socket listening: accept may
		// fail before the signal is handled. That is the stop, not a failure, if the signal follows.
		select {
		case <-done:
		case <-time.After(5 * time.Second):
			fmt.Fprintln(os.Stderr, "gohttp:", err)
			os.Exit(1)
		}
	}
	<-done
}
