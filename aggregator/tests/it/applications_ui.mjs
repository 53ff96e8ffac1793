// The Applications page and the host page's live log in Chromium (Debian's, driven by
// playwright-core from web/ui), for applications.rs: argv = base URL, `admin:password`,
// `viewer:password`; the fleet is lab:n1 and lab:n2, each with a real supervisord running
// `sleeper:sleeper` and `jobs:ticker` (a `tick-N` line every 0.2 s). As admin: the top bar
// links the page; both programs are listed under their groups with both hosts as RUNNING chips
// and 2/2 running; the search box filters by host and hides what does not match; "Restart
// all" of sleeper:sleeper is confirmed with both hosts named and shows a result per host;
// the chip of lab:n2 in jobs:ticker opens its actions, Stop is confirmed naming that host
// alone, and the chip turns STOPPED. At a phone's width (390 px), reached from a host's
// Programs section, the page fits the screen and its buttons are in reach. As viewer: the list without any action button. On the host page,
// the log panel of jobs:ticker follows the log live (new tick lines arrive) and Close ends
// the stream (the caller checks the server logged it). Exits non-zero with what the page
// showed when a step fails. SMON_UI_DIR names web/ui; CHROMIUM the browser.
import { createRequire } from "node:module";

const require = createRequire(`${process.env.SMON_UI_DIR}/package.json`);
const { chromium } = require("playwright-core");

const [base, adminLogin, viewerLogin] = process.argv.slice(2);
const STEP_MS = 15000;
const row = (p, extra = "") => `tr.app-row[data-program=${JSON.stringify(p)}]${extra}`;
const chip = (p, host, extra = "") => `${row(p)} .host-chip[data-host=${JSON.stringify(host)}]${extra}`;

function split(s) {
  const i = s.indexOf(":");
  return [s.slice(0, i), s.slice(i + 1)];
}

async function step(page, what, fn) {
  try {
    return await fn();
  } catch (e) {
    let body = "";
    try {
      body = (await page.evaluate(() => document.body.innerText)).replace(/\s+/g, " ").slice(0, 1500);
    } catch {
      /* the page is gone */
    }
    console.error(`FAILED: ${what}: ${e.message}\n  url: ${page.url()}\n  page: ${body}`);
    process.exit(1);
  }
}

async function open(browser, login, viewport = { width: 1280, height: 800 }) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("console", (m) => {
    if (/Content Security Policy/i.test(m.text())) errors.push(m.text());
  });
  page.smonErrors = errors;
  const [user, password] = split(login);
  await step(page, `logging in as ${user}`, async () => {
    await page.goto(new URL("login", base).toString());
    await page.waitForSelector("#login-form[data-ready]");
    await page.fill("#user", user);
    await page.fill("#password", password);
    await Promise.all([page.waitForURL((u) => !u.pathname.endsWith("/login")), page.click("#login-submit")]);
  });
  return page;
}

/** The highest `tick-N` in the log panel. */
async function lastTick(page) {
  return page.evaluate(() => {
    const m = [...(document.querySelector(".program-log-text")?.textContent ?? "").matchAll(/tick-(\d+)/g)];
    return m.length ? Number(m[m.length - 1][1]) : 0;
  });
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  timeout: STEP_MS,
});
try {
  const page = await open(browser, adminLogin);
  const dialogs = [];
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    void d.accept();
  });
  await step(page, "the top bar links the page", async () => {
    await page.click("#applications-link");
    await page.waitForSelector("#applications-page[data-state=ready]");
  });
  await step(page, "both programs on both hosts, grouped", async () => {
    for (const p of ["sleeper:sleeper", "jobs:ticker"]) {
      await page.waitForSelector(row(p, "[data-running='2'][data-total='2']"));
      for (const host of ["lab:n1", "lab:n2"]) await page.waitForSelector(chip(p, host, "[data-state=RUNNING]"));
    }
    const groups = await page.$$eval(".app-group", (gs) => gs.map((g) => g.dataset.group));
    if (JSON.stringify(groups) !== JSON.stringify(["jobs", "sleeper"])) throw new Error(`groups: ${groups}`);
    const inJobs = await page.locator(`.app-group[data-group=jobs] ${row("jobs:ticker")}`).count();
    if (inJobs !== 1) throw new Error("jobs:ticker is not under its group");
  });
  await step(page, "the search box filters", async () => {
    await page.fill("#apps-search", "ticker");
    await page.waitForSelector(row("sleeper:sleeper"), { state: "hidden" });
    if (!(await page.isVisible(row("jobs:ticker")))) throw new Error("the match is hidden");
    await page.fill("#apps-search", "lab:n2");
    await page.waitForSelector(row("sleeper:sleeper"), { state: "visible" });
    await page.fill("#apps-search", "no-such-thing");
    await page.waitForSelector(".app-group[data-group=jobs]", { state: "hidden" });
    await page.fill("#apps-search", "");
    await page.waitForSelector(row("sleeper:sleeper"), { state: "visible" });
  });
  await step(page, "Restart all, confirmed with both hosts, a result per host", async () => {
    dialogs.length = 0;
    await page.click(`${row("sleeper:sleeper")} .app-all[data-verb=restart]`);
    await page.waitForSelector("#apps-results[data-done] li[data-host='lab:n1'][data-ok=true]");
    await page.waitForSelector("#apps-results li[data-host='lab:n2'][data-ok=true]");
    const asked = dialogs.join("\n");
    if (!asked.includes("lab:n1") || !asked.includes("lab:n2") || !asked.includes("sleeper:sleeper")) throw new Error(`the confirmation: ${JSON.stringify(dialogs)}`);
  });
  await step(page, "Stop on one host from its chip", async () => {
    dialogs.length = 0;
    await page.click(chip("jobs:ticker", "lab:n2"));
    await page.waitForSelector("#chip-menu:not([hidden]) .chip-act[data-verb=stop]");
    await page.click("#chip-menu .chip-act[data-verb=stop]");
    await page.waitForSelector("#apps-results[data-done] li[data-host='lab:n2'][data-ok=true]");
    if (dialogs.length !== 1 || !dialogs[0].includes("lab:n2") || dialogs[0].includes("lab:n1")) throw new Error(`the confirmation: ${JSON.stringify(dialogs)}`);
    await page.waitForSelector(chip("jobs:ticker", "lab:n2", "[data-state=STOPPED]"));
    await page.waitForSelector(row("jobs:ticker", "[data-running='1']"));
    await page.waitForSelector(chip("jobs:ticker", "lab:n1", "[data-state=RUNNING]"));
  });

  // A phone's width.
  const phone = await open(browser, adminLogin, { width: 390, height: 844 });
  phone.on("dialog", (d) => void d.dismiss());
  await step(phone, "390 px: the page fits, its buttons in reach", async () => {
    // The top bar has no room for the link at this width: a host's Programs section leads there.
    await phone.goto(new URL("#/host/lab:n1", base).toString());
    await phone.click(".host-programs:not([hidden]) .programs-fleet");
    await phone.waitForSelector(row("sleeper:sleeper", "[data-total='2']"));
    const bad = await phone.evaluate(() => {
      const out = [];
      const doc = document.scrollingElement ?? document.documentElement;
      if (doc.scrollWidth > 391) out.push(`the page is ${doc.scrollWidth} px wide`);
      const bar = document.querySelector(".topbar");
      const last = document.querySelector("#theme-toggle")?.getBoundingClientRect();
      const edge = bar.getBoundingClientRect().right - parseFloat(getComputedStyle(bar).paddingRight);
      if (!last || last.right > edge + 0.5) out.push(`the top bar overflows (${last?.right} > ${edge})`);
      return out;
    });
    if (bad.length) throw new Error(bad.join("; "));
    const b = phone.locator(`${row("sleeper:sleeper")} .app-all[data-verb=restart]`);
    await b.scrollIntoViewIfNeeded();
    const box = await b.boundingBox();
    if (!box || box.x < 0 || box.x + box.width > 391) throw new Error(`Restart all is off screen: ${JSON.stringify(box)}`);
    await phone.click(chip("sleeper:sleeper", "lab:n1"));
    await phone.waitForSelector("#chip-menu:not([hidden]) .chip-act[data-verb=restart]");
    const m = await phone.locator("#chip-menu").boundingBox();
    if (!m || m.y + m.height > 845 || m.x + m.width > 391) throw new Error(`the host's actions are off screen: ${JSON.stringify(m)}`);
  });

  // Viewers read, without buttons.
  const viewer = await open(browser, viewerLogin);
  await step(viewer, "viewers read without buttons", async () => {
    await viewer.goto(new URL("#/applications", base).toString());
    await viewer.waitForSelector(row("sleeper:sleeper", "[data-total='2']"));
    await viewer.waitForTimeout(500);
    if ((await viewer.locator(".app-all").count()) !== 0) throw new Error("a viewer has Restart all");
    await viewer.click(chip("sleeper:sleeper", "lab:n1"));
    await viewer.waitForSelector("#chip-menu:not([hidden])");
    if ((await viewer.locator("#chip-menu .chip-act").count()) !== 0) throw new Error("a viewer has host actions");
  });

  // The host page's log panel follows the log live, then Close ends the stream.
  await step(page, "the log panel streams", async () => {
    await page.goto(new URL("#/host/lab:n1", base).toString());
    const prow = `.host-programs:not([hidden]) tr[data-program="jobs:ticker"]`;
    await page.waitForSelector(`${prow} .program-log-open`);
    await page.click(`${prow} .program-log-open`);
    await page.waitForSelector(".program-log-text[data-live]");
    await page.waitForFunction(() => /tick-\d+/.test(document.querySelector(".program-log-text")?.textContent ?? ""));
    const first = await lastTick(page);
    // New lines arrive without any click (the agent writes 5 a second; the server reads every s).
    await page.waitForFunction((n) => {
      const m = [...(document.querySelector(".program-log-text")?.textContent ?? "").matchAll(/tick-(\d+)/g)];
      return m.length && Number(m[m.length - 1][1]) >= n + 5;
    }, first);
    const text = await page.textContent(".program-log-text");
    const ticks = [...text.matchAll(/tick-(\d+)\n/g)].map((m) => Number(m[1])).slice(1);
    for (let i = 1; i < ticks.length; i++) if (ticks[i] !== ticks[i - 1] + 1) throw new Error(`lines lost or repeated: ${ticks.slice(Math.max(0, i - 3), i + 3)}`);
    await page.click(".program-log-close");
    await page.waitForSelector(".program-log", { state: "hidden" });
  });
  const errors = [...page.smonErrors, ...phone.smonErrors, ...viewer.smonErrors];
  if (errors.length) {
    console.error(`FAILED: page errors: ${errors.join("; ")}`);
    process.exit(1);
  }
  console.log("ok");
} finally {
  await browser.close();
}
