// A real browser (Debian's chromium through playwright-core, from web/ui) on the Accounts
// page of the aggregator at argv[2]: it logs in as `admin` (password argv[3]), adds the
// viewer `carol` (password argv[4]), changes its own password to argv[5], then logs in as
// carol in a fresh context. Prints "ok" at the end. Used by sec_accounts.rs; SMON_UI_DIR
// names web/ui.
import { createRequire } from "node:module";

const require = createRequire(`${process.env.SMON_UI_DIR}/package.json`);
const { chromium } = require("playwright-core");

const [base, adminPw, carolPw, newAdminPw] = process.argv.slice(2);
const STEP_MS = 20_000;

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run", "--disable-background-networking", "--disable-component-update", "--disable-sync"],
  timeout: STEP_MS,
});
const errors = [];
const fail = async (msg) => {
  console.error(`browser_accounts.mjs: ${msg}; page errors: ${errors.join("; ")}`);
  await browser.close();
  process.exit(1);
};

async function loggedIn(user, password) {
  const ctx = await browser.newContext();
  const page = await ctx.newPage();
  page.setDefaultTimeout(STEP_MS);
  page.on("pageerror", (e) => errors.push(e.message));
  await page.goto(`${base}/login`);
  await page.waitForSelector("form[data-ready='1']");
  await page.fill("#user", user);
  await page.fill("#password", password);
  await page.click("#login-submit");
  await page.waitForSelector("#who");
  return page;
}

try {
  const page = await loggedIn("admin", adminPw);
  // The header's Accounts link opens the page.
  await page.click("#accounts-link");
  await page.waitForSelector("#accounts-page");
  await page.waitForSelector("tr[data-user='viewer']");

  // An admin adds a user.
  await page.fill("#new-user-name", "carol");
  await page.selectOption("#new-user-role", "viewer");
  await page.fill("#new-user-password", carolPw);
  await page.click("#add-user");
  await page.waitForSelector("tr[data-user='carol']");
  const added = await page.textContent("#users-status");
  if (!added.includes("Added carol")) await fail(`status after adding: ${added}`);

  // A wrong current password is refused with the server's reason.
  await page.fill("#current-password", "not-the-password");
  await page.fill("#new-password", newAdminPw);
  await page.fill("#new-password-again", newAdminPw);
  await page.click("#change-password");
  await page.waitForSelector("#password-status[data-ok='false']");
  const refused = await page.textContent("#password-status");
  if (!refused.includes("not your current password")) await fail(`refusal: ${refused}`);

  // The admin changes their own password, and stays logged in.
  await page.fill("#current-password", adminPw);
  await page.fill("#new-password", newAdminPw);
  await page.fill("#new-password-again", newAdminPw);
  await page.click("#change-password");
  await page.waitForSelector("#password-status[data-ok='true']");
  await page.reload();
  await page.waitForSelector("tr[data-user='carol']");

  // carol logs in, as a viewer, and sees no user list.
  const carol = await loggedIn("carol", carolPw);
  const who = await carol.textContent("#who");
  if (who !== "carol (viewer)") await fail(`carol is shown as ${who}`);
  await carol.click("#accounts-link");
  await carol.waitForSelector("#password-form");
  await carol.waitForTimeout(300);
  if (await carol.$("#users-card")) await fail("a viewer sees the user list");
  if (errors.length) await fail("page errors");
  console.log("ok");
} catch (e) {
  await fail(String(e));
}
await browser.close();
