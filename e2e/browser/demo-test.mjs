// The fleet demo's page in headless Chromium, for e2e/tests/demo.rs: opens the page (served by
// fleet-web), waits until it is connected, shows MARKERS truck markers that have moved and
// sidebar counts updated at least twice by the stream job, then saves a screenshot. Prints a
// JSON summary; exits 0 when all that happened, non-zero otherwise.
// Usage: node demo-test.mjs PAGE_URL SCREENSHOT_PATH MARKERS  (CHROMIUM overrides /usr/bin/chromium)
import { chromium } from 'playwright-core';

const [url, screenshot, markers] = process.argv.slice(2);
const want = Number(markers || 15);
const watchdog = setTimeout(() => { console.error('timed out'); process.exit(3); }, 50_000);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-background-networking'],
});
let code = 1;
try {
  const tab = await browser.newPage({ viewport: { width: 1280, height: 900 } });
  tab.on('pageerror', (e) => console.error(`page error: ${e.message}`));
  await tab.goto(url);
  // Moves counted after every marker exists, so each sample truck had time to move.
  await tab.waitForFunction((n) => window.demo && window.demo.state === 'connected' && window.demo.markers >= n,
    want, { timeout: 30_000 });
  const before = await tab.evaluate(() => ({ moves: window.demo.moves, stats: window.demo.statsUpdates }));
  await tab.waitForFunction(([n, b]) => window.demo.moves >= b.moves + n && window.demo.statsUpdates >= b.stats + 2
    && document.getElementById('dir-N').textContent !== '–', [want, before], { timeout: 30_000 });
  // The sidebar's text as shown (the counts of the latest record).
  const shown = await tab.evaluate(() => ({
    N: document.getElementById('dir-N').textContent, E: document.getElementById('dir-E').textContent,
    S: document.getElementById('dir-S').textContent, W: document.getElementById('dir-W').textContent,
    connections: document.getElementById('connections').textContent, rate: document.getElementById('rate').textContent,
    markers: document.querySelectorAll('#trucks .truck').length,
    ...window.demo, stats: undefined,
  }));
  await tab.screenshot({ path: screenshot });
  console.log(JSON.stringify(shown));
  code = shown.markers >= want ? 0 : 2;
} catch (e) {
  console.error(String(e));
} finally {
  await browser.close();
  clearTimeout(watchdog);
}
process.exit(code);
