// ws_peer.js: Node's `ws` package (Debian node-ws) as the real peer of
// spec/websocket_spec.lua. Started by the spec on a free loopback port,
// stopped by PID.
//
//   node ws_peer.js server [CERT KEY]    a ws:// (or wss://) server on
//     127.0.0.1:0; prints "listening PORT". Echoes every message (a binary
//     one of 1 MiB or more is preceded by "sha1:HEX" of what arrived), and
//     obeys text commands:
//       frag:N         sends a text message in N fragments, a ping between
//                      the first two
//       ping:DATA      pings; the pong comes back as "pong:DATA"
//       close:CODE:WHY closes with that code and reason
//       big:N          sends N bytes of "a" as one binary message
//     A ping from the client is reported as "ping:DATA"; each close is
//     printed as "close CODE REASON".
//   node ws_peer.js client URL SMALL_URL SIZE   runs the client checks
//     against our server (URL: an echo server that closes with 4000
//     "server bye" on "close-me"; SMALL_URL: the same with a small
//     max_message) and prints "ok NAME" or "FAIL NAME: DETAIL" per check,
//     then "done".
'use strict';
const WebSocket = require('ws');
const crypto = require('crypto');
const fs = require('fs');
const https = require('https');

const sha1 = (b) => crypto.createHash('sha1').update(b).digest('hex');

function onCommand(ws, s) {
  let m;
  if ((m = s.match(/^frag:(\d+)$/))) {
    const n = Number(m[1]);
    for (let i = 0; i < n; i++) {
      ws.send('part' + i + '-\u00e9\u4e16;', { fin: i === n - 1 });
      if (i === 0) ws.ping('mid');
    }
  } else if ((m = s.match(/^ping:(.*)$/s))) {
    ws.ping(m[1]);
  } else if ((m = s.match(/^close:(\d+):(.*)$/s))) {
    ws.close(Number(m[1]), m[2]);
  } else if ((m = s.match(/^big:(\d+)$/))) {
    ws.send(Buffer.alloc(Number(m[1]), 0x61), { binary: true });
  } else {
    return false;
  }
  return true;
}

function server(cert, key) {
  const opts = {
    maxPayload: 64 << 20,
    handleProtocols: (ps) => (ps.has('chat') ? 'chat' : false),
  };
  let hs;
  if (cert) {
    hs = https.createServer({ cert: fs.readFileSync(cert), key: fs.readFileSync(key) });
    opts.server = hs;
  } else {
    opts.host = '127.0.0.1';
    opts.port = 0;
  }
  const wss = new WebSocket.Server(opts);
  const ready = () => console.log('listening ' + (hs || wss).address().port);
  if (hs) hs.listen(0, '127.0.0.1', ready);
  else wss.on('listening', ready);
  wss.on('connection', (ws) => {
    ws.on('message', (data, isBinary) => {
      if (!isBinary && onCommand(ws, data.toString())) return;
      if (isBinary && data.length >= 1 << 20) ws.send('sha1:' + sha1(data));
      ws.send(data, { binary: isBinary });
    });
    ws.on('ping', (d) => ws.send('ping:' + d.toString()));
    ws.on('pong', (d) => ws.send('pong:' + d.toString()));
    ws.on('close', (code, reason) => console.log('close ' + code + ' ' + reason.toString()));
    ws.on('error', (e) => console.log('error ' + e.message));
  });
}

// --- client checks ---------------------------------------------------------

function open(url, protocols) {
  return new Promise((resolve, reject) => {
    const ws = new WebSocket(url, protocols || [], { maxPayload: 64 << 20 });
    ws.on('open', () => resolve(ws));
    ws.on('error', reject);
  });
}

function next(ws, event) {
  return new Promise((resolve) => ws.once(event, (...a) => resolve(a)));
}

async function echo(ws, data, binary) {
  const p = next(ws, 'message');
  ws.send(data, { binary });
  const [got, isBinary] = await p;
  return { got, isBinary };
}

const checks = {
  async text(url) {
    const ws = await open(url);
    const { got, isBinary } = await echo(ws, 'h\u00e9llo \u4e16\u754c', false);
    ws.close();
    if (isBinary || got.toString() !== 'h\u00e9llo \u4e16\u754c') throw new Error('got ' + got);
  },
  async binary(url) {
    const ws = await open(url);
    const b = Buffer.from([...Array(256).keys()]);
    const { got, isBinary } = await echo(ws, b, true);
    ws.close();
    if (!isBinary || !got.equals(b)) throw new Error('binary differs');
  },
  async big(url, small, size) {
    const ws = await open(url);
    const b = crypto.randomBytes(size);
    const { got, isBinary } = await echo(ws, b, true);
    ws.close();
    if (!isBinary || sha1(got) !== sha1(b)) throw new Error('hash differs, length ' + got.length);
  },
  async fragments(url) {
    const ws = await open(url);
    const p = next(ws, 'message');
    ws.send('ab', { fin: false });
    ws.ping('between');
    ws.send('c\u00e9', { fin: false });
    ws.send('d', { fin: true });
    const [got] = await p;
    ws.close();
    if (got.toString() !== 'abc\u00e9d') throw new Error('got ' + got);
  },
  async ping(url) {
    const ws = await open(url);
    const p = next(ws, 'pong');
    ws.ping('hi');
    const [d] = await p;
    ws.close();
    if (d.toString() !== 'hi') throw new Error('pong ' + d);
  },
  async close_code(url) {
    const ws = await open(url);
    const p = next(ws, 'close');
    ws.close(4001, 'node bye');
    const [code, reason] = await p;
    if (code !== 4001 || reason.toString() !== 'node bye') throw new Error('close ' + code + ' ' + reason);
  },
  async server_close(url) {
    const ws = await open(url);
    const p = next(ws, 'close');
    ws.send('close-me');
    const [code, reason] = await p;
    if (code !== 4000 || reason.toString() !== 'server bye') throw new Error('close ' + code + ' ' + reason);
  },
  async protocol(url) {
    const ws = await open(url, ['x-other', 'chat']);
    const proto = ws.protocol;
    ws.close();
    if (proto !== 'chat') throw new Error('protocol ' + proto);
  },
  async oversized(url, small) {
    const ws = await open(small);
    const p = next(ws, 'close');
    ws.on('error', () => {});
    ws.send(Buffer.alloc(4096, 1), { binary: true });
    const [code] = await p;
    if (code !== 1009) throw new Error('close ' + code);
  },
};

async function client(url, small, size) {
  const timer = setTimeout(() => { console.log('FAIL timeout'); process.exit(1); }, 100000);
  for (const [name, fn] of Object.entries(checks)) {
    try {
      await fn(url, small, size);
      console.log('ok ' + name);
    } catch (e) {
      console.log('FAIL ' + name + ': ' + (e && e.message));
    }
  }
  console.log('done');
  clearTimeout(timer);
}

const [mode, a, b, c] = process.argv.slice(2);
if (mode === 'server') server(a, b);
else client(a, b, Number(c));
