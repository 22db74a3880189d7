// A plain Node.js `http` server: every reply is "pid=<process.pid>\n" on a connection that is then closed.
// On SIGTERM it stops accepting (server.close()), lets in-flight requests finish, and exits 0.
//   node server.js PORT [HOST]
'use strict';
const http = require('http');

const port = Number(process.argv[2] || 8001);
const host = process.argv[3] || '127.0.0.1';

const server = http.createServer((req, res) => {
    const body = 'pid=' + process.pid + '\n';
    res.writeHead(200, {
        'Content-Type': 'text/plain',
        'Content-Length': Buffer.byteLength(body),
        'Connection': 'close',
    });
    res.end(body);
});
server.keepAliveTimeout = 1000;

server.on('error', (err) => {
    console.error('server.js: ' + err.message);
    process.exit(1);
});

server.listen(port, host, () => {
    console.error('server.js: listening on ' + host + ':' + port + ' pid=' + process.pid);
});

process.on('SIGTERM', () => {
    server.close(() => process.exit(0));
    // Idle keep-alive connections would hold close() open: end them.
    if (server.closeIdleConnections) server.closeIdleConnections();
});
