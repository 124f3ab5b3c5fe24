// MQTT.js in headless Chromium, for e2e/tests/websocket.rs: serves a page and MQTT.js (from
// node_modules, no CDN) on a local HTTP server, opens the page, which connects to the broker's
// ws listener, subscribes to in/<id>, and answers the first message on out/<id> (QoS 1). Prints
// "ready" once subscribed and exits 0 once the answer is acknowledged; non-zero on any failure.
// Usage: node browser-test.mjs WS_URL CLIENT_ID   (CHROMIUM overrides /usr/bin/chromium)
import { createServer } from 'node:http';
import { readFile } from 'node:fs/promises';
import { chromium } from 'playwright-core';

const [url, id] = process.argv.slice(2);
const watchdog = setTimeout(() => { console.error('timed out'); process.exit(3); }, 30_000);
const mqttJs = await readFile(new URL('./node_modules/mqtt/dist/mqtt.min.js', import.meta.url));
const page = `<!doctype html><script src="/mqtt.min.js"></script><script>
  window.state = 'connecting';
  const id = ${JSON.stringify(id)};
  const client = mqtt.connect(${JSON.stringify(url)}, { clientId: id, protocolVersion: 5, reconnectPeriod: 0 });
  client.on('error', (e) => { window.state = 'error: ' + e.message; });
  client.on('connect', () => client.subscribe('in/' + id, { qos: 1 }, (e) => {
    window.state = e ? 'error: ' + e.message : 'ready';
  }));
  client.on('message', (_topic, payload) => client.publish('out/' + id, payload, { qos: 1 }, (e) => {
    window.state = e ? 'error: ' + e.message : 'done';
  }));
</script>`;
const server = createServer((req, res) => {
  const js = req.url === '/mqtt.min.js';
  res.writeHead(200, { 'content-type': js ? 'text/javascript' : 'text/html' });
  res.end(js ? mqttJs : page);
});
await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
let code = 1;
try {
  const tab = await browser.newPage();
  await tab.goto(`http://127.0.0.1:${server.address().port}/`);
  const until = (want) => tab.waitForFunction((w) => window.state === w || window.state.startsWith('error'), want, { timeout: 20_000 })
    .then(() => tab.evaluate(() => window.state));
  let state = await until('ready');
  console.log(state);
  if (state === 'ready') {
    state = await until('done');
    code = state === 'done' ? 0 : 2;
  }
  if (code !== 0) console.error(state);
} finally {
  await browser.close();
  server.close();
  clearTimeout(watchdog);
}
process.exit(code);
