'use strict';
// One driver for both real browsers of tests/it/browser.rs, built on puppeteer-core:
// Debian's Chromium over the DevTools protocol, Debian's Firefox ESR over WebDriver
// BiDi. No browser is downloaded: the test names the executable.
//
//   node browser_driver.js '<config JSON>'
//
// config: { browser: "chromium" | "firefox", executablePath, userDataDir (a fresh,
//           empty directory the caller owns and removes), tmpDir (the browser's
//           TMPDIR, likewise: what a killed browser leaves there goes with it),
//           url (the page to open), timeoutMs (bound for the launch, the page load
//           and each command) }
//
// Prints one JSON object per line on stdout. First, once:
//   {"event":"ready","browser":...,"version":...,"userAgent":...,"browserPid":N}
// or {"event":"fatal","error":...} (then exits 1). Then it answers one JSON command
// per line on stdin, in order, one answer line per command, echoing its `id`:
//   {"id":1,"cmd":"eval","expr":"<JS expression>"}
//       -> {"id":1,"ok":true,"value":<its JSON value; a promise is awaited>}
//       or {"id":1,"ok":false,"error":"..."}
//   {"id":2,"cmd":"quit"} -> {"id":2,"ok":true}, then closes the browser and exits 0.
// The end of stdin is a quit too (so the browser goes when the test process goes).
// If the browser goes away on its own: {"event":"fatal",...} and exit 1.
// The page's console messages and errors go to stderr, for failure messages.
//
// The browser dies with the driver: puppeteer starts it as the leader of its own
// process group (the PID reported in "ready") and kills that group when this process
// exits; the Rust side also kills that group by its ID if anything is left.

const readline = require('readline');
const puppeteer = require('puppeteer-core');

const config = JSON.parse(process.argv[2]);
const timeout = config.timeoutMs || 60000;

function emit(obj) {
    process.stdout.write(JSON.stringify(obj) + '\n');
}

function log(text) {
    process.stderr.write(`[driver ${config.browser}] ${text}\n`);
}

let browser = null;
let quitting = false;

// Closes the browser (bounded: after `timeout` its process group is killed) and exits.
async function quit(code) {
    if (quitting) return;
    quitting = true;
    if (browser) {
        const proc = browser.process();
        const timer = setTimeout(() => {
            log('browser.close() did not finish; killing its process group');
            try { process.kill(-proc.pid, 'SIGKILL'); } catch (e) { /* already gone */ }
            process.exit(code);
        }, timeout);
        try {
            await browser.close();
        } catch (e) {
            log(`browser.close() failed: ${e && e.stack || e}`);
        }
        clearTimeout(timer);
    }
    process.exit(code);
}

function fatal(e) {
    emit({ event: 'fatal', error: String(e && e.stack || e) });
    quit(1);
}

process.on('uncaughtException', fatal);
process.on('unhandledRejection', fatal);

// Chromium: the flags the tests have always used; puppeteer adds its own automation
// defaults. Firefox: puppeteer's automation preferences are enough.
const CHROMIUM_ARGS = [
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
    '--disable-dev-shm-usage',
];

async function main() {
    if (config.browser !== 'chromium' && config.browser !== 'firefox') {
        throw new Error(`unknown browser ${JSON.stringify(config.browser)}`);
    }
    browser = await puppeteer.launch({
        browser: config.browser === 'firefox' ? 'firefox' : 'chrome',
        executablePath: config.executablePath,
        userDataDir: config.userDataDir,
        headless: true,
        // The wss:// tests use a self-signed certificate.
        acceptInsecureCerts: true,
        args: config.browser === 'chromium' ? CHROMIUM_ARGS : [],
        env: config.tmpDir ? { ...process.env, TMPDIR: config.tmpDir } : process.env,
        timeout,
        protocolTimeout: timeout,
        // Our own quit() closes the browser; puppeteer still kills it on exit.
        handleSIGINT: true,
        handleSIGTERM: true,
        handleSIGHUP: true,
        dumpio: false,
    });
    browser.on('disconnected', () => {
        if (!quitting) fatal(new Error('the browser went away (disconnected)'));
    });
    const pages = await browser.pages();
    const page = pages.length > 0 ? pages[0] : await browser.newPage();
    page.setDefaultTimeout(timeout);
    page.on('console', (m) => log(`console.${m.type()}: ${m.text()}`));
    page.on('pageerror', (e) => log(`page error: ${e && e.stack || e}`));
    await page.goto(config.url, { waitUntil: 'load', timeout });

    emit({
        event: 'ready',
        browser: config.browser,
        version: await browser.version(),
        userAgent: await browser.userAgent(),
        browserPid: browser.process().pid,
    });

    const rl = readline.createInterface({ input: process.stdin, terminal: false });
    // One command at a time, answered in order; the end of stdin queues a quit.
    let chain = Promise.resolve();
    rl.on('line', (line) => {
        chain = chain.then(() => handle(page, line));
    });
    rl.on('close', () => {
        chain = chain.then(() => quit(0));
    });
}

async function handle(page, line) {
    if (quitting || line.trim() === '') return;
    let cmd;
    try {
        cmd = JSON.parse(line);
    } catch (e) {
        emit({ id: null, ok: false, error: `not JSON: ${line}` });
        return;
    }
    const id = cmd.id === undefined ? null : cmd.id;
    if (cmd.cmd === 'eval') {
        try {
            const value = await page.evaluate(cmd.expr);
            emit({ id, ok: true, value: value === undefined ? null : value });
        } catch (e) {
            emit({ id, ok: false, error: String(e && e.stack || e) });
        }
    } else if (cmd.cmd === 'quit') {
        emit({ id, ok: true });
        await quit(0);
    } else {
        emit({ id, ok: false, error: `unknown command ${JSON.stringify(cmd.cmd)}` });
    }
}

main().catch(fatal);
