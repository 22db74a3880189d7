// A Node.js `cluster`: the primary forks 2 workers that all listen on one port (the primary accepts and
// hands connections to the workers round-robin). Every reply is "pid=<worker pid>\n".
// On SIGTERM the primary disconnects the workers (each stops taking connections and finishes what it
// has), and exits 0 once they are all gone. hotrestart sends its stop signal to the whole process group,
// so the workers get a SIGTERM of their own: they ignore it and let the primary's disconnect stop them
// gracefully. (A worker still booting, before its handler is installed, dies of it: that is harmless, it
// has no connection yet, and the primary does not replace a worker that died of SIGTERM.)
//   node cluster.js PORT [HOST]
'use strict';
const cluster = require('cluster');
const http = require('http');

const port = Number(process.argv[2] || 8002);
const host = process.argv[3] || '127.0.0.1';
const WORKERS = 2;

if (cluster.isPrimary) {
    let stopping = false;
    let alive = 0; // worker processes not yet exited (cluster.workers forgets a worker as soon as it is
                   // told to disconnect, before it has finished: the primary must outlive its workers)
    const fork = () => {
        const w = cluster.fork();
        alive++;
        // A worker that died while being disconnected makes the send fail (EPIPE): its 'exit' follows.
        w.on('error', (err) => console.error('cluster.js: worker ' + w.process.pid + ': ' + err.message));
    };
    for (let i = 0; i < WORKERS; i++) fork();
    let listening = 0;
    cluster.on('listening', () => {
        if (++listening === WORKERS) {
            console.error('cluster.js: ' + WORKERS + ' workers on ' + host + ':' + port + ' primary pid=' + process.pid);
        }
    });
    cluster.on('exit', (worker, code, signal) => {
        alive--;
        if (stopping) {
            if (alive === 0) process.exit(0);
        } else if (signal !== 'SIGTERM') {
            console.error('cluster.js: worker ' + worker.process.pid + ' died (' + (signal || code) + '), forking another');
            fork();
        }
    });
    process.on('SIGTERM', () => {
        if (stopping) return;
        stopping = true;
        if (alive === 0) process.exit(0);
        cluster.disconnect(); // each worker closes its server, finishes its connections, then exits
    });
} else {
    process.on('SIGTERM', () => {}); // first thing: the primary stops us (cluster.disconnect)
    const server = http.createServer((req, res) => {
        const body = 'pid=' + process.pid + '\n';
        res.writeHead(200, {
            'Content-Type': 'text/plain',
            'Content-Length': Buffer.byteLength(body),
            'Connection': 'close',
        });
        res.end(body);
    });
    server.listen(port, host);
}
