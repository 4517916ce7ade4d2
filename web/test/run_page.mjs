// Opens the page in headless Chromium (Debian's /usr/bin/chromium, driven by playwright-core), waits until it
// has streamed, and prints window.aaren as JSON. Usage: node web/test/run_page.mjs <url> [timeout_ms]
import { chromium } from "playwright-core";

const [url, timeout = "120000"] = process.argv.slice(2);
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking",
         "--disable-component-update", "--disable-sync"],
});
try {
  const page = await browser.newPage();
  const logs = [];
  page.on("console", (message) => logs.push(`${message.type()}: ${message.text()}`));
  page.on("pageerror", (error) => logs.push(`pageerror: ${error}`));
  await page.goto(url);
  await page.waitForFunction(() => window.aaren && (window.aaren.done || window.aaren.error),
                             null, { timeout: Number(timeout) });
  const result = await page.evaluate(() => window.aaren);
  result.steps_shown = await page.textContent("#steps");
  result.state_bytes_shown = await page.textContent("#state-bytes");
  result.kv_bytes_shown = await page.textContent("#kv-bytes");
  console.log(JSON.stringify({ ...result, logs }));
} finally {
  await browser.close();
}
