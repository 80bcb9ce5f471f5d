// The explorer during `convnet train --serve`, in headless Chromium: fails
// unless the page says "epoch k of N, batch s of S", Pause holds the batch
// where it is and Resume goes on, a rate set in the page reaches the run,
// the drawn input is predicted again when an epoch's weights arrive, and
// the end reads "training finished: N of N epochs".
//   node live_test.mjs http://127.0.0.1:PORT EPOCHS
import { chromium } from "playwright-core";

const [url, epochs] = process.argv.slice(2);
const fail = (msg) => { console.error("FAIL: " + msg); process.exit(1); };
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--headless=new"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1300, height: 900 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  let predictions = 0;
  page.on("response", (r) => { if (r.url().includes("/api/predict") && r.status() === 200) predictions++; });
  await page.goto(url);
  await page.waitForFunction(() => /epoch \d+ of \d+, batch \d+ of \d+/.test(document.getElementById("status").textContent),
    null, { timeout: 60000 }).catch(() => fail("no 'epoch k of N, batch s of S' while training"));
  console.log(`status while training: ${await page.locator("#status").textContent()}`);
  // Draw a stroke: predicted now (or "no weights yet" before the first epoch).
  const box = await page.locator("#draw").boundingBox();
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.2);
  await page.mouse.down();
  await page.mouse.move(box.x + box.width * 0.5, box.y + box.height * 0.8, { steps: 10 });
  await page.mouse.up();
  await page.waitForTimeout(500);
  // Pause: the batch stays where it is.
  await page.locator("#pause").click();
  await page.waitForFunction(() => document.getElementById("status").textContent.startsWith("paused"), null, { timeout: 10000 })
    .catch(() => fail("Pause did not pause"));
  // The batch in flight when Pause was pressed finishes first.
  await page.waitForTimeout(800);
  const held = await page.evaluate(async () => (await (await fetch("/api/history")).json()).step);
  await page.waitForTimeout(1500);
  const still = await page.evaluate(async () => (await (await fetch("/api/history")).json()).step);
  if (held !== still) fail(`training went on while paused: step ${held} then ${still}`);
  console.log(`paused at batch ${held}: still ${still} 1.5 s later`);
  // A new rate, then Resume.
  await page.fill("#lr", "0.0007");
  await page.locator("#lr-set").click();
  await page.waitForFunction(() => document.getElementById("status").textContent.includes("learning rate 0.0007 from the next batch"),
    null, { timeout: 10000 }).catch(() => fail("the rate was not accepted"));
  console.log(`rate set: ${await page.locator("#status").textContent()}`);
  await page.locator("#pause").click();
  const before = predictions;
  await page.waitForFunction((n) => document.getElementById("status").textContent === `training finished: ${n} of ${n} epochs`,
    Number(epochs), { timeout: 300000 }).catch(async () => fail(`no 'training finished': ${await page.locator("#status").textContent()}`));
  console.log(`at the end: ${await page.locator("#status").textContent()}`);
  const h = await page.evaluate(async () => (await (await fetch("/api/history")).json()));
  const lr = h.epochs.map((e) => e.lr);
  if (Math.abs(lr[lr.length - 1] - 0.0007 * Math.pow(0.95, lr.length - 1 - (lr.findIndex((r) => Math.abs(r - 0.0007) < 1e-9)))) > 1e-8
    || !lr.some((r) => Math.abs(r - 0.0007) < 1e-9)) fail(`the rate set in the page did not reach the run: ${lr}`);
  console.log(`rates per epoch: ${lr.map((r) => r.toExponential(2)).join(", ")}`);
  await page.waitForFunction(() => document.querySelector("#probs .bar.top"), null, { timeout: 10000 })
    .catch(() => fail("no prediction after training"));
  if (predictions <= before) fail("the input was not predicted again with the new weights");
  console.log(`predicted again with new weights: ${predictions - before} time(s) after Resume`);
  if (errors.length) fail(`script errors in the page: ${errors.join("; ")}`);
  console.log("live test passed");
} finally {
  await browser.close();
}
