// Drives one headless Chromium page for the Rust test rig (tests/rig/browser.rs).
//
// Protocol: JSON lines. The driver prints {"ready":true} once the browser is up, then reads one
// command per line from stdin and answers each with one line on stdout, in order:
//   {"id"?, "cmd":"goto","url"}                       -> {"ok":true,"value":<final url>}
//   {"cmd":"click","selector"}                        -> {"ok":true}
//   {"cmd":"fill","selector","text"}                  -> {"ok":true}
//   {"cmd":"press","selector","key"}                  -> {"ok":true}
//   {"cmd":"type","selector","text"}                  -> {"ok":true}   (key by key)
//   {"cmd":"set_files","selector","path"|"paths"}     -> {"ok":true}
//   {"cmd":"wait_for","selector","text"?,"state"?,"timeout_ms"?} -> {"ok":true}
//   {"cmd":"text","selector"}                         -> {"ok":true,"value":"innerText of the first match"}
//   {"cmd":"texts","selector"}                        -> {"ok":true,"value":["…", …]}
//   {"cmd":"attr","selector","name"}                  -> {"ok":true,"value":"…"|null}
//   {"cmd":"count","selector"}                        -> {"ok":true,"value":N}
//   {"cmd":"visible","selector"}                      -> {"ok":true,"value":true|false}
//   {"cmd":"eval","js"}                               -> {"ok":true,"value":<JSON result>}
//   {"cmd":"screenshot","path","full_page"?}          -> {"ok":true}
//   {"cmd":"viewport","width","height"}               -> {"ok":true}
//   {"cmd":"reload"}                                  -> {"ok":true}
//   {"cmd":"wait_fn","js","timeout_ms"?}              -> {"ok":true} once the JS expression is truthy
//   {"cmd":"url"}                                     -> {"ok":true,"value":"…"}
//   {"cmd":"console"}                                 -> {"ok":true,"value":["console/page errors seen", …]}
//   {"cmd":"close"}                                   -> {"ok":true}, then exit
// Failures answer {"ok":false,"error":"…"}. Selectors are Playwright selectors: CSS pierces open
// shadow roots. Every command has a timeout (default 15 s, or "timeout_ms").
//
// Chromium is the system one (/usr/bin/chromium, or $SWITCHBOARD_CHROMIUM); Playwright never
// downloads a browser here. Each driver gets a fresh profile, removed on exit.
// SWITCHBOARD_BROWSER_LOCALE (e.g. ru-RU) sets the page's language.

import { chromium } from 'playwright-core';
import { createInterface } from 'node:readline';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';

const executablePath = process.env.SWITCHBOARD_CHROMIUM || '/usr/bin/chromium';
const DEFAULT_TIMEOUT = 15000;

function send(obj) {
  process.stdout.write(JSON.stringify(obj) + '\n');
}

// The Rust side makes the profile dir (and removes it after we exit); standalone, make our own.
const ownProfile = !process.env.SWITCHBOARD_BROWSER_PROFILE;
const profile = process.env.SWITCHBOARD_BROWSER_PROFILE || mkdtempSync(join(tmpdir(), 'sb-chromium-'));
let context;
let page;
const consoleLog = [];

async function shutdown(code) {
  try {
    if (context) await context.close();
  } catch (_) {
    // already gone
  }
  if (ownProfile) {
    try {
      rmSync(profile, { recursive: true, force: true });
    } catch (_) {
      // best effort
    }
  }
  process.exit(code);
}

process.on('SIGTERM', () => shutdown(0));
process.on('SIGINT', () => shutdown(0));

try {
  context = await chromium.launchPersistentContext(profile, {
    executablePath,
    headless: true,
    // Our own handlers close the browser and exit; Playwright's would exit first.
    handleSIGINT: false,
    handleSIGTERM: false,
    handleSIGHUP: false,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 1280, height: 800 },
    // The page's language (navigator.languages, Accept-Language) when the test names one.
    locale: process.env.SWITCHBOARD_BROWSER_LOCALE || undefined,
  });
  page = context.pages()[0] || (await context.newPage());
  page.setDefaultTimeout(DEFAULT_TIMEOUT);
  page.on('console', (msg) => {
    if (msg.type() === 'error' || msg.type() === 'warning') {
      consoleLog.push(`console.${msg.type()}: ${msg.text()}`);
    }
  });
  page.on('pageerror', (err) => consoleLog.push(`pageerror: ${err.message}`));
  page.on('requestfailed', (req) =>
    consoleLog.push(`requestfailed: ${req.method()} ${req.url()} ${req.failure()?.errorText ?? ''}`),
  );
} catch (err) {
  send({ ready: false, error: `launching ${executablePath}: ${err.message}` });
  await shutdown(1);
}

function need(c, key) {
  if (c[key] === undefined || c[key] === null) throw new Error(`"${c.cmd}" needs "${key}"`);
  return c[key];
}

async function run(c) {
  const timeout = c.timeout_ms ?? DEFAULT_TIMEOUT;
  const first = () => page.locator(need(c, 'selector')).first();
  switch (c.cmd) {
    case 'goto': {
      await page.goto(need(c, 'url'), { waitUntil: 'load', timeout });
      return page.url();
    }
    case 'click':
      await first().click({ timeout });
      return null;
    case 'fill':
      await first().fill(String(need(c, 'text')), { timeout });
      return null;
    case 'type':
      await first().pressSequentially(String(need(c, 'text')), { timeout });
      return null;
    case 'press':
      await first().press(need(c, 'key'), { timeout });
      return null;
    case 'set_files': {
      const files = c.paths ?? [need(c, 'path')];
      await first().setInputFiles(files, { timeout });
      return null;
    }
    case 'wait_for': {
      let loc = page.locator(need(c, 'selector'));
      if (c.text !== undefined && c.text !== null) loc = loc.filter({ hasText: String(c.text) });
      await loc.first().waitFor({ state: c.state ?? 'visible', timeout });
      return null;
    }
    case 'text':
      return await first().innerText({ timeout });
    case 'texts':
      return await page.locator(need(c, 'selector')).allInnerTexts();
    case 'attr':
      return await first().getAttribute(need(c, 'name'), { timeout });
    case 'count':
      return await page.locator(need(c, 'selector')).count();
    case 'visible':
      return await page.locator(need(c, 'selector')).first().isVisible();
    case 'eval': {
      const value = await page.evaluate(need(c, 'js'));
      return value === undefined ? null : value;
    }
    case 'screenshot':
      await page.screenshot({ path: need(c, 'path'), fullPage: c.full_page ?? true, timeout });
      return null;
    case 'viewport':
      await page.setViewportSize({ width: need(c, 'width'), height: need(c, 'height') });
      return null;
    case 'reload':
      await page.reload({ waitUntil: 'load', timeout });
      return page.url();
    case 'wait_fn':
      await page.waitForFunction(need(c, 'js'), null, { timeout, polling: 50 });
      return null;
    case 'url':
      return page.url();
    case 'console':
      return consoleLog.slice();
    default:
      throw new Error(`unknown command "${c.cmd}"`);
  }
}

send({ ready: true, version: context.browser()?.version() ?? null });

const rl = createInterface({ input: process.stdin, crlfDelay: Infinity });
for await (const line of rl) {
  if (!line.trim()) continue;
  let c;
  try {
    c = JSON.parse(line);
  } catch (err) {
    send({ ok: false, error: `bad JSON: ${err.message}` });
    continue;
  }
  if (c.cmd === 'close') {
    send({ id: c.id, ok: true, value: null });
    await shutdown(0);
  }
  try {
    const value = await run(c);
    send({ id: c.id, ok: true, value: value ?? null });
  } catch (err) {
    // Playwright colours its call log; keep the error plain for Rust's messages.
    send({ id: c.id, ok: false, error: String(err?.message ?? err).replace(/\u001b\[[0-9;]*m/g, '') });
  }
}
// stdin closed: the Rust side is gone.
await shutdown(0);
