// The inventory page in Chromium (Debian's, driven by playwright-core from web/ui), for
// inventory.rs: argv = base URL, a real agent's address, its token, `admin:password`,
// `viewer:password`. As admin, with the overview open in another tab that is never reloaded:
// a cluster added, a host refused with the server's field error under MAC, fixed and added,
// seen in the table and coming up on the overview; a host without an agent added and shown as
// such on both pages, then deleted after the confirmation; no token anywhere on the page. As
// viewer: the same table without any button that changes something. At phones' widths (375
// and 480 px): the overview and the inventory as wide as the screen, the top bar on one
// line. Exits non-zero with what the page showed when a step fails. SMON_UI_DIR names
// web/ui; CHROMIUM the browser.
import { createRequire } from "node:module";

const require = createRequire(`${process.env.SMON_UI_DIR}/package.json`);
const { chromium } = require("playwright-core");

const [base, agentAddr, token, adminLogin, viewerLogin] = process.argv.slice(2);
const STEP_MS = 15000;
const sel = (id, extra = "") => `tr[data-inv-id=${JSON.stringify(id)}]${extra}`;
const row = (id, extra = "") => `tr[data-host-id=${JSON.stringify(id)}]${extra}`;

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

async function open(browser, login) {
  const context = await browser.newContext({ viewport: { width: 1400, height: 900 } });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
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

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  timeout: STEP_MS,
});
try {
  // The overview, open before anything is added, never reloaded.
  const overview = await open(browser, adminLogin);
  await step(overview, "the overview lists lab:n1", () => overview.waitForSelector(row("lab:n1")));
  const page = await overview.context().newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on("pageerror", (e) => overview.smonErrors.push(e.message));
  await step(page, "the top bar links the inventory", async () => {
    await page.goto(base);
    await page.click("#inventory-link");
    await page.waitForSelector("#inventory-page[data-state=ready][data-role=admin]");
  });
  await step(page, "the config host is listed read-only", async () => {
    await page.waitForSelector(sel("lab:n1", "[data-source=config][data-agent=true]"));
    if ((await page.locator(`${sel("lab:n1")} .host-edit, ${sel("lab:n1")} .host-delete`).count()) !== 0) throw new Error("a config host has edit buttons");
  });
  await step(page, "adding the cluster office", async () => {
    await page.fill("[name=cluster_name]", "office");
    await page.click("#cluster-add");
    await page.waitForSelector("#inventory-clusters tr[data-cluster=office][data-source=ui]");
  });
  await step(page, "a bad MAC is refused under its field", async () => {
    await page.click("#host-new");
    await page.selectOption("#host-form [name=cluster]", "office");
    await page.fill("#host-form [name=name]", "n2");
    await page.fill("#host-form [name=address]", agentAddr);
    await page.fill("#host-form [name=token]", token);
    await page.fill("#host-form [name=mac]", "zz");
    await page.fill("#host-form [name=tags]", "rack1, gpu");
    await page.click("#host-save");
    await page.waitForSelector("#host-form [data-field=mac][data-invalid]");
    const e = await page.textContent(".field-error[data-for=mac]");
    if (!e.startsWith("mac: 'zz' is not a MAC address")) throw new Error(`the MAC's error: ${e}`);
  });
  await step(page, "the fixed host is added and listed", async () => {
    await page.fill("#host-form [name=mac]", "52:54:00:12:34:56");
    await page.click("#host-save");
    await page.waitForSelector(sel("office:n2", "[data-source=ui][data-agent=true]"));
    const t = await page.textContent(sel("office:n2"));
    if (!t.includes(agentAddr) || !t.includes("52:54:00:12:34:56") || !t.includes("rack1, gpu")) throw new Error(`its row: ${t}`);
  });
  await step(overview, "the open overview shows office:n2 up without a reload", () => overview.waitForSelector(row("office:n2", "[data-status=up]")));
  await step(page, "a host without an agent is added", async () => {
    await page.click("#host-new");
    await page.selectOption("#host-form [name=cluster]", "office");
    await page.fill("#host-form [name=name]", "printer");
    await page.fill("#host-form [name=ip]", "127.0.0.1");
    await page.fill("#host-form [name=services]", "ipp:631, ping/icmp");
    await page.click("#host-save");
    await page.waitForSelector(sel("office:printer", "[data-agent=false]"));
    const t = await page.textContent(sel("office:printer"));
    if (!t.includes("no agent") || !t.includes("ipp:631, ping/icmp")) throw new Error(`its row: ${t}`);
  });
  await step(overview, "the overview shows the printer as a host without an agent", async () => {
    await overview.waitForSelector(row("office:printer", "[data-agent=false]"));
    const t = await overview.textContent(`${row("office:printer")} [data-status]`);
    if (t.trim() !== "no agent") throw new Error(`its badge: ${t}`);
  });
  await step(page, "the printer is deleted after the confirmation", async () => {
    page.once("dialog", (d) => d.accept());
    await page.click(`${sel("office:printer")} .host-delete`);
    await page.waitForSelector(sel("office:printer"), { state: "detached" });
  });
  await step(overview, "the overview drops the printer", () => overview.waitForSelector(row("office:printer"), { state: "detached" }));
  await step(page, "no token on the page", async () => {
    const html = await page.content();
    if (html.includes(token)) throw new Error("the agent token is on the page");
  });

  const viewer = await open(browser, viewerLogin);
  await step(viewer, "viewers read without buttons", async () => {
    await viewer.goto(new URL("#/inventory", base).toString());
    await viewer.waitForSelector("#inventory-page[data-state=ready][data-role=viewer]");
    await viewer.waitForSelector(sel("office:n2", "[data-source=ui]"));
    const buttons = await viewer.locator("#inventory-page .host-edit, #inventory-page .host-delete, #inventory-page .cluster-delete").count();
    if (buttons !== 0 || (await viewer.isVisible("#host-new")) || (await viewer.isVisible("#cluster-form"))) throw new Error("a viewer has buttons that change something");
  });
  // At a phone's width: the top bar stays on one line, the page as wide as the screen.
  const phone = await open(browser, adminLogin);
  for (const width of [375, 480]) {
    await phone.setViewportSize({ width, height: 812 });
    for (const hash of ["#/", "#/inventory"]) {
      await step(phone, `${width} px: ${hash} fits the screen`, async () => {
        await phone.goto(new URL(hash, base).toString());
        await phone.waitForSelector(hash === "#/" ? row("office:n2") : sel("office:n2"));
        if (hash === "#/inventory") await phone.click("#host-new");
        const out = await phone.evaluate((w) => {
          const bad = [];
          const doc = document.scrollingElement ?? document.documentElement;
          if (doc.scrollWidth > w + 1) bad.push(`the page is ${doc.scrollWidth} px wide`);
          const bar = document.querySelector(".topbar");
          const last = document.querySelector("#theme-toggle")?.getBoundingClientRect();
          const edge = bar.getBoundingClientRect().right - parseFloat(getComputedStyle(bar).paddingRight);
          if (!last || last.right > edge + 0.5) bad.push(`the top bar overflows (${last?.right} > ${edge})`);
          return bad;
        }, width);
        if (out.length) throw new Error(out.join("; "));
      });
    }
  }
  const errors = [...overview.smonErrors, ...viewer.smonErrors, ...phone.smonErrors];
  if (errors.length) {
    console.error(`FAILED: page errors: ${errors.join("; ")}`);
    process.exit(1);
  }
  console.log("ok");
} finally {
  await browser.close();
}
