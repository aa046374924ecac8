// ws_load.js: the load generator of scripts/bench/websocket.sh (Node's
// `ws`, Debian node-ws). C connections each send a SIZE-byte text message
// and wait for its echo, again and again, for SECONDS after a 0.5 s
// warm-up; prints "msgs N rate R" (echoed messages, per second).
//   node ws_load.js URL C SIZE SECONDS
'use strict';
const WebSocket = require('ws');
const [url, c, size, seconds] = process.argv.slice(2);
const msg = 'x'.repeat(Number(size));
let counting = false;
let count = 0;
let open = 0;
for (let i = 0; i < Number(c); i++) {
  const ws = new WebSocket(url);
  ws.on('open', () => { open++; ws.send(msg); });
  ws.on('message', () => { if (counting) count++; ws.send(msg); });
  ws.on('error', (e) => { console.error('error ' + e.message); process.exit(1); });
}
setTimeout(() => {
  counting = true;
  const t0 = process.hrtime.bigint();
  setTimeout(() => {
    const dt = Number(process.hrtime.bigint() - t0) / 1e9;
    console.log('msgs ' + count + ' rate ' + Math.round(count / dt) + ' open ' + open);
    process.exit(0);
  }, Number(seconds) * 1000);
}, 500);
