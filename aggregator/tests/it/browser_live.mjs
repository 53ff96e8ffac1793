// A real browser (Debian's chromium through playwright-core, from web/ui) on the home page of
// a public aggregator at argv[2]: it waits for the host rows argv[3] (comma-separated ids),
// prints "ready", then waits for the rows argv[4] to appear in the same page, without a
// reload. Used by live.rs while the test changes the fleet; SMON_UI_DIR names web/ui.
import { createRequire } from "node:module";

const require = createRequire(`${process.env.SMON_UI_DIR}/package.json`);
const { chromium } = require("playwright-core");

const [url, before, after] = process.argv.slice(2);
const STEP_MS = 20_000;
const sorted = (s) => s.split(",").filter(Boolean).sort();

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  timeout: STEP_MS,
});
const fail = async (msg) => {
  console.error(`browser_live.mjs: ${msg}`);
  await browser.close();
  process.exit(1);
};
const page = await browser.newPage();
const errors = [];
page.on("pageerror", (e) => errors.push(e.message));
await page.goto(url);

const rows = () => page.$$eval("tr[data-host-id]", (rs) => rs.map((r) => r.getAttribute("data-host-id")).sort());
async function waitRows(want) {
  const start = Date.now();
  let have = [];
  while (Date.now() - start < STEP_MS) {
    have = await rows();
    if (JSON.stringify(have) === JSON.stringify(want)) return;
    await page.waitForTimeout(100);
  }
  await fail(`rows ${JSON.stringify(have)}, not ${JSON.stringify(want)}; page errors: ${errors.join("; ")}`);
}

await waitRows(sorted(before));
// Survives only if the page is never reloaded.
await page.evaluate(() => {
  window.smonSameDocument = true;
});
console.log("ready");
await waitRows(sorted(after));
if (!(await page.evaluate(() => window.smonSameDocument === true))) await fail("the page was reloaded");
if (errors.length) await fail(`page errors: ${errors.join("; ")}`);
console.log("ok");
await browser.close();
