// Drives turnwatch's example web client (assets/web/index.html) in headless Chromium, as
// tests/gateway/browser.rs asks: that test starts the gateway, serves the page from another
// loopback origin, and kills and restarts the gateway when this script says so.
//
// Environment: PAGE (the page's URL, `?gateway=` included), PAGE_UNLISTED (the same page
// from an origin the gateway does not list), SLOW_MESSAGE, CHROMIUM (the browser).
// Talks over its standard streams, one JSON object per line: it prints `{"step": NAME}` and,
// for `kill`, waits for a line on stdin saying the gateway is back; it ends with
// `{"result": {...}}` and exit 0, or `{"failed": "why"}` and exit 1.

import { chromium } from "playwright-core";
import { createInterface } from "node:readline";

const GUARD = 60_000;
const say = (obj) => process.stdout.write(JSON.stringify(obj) + "\n");
const stdin = createInterface({ input: process.stdin });
const lines = stdin[Symbol.asyncIterator]();

async function waitForLine() {
  const { value, done } = await lines.next();
  if (done) throw new Error("the test closed stdin");
  return value;
}

// The page's own record of a turn, read through its `window.turnwatchChat`.
async function turns(page) {
  return page.evaluate(() => [...window.turnwatchChat.turns].map(([turnId, t]) => ({
    turnId, text: t.text, state: t.state, error: t.error,
  })));
}

async function newSession(page, agent) {
  await page.fill("#agent", agent);
  await page.click("#new-session");
  await page.waitForFunction(() => window.turnwatchChat.session && window.turnwatchChat.connected,
    null, { timeout: GUARD });
  return page.evaluate(() => ({ ...window.turnwatchChat.session }));
}

async function send(page, content) {
  const before = await page.evaluate(() => window.turnwatchChat.turns.size);
  await page.fill("#message", content);
  await page.click("#send-button");
  await page.waitForFunction((n) => window.turnwatchChat.turns.size > n, before,
    { timeout: GUARD });
  const all = await turns(page);
  return all[all.length - 1].turnId;
}

async function ended(page, turnId) {
  await page.waitForFunction((id) => {
    const t = window.turnwatchChat.turns.get(id);
    return t && (t.state === "completed" || t.state === "failed");
  }, turnId, { timeout: GUARD });
  return (await turns(page)).find((t) => t.turnId === turnId);
}

// The page's own record of its stream for the current session.
async function stream(page) {
  return page.evaluate(() => ({
    received: window.turnwatchChat.received,
    seen: window.turnwatchChat.seen,
    connections: window.turnwatchChat.connections,
  }));
}

// What the page shows for a turn: its reply, and its error line's code and sentence.
async function shown(page, turnId) {
  const el = page.locator(`.turn[data-turn="${turnId}"]`);
  return {
    reply: await el.locator(".reply").textContent(),
    errorVisible: await el.locator(".error").isVisible(),
    code: await el.locator(".error .code").textContent(),
    sentence: await el.locator(".error .sentence").textContent(),
  };
}

async function main() {
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM,
    headless: true,
    args: ["--no-sandbox", "--disable-dev-shm-usage"],
  });
  try {
    const page = await browser.newPage();
    const consoleErrors = [];
    page.on("pageerror", (e) => consoleErrors.push(String(e)));
    await page.goto(process.env.PAGE, { timeout: GUARD });
    const result = { pageErrors: consoleErrors };

    // 0. The same page from an origin the gateway does not list: it can read nothing.
    say({ step: "unlisted" });
    const other = await browser.newPage();
    await other.goto(process.env.PAGE_UNLISTED, { timeout: GUARD });
    await other.fill("#agent", "echo");
    await other.click("#new-session");
    await other.waitForFunction(() => document.getElementById("status").textContent !== "",
      null, { timeout: GUARD });
    result.unlisted = {
      status: await other.textContent("#status"),
      session: await other.evaluate(() => window.turnwatchChat.session),
    };
    await other.close();

    // 1. Chat with the echo agent.
    say({ step: "echo" });
    const echo = await newSession(page, "echo");
    const echoTurn = await send(page, "hello from a browser");
    result.echo = {
      session: echo, turn: await ended(page, echoTurn), shown: await shown(page, echoTurn),
      stream: await stream(page),
    };

    // 2. A crashing agent: the page shows the code and the sentence.
    say({ step: "crash" });
    const crash = await newSession(page, "crash");
    const crashTurn = await send(page, "this will crash");
    result.crash = {
      session: crash, turn: await ended(page, crashTurn), shown: await shown(page, crashTurn),
      stream: await stream(page),
    };

    // 3. A slow reply, the gateway SIGKILLed mid-stream and restarted: the page resumes.
    say({ step: "slow" });
    const slow = await newSession(page, "slow");
    const slowTurn = await send(page, process.env.SLOW_MESSAGE);
    await page.waitForFunction((id) => {
      const t = window.turnwatchChat.turns.get(id);
      return t && t.text.length >= 20;
    }, slowTurn, { timeout: GUARD });
    const beforeKill = (await turns(page)).find((t) => t.turnId === slowTurn).text;
    say({ step: "kill", shownBeforeKill: beforeKill });
    await waitForLine();
    const interrupted = await ended(page, slowTurn);
    // The same stream, resumed, carries the next turn too.
    const nextTurn = await send(page, "after the restart");
    const next = await ended(page, nextTurn);
    result.slow = {
      session: slow,
      beforeKill,
      interrupted,
      shown: await shown(page, slowTurn),
      next,
      stream: await stream(page),
      status: await page.textContent("#status"),
    };
    say({ result });
  } finally {
    await browser.close();
  }
}

main().then(
  () => process.exit(0),
  (e) => { say({ failed: String(e && e.stack || e) }); process.exit(1); },
);
