#!/usr/bin/env node
// Browser checks of the smon UI, driven by the Rust integration tests (which start the real
// servers and agents, then call this script once per check). Uses Debian's chromium through
// playwright-core; no browser is downloaded.
//
//   node tests/browser.mjs home       <url> <id1,id2,...>
//   node tests/browser.mjs host       <url> <id> <expectGpus>
//   node tests/browser.mjs status     <url> <id> <up|stale|down|pending>
//   node tests/browser.mjs transport  <url> <websocket|polling>
//   node tests/browser.mjs screenshot <url> <outdir>
//   node tests/browser.mjs login      <url> <user> <password>
//   node tests/browser.mjs large      <url> <id>    (a fleet of more than 2,000 hosts)
//   node tests/browser.mjs fleet      <url> <before ids> <after ids> <removed id>
//        (prints `ready` once the pages show <before ids>; then the caller changes the fleet)
//   node tests/browser.mjs freeze     <url> <host id>
//        (prints `ready` once live, the caller freezes the server (SIGSTOP); prints `frozen`
//        once the pages say so, the caller resumes it (SIGCONT))
//   node tests/browser.mjs details    <url> <busy id> <warm id>  (see `details`)
//   node tests/browser.mjs node       <url> <id> <kernel threads: yes|no>
//        (the agent's single-host view)
//   node tests/browser.mjs history    <url> <host id> <cluster> <admin|viewer> <secret>
//        (the stored history, on web/tests/it/history.rs's data: with SMON_LOGIN)
//   node tests/browser.mjs alerts     <url> <host id> <admin|viewer> <secret> <hook url>
//        (the alerts page, on aggregator/tests/it/alerts_ui.rs's config: the rule `always`
//        firing on <host id>, the webhook channel `hook` whose URL holds <secret>, <hook url>
//        that URL (the admin makes a UI channel sending there too); with SMON_LOGIN of that
//        role)
//   node tests/browser.mjs reach      <url> <host id> <admin|viewer> <down service>
//        (reachability, on aggregator/tests/it/reach.rs's config: two services, <down
//        service> down; with SMON_LOGIN of that role)
//
// Every scenario that says so runs at a desktop size (1280x800) and a phone size (375x812).
//
// <url> is the page, e.g. http://127.0.0.1:8080/ or http://127.0.0.1:8080/smon/.
// Exit status: 0 when the check passed, 1 when it failed (with what the page showed), 2 on
// bad usage. Environment: CHROMIUM (default /usr/bin/chromium), SMON_BROWSER_TIMEOUT_MS (the
// wait of each step, default 15000, at most 15000), SMON_LOGIN (`user:password`: every page
// first logs in through the login page), SMON_IGNORE_HTTPS_ERRORS=1 (accept a self-signed
// certificate), SMON_SHOTS (a folder: `details` saves screenshots there, for a person to look
// at; keep them out of git). Any Content-Security-Policy violation fails the check.
import { mkdir } from "node:fs/promises";
import { join } from "node:path";
import { chromium } from "playwright-core";

const STEP_MS = Math.min(15_000, Number(process.env.SMON_BROWSER_TIMEOUT_MS) || 15_000);
const LIVE_MS = 10_000;
const STATUSES = ["up", "stale", "down", "pending"];
const DESKTOP = { width: 1280, height: 800 };
const PHONE = { width: 375, height: 812 };

class CheckFailed extends Error {}

function usage(msg) {
  console.error(`browser.mjs: ${msg}
usage:
  browser.mjs home       <url> <id1,id2,...>
  browser.mjs host       <url> <id> <expectGpus>
  browser.mjs status     <url> <id> <up|stale|down|pending>
  browser.mjs transport  <url> <websocket|polling>
  browser.mjs screenshot <url> <outdir>
  browser.mjs login      <url> <user> <password>
  browser.mjs large      <url> <id>
  browser.mjs fleet      <url> <id1,id2,...> <id1,id3,...> <removed id>
  browser.mjs freeze     <url> <host id>
  browser.mjs details    <url> <busy id> <warm id>
  browser.mjs node       <url> <id> <yes|no>
  browser.mjs history    <url> <host id> <cluster> <admin|viewer> <secret>
  browser.mjs alerts     <url> <host id> <admin|viewer> <secret> <hook url>
  browser.mjs reach      <url> <host id> <admin|viewer> <down service>`);
  process.exit(2);
}

/** `url` with a query parameter set (before any hash). */
function withQuery(url, key, value) {
  const u = new URL(url);
  u.searchParams.set(key, value);
  return u.toString();
}

/** `url` with the hash replaced. */
function withHash(url, hash) {
  const u = new URL(url);
  u.hash = hash;
  return u.toString();
}

/** A CSS attribute selector for a host row. */
function rowSel(id, status) {
  const q = JSON.stringify(id);
  return status ? `tr[data-host-id=${q}][data-status=${JSON.stringify(status)}]` : `tr[data-host-id=${q}]`;
}

async function launch() {
  return chromium.launch({
    executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
    args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
    timeout: STEP_MS,
  });
}

/** Opens a page that records console errors and failed requests, for the failure report. */
async function open(browser, viewport = { width: 1280, height: 800 }) {
  // SMON_IGNORE_HTTPS_ERRORS=1: a test's self-signed certificate (nginx in front).
  const context = await browser.newContext({ viewport, ignoreHTTPSErrors: process.env.SMON_IGNORE_HTTPS_ERRORS === "1" });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.setDefaultNavigationTimeout(STEP_MS);
  const log = [];
  page.on("console", (m) => {
    if (m.type() === "error" || m.type() === "warning") log.push(`console.${m.type()}: ${m.text()}`);
  });
  page.on("pageerror", (e) => log.push(`page error: ${e.message}`));
  page.on("requestfailed", (r) => {
    const f = r.failure()?.errorText ?? "";
    // Long-polling requests cut short by navigation or an upgrade are not failures.
    if (!f.includes("ERR_ABORTED")) log.push(`request failed: ${r.method()} ${r.url()} ${f}`);
  });
  page.on("response", (r) => {
    if (r.status() >= 400) log.push(`HTTP ${r.status()}: ${r.request().method()} ${r.url()}`);
  });
  page.smonLog = log;
  PAGES.push(page);
  if (process.env.SMON_LOGIN && !NO_AUTO_LOGIN.has(cmd)) await logIn(page, url, ...splitLogin(process.env.SMON_LOGIN));
  return page;
}

/** Every page opened, to look for CSP violations at the end. */
const PAGES = [];
/** Scenarios that do the login themselves. */
const NO_AUTO_LOGIN = new Set(["login"]);

function splitLogin(s) {
  const i = s.indexOf(":");
  return [s.slice(0, i), s.slice(i + 1)];
}

/** The login page of the dashboard at `base`. */
function loginUrl(base) {
  const u = new URL("login", base);
  return u.toString();
}

/** Logs in through the login page, and waits for the dashboard. */
async function logIn(page, base, user, password) {
  await goto(page, loginUrl(base));
  await step(page, "filling in the login form", async () => {
    await page.waitForSelector("#login-form[data-ready]");
    await page.fill("#user", user);
    await page.fill("#password", password);
  });
  await step(page, `logging in as ${user}`, () =>
    Promise.all([page.waitForURL((u) => !u.pathname.endsWith("/login")), page.click("#login-submit")]),
  );
}

/** What the page shows, for a failure message. */
async function describe(page) {
  try {
    const s = await page.evaluate(() => {
      const conn = document.querySelector("#conn");
      const rows = Array.from(document.querySelectorAll("tr[data-host-id]")).map((r) => `${r.getAttribute("data-host-id")}=${r.getAttribute("data-status")}`);
      const hs = document.querySelector("#host-status");
      const banner = document.querySelector("#stale-banner");
      return {
        url: location.href,
        conn: conn ? `${conn.getAttribute("data-state")} (${conn.textContent?.trim()}; transport ${conn.getAttribute("data-transport") ?? "?"})` : "no #conn element",
        rows: rows.length ? rows.join(", ") : "none",
        hostStatus: hs ? hs.getAttribute("data-status") : null,
        processes: document.querySelectorAll("#processes [data-pid]").length,
        gpuCards: document.querySelectorAll(".gpu-card").length,
        banner: banner && !banner.hidden ? banner.textContent : null,
        body: (document.body?.innerText ?? "").replace(/\s+/g, " ").slice(0, 300),
      };
    });
    const lines = [
      `  url:        ${s.url}`,
      `  connection: ${s.conn}`,
      `  host rows:  ${s.rows}`,
    ];
    if (s.hostStatus !== null) lines.push(`  host page:  status=${s.hostStatus}, ${s.processes} process rows, ${s.gpuCards} GPU cards`);
    if (s.banner) lines.push(`  banner:     ${s.banner}`);
    lines.push(`  page text:  ${s.body}`);
    const log = page.smonLog ?? [];
    lines.push(log.length ? `  console/network:\n    ${log.slice(-15).join("\n    ")}` : "  console/network: no errors");
    return lines.join("\n");
  } catch (e) {
    return `  (could not read the page: ${e.message})`;
  }
}

/** Runs `fn`; on a timeout, fails with `what` and what the page shows. */
async function step(page, what, fn) {
  try {
    return await fn();
  } catch (e) {
    const why = e instanceof CheckFailed ? e.message : e.name === "TimeoutError" ? `timed out after ${STEP_MS} ms` : e.message.split("\n")[0];
    throw new CheckFailed(`${what}: ${why}\n${await describe(page)}`);
  }
}

async function waitConnected(page) {
  await step(page, "waiting for #conn to be connected", () => page.waitForSelector('#conn[data-state="connected"]', { state: "attached" }));
}

async function goto(page, url) {
  await step(page, `opening ${url}`, () => page.goto(url, { waitUntil: "domcontentloaded" }));
}

// ------------------------------------------------------------------ subcommands

async function home(browser, url, idsArg) {
  const ids = (idsArg ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  if (ids.length === 0) usage("home: no host id given");
  const page = await open(browser);
  await goto(page, url);
  await waitConnected(page);
  for (const id of ids) {
    await step(page, `waiting for the row of ${id} with data-status="up"`, () => page.waitForSelector(rowSel(id, "up"), { state: "attached" }));
  }
  // A live update: the CPU text of a listed row changes without a reload. An idle host can show
  // the same CPU % for a while; its row's data-sample-ms (time of the agent's sample) advancing
  // is then the proof that rows are patched live.
  const read = () =>
    page.evaluate(
      (list) =>
        list.map((id) => {
          const row = document.querySelector(`tr[data-host-id=${JSON.stringify(id)}]`);
          return { cpu: row?.querySelector('[data-field="cpu"]')?.textContent?.trim() ?? null, sample: row?.getAttribute("data-sample-ms") ?? null };
        }),
      ids,
    );
  const before = await read();
  const deadline = Date.now() + LIVE_MS;
  let after = before;
  const cpuChanged = () => after.some((v, i) => v.cpu !== before[i]?.cpu);
  const sampleAdvanced = () => after.some((v, i) => v.sample !== null && before[i]?.sample !== null && Number(v.sample) > Number(before[i]?.sample));
  while (Date.now() < deadline) {
    await page.waitForTimeout(250);
    after = await read();
    if (cpuChanged()) break;
  }
  const cpus = (l) => JSON.stringify(l.map((v) => v.cpu));
  if (cpuChanged()) {
    console.log(`ok: home: ${ids.length} host(s) up; CPU changed live ${cpus(before)} -> ${cpus(after)}`);
  } else if (sampleAdvanced()) {
    console.log(`ok: home: ${ids.length} host(s) up; CPU text stayed ${cpus(before)} (idle) but data-sample-ms advanced live`);
  } else {
    throw new CheckFailed(`no live update: the CPU cell of ${ids.join(", ")} stayed ${cpus(before)} and data-sample-ms stayed ${JSON.stringify(before.map((v) => v.sample))} for ${LIVE_MS} ms\n${await describe(page)}`);
  }
}

async function host(browser, url, id, expectArg) {
  if (!id) usage("host: no host id given");
  const expect = Number(expectArg);
  if (!Number.isInteger(expect) || expect < 0) usage(`host: <expectGpus> must be a whole number, not '${expectArg}'`);
  const page = await open(browser);
  await goto(page, withHash(url, `#/host/${id}`));
  await waitConnected(page);
  const first = await step(page, "waiting for a row in #processes", () => page.waitForSelector("#processes [data-pid], #host-error:not([hidden])", { state: "attached" }));
  if ((await first.getAttribute("id")) === "host-error") {
    const said = await first.$eval("p", (p) => p.textContent?.trim() ?? "").catch(() => "");
    throw new CheckFailed(`the host page says: ${said || "error"}\n${await describe(page)}`);
  }
  await step(page, "looking for #sessions", () => page.waitForSelector("#sessions", { state: "attached" }));
  await step(page, `expecting exactly ${expect} .gpu-card`, async () => {
    const deadline = Date.now() + STEP_MS;
    let n = -1;
    while (Date.now() < deadline) {
      n = await page.locator(".gpu-card").count();
      if (n === expect) return;
      await page.waitForTimeout(200);
    }
    throw new CheckFailed(`found ${n} .gpu-card element(s)`);
  });
  if (expect > 0) {
    await step(page, "waiting for a GPU card that lists a process", () => page.waitForSelector(".gpu-card [data-pid]", { state: "attached" }));
  }
  await step(page, expect > 0 ? "the GPU driver's version shown" : "no GPU driver row without GPUs", async () => {
    const deadline = Date.now() + STEP_MS;
    let seen = null;
    while (Date.now() < deadline) {
      seen = await page.evaluate(() => {
        const dt = [...document.querySelectorAll("dl.facts dt")].find((d) => d.textContent === "GPU driver");
        const row = dt?.parentElement;
        return row && !row.hidden ? (row.querySelector("dd")?.textContent ?? "") : null;
      });
      if (expect > 0 ? /^\d+\.\d+(\.\d+)? · CUDA \d+\.\d+$/.test(seen ?? "") : seen === null) return;
      await page.waitForTimeout(200);
    }
    throw new CheckFailed(`the GPU driver row shows ${JSON.stringify(seen)}`);
  });
  const n = await page.locator("#processes [data-pid]").count();
  const status = await page.getAttribute("#host-status", "data-status");
  console.log(`ok: host ${id}: status ${status}, ${n} process rows shown, #sessions present, ${expect} GPU card(s)`);
}

async function status(browser, url, id, want) {
  if (!id) usage("status: no host id given");
  if (!STATUSES.includes(want)) usage(`status: <status> must be one of ${STATUSES.join(", ")}, not '${want}'`);
  const page = await open(browser);
  await goto(page, url);
  await waitConnected(page);
  await step(page, `waiting for the row of ${id} with data-status="${want}"`, () => page.waitForSelector(rowSel(id, want), { state: "attached" }));
  console.log(`ok: status: ${id} is ${want}`);
}

async function transport(browser, url, kind) {
  if (kind !== "websocket" && kind !== "polling") usage(`transport: must be websocket or polling, not '${kind}'`);
  const page = await open(browser);
  await goto(page, withQuery(url, "transport", kind));
  await waitConnected(page);
  await step(page, "waiting for a host row", () => page.waitForSelector("tr[data-host-id]", { state: "attached" }));
  const used = await page.getAttribute("#conn", "data-transport");
  if (used !== kind) throw new CheckFailed(`connected, but over '${used}' instead of '${kind}'\n${await describe(page)}`);
  // A row that updates after the first frame proves data flows over this transport too.
  const n = await page.locator("tr[data-host-id]").count();
  console.log(`ok: transport ${kind}: connected, ${n} host row(s)`);
}

async function screenshot(browser, url, outdir) {
  if (!outdir) usage("screenshot: no output directory given");
  await mkdir(outdir, { recursive: true });
  const page = await open(browser, { width: 1280, height: 800 });
  await goto(page, url);
  await waitConnected(page);
  await step(page, "waiting for a host row", () => page.waitForSelector("tr[data-host-id]", { state: "attached" }));
  await page.waitForTimeout(1500); // a few live ticks
  await page.screenshot({ path: join(outdir, "home.png") });
  const first = await page.getAttribute("tr[data-host-id]", "data-host-id");
  const withGpu = await page.evaluate(() => document.querySelector('tr[data-host-id]:not([data-gpus="0"])')?.getAttribute("data-host-id") ?? null);

  await goto(page, withHash(url, `#/host/${first}`));
  await step(page, `waiting for the host page of ${first}`, () => page.waitForSelector('#host-status:not([data-status="pending"]), #processes [data-pid]', { state: "attached" }));
  await page.waitForTimeout(1500); // charts laid out, a few samples
  await page.screenshot({ path: join(outdir, "host.png"), fullPage: true });

  const gpuHost = withGpu ?? first;
  if (gpuHost !== first) {
    await goto(page, withHash(url, `#/host/${gpuHost}`));
    await step(page, `waiting for the host page of ${gpuHost}`, () => page.waitForSelector("#host-status", { state: "attached" }));
  }
  if (withGpu) {
    await step(page, "waiting for a GPU card", () => page.waitForSelector(".gpu-card", { state: "visible" }));
    await page.waitForTimeout(1000);
    await page.evaluate(() => {
      const el = document.querySelector(".gpu-card")?.closest(".section") ?? document.querySelector(".gpu-card");
      if (el) window.scrollTo(0, el.getBoundingClientRect().top + window.scrollY - 56);
    });
    await page.waitForTimeout(300);
  } else {
    console.log("note: no host has GPUs; gpu.png shows the first host page instead");
  }
  await page.screenshot({ path: join(outdir, "gpu.png") });

  const phone = await open(browser, { width: 390, height: 844 });
  await goto(phone, url);
  await waitConnected(phone);
  await step(phone, "waiting for a host row (phone)", () => phone.waitForSelector("tr[data-host-id]", { state: "attached" }));
  await phone.waitForTimeout(1000);
  await phone.screenshot({ path: join(outdir, "home-phone.png") });
  console.log(`ok: screenshots in ${outdir}: home.png, host.png (${first}), gpu.png (${gpuHost}), home-phone.png`);
}

/** The login page: a wrong password is refused with a reason; the right one opens the live
 * dashboard showing who is logged in; Log out returns to the login page and the dashboard is
 * closed again. */
async function login(browser, url, user, password) {
  // The login page alone logs nothing in the console (its probe of api/v1/me is no error), at
  // a phone size too.
  const phone = await open(browser, PHONE);
  await goto(phone, url);
  await step(phone, "expecting the login page without a session (phone)", async () => {
    await phone.waitForURL((u) => u.pathname.endsWith("/login"));
    await phone.waitForSelector("#login-form[data-ready]");
    await phone.waitForLoadState("networkidle");
  });
  if (phone.smonLog.length) throw new CheckFailed(`the login page (phone) logged errors:\n    ${phone.smonLog.join("\n    ")}`);
  const page = await open(browser);
  await goto(page, url);
  await step(page, "expecting the login page without a session", async () => {
    await page.waitForURL((u) => u.pathname.endsWith("/login"));
    await page.waitForSelector("#login-form[data-ready]");
    await page.waitForLoadState("networkidle");
  });
  if (page.smonLog.length) throw new CheckFailed(`the login page logged errors:\n    ${page.smonLog.join("\n    ")}`);
  await step(page, "a wrong password", async () => {
    await page.waitForSelector("#login-form[data-ready]");
    await page.fill("#user", user);
    await page.fill("#password", `${password}-wrong`);
    await page.click("#login-submit");
    await page.waitForSelector("#login-error:not([hidden])");
    const t = await page.textContent("#login-error");
    if (!/wrong user name or password/.test(t ?? "")) throw new CheckFailed(`login error says '${t}'`);
  });
  await logIn(page, url, user, password);
  await waitConnected(page);
  await step(page, "the account area names the user", async () => {
    await page.waitForSelector("#who");
    const t = await page.textContent("#who");
    if (!t?.includes(user)) throw new CheckFailed(`#who says '${t}'`);
  });
  await step(page, "logging out", () =>
    Promise.all([page.waitForURL((u) => u.pathname.endsWith("/login")), page.click("#logout")]),
  );
  await goto(page, url);
  await step(page, "the dashboard is closed again after logout", () => page.waitForURL((u) => u.pathname.endsWith("/login")));
  console.log(`ok login: wrong password refused, ${user} logged in and out`);
}

/**
 * A large fleet (over 2,000 hosts) opens with its clusters folded and says so; filtering to a
 * few hosts shows them (live); a cluster opened by a click stays open after a reload.
 */
async function large(browser, url, id) {
  if (!id) usage("large: no host id given");
  const page = await open(browser);
  await goto(page, url);
  await waitConnected(page);
  await step(page, "waiting for the fold hint", () => page.waitForSelector(".fold-hint:not([hidden])", { state: "visible" }));
  await step(page, `waiting for the row of ${id} with data-status="up" (folded: attached, not visible)`, () => page.waitForSelector(rowSel(id, "up"), { state: "attached" }));
  if (await page.isVisible(rowSel(id))) throw new CheckFailed(`the row of ${id} is visible although its cluster should start folded\n${await describe(page)}`);
  const name = id.split(":").pop();
  await page.fill("input.search", name);
  await step(page, `filtering on '${name}' shows the row`, () => page.waitForSelector(rowSel(id, "up"), { state: "visible" }));
  const sample = () => page.getAttribute(rowSel(id), "data-sample-ms");
  const before = await sample();
  await step(page, "the shown row updates live", () => page.waitForFunction(([sel, b]) => document.querySelector(sel)?.getAttribute("data-sample-ms") !== b, [rowSel(id), before], { timeout: LIVE_MS }));
  await page.fill("input.search", "");
  await step(page, "clearing the filter folds it again", () => page.waitForSelector(rowSel(id), { state: "hidden" }));
  const cluster = id.split(":")[0];
  await page.click(`tbody.cluster-head[data-cluster=${JSON.stringify(cluster)}] button.cluster-toggle`);
  await step(page, "opening its cluster shows the row", () => page.waitForSelector(rowSel(id), { state: "visible" }));
  await page.reload({ waitUntil: "domcontentloaded" });
  await waitConnected(page);
  await step(page, "after a reload the opened cluster is still open", () => page.waitForSelector(rowSel(id, "up"), { state: "visible" }));
  const opened = await page.locator("tbody.cluster-body:not([hidden])").count();
  console.log(`ok: large: folded at first, '${name}' found by the filter and live, cluster ${cluster} opened and remembered (${opened} cluster(s) open)`);
}

/**
 * The fleet changes while pages are open (hosts added and removed, e.g. by a SIGHUP reload):
 * the home page shows `<before>` (every row `up`) and a second page shows the host page of
 * `<removed>`; then `ready` is printed on stdout, and the caller changes the fleet. The home
 * page must come to show exactly `<after>` (the added hosts `up`, the clusters of no remaining
 * host gone) without reloading or reconnecting, and the host page must say that its host
 * was removed.
 */
async function fleet(browser, url, beforeArg, afterArg, removed) {
  const list = (a) => (a ?? "").split(",").map((s) => s.trim()).filter(Boolean);
  const before = list(beforeArg);
  const after = list(afterArg);
  if (before.length === 0 || after.length === 0) usage("fleet: <before ids> and <after ids> are needed");
  if (!removed || !before.includes(removed) || after.includes(removed)) usage("fleet: <removed id> must be in <before ids> and not in <after ids>");
  const home = await open(browser);
  await goto(home, url);
  await waitConnected(home);
  for (const id of before) await step(home, `waiting for the row of ${id} with data-status="up"`, () => home.waitForSelector(rowSel(id, "up"), { state: "attached" }));
  // A reload would lose this mark; a reconnect would count in the connection indicator.
  await home.evaluate(() => {
    window.smonMark = 1;
    window.smonReconnects = 0;
    const conn = document.querySelector("#conn");
    new MutationObserver(() => {
      const st = conn?.getAttribute("data-state");
      if (st === "reconnecting" || st === "disconnected") window.smonReconnects++;
    }).observe(conn, { attributes: true, attributeFilter: ["data-state"] });
  });
  const layout0 = Number((await home.getAttribute("#hosts", "data-layout")) ?? "0");
  const hostPage = await open(browser);
  await goto(hostPage, withHash(url, `#/host/${removed}`));
  await waitConnected(hostPage);
  await step(hostPage, `waiting for the host page of ${removed}`, () => hostPage.waitForSelector('#host-status:not([hidden]):not([data-status="pending"])', { state: "attached" }));
  console.log("ready");
  const gone = before.filter((id) => !after.includes(id));
  const added = after.filter((id) => !before.includes(id));
  const clusters = [...new Set(after.map((id) => id.split(":")[0]))].sort();
  const wait = { timeout: 30_000, polling: 200 };
  await step(home, `waiting for the rows to become exactly ${after.join(", ")} (added ${added.join(", ") || "none"} up, removed ${gone.join(", ") || "none"}) and the clusters ${clusters.join(", ")}`, () =>
    home.waitForFunction(
      ([want, up, cl]) => {
        const rows = Array.from(document.querySelectorAll("tr[data-host-id]"));
        const ids = rows.map((r) => r.getAttribute("data-host-id")).sort();
        const heads = Array.from(document.querySelectorAll("tbody.cluster-head[data-cluster]")).map((t) => t.getAttribute("data-cluster")).sort();
        return (
          JSON.stringify(ids) === JSON.stringify([...want].sort()) &&
          up.every((id) => document.querySelector(`tr[data-host-id=${JSON.stringify(id)}][data-status="up"]`)) &&
          JSON.stringify(heads) === JSON.stringify(cl)
        );
      },
      [after, added, clusters],
      wait,
    ),
  );
  const mark = await home.evaluate(() => [window.smonMark, window.smonReconnects]);
  if (mark[0] !== 1) throw new CheckFailed(`the home page reloaded\n${await describe(home)}`);
  if (mark[1] !== 0) throw new CheckFailed(`the home page reconnected ${mark[1]} time(s)\n${await describe(home)}`);
  const layout1 = Number((await home.getAttribute("#hosts", "data-layout")) ?? "0");
  if (!(layout1 > layout0)) throw new CheckFailed(`#hosts data-layout stayed ${layout0}: the rows did not come by a layout change\n${await describe(home)}`);
  await step(hostPage, `the host page of ${removed} says it was removed`, () => hostPage.waitForSelector('#host-error[data-reason="removed"]:not([hidden])', wait));
  // The rows still update live after the change.
  const probe = after[0];
  const sample = await home.getAttribute(rowSel(probe), "data-sample-ms");
  await step(home, `the row of ${probe} still updates live`, () => home.waitForFunction(([sel, b]) => document.querySelector(sel)?.getAttribute("data-sample-ms") !== b, [rowSel(probe), sample], { timeout: LIVE_MS }));
  console.log(`ok: fleet: rows ${before.length} -> ${after.length} (added ${added.join(", ") || "none"}, removed ${gone.join(", ") || "none"}) live, layout ${layout0} -> ${layout1}, no reload or reconnect; the page of ${removed} says it was removed`);
}

// ------------------------------------------------------------------ connection state

/**
 * Records, in the page, every moment where the connection indicator and the stale banner
 * disagree: the banner shown while the indicator says "Live" (or `data-state="connected"`),
 * or the indicator saying stale without the banner. Mutations are checked after each task, as
 * a person would see them.
 */
async function watchAgreement(page) {
  await page.evaluate(() => {
    window.smonDisagree = [];
    window.smonStates = [];
    const conn = document.querySelector("#conn");
    const banner = document.querySelector("#stale-banner");
    const check = () => {
      const state = conn?.getAttribute("data-state");
      const label = conn?.textContent?.trim() ?? "";
      const shown = banner ? !banner.hidden : false;
      const key = `${state}/${label}/${shown ? "banner" : "no banner"}`;
      if (window.smonStates[window.smonStates.length - 1] !== key) window.smonStates.push(key);
      const live = state === "connected" || /^live$/i.test(label);
      if ((shown && live) || (state === "stale" && !shown)) window.smonDisagree.push(`${key}: ${banner?.textContent ?? ""}`);
    };
    const mo = new MutationObserver(check);
    for (const el of [conn, banner]) if (el) mo.observe(el, { attributes: true, childList: true, subtree: true, characterData: true });
    check();
  });
}

async function agreement(page, what) {
  const [bad, states] = await page.evaluate(() => [window.smonDisagree, window.smonStates]);
  if (bad.length) throw new CheckFailed(`${what}: the indicator and the banner disagreed: ${bad.slice(0, 5).join(" | ")} (states seen: ${states.join(" -> ")})\n${await describe(page)}`);
  return states;
}

/**
 * The server stops sending frames (the caller freezes it with SIGSTOP after `ready`, and
 * resumes it with SIGCONT after `frozen`). On the overview (desktop) and on a host page
 * (phone), the indicator and the banner must say the same thing all along: live, then stale
 * ("Stale", `data-state="stale"`, the banner shown), then live again.
 */
async function freeze(browser, url, id) {
  if (!id) usage("freeze: no host id given");
  const desk = await open(browser, DESKTOP);
  await goto(desk, url);
  await waitConnected(desk);
  await step(desk, `waiting for the row of ${id} with data-status="up"`, () => desk.waitForSelector(rowSel(id, "up"), { state: "attached" }));
  const phone = await open(browser, PHONE);
  await goto(phone, withHash(url, `#/host/${id}`));
  await waitConnected(phone);
  await step(phone, `waiting for the host page of ${id}`, () => phone.waitForSelector('#host-status[data-status="up"]', { state: "attached" }));
  const pages = [
    ["desktop overview", desk],
    ["phone host page", phone],
  ];
  for (const [, p] of pages) {
    await step(p, "live: the indicator says Live, no banner", () => p.waitForFunction(() => document.querySelector("#conn")?.textContent?.trim() === "Live" && document.querySelector("#stale-banner")?.hidden === true));
    await watchAgreement(p);
  }
  console.log("ready");
  const wait = { timeout: 20_000, polling: 100 };
  for (const [name, p] of pages) {
    await step(p, `${name}: the banner says the data is stale and the indicator says Stale`, () =>
      p.waitForFunction(() => {
        const c = document.querySelector("#conn");
        const b = document.querySelector("#stale-banner");
        return b && !b.hidden && /^Stale/.test(b.textContent ?? "") && c?.getAttribute("data-state") === "stale" && c.textContent?.trim() === "Stale";
      }, undefined, wait),
    );
  }
  await desk.waitForTimeout(2500); // still frozen: they keep agreeing while the age grows
  for (const [name, p] of pages) await agreement(p, `${name}, frozen`);
  console.log("frozen");
  for (const [name, p] of pages) {
    await step(p, `${name}: live again (indicator Live, no banner)`, () =>
      p.waitForFunction(() => {
        const c = document.querySelector("#conn");
        return c?.getAttribute("data-state") === "connected" && c.textContent?.trim() === "Live" && document.querySelector("#stale-banner")?.hidden === true;
      }, undefined, wait),
    );
  }
  await desk.waitForTimeout(1500);
  const seen = [];
  for (const [name, p] of pages) seen.push(`${name}: ${(await agreement(p, `${name}, resumed`)).join(" -> ")}`);
  console.log(`ok: freeze: indicator and banner agreed throughout; ${seen.join("; ")}`);
}

// ------------------------------------------------------------------ details of the pages

/** Saves a screenshot as `<SMON_SHOTS>/<name>.png` when SMON_SHOTS is set. */
async function shot(page, name) {
  const dir = process.env.SMON_SHOTS;
  if (!dir) return;
  await mkdir(dir, { recursive: true });
  await page.screenshot({ path: join(dir, `${name}.png`), fullPage: true });
}

/** Fails unless `fn` (run in the page) returns an empty list of problems. */
async function expectNone(page, what, fn, arg) {
  const problems = await page.evaluate(fn, arg);
  if (problems.length) throw new CheckFailed(`${what}: ${problems.join("; ")}\n${await describe(page)}`);
}

/** Whether the element's own text runs on one line (not wrapped). */
function oneLineCheck() {
  return (sel) => {
    const out = [];
    for (const el of document.querySelectorAll(sel)) {
      const r = document.createRange();
      r.selectNodeContents(el);
      const tops = new Set(Array.from(r.getClientRects()).map((x) => Math.round(x.top)));
      if (tops.size > 1) out.push(`'${el.textContent}' wraps over ${tops.size} lines`);
      if (el.scrollWidth > el.clientWidth + 1) out.push(`'${el.textContent}' is cut (${el.scrollWidth} > ${el.clientWidth} px)`);
    }
    return out;
  };
}

/**
 * The host page of `busy` (2 cores, no swap, no temperatures, a GPU drawing 652 of 700 W, a
 * process at 1,310 % CPU with two descendants, and 60 kernel threads) at the page's size.
 */
async function busyHostPage(page, url, busy, label) {
  await goto(page, withHash(url, `#/host/${busy}`));
  await waitConnected(page);
  await step(page, `${label}: waiting for the processes of ${busy}`, () => page.waitForSelector('#processes tr[data-pid="100"]', { state: "attached" }));
  // Kernel threads hidden by default; the toggle shows them, and hides them again.
  const kthreads = () => page.locator("#processes tr[data-kthread]").count();
  if ((await kthreads()) !== 0) throw new CheckFailed(`${label}: kernel threads are listed by default\n${await describe(page)}`);
  await page.check("#proc-kthreads");
  await step(page, `${label}: the toggle shows the kernel threads`, () => page.waitForSelector("#processes tr[data-kthread]", { state: "attached" }));
  await page.uncheck("#proc-kthreads");
  await step(page, `${label}: and hides them again`, () => page.waitForFunction(() => document.querySelectorAll("#processes tr[data-kthread]").length === 0));
  // 1,310 % fits its column.
  const cpu = (await page.textContent('#processes tr[data-pid="100"] td:nth-child(4)'))?.trim();
  if (cpu !== "1310%") throw new CheckFailed(`${label}: the CPU of pid 100 reads '${cpu}', not '1310%'\n${await describe(page)}`);
  await expectNone(page, `${label}: process CPU cells`, oneLineCheck(), "#processes tr[data-pid] td:nth-child(4)");
  // The tree: 100 > 101 > 102, in that order, indented by depth.
  await page.check("#proc-tree");
  await step(page, `${label}: the tree view nests 101 under 100 and 102 under 101`, () =>
    page.waitForFunction(() => {
      const rows = Array.from(document.querySelectorAll("#processes tr[data-pid]"));
      const at = (pid) => rows.findIndex((r) => r.getAttribute("data-pid") === pid);
      const depth = (pid) => rows[at(pid)]?.getAttribute("data-depth");
      return at("100") >= 0 && at("101") === at("100") + 1 && at("102") === at("101") + 1 && depth("101") === String(Number(depth("100")) + 1) && depth("102") === String(Number(depth("100")) + 2);
    }),
  );
  await page.uncheck("#proc-tree");
  await step(page, `${label}: the flat list again`, () => page.waitForFunction(() => !document.querySelector("#processes tr[data-depth]")));
  // Power on one line, inside its card.
  await step(page, `${label}: the GPU card`, () => page.waitForSelector(".gpu-card dl.stats dd", { state: "visible" }));
  const power = await page.evaluate(() => Array.from(document.querySelectorAll(".gpu-card dl.stats dd")).map((d) => d.textContent));
  if (!power.includes("652 / 700 W")) throw new CheckFailed(`${label}: no '652 / 700 W' in the GPU stats ${JSON.stringify(power)}`);
  await expectNone(page, `${label}: GPU stats`, oneLineCheck(), ".gpu-card dl.stats dd");
  if (label === "desktop") {
    // A narrow window (two GPU cards a row at their smallest) too.
    await page.setViewportSize({ width: 720, height: 800 });
    await page.waitForTimeout(300);
    await expectNone(page, `${label} at 720 px: GPU stats`, oneLineCheck(), ".gpu-card dl.stats dd");
    await page.setViewportSize(DESKTOP);
    await page.waitForTimeout(300);
  }
  await expectNone(page, `${label}: GPU stats inside the card`, () => {
    const out = [];
    for (const dd of document.querySelectorAll(".gpu-card dl.stats dd")) {
      const card = dd.closest(".gpu-card").getBoundingClientRect();
      const r = dd.getBoundingClientRect();
      if (r.right > card.right + 0.5) out.push(`'${dd.textContent}' ends at ${r.right} past the card's ${card.right}`);
    }
    return out;
  });
  // No swap: said in words, no bar.
  await expectNone(page, `${label}: the swap meter`, () => {
    const card = Array.from(document.querySelectorAll(".cards .card")).find((c) => c.querySelector(".card-title")?.textContent === "Memory");
    const meters = card ? Array.from(card.querySelectorAll(".meter")) : [];
    const swap = meters[1];
    if (!swap) return ["no swap meter in the Memory card"];
    const out = [];
    if (swap.querySelector(".meter-value")?.textContent !== "no swap") out.push(`the swap meter says '${swap.textContent}'`);
    const bar = swap.querySelector(".meter-bar");
    if (bar && getComputedStyle(bar).visibility !== "hidden" && getComputedStyle(bar).display !== "none") out.push("the swap meter shows a bar");
    return out;
  });
  // No temperatures: no card for them, and no empty fourth column either.
  await expectNone(page, `${label}: the cards`, () => {
    const grid = document.querySelector(".host-body .cards");
    const cards = Array.from(grid.children).filter((c) => !c.hidden);
    const out = [];
    if (cards.some((c) => c.querySelector(".card-title")?.textContent === "Temperatures")) out.push("a Temperatures card is shown without sensors");
    const right = Math.max(...cards.map((c) => c.getBoundingClientRect().right));
    const g = grid.getBoundingClientRect();
    if (g.right - right > 2) out.push(`the cards end at ${right} px, ${Math.round(g.right - right)} px short of their row (${g.right}): an empty column`);
    return out;
  });
  await shot(page, `host-${label}`);
  // Two cores: two wide bars.
  await expectNone(page, `${label}: per-core bars`, () => {
    const bars = Array.from(document.querySelectorAll(".cores .core"));
    if (bars.length !== 2) return [`${bars.length} core bars, not 2`];
    return bars.flatMap((b, i) => {
      const r = b.getBoundingClientRect();
      return r.width < 60 || r.height < 24 ? [`core ${i} is ${Math.round(r.width)}x${Math.round(r.height)} px`] : [];
    });
  });
}

/**
 * What a user saw wrong in the first hour, on fixed data (see `web/tests/it/ui.rs`): at a
 * desktop size, the optional overview columns through the picker, remembered after a reload;
 * "no swap" on the overview; then the host page of `busy` (`busyHostPage`) and the temperature
 * card of `warm`. At a phone size, the overview as cards without sideways scrolling, and the
 * host page of `busy` again.
 */
async function details(browser, url, busy, warm) {
  if (!busy || !warm) usage("details: <busy id> and <warm id> are needed");
  const page = await open(browser, DESKTOP);
  await goto(page, url);
  await waitConnected(page);
  for (const id of [busy, warm]) await step(page, `waiting for the row of ${id}`, () => page.waitForSelector(rowSel(id, "up"), { state: "attached" }));
  const optional = ["net", "dio", "temp", "procs"];
  const shownCols = () => page.evaluate(() => Array.from(document.querySelectorAll("#hosts thead th[data-col]")).filter((th) => !th.hidden).map((th) => th.getAttribute("data-col")));
  let cols = await shownCols();
  if (optional.some((c) => cols.includes(c))) throw new CheckFailed(`optional columns shown by default: ${cols.join(", ")}`);
  await step(page, "opening the column picker", () => page.click("#col-picker > summary"));
  for (const c of optional) await page.check(`#col-picker input[data-col="${c}"]`);
  await page.keyboard.press("Escape");
  await step(page, "Escape closes the column picker", () => page.waitForSelector("#col-picker:not([open])", { state: "attached" }));
  const cell = (id, col) => page.textContent(`${rowSel(id)} td[data-col="${col}"]`).then((t) => (t ?? "").replace(/\s+/g, " ").trim());
  const expectCells = async () => {
    await step(page, "the optional columns show the values", async () => {
      const want = { temp: "71 °C", procs: "312" };
      const deadline = Date.now() + STEP_MS;
      let got = {};
      while (Date.now() < deadline) {
        got = { temp: await cell(warm, "temp"), procs: await cell(warm, "procs"), net: await cell(warm, "net"), dio: await cell(warm, "dio") };
        if (got.temp === want.temp && got.procs === want.procs && /↓\s*1\.50 MiB\/s\s*↑\s*250 KiB\/s/.test(got.net) && /R\s*4\.00 MiB\/s\s*W\s*2\.00 MiB\/s/.test(got.dio)) return;
        await page.waitForTimeout(200);
      }
      throw new CheckFailed(`cells of ${warm}: ${JSON.stringify(got)}`);
    });
  };
  await expectCells();
  await page.reload({ waitUntil: "domcontentloaded" });
  await waitConnected(page);
  await step(page, `waiting for the row of ${warm}`, () => page.waitForSelector(rowSel(warm, "up"), { state: "attached" }));
  cols = await shownCols();
  if (!optional.every((c) => cols.includes(c))) throw new CheckFailed(`after a reload the picked columns are not all shown: ${cols.join(", ")}`);
  await expectCells();
  await page.click("#col-picker > summary");
  await page.uncheck('#col-picker input[data-col="temp"]');
  await page.reload({ waitUntil: "domcontentloaded" });
  await waitConnected(page);
  await step(page, `waiting for the row of ${warm}`, () => page.waitForSelector(rowSel(warm, "up"), { state: "attached" }));
  cols = await shownCols();
  if (cols.includes("temp") || !cols.includes("net")) throw new CheckFailed(`after unpicking Temp and a reload: ${cols.join(", ")}`);
  if (!(await page.locator(`${rowSel(warm)} td[data-col="temp"]`).isHidden())) throw new CheckFailed("the Temp cells stay visible after unpicking the column");
  await shot(page, "home-desktop");
  // No swap on the overview: the words, no bar.
  const swap = await cell(busy, "swap");
  if (swap !== "no swap") throw new CheckFailed(`the swap cell of ${busy} says '${swap}', not 'no swap'`);
  if (await page.locator(`${rowSel(busy)} td[data-col="swap"] .meter-bar`).isVisible()) throw new CheckFailed(`the swap cell of ${busy} shows a bar`);

  await busyHostPage(page, url, busy, "desktop");
  // This server keeps no history: the host page says so in one line, with no empty charts.
  await step(page, "the history section says history is off", async () => {
    await page.waitForSelector('#history[data-state="off"] #history-status:not([hidden])');
    if (await page.locator("#history .hchart").first().isVisible()) throw new CheckFailed("empty history charts are shown while history is off");
  });
  await goto(page, withHash(url, `#/host/${warm}`));
  await step(page, `the temperature card of ${warm}`, () => page.waitForSelector("#temperatures tbody tr:not(.empty)", { state: "visible" }));

  const phone = await open(browser, PHONE);
  await goto(phone, url);
  await waitConnected(phone);
  for (const id of [busy, warm]) await step(phone, `phone: waiting for the row of ${id}`, () => phone.waitForSelector(rowSel(id, "up"), { state: "visible" }));
  await phone.waitForTimeout(500);
  await shot(phone, "home-phone");
  await expectNone(phone, "phone overview", ([ids, w]) => {
    const out = [];
    const doc = document.scrollingElement ?? document.documentElement;
    if (doc.scrollWidth > w + 1) out.push(`the page is ${doc.scrollWidth} px wide in a ${w} px screen`);
    const wrap = document.querySelector(".hosts-wrap");
    if (wrap && wrap.scrollWidth > wrap.clientWidth + 1) out.push(`the host list scrolls sideways (${wrap.scrollWidth} > ${wrap.clientWidth} px)`);
    for (const id of ids) {
      const row = document.querySelector(`tr[data-host-id=${JSON.stringify(id)}]`);
      const rr = row.getBoundingClientRect();
      if (rr.height > 110) out.push(`${id}: a row ${Math.round(rr.height)} px high`);
      for (const sel of [".badge", "td.col-name", 'td[data-col="cpu"]', 'td[data-col="mem"]', 'td[data-col="disk"]', 'td[data-col="gpu"]']) {
        const el = row.querySelector(sel);
        const r = el?.getBoundingClientRect();
        if (!el || !r || r.width === 0 || r.height === 0) out.push(`${id}: ${sel} not shown`);
        else if (r.left < -0.5 || r.right > w + 0.5) out.push(`${id}: ${sel} off screen (${Math.round(r.left)}..${Math.round(r.right)} px)`);
        else if (r.top < rr.top - 0.5 || r.bottom > rr.bottom + 0.5) out.push(`${id}: ${sel} outside its row`);
      }
      // Each value says what it is (a label drawn by CSS before it).
      for (const [col, label] of [["cpu", "CPU"], ["mem", "Mem"], ["disk", "Disk"], ["gpu", "GPU"]]) {
        const td = row.querySelector(`td[data-col="${col}"]`);
        const before = td ? getComputedStyle(td, "::before") : null;
        if (!before || before.display === "none" || !before.content.includes(label)) out.push(`${id}: no '${label}' label on its ${col} cell (${before?.content})`);
      }
    }
    return out;
  }, [[busy, warm], PHONE.width]);
  await busyHostPage(phone, url, busy, "phone");
  console.log(`ok: details: columns picked and remembered, no swap, kernel threads hidden and shown, tree, 1310%, 652 / 700 W on one line, no empty card, wide core bars, phone overview as cards (desktop and phone)`);
}

// ------------------------------------------------------------------ the agent's own view

/**
 * The agent's single-host view opens on its host's page (not a one-row table), at both sizes,
 * with no way "back" to a list; its kernel threads (`yes`: the host has some) are hidden
 * until asked for.
 */
async function node(browser, url, id, kthreadsArg) {
  if (!id) usage("node: no host id given");
  if (kthreadsArg !== "yes" && kthreadsArg !== "no") usage(`node: <kernel threads> must be yes or no, not '${kthreadsArg}'`);
  for (const [label, size] of [
    ["desktop", DESKTOP],
    ["phone", PHONE],
  ]) {
    const page = await open(browser, size);
    await goto(page, url);
    await waitConnected(page);
    await step(page, `${label}: the page opens on the host page of ${id}`, async () => {
      await page.waitForURL((u) => decodeURIComponent(u.hash) === `#/host/${id}`);
      await page.waitForSelector('#host-status[data-status="up"]', { state: "visible" });
      await page.waitForSelector("#processes tr[data-pid]", { state: "attached" });
    });
    if (await page.locator("tr[data-host-id]").count()) throw new CheckFailed(`${label}: a host table is on the page\n${await describe(page)}`);
    if (await page.locator(".host-head .back").isVisible()) throw new CheckFailed(`${label}: the page offers '← All hosts' with one host`);
    if (label === "desktop") {
      if (await page.locator("#processes tr[data-kthread]").count()) throw new CheckFailed(`${label}: kernel threads listed by default\n${await describe(page)}`);
      if (kthreadsArg === "yes") {
        await page.check("#proc-kthreads");
        await step(page, `${label}: the toggle lists the host's kernel threads`, () => page.waitForSelector("#processes tr[data-kthread]", { state: "attached" }));
        const names = await page.$$eval("#processes tr[data-kthread] td:nth-child(3)", (tds) => tds.slice(0, 3).map((t) => t.textContent));
        console.log(`note: kernel threads shown: ${names.join(", ")}`);
        await page.uncheck("#proc-kthreads");
      }
    }
  }
  console.log(`ok: node: the single-host view opens on ${id} (desktop and phone), kernel threads hidden by default${kthreadsArg === "yes" ? " and shown on demand" : ""}`);
}

/** The span (ms) a history chart shows: `[from, to]` from its data attributes. */
async function chartRange(page, metric) {
  return page.evaluate((m) => {
    const el = document.querySelector(`#history .hchart[data-metric="${m}"]`);
    return el ? [Number(el.getAttribute("data-from")), Number(el.getAttribute("data-to"))] : null;
  }, metric);
}

/**
 * Waits until the CPU history chart holds points over a range that meets `want`: `span` (to -
 * from, exactly), `spanBelow`, `fromAbove`, `toAbove`, `toBelow` (ms).
 */
async function waitRange(page, what, want) {
  await step(page, what, () =>
    page.waitForFunction((w) => {
      const el = document.querySelector('#history .hchart[data-metric="cpu"]');
      if (!el || Number(el.getAttribute("data-points")) === 0) return false;
      const f = Number(el.getAttribute("data-from"));
      const t = Number(el.getAttribute("data-to"));
      return (w.span === undefined || t - f === w.span) && (w.spanBelow === undefined || t - f < w.spanBelow) && (w.fromAbove === undefined || f > w.fromAbove) && (w.toAbove === undefined || t > w.toAbove) && (w.toBelow === undefined || t < w.toBelow);
    }, want),
  );
}

/**
 * The stored history (web/tests/it/history.rs serves it): on the host page, the default live
 * range moves with the clock; choosing 6 h asks for 6 h; a drag across the CPU chart zooms
 * into it; a click on a point shows the top processes at that minute, with command lines for
 * an admin only (`secret` is in every stored command line); the GPU tab shows the use per GPU
 * and per user; the cluster page (linked from the overview) shows its charts; the Storage page
 * is an admin's only.
 */
async function history(browser, url, id, cluster, role, secret) {
  if (!id || !cluster || !["admin", "viewer"].includes(role) || !secret) usage("history: <host id> <cluster> <admin|viewer> <secret>");
  const page = await open(browser);
  await goto(page, withHash(url, `#/host/${id}`));
  await step(page, "waiting for the history charts", () => page.waitForSelector('#history[data-state="ready"][data-live] .hchart[data-metric="cpu"] .u-over'));
  await step(page, "1 h is the default range", () => page.waitForSelector('#range-picker button[data-range="1h"][aria-pressed="true"]'));
  await waitRange(page, "the default range is the last hour", { span: 3_600_000 });

  // The GPU chart shows a health signal when picked: a counter, drawn by its last value.
  await page.selectOption("#gpu-metric", "gpu_ecc_corrected_errors");
  await step(page, "the GPU chart shows the corrected ECC errors", async () => {
    const sel = '#history .hchart[data-metric="gpu"][data-gpu-metric="gpu_ecc_corrected_errors"]';
    await page.waitForSelector(`${sel}[data-points]:not([data-points="0"])`);
    const title = (await page.textContent(`${sel} .card-title`)) ?? "";
    if (!title.includes("Corrected ECC errors (last value)")) throw new CheckFailed(`the GPU chart is titled '${title}'`);
    const value = (await page.textContent(`${sel} .legend-item b`)) ?? "";
    if (value !== "6") throw new CheckFailed(`GPU-0's corrected ECC count reads '${value}', not 6`);
  });
  // Series are per GPU UUID, named after the host's GPUs now: GPU-0 is index 1 today (another
  // GPU fell off the bus), and GPU-7f3a9c2e is no longer there.
  await step(page, "the GPU series named by UUID", () =>
    page.waitForFunction(() => {
      const items = Array.from(document.querySelectorAll('#history .hchart[data-metric="gpu"] .legend-item')).map((e) => e.textContent ?? "");
      return items.length === 2 && items[0].startsWith("GPU 1 · NVIDIA H100 80GB HBM3") && items[1].startsWith("GPU-7f3a9c2e… (gone)");
    }),
  );
  await page.selectOption("#gpu-metric", "gpu_utilization_percent");
  await step(page, "back to GPU use", () => page.waitForSelector('#history .hchart[data-gpu-metric="gpu_utilization_percent"][data-points]:not([data-points="0"])'));

  // A live range keeps moving: 15 minutes, fetched again every 5 s.
  await page.click('#range-picker button[data-range="15m"]');
  await waitRange(page, "15 minutes shown", { span: 900_000 });
  const first = await chartRange(page, "cpu");
  await waitRange(page, "the live edge moving on", { span: 900_000, toAbove: first[1] });

  await page.click('#range-picker button[data-range="6h"]');
  await waitRange(page, "6 hours shown after a click on 6 h", { span: 21_600_000 });
  const six = await chartRange(page, "cpu");

  // Drag across the middle of the CPU chart: zoom to that span (in view first: the mouse
  // only reaches what is on screen).
  await page.locator('#history .hchart[data-metric="cpu"] .u-over').scrollIntoViewIfNeeded();
  const over = await page.locator('#history .hchart[data-metric="cpu"] .u-over').boundingBox();
  if (!over) throw new CheckFailed("the CPU history chart has no plot area");
  const y = over.y + over.height / 2;
  await page.mouse.move(over.x + over.width * 0.3, y);
  await page.mouse.down();
  await page.mouse.move(over.x + over.width * 0.45, y, { steps: 5 });
  await page.mouse.move(over.x + over.width * 0.6, y, { steps: 5 });
  await page.mouse.up();
  await waitRange(page, "zoomed in by the drag", { fromAbove: six[0], toBelow: six[1], spanBelow: 0.5 * 21_600_000 });
  await step(page, "the zoomed range is a custom one, not live", async () => {
    await page.waitForSelector('#range-picker button[data-range="custom"][aria-pressed="true"]');
    await page.waitForSelector("#history:not([data-live])");
  });
  const zoomed = await chartRange(page, "cpu");

  // A click on a point: the top processes at that minute.
  await page.mouse.click(over.x + over.width * 0.5, y);
  await step(page, "the processes at the clicked minute", () => page.waitForSelector('#history-procs[data-at]:not([data-at="none"]) #history-top-cpu tr[data-pid="4242"]'));
  const at = Number(await page.getAttribute("#history-procs", "data-at"));
  if (!(at >= zoomed[0] - 60_000 && at <= zoomed[1])) throw new CheckFailed(`the processes are of ${at}, outside the zoomed range ${zoomed}`);
  const seen = await page.evaluate(() => ({
    cmds: Array.from(document.querySelectorAll('#history-procs td[data-col="cmd"]')).map((td) => td.textContent ?? ""),
    users: Array.from(document.querySelectorAll('#history-procs td[data-col="user"]')).map((td) => td.textContent ?? ""),
    text: document.querySelector("#history-procs")?.textContent ?? "",
  }));
  if (!seen.users.includes("ann")) throw new CheckFailed(`the owner is not shown: ${seen.users}`);
  if (role === "admin" && !seen.cmds.some((c) => c.includes(secret))) throw new CheckFailed(`an admin sees no command line: ${seen.cmds}`);
  if (role === "viewer" && seen.text.includes(secret)) throw new CheckFailed(`a viewer sees a command line: ${seen.cmds}`);
  await shot(page, `history-host-${role}`);

  // The GPU tab: who used each GPU over the range.
  await page.click('#history-tabs button[data-tab="gpus"]');
  await step(page, "GPU use per GPU and per user", async () => {
    // Keyed by the GPU's UUID, named after its index and name now.
    await page.waitForSelector(`#gpu-usage-gpu tr[data-key="${id}/GPU-0"] td[data-col="key"]:text-is("GPU 1 · NVIDIA H100 80GB HBM3")`);
    await page.waitForSelector('#gpu-usage-user tr[data-key="ann"]');
    await page.waitForSelector('#gpu-usage-sampled tr[data-key="GPU-0/ann"] td[data-col="gpu"]:text-is("GPU 1 · NVIDIA H100 80GB HBM3")');
  });
  await shot(page, `history-gpus-${role}`);
  await page.click('#history-tabs button[data-tab="charts"]');

  // The cluster page, from the overview's cluster header.
  await goto(page, withHash(url, "#/"));
  await step(page, "the cluster's history link", () => page.click(`a.cluster-history[data-cluster="${cluster}"]`));
  await step(page, "the cluster page's charts", () => page.waitForSelector(`#cluster-page[data-cluster="${cluster}"] #history[data-state="ready"] .hchart[data-metric="cpu"][data-points]:not([data-points="0"])`));
  // A cluster's GPU series: one over every GPU of its hosts, not one per UUID.
  await step(page, "the cluster's GPU chart, all GPUs in one series", () =>
    page.waitForFunction((c) => {
      const items = Array.from(document.querySelectorAll(`#cluster-page[data-cluster="${c}"] #history .hchart[data-metric="gpu"] .legend-item`)).map((e) => e.textContent ?? "");
      return items.length === 1 && items[0].startsWith("All GPUs");
    }, cluster),
  );
  await shot(page, `history-cluster-${role}`);

  // The Storage page: admins only.
  if (role === "admin") {
    await step(page, "the Storage link", () => page.click("#storage-link"));
    await step(page, "the storage page", async () => {
      await page.waitForSelector('#storage-page[data-state="ready"] #storage-tiers tr[data-tier="raw"]');
      const size = (await page.textContent("#storage-bytes")) ?? "";
      if (!/\d/.test(size)) throw new CheckFailed(`the database size reads '${size}'`);
      await page.waitForSelector("#storage-remote tr[data-url]");
    });
  } else {
    await step(page, "the account menu", () => page.waitForSelector("#who"));
    if (await page.locator("#storage-link").count()) throw new CheckFailed("a viewer has a Storage link");
    await goto(page, withHash(url, "#/storage"));
    await step(page, "the storage page refusing a viewer", () => page.waitForSelector('#storage-page[data-state="error"]'));
  }
  await shot(page, `history-${role}`);

  // The Audit page: admins only.
  if (role === "admin") {
    await step(page, "the Audit link", () => page.click("#audit-link"));
    await step(page, "the audit page", () => page.waitForSelector('#audit-page[data-state="ready"]'));
  } else {
    if (await page.locator("#audit-link").count()) throw new CheckFailed("a viewer has an Audit link");
    await goto(page, withHash(url, "#/audit"));
    await step(page, "the audit page refusing a viewer", () => page.waitForSelector('#audit-page[data-state="error"]'));
  }
  await shot(page, `audit-${role}`);
  console.log(`ok: history: ${role}: ranges, zoom to ${Math.round((zoomed[1] - zoomed[0]) / 60000)} min, processes at ${new Date(at).toISOString()}, GPU use, cluster ${cluster}, storage, audit`);
}

// ------------------------------------------------------------------ alerts

/** Waits until `fn(arg)` in the page returns a truthy value (at most STEP_MS); returns it. */
async function until(page, what, fn, arg) {
  return step(page, what, async () => (await page.waitForFunction(fn, arg, { timeout: STEP_MS, polling: 200 })).jsonValue());
}

/** Fails when the page is wider than the screen, or `sels` stick out of it. */
async function fitsPhone(page, what, sels) {
  // The top bar is on every page: its last button must stay on screen.
  sels = [...sels, "#alerts-link", "#logout", "#theme-toggle"];
  await expectNone(
    page,
    what,
    ([w, list]) => {
      const out = [];
      const doc = document.scrollingElement ?? document.documentElement;
      if (doc.scrollWidth > w + 1) out.push(`the page is ${doc.scrollWidth} px wide in a ${w} px screen`);
      for (const sel of list) {
        const el = document.querySelector(sel);
        const r = el?.getBoundingClientRect();
        if (!el || !r || r.width === 0) out.push(`${sel} not shown`);
        else if (r.left < -0.5 || r.right > w + 0.5) out.push(`${sel} off screen (${Math.round(r.left)}..${Math.round(r.right)} px)`);
      }
      // Nothing squeezed past the top bar's padding either.
      const bar = document.querySelector(".topbar");
      const last = document.querySelector("#theme-toggle")?.getBoundingClientRect();
      if (bar && last) {
        const edge = bar.getBoundingClientRect().right - parseFloat(getComputedStyle(bar).paddingRight);
        if (last.right > edge + 0.5) out.push(`the top bar overflows: its last button ends at ${Math.round(last.right)} px, past ${Math.round(edge)} px`);
      }
      return out;
    },
    [PHONE.width, sels],
  );
}

/** Opens a tab of the alerts page. */
async function alertsTab(page, tab) {
  await step(page, `opening the ${tab} tab`, async () => {
    await page.click(`#alerts-tabs button[data-tab="${tab}"]`);
    await page.waitForSelector(`#alerts-${tab}:not([hidden])`);
  });
}

/**
 * The alerts page and the badges (aggregator/tests/it/alerts_ui.rs): the overview's per-host
 * badge links to the host's alerts, the top bar's Alerts link counts them in the worst
 * severity, the firing list shows the config rule `always` on <host id>. An admin acknowledges
 * it, makes a rule (first refused: the server's reason shows under Condition), edits and
 * deletes it, finds no edit button on the config rule, silences the alert (the top bar's count
 * drops) and deletes the silence, sees the channel without <secret> and tests it, makes a
 * webhook channel to <hook url> (first refused: the server's reason shows under URL), tests
 * it, edits its rate limit without retyping the URL, tests it again, is refused its deletion
 * while a rule notifies it, deletes it; the host page lists the alert. A viewer sees the
 * same alerts and no button that changes anything. At a phone's width nothing scrolls
 * sideways but the tables.
 */
async function alerts(browser, url, id, role, secret, hookUrl) {
  if (!id || !["admin", "viewer"].includes(role) || !secret || !hookUrl?.includes(secret)) usage("alerts: <host id> <admin|viewer> <secret> <hook url holding secret>");
  const admin = role === "admin";
  const page = await open(browser);
  page.on("dialog", (d) => void d.accept());
  const q = JSON.stringify(id);
  const row = `#firing-table tr[data-alert-id][data-rule="always"][data-host=${q}]`;

  // The overview: the host's badge, live from the overview's deltas, links to its alerts.
  await goto(page, url);
  await waitConnected(page);
  const badge = `${rowSel(id, "up")} .alert-badge[data-count]:not([hidden])`;
  await step(page, `the alert badge of ${id} on the overview`, () => page.waitForSelector(badge));
  const href = await page.getAttribute(badge, "href");
  if (href !== `#/alerts?host=${id}`) throw new CheckFailed(`the badge links to ${href}, not to the host's alerts\n${await describe(page)}`);
  const rowAttr = await page.getAttribute(rowSel(id), "data-alerts");
  if (!(Number(rowAttr) >= 1)) throw new CheckFailed(`the row's data-alerts is ${rowAttr}`);
  const cluster = id.slice(0, id.indexOf(":"));
  await step(page, `the alert count in the header of cluster ${cluster}`, () => page.waitForSelector(`tbody.cluster-head[data-cluster=${JSON.stringify(cluster)}] .cluster-alerts[data-count="${rowAttr}"]:not([hidden])`));

  // The top bar: the count of alerts firing, in the worst severity's colour.
  await step(page, "the top bar's Alerts link with a count", () => page.waitForSelector('#alerts-link[data-count]:not([data-count="0"]):not([hidden])'));
  const sev = await page.getAttribute("#alerts-link", "data-severity");
  if (sev !== "critical") throw new CheckFailed(`the Alerts link is coloured '${sev}', not critical`);
  const linkColour = await page.$eval("#alerts-link .alerts-count", (el) => getComputedStyle(el).backgroundColor);
  const critColour = await page.evaluate(() => {
    const probe = document.createElement("span");
    probe.style.setProperty("color", "var(--crit)");
    document.body.append(probe);
    const c = getComputedStyle(probe).color;
    probe.remove();
    return c;
  });
  if (linkColour !== critColour) throw new CheckFailed(`the count's background is ${linkColour}, not the critical colour ${critColour}`);

  // The badge leads to the alerts page, filtered on the host.
  await step(page, "following the host's badge", () => page.click(badge));
  await step(page, "the alerts page, ready", () => page.waitForSelector(`#alerts-page[data-state="ready"][data-role="${role}"]`));
  const filter = await page.inputValue("#alerts-host-filter");
  if (filter !== id) throw new CheckFailed(`the host filter holds '${filter}', not ${id}`);
  await step(page, "the firing row of the rule `always`", () => page.waitForSelector(`${row}[data-pending="false"]`));
  const cells = await page.$eval(row, (tr) => ({ sev: tr.querySelector(".sev")?.getAttribute("data-severity"), text: tr.textContent ?? "" }));
  if (cells.sev !== "critical") throw new CheckFailed(`the row's severity badge says ${cells.sev}`);

  if (admin) {
    await step(page, "acknowledging the alert", async () => {
      await page.click(`${row} .alert-ack`);
      await page.waitForSelector(`${row}[data-acked="true"]`);
      await page.waitForSelector('#firing-status[data-ok="true"]');
    });
    if (await page.locator(`${row} .alert-ack`).isVisible()) throw new CheckFailed("the Acknowledge button is still shown after acknowledging");
    await shot(page, "alerts-firing");
  } else {
    await expectNone(page, "a viewer's firing list", () => {
      const out = [];
      for (const sel of [".alert-ack", ".alert-silence"]) if (document.querySelector(`#firing-table ${sel}`)) out.push(`a viewer has ${sel}`);
      return out;
    });
  }

  // Rules: the config rule is read-only.
  await alertsTab(page, "rules");
  await step(page, "the config rule in the rules table", () => page.waitForSelector('#rules-table tr[data-rule="always"][data-source="config"]'));
  if (await page.locator('#rules-table tr[data-rule="always"] :is(.rule-edit, .rule-delete)').count()) throw new CheckFailed("the config rule has edit or delete buttons");
  if (admin) {
    // A second page stays on the overview: the badge must follow the rule live (deltas, `al`).
    const watch = await open(browser);
    await goto(watch, url);
    await waitConnected(watch);
    const count = `${rowSel(id)} .alert-badge`;
    await step(watch, "the overview's badge at 1", () => watch.waitForSelector(`${count}[data-count="1"]`));
    await step(page, "opening the rule editor", async () => {
      await page.click("#rule-new");
      await page.waitForSelector("#rule-form:not([hidden])");
    });
    await page.fill('#rule-form [name="name"]', "ui busy");
    await page.fill('#rule-form [name="when"]', "cpu_prcent > 99");
    await page.fill('#rule-form [name="for_s"]', "60");
    await page.click("#rule-save");
    const why = await until(page, "the server's reason under Condition", () => {
      const t = document.querySelector('#rule-form .field-error[data-for="when"]')?.textContent ?? "";
      return t.includes("cpu_prcent") ? t : "";
    });
    if (await page.locator('#rule-form [data-field="when"][data-invalid="true"]').count() !== 1) throw new CheckFailed(`the Condition field is not marked (reason: ${why})`);
    if (!(await page.isVisible("#rule-form"))) throw new CheckFailed("the editor closed on a refused rule");
    await shot(page, "alerts-rule-refused");
    await page.fill('#rule-form [name="when"]', "cpu_percent >= 0");
    await page.fill('#rule-form [name="for_s"]', "0");
    await page.selectOption('#rule-form [name="severity"]', "info");
    await page.click("#rule-save");
    await step(page, "the new UI rule in the table", async () => {
      await page.waitForSelector('#rules-table tr[data-rule="ui busy"][data-source="ui"] .rule-edit');
      await page.waitForSelector('#rules-status[data-ok="true"]');
      await page.waitForSelector("#rule-form", { state: "hidden" });
    });
    await step(watch, "the overview's badge going to 2 live as the new rule fires", () => watch.waitForSelector(`${count}[data-count="2"]`));
    await step(page, "the top bar counting 2", () => page.waitForSelector('#alerts-link[data-count="2"][data-severity="critical"]'));
    await step(page, "editing the UI rule", async () => {
      await page.click('#rules-table tr[data-rule="ui busy"] .rule-edit');
      await page.waitForSelector("#rule-form:not([hidden])");
      const when = await page.inputValue('#rule-form [name="when"]');
      if (when !== "cpu_percent >= 0") throw new CheckFailed(`the editor opened with when='${when}'`);
      await page.fill('#rule-form [name="when"]', "mem_percent > 99");
      await page.click("#rule-save");
      await page.waitForFunction(() => (document.querySelector('#rules-table tr[data-rule="ui busy"]')?.textContent ?? "").includes("mem_percent > 99"), null, { timeout: STEP_MS, polling: 200 });
    });
    await step(watch, "the overview's badge back to 1 live once the edited rule resolves", () => watch.waitForSelector(`${count}[data-count="1"]`));
    await step(page, "deleting the UI rule", async () => {
      await page.click('#rules-table tr[data-rule="ui busy"] .rule-delete');
      await page.waitForSelector('#rules-table tr[data-rule="ui busy"]', { state: "detached" });
    });
  } else {
    if (await page.isVisible("#rule-new")) throw new CheckFailed("a viewer has a New rule button");
    if (await page.locator("#rules-table :is(.rule-edit, .rule-delete)").count()) throw new CheckFailed("a viewer has rule buttons");
  }

  // Silences.
  await alertsTab(page, "silences");
  if (admin) {
    await step(page, "making a silence of the rule on the host", async () => {
      await page.fill('#silence-form [name="rule"]', "always");
      await page.fill('#silence-form [name="host"]', id);
      await page.fill('#silence-form [name="comment"]', "browser test");
      await page.click("#silence-create");
      await page.waitForSelector('#silences-status[data-ok="true"]');
      await page.waitForSelector('#silences-table tr[data-silence][data-source="ui"][data-active="true"] .silence-delete');
    });
    await step(page, "the top bar no longer counting the silenced alert", () => page.waitForSelector('#alerts-link[data-count="0"]'));
    await alertsTab(page, "firing");
    await step(page, "the alert shown as silenced", () => page.waitForSelector(`${row}[data-silenced="true"]`));
    await alertsTab(page, "silences");
    await step(page, "deleting the silence", async () => {
      await page.click('#silences-table tr[data-silence][data-source="ui"] .silence-delete');
      await page.waitForSelector('#silences-table tr[data-silence][data-source="ui"]', { state: "detached" });
    });
    await step(page, "the top bar counting the alert again", () => page.waitForSelector('#alerts-link[data-count]:not([data-count="0"])'));
  } else {
    await step(page, "the silences table", () => page.waitForSelector("#silences-table tbody tr"));
    if (await page.isVisible("#silence-form")) throw new CheckFailed("a viewer has the silence form");
  }

  // Channels: the target without the secret part of the URL; the config channel read-only.
  await alertsTab(page, "channels");
  await step(page, "the channel `hook`", () => page.waitForSelector('#channels-table tr[data-channel="hook"][data-source="config"]'));
  const html = await page.content();
  if (html.includes(secret)) throw new CheckFailed("the page shows the channel's secret URL path");
  if (await page.locator('#channels-table tr[data-channel="hook"] :is(.channel-edit, .channel-delete)').count()) throw new CheckFailed("the config channel has edit or delete buttons");
  if (admin) {
    await step(page, "sending a test through the channel", async () => {
      await page.click('#channels-table tr[data-channel="hook"] .channel-test');
      await page.waitForSelector('#channels-table tr[data-channel="hook"] .test-result[data-ok="true"]');
    });
    await shot(page, `alerts-channels-${role}`);
    await uiChannel(page, secret, hookUrl);
  } else {
    if (await page.locator("#channels-table .channel-test").count()) throw new CheckFailed("a viewer has a Send test button");
    if (await page.isVisible("#channel-new")) throw new CheckFailed("a viewer has a New channel button");
    if (await page.isVisible("#channel-form")) throw new CheckFailed("a viewer has the channel form");
    if (await page.locator("#channels-table :is(.channel-edit, .channel-delete)").count()) throw new CheckFailed("a viewer has channel buttons");
    await shot(page, `alerts-channels-${role}`);
  }

  // The host page's Alerts section, linking back to the filtered page.
  await goto(page, withHash(url, `#/host/${id}`));
  await step(page, "the host page's Alerts section", () => page.waitForSelector('#host-alerts:not([hidden]) li.host-alert[data-rule="always"][data-severity="critical"]'));
  const hostLink = await page.getAttribute("#host-alerts-link", "href");
  if (hostLink !== `#/alerts?host=${id}`) throw new CheckFailed(`the host page links to ${hostLink}`);
  await shot(page, `alerts-host-${role}`);

  // A phone: the overview's badge, the top bar and the alerts page fit the screen.
  const phone = await open(browser, PHONE);
  phone.on("dialog", (d) => void d.accept());
  await goto(phone, url);
  await waitConnected(phone);
  await step(phone, "phone: the host's alert badge", () => phone.waitForSelector(badge, { state: "visible" }));
  await step(phone, "phone: the Alerts link", () => phone.waitForSelector("#alerts-link[data-count]", { state: "visible" }));
  await fitsPhone(phone, "phone overview", [`${rowSel(id)} .alert-badge`]);
  await shot(phone, `alerts-phone-home-${role}`);
  await goto(phone, withHash(url, "#/alerts"));
  await step(phone, "phone: the firing row", () => phone.waitForSelector(row));
  await fitsPhone(phone, "phone alerts page", ["#alerts-tabs", "#alerts-host-filter", "#firing-table"]);
  await shot(phone, `alerts-phone-firing-${role}`);
  for (const tab of ["history", "rules", "silences", "channels"]) {
    await alertsTab(phone, tab);
    if (tab === "rules" && admin) {
      await phone.click("#rule-new");
      await phone.waitForSelector("#rule-form:not([hidden])");
    }
    if (tab === "channels" && admin) {
      // The editor with the most fields.
      await phone.click("#channel-new");
      await phone.waitForSelector("#channel-form:not([hidden])");
      await phone.selectOption('#channel-form [name="type"]', "email");
    }
    await phone.waitForTimeout(300);
    await fitsPhone(phone, `phone ${tab} tab`, [`#alerts-${tab} .table-wrap`]);
    await shot(phone, `alerts-phone-${tab}-${role}`);
  }
  // The dark theme keeps the severity colours apart from the page.
  await phone.click("#theme-toggle");
  await goto(phone, withHash(url, `#/host/${id}`));
  await step(phone, "phone: the host page's Alerts section", () => phone.waitForSelector("#host-alerts li.host-alert", { state: "visible" }));
  await fitsPhone(phone, "phone host page", ["#host-alerts li.host-alert"]);
  await shot(phone, `alerts-phone-host-dark-${role}`);
  console.log(`ok: alerts: ${role}: badge, top bar count, firing row${admin ? ", ack, rule refused/made/edited/deleted, silence made/deleted, channel tested, UI channel refused/made/tested/edited/tested/kept while used/deleted" : ", no write buttons"}, host section, phone`);
}

/**
 * An admin's UI channel on the channels tab: a webhook to <hook url> (whose path is <secret>),
 * first refused for a bad URL (the reason under URL), then made (source `ui`, no secret shown),
 * tested, its rate limit changed without retyping the URL, tested again (the URL was kept),
 * refused deletion while a rule notifies it (the server's sentence names the rule), deleted.
 */
async function uiChannel(page, secret, hookUrl) {
  const name = "ui-hook";
  const tr = `#channels-table tr[data-channel="${name}"]`;
  await step(page, "opening the channel editor", async () => {
    await page.click("#channel-new");
    await page.waitForSelector("#channel-form:not([hidden])");
  });
  for (const [sel, type] of [['[name="url"]', "password"], ['[name="bearer"]', "password"]]) {
    const attrs = await page.$eval(`#channel-form ${sel}`, (el) => [el.getAttribute("type"), el.getAttribute("autocomplete")]);
    if (attrs[0] !== type || attrs[1] !== "off") throw new CheckFailed(`the secret input ${sel} is type=${attrs[0]} autocomplete=${attrs[1]}`);
  }
  const types = await page.$$eval('#channel-form [name="type"] option', (l) => l.map((o) => o.value));
  if (types.includes("command")) throw new CheckFailed(`the editor offers the type command: ${types}`);
  await page.fill('#channel-form [name="name"]', name);
  await page.selectOption('#channel-form [name="type"]', "webhook");
  await page.fill('#channel-form [name="url"]', "not a url");
  await page.click("#channel-save");
  const why = await until(page, "the server's reason under URL", () => document.querySelector('#channel-form .field-error[data-for="url"]')?.textContent ?? "");
  if (await page.locator('#channel-form [data-field="url"][data-invalid="true"]').count() !== 1) throw new CheckFailed(`the URL field is not marked (reason: ${why})`);
  if (!(await page.isVisible("#channel-form"))) throw new CheckFailed("the editor closed on a refused channel");
  await shot(page, "alerts-channel-refused");
  await page.fill('#channel-form [name="url"]', hookUrl);
  await page.click("#channel-save");
  await step(page, "the new UI channel in the table", async () => {
    await page.waitForSelector(`${tr}[data-source="ui"] .channel-edit`);
    await page.waitForSelector('#channels-status[data-ok="true"]');
    await page.waitForSelector("#channel-form", { state: "hidden" });
  });
  const text = await page.$eval(tr, (el) => el.textContent ?? "");
  if (!/UI/.test(text) || !text.includes("admin")) throw new CheckFailed(`the UI channel's row does not say UI and who made it: ${text}`);
  if ((await page.content()).includes(secret)) throw new CheckFailed("the page shows the new channel's secret URL path");
  await step(page, "sending a test through the UI channel", async () => {
    await page.click(`${tr} .channel-test`);
    await page.waitForSelector(`${tr} .test-result[data-ok="true"]`);
  });
  await step(page, "editing the UI channel's rate limit", async () => {
    await page.click(`${tr} .channel-edit`);
    await page.waitForSelector("#channel-form:not([hidden])");
    const url = await page.inputValue('#channel-form [name="url"]');
    const ph = await page.getAttribute('#channel-form [name="url"]', "placeholder");
    if (url !== "" || ph !== "unchanged") throw new CheckFailed(`the editor opened with url='${url}' placeholder='${ph}'`);
    if (!(await page.isDisabled('#channel-form [name="name"]'))) throw new CheckFailed("the editor lets the channel be renamed");
    await shot(page, "alerts-channel-edit");
    await page.fill('#channel-form [name="max"]', "7");
    await page.fill('#channel-form [name="per_s"]', "120");
    await page.click("#channel-save");
    await page.waitForSelector("#channel-form", { state: "hidden" });
    await page.waitForFunction((sel) => (document.querySelector(sel)?.textContent ?? "").includes("7 per"), tr, { timeout: STEP_MS, polling: 200 });
  });
  await step(page, "testing the edited channel (its URL kept)", async () => {
    await page.click(`${tr} .channel-test`);
    await page.waitForSelector(`${tr} .test-result[data-ok="true"]`);
  });
  await shot(page, "alerts-channel-ui");
  // A rule that notifies the channel (and never fires) keeps it.
  await alertsTab(page, "rules");
  await step(page, "a rule notifying the UI channel", async () => {
    await page.click("#rule-new");
    await page.waitForSelector("#rule-form:not([hidden])");
    await page.fill('#rule-form [name="name"]', "uses ui-hook");
    await page.fill('#rule-form [name="when"]', "mem_percent > 99");
    await page.fill('#rule-form [name="notify"]', name);
    await page.click("#rule-save");
    await page.waitForSelector('#rules-table tr[data-rule="uses ui-hook"][data-source="ui"]');
  });
  await alertsTab(page, "channels");
  await step(page, "deleting the channel a rule notifies", () => page.click(`${tr} .channel-delete`));
  const refused = await until(page, "the server's refusal naming the rule", () => {
    const st = document.querySelector('#channels-status[data-ok="false"]')?.textContent ?? "";
    return st.includes("uses ui-hook") ? st : "";
  });
  if (!(await page.isVisible(tr))) throw new CheckFailed(`the channel is gone although refused: ${refused}`);
  await alertsTab(page, "rules");
  await step(page, "deleting the rule", async () => {
    await page.click('#rules-table tr[data-rule="uses ui-hook"] .rule-delete');
    await page.waitForSelector('#rules-table tr[data-rule="uses ui-hook"]', { state: "detached" });
  });
  await alertsTab(page, "channels");
  await step(page, "deleting the UI channel", async () => {
    await page.click(`${tr} .channel-delete`);
    await page.waitForSelector(tr, { state: "detached" });
    await page.waitForSelector('#channels-status[data-ok="true"]');
  });
}

// ------------------------------------------------------------------ reachability

/**
 * Reachability (aggregator/tests/it/reach.rs): the overview row of <host id> marks "1 of 2
 * services down" naming <down service> in its tooltip, with the ping's time; the host page's
 * Reachability section lists the ping and both services, <down service> down with its error.
 * An admin's "Check now" runs a check (the section's check time moves); a viewer has no such
 * button.
 */
async function reach(browser, url, id, role, down) {
  if (!id || !["admin", "viewer"].includes(role) || !down) usage("reach: <host id> <admin|viewer> <down service>");
  const page = await open(browser);
  await goto(page, url);
  await waitConnected(page);
  const mark = `${rowSel(id)} .reach-mark:not([hidden])`;
  await step(page, `the reachability mark of ${id}`, () => page.waitForSelector(mark));
  const text = (await page.textContent(mark))?.trim();
  if (text !== "1 of 2 services down") throw new CheckFailed(`the mark reads '${text}'\n${await describe(page)}`);
  const title = await page.getAttribute(mark, "title");
  if (!title?.includes(down)) throw new CheckFailed(`the mark's tooltip '${title}' does not name ${down}`);
  await step(page, "the ping's time on the row", () => page.waitForSelector(`${rowSel(id)} .ping-time:not([hidden])`));

  await goto(page, withHash(url, `#/host/${id}`));
  await waitConnected(page);
  const item = (subject, state) => `#host-reach:not([hidden]) li.reach-item[data-subject=${JSON.stringify(subject)}][data-up="${state}"]`;
  await step(page, `${down} down in the Reachability section`, () => page.waitForSelector(item(down, "down")));
  const error = (await page.textContent(`${item(down, "down")} .reach-error`))?.trim();
  if (error !== "connection refused") throw new CheckFailed(`${down} shows '${error}', not 'connection refused'`);
  await step(page, "the ping, up", () => page.waitForSelector(item("ping", "up")));
  const n = await page.locator("#host-reach li.reach-item").count();
  if (n !== 3) throw new CheckFailed(`the section lists ${n} items, not the ping and two services`);
  if (role === "viewer") {
    await page.waitForTimeout(500);
    if (await page.isVisible("#reach-check")) throw new CheckFailed("a viewer sees the Check now button");
    return;
  }
  await step(page, "the Check now button", () => page.waitForSelector("#reach-check:not([hidden])"));
  const before = await page.getAttribute("#host-reach", "data-checked-ms");
  await page.click("#reach-check");
  await step(page, "a new check shown", () =>
    page.waitForFunction((b) => {
      const v = document.querySelector("#host-reach")?.getAttribute("data-checked-ms");
      return v && v !== b;
    }, before),
  );
}

// ------------------------------------------------------------------ main

async function actions(browser, url, id, role, tag, failing) {
  if (!id || !["admin", "viewer"].includes(role) || !tag || !failing) usage("actions: <host id> <admin|viewer> <tag> <failing host id>");
  const page = await open(browser);
  const dialogs = [];
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    void d.accept();
  });
  // The host page: Wake (confirmed), the packet sent, then the host followed until it answers.
  await goto(page, withHash(url, `#/host/${id}`));
  await waitConnected(page);
  if (role === "viewer") {
    await page.waitForTimeout(1000);
    if (await page.isVisible(".host-actions")) throw new CheckFailed(`a viewer sees the action buttons\n${await describe(page)}`);
    await goto(page, url);
    await waitConnected(page);
    await page.waitForTimeout(500);
    if (await page.isVisible(".group-actions")) throw new CheckFailed(`a viewer sees the group actions\n${await describe(page)}`);
    return;
  }
  await step(page, "the host's action buttons", () => page.waitForSelector(".host-actions:not([hidden]) .action-wake"));
  await page.click(".action-wake");
  await step(page, "the wake's outcome", () => page.waitForSelector('.action-out[data-state="ok"]'));
  if (!dialogs.some((m) => m.includes(id))) throw new CheckFailed(`the confirmation did not name ${id}: ${JSON.stringify(dialogs)}`);
  await step(page, "the woken host followed until it answers", () =>
    page.waitForFunction((h) => document.querySelector(".action-out")?.textContent?.includes(`${h} is up`), id, { timeout: 15000 }),
  );
  // Reboot without a control token: the server's reason is shown, as an error.
  await page.click(".action-reboot");
  await step(page, "the reboot's refusal", () => page.waitForSelector('.action-out[data-state="error"]'));
  const why = await page.textContent(".action-out");
  if (!why?.includes("control_token")) throw new CheckFailed(`the refusal says '${why}', not what to set`);

  // The overview: wake every host of a tag, confirmed with the list, one result per host.
  await goto(page, url);
  await waitConnected(page);
  await step(page, "the overview's Actions menu", () => page.waitForSelector(".group-actions:not([hidden]) .group-open"));
  await page.click(".group-open");
  await page.selectOption(".group-action", "wake");
  await page.selectOption(".group-target", `tag:${tag}`);
  dialogs.length = 0;
  await page.click(".group-go");
  await step(page, "the group's result lines", () => page.waitForSelector(`.group-results li[data-host=${JSON.stringify(id)}][data-state="ok"]`));
  await step(page, "the failing host's line", () => page.waitForSelector(`.group-results li[data-host=${JSON.stringify(failing)}][data-state="error"]`));
  if (!dialogs.some((m) => m.includes(id) && m.includes(failing))) throw new CheckFailed(`the confirmation did not list the hosts: ${JSON.stringify(dialogs)}`);

  // A selection by the filter: only the hosts it shows.
  await page.fill("input.search", id.slice(id.indexOf(":") + 1));
  await page.selectOption(".group-target", "shown:");
  dialogs.length = 0;
  await page.click(".group-go");
  await step(page, "the shown host's line", () => page.waitForSelector(`.group-results li[data-host=${JSON.stringify(id)}][data-state="ok"]`));
  const lines = await page.locator(".group-results li").count();
  if (lines !== 1) throw new CheckFailed(`the filter's selection acted on ${lines} hosts, not 1: ${JSON.stringify(dialogs)}`);
}

async function programs(browser, url, id, role, name, logged, marker) {
  if (!id || !["admin", "viewer"].includes(role) || !name || !logged || !marker) usage("programs: <host id> <admin|viewer> <program> <program with a log> <marker in its log>");
  const page = await open(browser);
  const dialogs = [];
  page.on("dialog", (d) => {
    dialogs.push(d.message());
    void d.accept();
  });
  await goto(page, withHash(url, `#/host/${id}`));
  await waitConnected(page);
  const row = (p) => `.host-programs:not([hidden]) tr[data-program=${JSON.stringify(p)}]`;
  await step(page, "the Programs section", () => page.waitForSelector(`${row(name)}[data-state="RUNNING"]`));
  if (!(await page.isVisible(row(logged)))) throw new CheckFailed(`${logged} is not listed\n${await describe(page)}`);
  if (role === "viewer") {
    await page.waitForTimeout(1000);
    if (await page.isVisible(".program-stop, .program-log-open")) throw new CheckFailed(`a viewer sees the program buttons\n${await describe(page)}`);
    if (await page.isVisible(".proc-signal-open")) throw new CheckFailed(`a viewer sees Signal…\n${await describe(page)}`);
    return;
  }
  // Stop, confirmed naming the program; the outcome, then the row says STOPPED.
  await step(page, "the Stop button", () => page.waitForSelector(`${row(name)} .program-stop`));
  await page.click(`${row(name)} .program-stop`);
  await step(page, "the stop's outcome", () => page.waitForSelector('.program-out[data-state="ok"]'));
  if (!dialogs.some((m) => m.includes(name))) throw new CheckFailed(`the confirmation did not name ${name}: ${JSON.stringify(dialogs)}`);
  await step(page, "the program STOPPED", () => page.waitForSelector(`${row(name)}[data-state="STOPPED"]`));
  // The log panel shows the tail.
  await page.click(`${row(logged)} .program-log-open`);
  await step(page, "the log's tail", () => page.waitForFunction((m) => document.querySelector(".program-log-text")?.textContent?.includes(m), marker, { timeout: 10000 }));
  // Signal… is offered on process rows.
  await step(page, "Signal… on the process list", () => page.waitForSelector(".proc-signal-open", { state: "attached" }));
}

const COMMANDS = { home, host, status, transport, screenshot, login, large, fleet, freeze, details, node, history, alerts, actions, reach, programs };
const [cmd, url, ...rest] = process.argv.slice(2);
if (!cmd || !(cmd in COMMANDS)) usage(cmd ? `unknown subcommand '${cmd}'` : "no subcommand");
if (!url) usage(`${cmd}: no url given`);
try {
  new URL(url);
} catch {
  usage(`${cmd}: '${url}' is not a URL`);
}

let browser;
let code = 0;
// A hard stop, in case something hangs outside the per-step timeouts (the alerts scenario
// has more steps than the others).
const WATCHDOG_S = cmd === "alerts" ? 180 : 90;
const watchdog = setTimeout(() => {
  console.error(`FAIL ${cmd}: gave up after ${WATCHDOG_S} s`);
  process.exit(1);
}, WATCHDOG_S * 1000);
try {
  browser = await launch();
  await COMMANDS[cmd](browser, url, ...rest);
  const csp = PAGES.flatMap((p) => p.smonLog.filter((l) => /Content Security Policy/i.test(l)));
  if (csp.length) throw new CheckFailed(`Content-Security-Policy violations:\n    ${csp.join("\n    ")}`);
} catch (e) {
  code = 1;
  console.error(`FAIL ${cmd}: ${e instanceof CheckFailed ? e.message : e.stack ?? e}`);
} finally {
  await browser?.close().catch(() => undefined);
  clearTimeout(watchdog);
}
process.exit(code);
