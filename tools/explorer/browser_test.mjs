// Drives convnet's explorer in a real headless Chromium (Debian's) and
// fails unless: the page loads with the model's layers; a stroke drawn on
// the canvas gives a prediction and non-blank feature maps; clicking a map
// shows its detail, filter and, for a clicked pixel, the input patch; the
// evaluation shows a confusion matrix and mistakes; a class name that is
// markup shows as text and does not run. Saves screenshots.
//   node browser_test.mjs http://127.0.0.1:PORT OUT_DIR
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const [url, out] = process.argv.slice(2);
if (!url || !out) {
  console.error("usage: node browser_test.mjs URL OUT_DIR");
  process.exit(2);
}
mkdirSync(out, { recursive: true });
const fail = (msg) => { console.error("FAIL: " + msg); process.exit(1); };

const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || "/usr/bin/chromium",
  args: ["--no-sandbox", "--headless=new"],
});
try {
  const page = await browser.newPage({ viewport: { width: 1500, height: 1000 } });
  const errors = [];
  page.on("pageerror", (e) => errors.push(e.message));
  page.on("requestfailed", (r) => console.log(`request failed: ${r.url()} ${r.failure()?.errorText}`));
  page.on("response", (r) => { if (r.status() >= 400) console.log(`HTTP ${r.status()}: ${r.url()}`); });
  await page.goto(url);
  await page.waitForSelector("#arch .layer:nth-child(3)", { timeout: 20000 });
  const layers = await page.locator("#arch .layer").count();
  console.log(`page loaded: ${layers - 1} layers drawn`);

  // A "7": a stroke across the top, then down to the left.
  const box = await page.locator("#draw").boundingBox();
  const at = (x, y) => [box.x + x * box.width, box.y + y * box.height];
  await page.mouse.move(...at(0.25, 0.25));
  await page.mouse.down();
  for (const [x, y] of [[0.45, 0.25], [0.7, 0.25], [0.6, 0.45], [0.5, 0.65], [0.42, 0.85]]) {
    await page.mouse.move(...at(x, y), { steps: 8 });
  }
  await page.mouse.up();
  await page.waitForSelector("#probs .bar.top", { timeout: 20000 });
  await page.waitForSelector("canvas.fmap", { timeout: 20000 });
  const top = await page.locator("#probs .bar.top span").first().textContent();
  console.log(`prediction shown: ${top}`);

  // Non-blank maps: some map of the first layer has more than one value.
  const distinct = await page.evaluate(() => {
    const maps = [...document.querySelectorAll("canvas.fmap")].slice(0, 8);
    return maps.map((c) => {
      const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
      const seen = new Set();
      for (let i = 0; i < d.length; i += 4) seen.add(d[i]);
      return seen.size;
    });
  });
  if (!distinct.some((n) => n > 1)) fail(`feature maps are blank: ${distinct}`);
  console.log(`feature maps: distinct grey levels of the first maps ${distinct.join(",")}`);
  await page.screenshot({ path: `${out}/explorer-draw.png`, fullPage: true });

  // Click a map: its detail, its filter; click a pixel: the input patch.
  await page.locator("canvas.fmap").first().click();
  await page.waitForSelector("#detail-map", { timeout: 10000 });
  const title = await page.locator("#detail-title").textContent();
  const dm = await page.locator("#detail-map").boundingBox();
  // The detail opens on the map's strongest pixel; a click moves the patch to that pixel.
  await page.waitForSelector("#patch-view", { timeout: 10000 });
  const [mw, mh] = await page.locator("#detail-map").evaluate((c) => [c.width, c.height]);
  await page.locator("#detail-map").click({ position: { x: dm.width * 0.5, y: dm.height * 0.4 } });
  const want = `pixel (${Math.floor(0.4 * mh)}, ${Math.floor(0.5 * mw)})`;
  await page.waitForSelector(`#patch-view >> text=${want}`, { timeout: 10000 });
  const patch = await page.locator("#patch-view .muted").textContent();
  console.log(`map clicked: ${title}; ${patch}`);
  await page.locator("#detail").scrollIntoViewIfNeeded();
  await page.screenshot({ path: `${out}/explorer-map.png`, fullPage: true });

  // Pooling: before and after.
  const poolRow = page.locator(".maprow", { hasText: "Pooling" }).first();
  if (await poolRow.count()) {
    await poolRow.locator("canvas.fmap").first().click();
    await page.waitForSelector("#detail-body >> text=before pooling", { timeout: 10000 });
    console.log("pooling map clicked: before and after shown");
  }

  // Evaluation: confusion matrix and mistakes.
  await page.locator("#evaluate").click();
  await page.waitForSelector("table.cm", { timeout: 120000 });
  await page.waitForSelector(".mistake img", { timeout: 20000 });
  const loaded = () => [...document.querySelectorAll(".mistake img")]
    .every((i) => i.complete && i.naturalWidth > 0);
  await page.waitForFunction(loaded, null, { timeout: 30000 }).catch(async () => {
    const st = await page.evaluate(() => [...document.querySelectorAll(".mistake img")]
      .map((i) => `${i.getAttribute("src")}:${i.complete ? "done" : "pending"}:${i.naturalWidth}`)
      .filter((s) => !s.endsWith(":28")));
    fail(`mistake images not shown: ${st.join(" ")}`);
  });
  const acc = await page.locator("#evaluation p").first().textContent();
  console.log(`evaluation shown: ${acc}`);
  await page.locator("#evaluation").scrollIntoViewIfNeeded();
  await page.screenshot({ path: `${out}/explorer-evaluation.png`, fullPage: true });
  // The run's class names come from the user (browser_test.sh gives class 0
  // a name that is markup): it must show as text and never run.
  const xss = await page.evaluate(() => ({
    ran: window.__xss !== undefined,
    asText: document.body.innerText.includes("<img src=x onerror="),
    elements: document.querySelectorAll('img[src="x"]').length,
  }));
  if (xss.ran || xss.elements) fail(`a class name was run as markup: ${JSON.stringify(xss)}`);
  if (process.env.HOSTILE_NAMES && !xss.asText) fail("the hostile class name is not shown as text");
  if (xss.asText) console.log("a class name that is markup shows as text and does not run");
  // Clear leaves nothing of the last prediction: no probabilities, no maps, no detail.
  await page.locator("#clear").click();
  await page.waitForFunction(() => !document.querySelector("#probs .bar")
    && !document.querySelector("canvas.fmap") && document.querySelector("#detail").hidden,
    null, { timeout: 10000 }).catch(() => fail("Clear left the previous prediction on the page"));
  console.log("Clear removes the prediction, the maps and the detail");
  if (errors.length) fail(`script errors in the page: ${errors.join("; ")}`);
  console.log("browser test passed");
} finally {
  await browser.close();
}
