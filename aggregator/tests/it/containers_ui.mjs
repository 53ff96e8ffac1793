// Containers in Chromium (Debian's, driven by playwright-core from web/ui), for
// containers_ui.rs: argv = mode (`app`: the aggregator's dashboard, `node`: the agent's own
// single-host view), base URL, host id, the test's container (a systemd unit name), the pids
// of the processes in it (comma-separated), `admin:password`, and a host whose agent reports
// no containers (`-`: none).
//
// app only: the overview row shows the containers count and the busiest one with its CPU.
// Both: the host page's Containers section lists the test's container with CPU above 0, two
// tasks, and its memory as a bar against its 256 MiB limit; its search hides it and finds it again; sorting by name orders the rows; its name
// filters the process list down to exactly the test's processes, each showing the container;
// the select shows all processes again, then only those in no container. At 390 px: nothing
// sticks out of the screen (the overview's card leaves the containers out). The host without
// containers: an empty cell on the overview, no Containers section, no container filter or
// column on its page. Exits non-zero
// with what the page showed when a step fails. SMON_UI_DIR names web/ui; CHROMIUM the browser;
// SMON_SHOTS a folder to save screenshots in, for a person to look at.
import { createRequire } from "node:module";

const require = createRequire(`${process.env.SMON_UI_DIR}/package.json`);
const { chromium } = require("playwright-core");

const [mode, base, hostId, unit, pidsArg, login, plainId] = process.argv.slice(2);
const pids = pidsArg.split(",").sort();
const STEP_MS = 20000;
const row = (id, extra = "") => `tr[data-host-id=${JSON.stringify(id)}]${extra}`;
const ctrRow = `#containers tr[data-ctr-id=${JSON.stringify(unit)}]`;

function split(s) {
  const i = s.indexOf(":");
  return [s.slice(0, i), s.slice(i + 1)];
}

async function step(page, what, fn) {
  try {
    const r = await fn();
    console.log(`ok: ${mode}: ${what}`);
    return r;
  } catch (e) {
    let body = "";
    try {
      body = (await page.evaluate(() => document.body.innerText)).replace(/\s+/g, " ").slice(0, 2000);
    } catch {
      /* the page is gone */
    }
    console.error(`FAILED: ${mode}: ${what}: ${e.message}\n  url: ${page.url()}\n  page: ${body}`);
    process.exit(1);
  }
}

/** Polls `fn` (in the page, with `arg`) until it returns something truthy; its last value
 * names what was seen when it never does. */
async function until(page, fn, arg, what) {
  const deadline = Date.now() + STEP_MS;
  let last;
  while (Date.now() < deadline) {
    last = await page.evaluate(fn, arg);
    if (last && last.ok) return last;
    await page.waitForTimeout(200);
  }
  throw new Error(`${what}; last seen: ${JSON.stringify(last)}`);
}

/** Saves a screenshot of `el` (a selector; the page when null) when SMON_SHOTS is set. */
async function shot(page, name, el = null) {
  const dir = process.env.SMON_SHOTS;
  if (!dir) return;
  const path = `${dir}/${mode}-${name}.png`;
  if (el) await page.locator(el).screenshot({ path });
  else await page.screenshot({ path });
}

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  timeout: STEP_MS,
});

async function open(viewport) {
  const context = await browser.newContext({ viewport });
  const page = await context.newPage();
  page.setDefaultTimeout(STEP_MS);
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  // A Content-Security-Policy violation, or any script error, is reported on the console.
  // Not the HTTP answers the pages expect: the agent's own view keeps no history or alerts,
  // and says so with a 503 that the page shows as such.
  page.on("console", (m) => {
    if (m.type() === "error" && !m.text().startsWith("Failed to load resource: the server responded with a status of 503")) errors.push(m.text());
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

/** The process rows shown: pid and container (attribute and cell). */
const procRows = (page) =>
  page.$$eval("#processes tbody tr[data-pid]", (trs) => trs.map((tr) => ({ pid: tr.getAttribute("data-pid"), ctr: tr.getAttribute("data-container"), cell: tr.querySelector("td.col-ctr")?.textContent ?? null })));

/** Polls `check` (on this side) until its answer has `ok`; fails with `what` and the last answer. */
async function poll(page, check, what) {
  const deadline = Date.now() + STEP_MS;
  let last;
  while (Date.now() < deadline) {
    last = await check();
    if (last.ok) return last;
    await page.waitForTimeout(200);
  }
  throw new Error(`${what}; last seen: ${JSON.stringify(last)}`);
}

try {
  const page = await open({ width: 1280, height: 900 });
  if (mode === "app") {
    // Columns picked before the Containers column existed: it is shown all the same.
    await page.evaluate(() => {
      localStorage.setItem("smon.home.cols", JSON.stringify(["status", "name", "cpu", "mem"]));
      localStorage.removeItem("smon.home.cols.known");
    });
    await step(page, "the overview row shows the containers count and the busiest", async () => {
      await page.goto(base);
      await page.waitForSelector(row(hostId, "[data-status=up]"));
      const seen = await until(
        page,
        ([id, unit]) => {
          const td = document.querySelector(`tr[data-host-id=${JSON.stringify(id)}] td[data-col="ctr"]`);
          if (!td) return { why: "no Containers cell" };
          const count = Number(td.getAttribute("data-containers"));
          const top = td.getAttribute("data-top");
          const cpu = td.querySelector(".ctr-cpu")?.textContent ?? "";
          const shown = td.getBoundingClientRect().width > 0 && td.querySelector(".ctr-name")?.textContent === top;
          // Another test's service may be busier for a moment: then it is one of ours too.
          const ok = count >= 1 && shown && /^\d+(\.\d)?%$/.test(cpu.replace(/\s/g, "")) && (top === unit || /^smon-/.test(top ?? ""));
          return { ok, count, top, cpu, shown };
        },
        [hostId, unit],
        "no count and busiest container in the row",
      );
      console.log(`  overview: ${seen.count} container(s), busiest ${seen.top} at ${seen.cpu}`);
      await shot(page, "overview");
    });
    await step(page, "the Containers column unpicked stays hidden after a reload, and comes back", async () => {
      const shown = () => page.$$eval("#hosts thead th[data-col]", (ths) => ths.filter((th) => !th.hidden).map((th) => th.getAttribute("data-col")));
      const before = await shown();
      if (JSON.stringify(before) !== JSON.stringify(["status", "name", "cpu", "mem", "ctr"])) throw new Error(`columns shown: ${before.join(", ")}`);
      await page.click("#col-picker > summary");
      await page.uncheck('#col-picker input[data-col="ctr"]');
      await page.reload();
      await page.waitForSelector(row(hostId, "[data-status=up]"));
      const after = await shown();
      if (after.includes("ctr")) throw new Error(`still shown after unpicking: ${after.join(", ")}`);
      await page.click("#col-picker > summary");
      await page.check('#col-picker input[data-col="ctr"]');
      await page.keyboard.press("Escape");
      await page.waitForSelector(`${row(hostId)} td[data-col="ctr"][data-containers]:not([hidden])`);
    });
    await step(page, "the host link opens the host page", async () => {
      await page.click(`${row(hostId)} a.host-link`);
      await page.waitForURL((u) => u.hash.startsWith("#/host/"));
    });
  } else {
    // The agent's own view opens on its host's page.
    await step(page, "the single-host view opens the host page", async () => {
      await page.goto(base);
      await page.waitForURL((u) => u.hash.startsWith("#/host/"));
    });
  }

  await step(page, "the Containers section lists the test's container, busy, with its two tasks", async () => {
    await page.waitForSelector("#containers-section:not([hidden])");
    const seen = await until(
      page,
      (sel) => {
        const tr = document.querySelector(sel);
        if (!tr) return { why: "not listed", rows: Array.from(document.querySelectorAll("#containers tr[data-ctr-id]")).map((r) => r.getAttribute("data-ctr-id")) };
        const cells = Array.from(tr.cells).map((c) => c.textContent.trim());
        const cpu = parseFloat(cells[2]);
        // The shell's 32 MiB against the 256 MiB limit: a bar an eighth long, or a bit more.
        const bar = parseFloat(tr.querySelector(".ctr-mem[data-limited] .meter-fill")?.style.width ?? "0");
        const mem = /^[\d.]+ MiB \/ 256 MiB/.test(cells[3]) && bar >= 11 && bar < 50;
        return { ok: cpu > 0 && cells[6] === "2" && tr.getAttribute("data-kind") === "systemd" && mem, cells, bar };
      },
      ctrRow,
      "the test's container is not listed with CPU > 0 and 2 tasks",
    );
    console.log(`  row: ${seen.cells.join(" | ")}`);
    if (await page.isVisible("#containers-error")) throw new Error(`an error is shown: ${await page.textContent("#containers-error")}`);
  });

  await step(page, "the search hides it and finds it again", async () => {
    await page.fill("#containers-search", "no-such-container-zz");
    await page.waitForSelector(ctrRow, { state: "detached" });
    const empty = await page.textContent("#containers tbody tr.empty");
    if (!empty.includes("No containers")) throw new Error(`the empty row says ${empty}`);
    await page.fill("#containers-search", "uitest");
    await page.waitForSelector(ctrRow);
    const ids = await page.$$eval("#containers tr[data-ctr-id]", (rs) => rs.map((r) => r.getAttribute("data-ctr-id")));
    if (!ids.every((id) => id.includes("uitest"))) throw new Error(`the search shows ${ids.join(", ")}`);
    await page.fill("#containers-search", "");
  });

  await step(page, "sorting by name orders the rows", async () => {
    await page.click("#containers thead button.sort:text-is('Name')");
    const th = await page.getAttribute("#containers thead th:first-child", "aria-sort");
    const names = await page.$$eval("#containers tr[data-ctr-id] .ctr-pick", (bs) => bs.map((b) => b.textContent));
    const sorted = [...names].sort((a, b) => a.toLowerCase().localeCompare(b.toLowerCase()));
    const ordered = th === "ascending" ? sorted : sorted.reverse();
    if (JSON.stringify(names) !== JSON.stringify(ordered)) throw new Error(`${th}: ${names.join(", ")}`);
  });

  await step(page, "its name filters the process list to its processes", async () => {
    await page.click(`${ctrRow} .ctr-pick`);
    const value = await page.$eval("#proc-container", (s) => s.value);
    if (value !== unit) throw new Error(`the process filter holds ${value}`);
    const seen = await poll(
      page,
      async () => {
        const rows = await procRows(page);
        const got = rows.map((r) => r.pid).sort();
        const ok = JSON.stringify(got) === JSON.stringify(pids) && rows.every((r) => r.ctr === unit && r.cell === unit);
        return { ok, rows };
      },
      `the process list does not show exactly pids ${pids.join(", ")} in ${unit}`,
    );
    console.log(`  processes: ${seen.rows.map((r) => r.pid).join(", ")}`);
    await shot(page, "containers", "#containers-section");
    await shot(page, "processes", "#processes-section");
  });

  await step(page, "'All processes' shows the others again", async () => {
    await page.selectOption("#proc-container", "*");
    await poll(
      page,
      async () => {
        const rows = await procRows(page);
        return { ok: rows.length > pids.length, n: rows.length };
      },
      "no more processes shown",
    );
  });

  await step(page, "'In no container' leaves the test's processes out", async () => {
    await page.selectOption("#proc-container", "-");
    await poll(
      page,
      async () => {
        const rows = await procRows(page);
        return { ok: rows.length > 0 && rows.every((r) => !r.ctr && !pids.includes(r.pid)), rows: rows.slice(0, 5) };
      },
      "processes in a container are shown",
    );
    await page.selectOption("#proc-container", "*");
  });

  if (plainId !== "-") {
    await step(page, `${plainId}, without containers, shows none of them`, async () => {
      await page.goto(base);
      await page.waitForSelector(row(plainId, "[data-status=up]"));
      const td = await page.$eval(`${row(plainId)} td[data-col="ctr"]`, (td) => ({ attr: td.getAttribute("data-containers"), text: td.textContent.trim() }));
      if (td.attr !== null || td.text !== "") throw new Error(`its Containers cell: ${JSON.stringify(td)}`);
      await page.goto(new URL(`#/host/${plainId}`, base).toString());
      await page.waitForSelector("#processes tbody tr[data-pid]");
      await page.waitForSelector("#processes.no-ctr", { state: "attached" });
      if (await page.isVisible("#containers-section")) throw new Error("a Containers section is shown");
      if (await page.isVisible("#proc-container")) throw new Error("the container filter is shown");
      if (await page.isVisible("#processes th.col-ctr")) throw new Error("the Container column is shown");
    });
  }

  // A phone: nothing wider than the screen.
  const W = 390;
  const phone = await open({ width: W, height: 844 });
  const fits = (sels) =>
    phone.evaluate(
      ([w, sels]) => {
        const bad = [];
        const doc = document.scrollingElement ?? document.documentElement;
        if (doc.scrollWidth > w + 1) bad.push(`the page is ${doc.scrollWidth} px wide`);
        for (const s of sels) {
          const el = document.querySelector(s);
          const r = el?.getBoundingClientRect();
          if (!el || !r || r.width === 0) bad.push(`${s} not shown`);
          else if (r.left < -0.5 || r.right > w + 0.5) bad.push(`${s} off screen (${Math.round(r.left)}..${Math.round(r.right)} px)`);
        }
        return bad;
      },
      [W, sels],
    );
  if (mode === "app") {
    await step(phone, `${W} px: the overview fits, its card without the containers`, async () => {
      await phone.goto(base);
      await phone.waitForSelector(row(hostId, "[data-status=up]"));
      await phone.waitForSelector(`${row(hostId)} td[data-col="ctr"][data-containers]`, { state: "attached" });
      const bad = await fits([`${row(hostId)} td.col-name`, `${row(hostId)} td[data-col="cpu"]`]);
      const ctrWidth = await phone.$eval(`${row(hostId)} td[data-col="ctr"]`, (td) => td.getBoundingClientRect().width);
      if (ctrWidth > 0) bad.push("the containers cell is on the phone card");
      if (bad.length) throw new Error(bad.join("; "));
      await shot(phone, "phone-overview");
    });
    await phone.goto(new URL(`#/host/${hostId}`, base).toString());
  } else {
    await phone.goto(base);
  }
  await step(phone, `${W} px: the host page's Containers and Processes fit`, async () => {
    await phone.waitForSelector(ctrRow);
    await phone.locator("#containers-section").scrollIntoViewIfNeeded();
    const bad = await fits(["#containers-section", "#containers-section .section-head", "#containers-search", "#containers-section .table-wrap", "#proc-container"]);
    if (bad.length) throw new Error(bad.join("; "));
    await shot(phone, "phone-host");
  });

  const errors = [...page.smonErrors, ...phone.smonErrors];
  if (errors.length) {
    console.error(`FAILED: ${mode}: page errors: ${errors.join("; ")}`);
    process.exit(1);
  }
  console.log(`ok: ${mode}: done`);
} finally {
  await browser.close();
}
