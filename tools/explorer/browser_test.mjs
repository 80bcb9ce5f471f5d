// Drives convnet's explorer in a real headless Chromium (Debian's) and
// fails unless: the page loads with the model's layers; a stroke drawn on
// the canvas gives a prediction and non-blank feature maps; the input
// preview's pixels are the tensor the model received; hovering a unit shows
// its value; negative and positive units are drawn blue and red; clicking a
// map shows its detail, filter and, for a clicked pixel, the input patch;
// the evaluation shows a confusion matrix, one test image per class and
// mistakes; photos of those digits (dark ink on light paper, off-centre,
// enlarged) are read right once prepared as MNIST's; a failed upload and
// Clear leave nothing of the previous prediction; a class name that is
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

  // The drawing's last prediction has arrived (they are sent as it is drawn).
  await page.waitForLoadState("networkidle");
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
  console.log(`feature maps: distinct colours of the first maps ${distinct.join(",")}`);

  // The preview is the model's input, unstretched: every pixel's grey is
  // round(255 * value) of the tensor the server predicted.
  const preview = await page.evaluate(() => {
    const c = document.getElementById("input-canvas");
    const d = c.getContext("2d").getImageData(0, 0, c.width, c.height).data;
    const vals = LAST.input.vals, ch = LAST.input.shape[2];
    let bad = 0, ink = 0;
    for (let i = 0; i < c.width * c.height; i++) {
      const want = Math.round(255 * Math.max(0, Math.min(1, vals[i * ch])));
      if (d[4 * i] !== want) bad++;
      if (want > 0) ink++;
    }
    return { bad, ink, n: c.width * c.height, note: document.getElementById("prep-note").textContent };
  });
  if (preview.bad || !preview.ink) fail(`the preview differs from the model's input: ${JSON.stringify(preview)}`);
  console.log(`preview equals the model's input (${preview.n} pixels, ${preview.ink} inked); ${preview.note}`);

  // Why: Grad-CAM on the last convolution, checked against a reference
  // computed here from the layer's outputs and the class weights alpha the
  // server sent: ReLU(sum_c alpha_c A_c), then bilinear to the input's grid.
  const cam = await page.evaluate(() => {
    const s = LAST.saliency, g = s.grad_cam;
    const a = LAST.layers[g.node], [h, w, c] = a.shape;
    const alpha = valuesOf(g.weights), map = valuesOf(g.map), up = valuesOf(g.upsampled);
    let worst = 0;
    const ref = new Float32Array(h * w);
    for (let p = 0; p < h * w; p++) {
      let z = 0;
      for (let k = 0; k < c; k++) z += alpha[k] * a.vals[p * c + k];
      ref[p] = Math.max(0, z);
      worst = Math.max(worst, Math.abs(ref[p] - map[p]));
    }
    const [H, W] = LAST.input.shape;
    const axis = (o, n, on) => {
      const t = Math.min(Math.max((o + 0.5) * n / on - 0.5, 0), n - 1);
      const i = Math.floor(t);
      return [i, Math.min(i + 1, n - 1), t - i];
    };
    let worstUp = 0, peak = 0;
    for (let y = 0; y < H; y++) for (let x = 0; x < W; x++) {
      const [y0, y1, fy] = axis(y, h, H), [x0, x1, fx] = axis(x, w, W);
      const v = (ref[y0 * w + x0] * (1 - fx) + ref[y0 * w + x1] * fx) * (1 - fy)
        + (ref[y1 * w + x0] * (1 - fx) + ref[y1 * w + x1] * fx) * fy;
      worstUp = Math.max(worstUp, Math.abs(v - up[y * W + x]));
      peak = Math.max(peak, v);
    }
    return { layer: g.layer, shape: g.shape, worst, worstUp, peak, cls: s.class_name,
      title: document.getElementById("why-title").textContent, shown: !!document.getElementById("why-cam") };
  });
  if (!cam.shown || cam.worst > 1e-4 * Math.max(1, cam.peak) || cam.worstUp > 1e-4 * Math.max(1, cam.peak) || !(cam.peak > 0))
    fail(`Grad-CAM differs from the reference: ${JSON.stringify(cam)}`);
  console.log(`${cam.title}: Grad-CAM on ${cam.layer} ${cam.shape.join("x")} equals the reference (largest difference ${cam.worst.toExponential(1)}, upsampled ${cam.worstUp.toExponential(1)})`);
  // Another class's why: click its bar.
  const other = await page.locator("#probs .bar:not(.top)").first();
  const otherName = await other.locator("span").first().textContent();
  await other.click();
  await page.waitForFunction((n) => LAST && LAST.saliency.class_name === n
    && document.getElementById("why-title").textContent.includes(n), otherName, { timeout: 10000 })
    .catch(() => fail(`clicking class ${otherName} did not explain it`));
  console.log(`clicking "${otherName}" explains that class`);
  await page.screenshot({ path: `${out}/explorer-why.png`, fullPage: false });

  // Hover: a unit's exact value and position.
  // At 55 % across and 45 % down the map's content (Playwright's positions
  // start inside the border).
  const target = page.locator("canvas.fmap").nth(1);
  const fm = await target.evaluate((c) => ({ w: c.clientWidth, h: c.clientHeight }));
  await target.hover({ position: { x: 1, y: 1 } });
  await target.hover({ position: { x: fm.w * 0.55, y: fm.h * 0.45 } });
  await page.waitForFunction(() => document.getElementById("tip")?.hidden === false, null, { timeout: 10000 })
    .catch(() => fail("no value shown on hover"));
  const hover = await page.evaluate(() => {
    const c = document.querySelectorAll("canvas.fmap")[1];
    const l = LAST.layers[0], [h, w, ch] = l.shape;
    return { tip: document.getElementById("tip").textContent, h, w, ch, vals: [...l.vals] };
  });
  const hm = hover.tip.match(/map 1 \((\d+), (\d+)\) = (\S+)/);
  if (!hm) fail(`no value on hover: '${hover.tip}'`);
  const [hy, hx] = [Number(hm[1]), Number(hm[2])];
  const hv = hover.vals[(hy * hover.w + hx) * hover.ch + 1];
  if (hy !== Math.floor(0.45 * hover.h) || hx !== Math.floor(0.55 * hover.w) || Math.abs(Number(hm[3]) - hv) > 1e-4 * Math.max(1, Math.abs(hv)))
    fail(`hover shows '${hover.tip}', the unit there is (${Math.floor(0.45 * hover.h)}, ${Math.floor(0.55 * hover.w)}) = ${hv}`);
  console.log(`hover: ${hover.tip}`);

  // Colours: in a layer with negative values, the most negative unit is
  // drawn blue and the most positive red.
  const colours = await page.evaluate(() => {
    const l = LAST.layers.find((x) => x.min < 0 && x.max > 0 && x.shape.length === 3);
    if (!l) return null;
    const [, w, c] = l.shape;
    let lo = 0, hi = 0;
    l.vals.forEach((v, i) => { if (v < l.vals[lo]) lo = i; if (v > l.vals[hi]) hi = i; });
    const rgb = (i) => {
      const cv = document.querySelectorAll(`#maps-${l.index} canvas.fmap`)[i % c];
      const p = Math.floor(i / c);
      return [...cv.getContext("2d").getImageData(p % w, Math.floor(p / w), 1, 1).data.slice(0, 3)];
    };
    return { name: MODEL.layers[l.index].name, lo: [l.vals[lo], rgb(lo)], hi: [l.vals[hi], rgb(hi)],
      legend: document.querySelector(`#maps-${l.index} .legend`)?.textContent };
  });
  if (colours) {
    const [, [r0, , b0]] = colours.lo, [, [r1, , b1]] = colours.hi;
    if (!(b0 > r0 && r1 > b1 + 40)) fail(`negative and positive units are not told apart: ${JSON.stringify(colours)}`);
    console.log(`diverging colours: ${colours.name}: ${colours.lo[0].toFixed(3)} drawn rgb(${colours.lo[1]}), ${colours.hi[0].toFixed(3)} rgb(${colours.hi[1]})`);
  }
  await page.selectOption("#scale", "map");
  await page.waitForFunction(() => document.querySelector(".maprow .title")
    && [...document.querySelectorAll(".maprow .title")].some((t) => t.textContent.includes("each map scaled")));
  await page.selectOption("#scale", "layer");
  console.log("colour scale switched per map and back");
  await page.screenshot({ path: `${out}/explorer-draw.png`, fullPage: true });

  // Click a map: its detail, its filter; click a pixel: the input patch.
  await page.locator("canvas.fmap").first().click();
  await page.waitForSelector("#detail-map", { timeout: 10000 });
  const title = await page.locator("#detail-title").textContent();
  const dm = await page.locator("#detail-map").evaluate((c) => ({ width: c.clientWidth, height: c.clientHeight }));
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

  // The arithmetic of the clicked unit: patch x kernel + bias, activation,
  // equal to the model's own value; then the window slides over the input.
  await page.waitForSelector("#arith .sum", { timeout: 10000 });
  const sum = await page.locator("#arith .sum").textContent();
  const sm = sum.match(/= (\S+)\s+\(the model: (\S+)\)/);
  if (!sm || sm[1] !== sm[2]) fail(`the arithmetic shown is not the model's: ${sum}`);
  console.log(`arithmetic: ${sum}`);
  await page.locator("#slide").click();
  const steps = await page.evaluate(() => LAST.layers[DETAIL.index].shape[0] * LAST.layers[DETAIL.index].shape[1]);
  await page.waitForFunction((n) => Number(document.getElementById("slide").dataset.step) === n - 1
    && document.getElementById("slide").textContent.startsWith("Slide"), steps, { timeout: 30000 })
    .catch(() => fail("the sliding window did not reach the last unit"));
  console.log(`the window slid over all ${steps} units`);
  await page.screenshot({ path: `${out}/explorer-arithmetic.png`, fullPage: false });

  // The softmax, step by step: the p column is the prediction.
  await page.locator("canvas.vec").last().click();
  await page.waitForSelector("#arith table.arith tr:nth-child(11)", { timeout: 10000 })
    .catch(() => fail("the softmax's steps are not shown"));
  const softmax = await page.evaluate(() => {
    const rows = [...document.querySelectorAll("#arith table.arith tr")].slice(1);
    const p = rows.map((r) => Number(r.cells[4].textContent));
    const want = LAST.probabilities.map((q) => q.p);
    return { worst: Math.max(...p.map((v, i) => Math.abs(v - want[i]))), n: rows.length };
  });
  if (softmax.n !== 10 || softmax.worst > 1e-3) fail(`the softmax shown differs from the prediction: ${JSON.stringify(softmax)}`);
  console.log(`softmax steps shown for ${softmax.n} classes (largest difference from the prediction ${softmax.worst.toExponential(1)})`);

  // A Dense unit (the strongest of the hidden Dense layer): its largest
  // products, the rest, + bias, the activation, equal to the model's value.
  const dense = await page.evaluate(() => {
    const meta = MODEL.layers.find((l, i) => l.kind === "Dense" && i < MODEL.layers.length - 1);
    const l = LAST.layers[meta.index], cv = document.querySelector(`#maps-${meta.index} canvas.vec`);
    let u = 0;
    l.vals.forEach((v, i) => { if (v > l.vals[u]) u = i; });
    const perRow = cv.width, rows = cv.height;
    return { index: meta.index, unit: u, x: (u % perRow + 0.5) * cv.clientWidth / perRow,
      y: (Math.floor(u / perRow) + 0.5) * cv.clientHeight / rows };
  });
  await page.locator(`#maps-${dense.index} canvas.vec`).click({ position: { x: dense.x, y: dense.y } });
  await page.waitForSelector("#dense-terms", { timeout: 10000 }).catch(() => fail("a Dense unit's arithmetic is not shown"));
  const dsum = await page.locator("#arith .sum").textContent();
  const dtitle = await page.locator("#detail-title").textContent();
  const dm2 = dsum.match(/= (\S+)\s+\(the model: (\S+)\)/);
  if (!dtitle.endsWith(`unit ${dense.unit}`) || !dm2 || dm2[1] !== dm2[2] || Number(dm2[1]) <= 0)
    fail(`the Dense unit's arithmetic is not the model's: ${dtitle}: ${dsum}`);
  console.log(`${dtitle}: ${dsum}`);

  // Pooling: before and after.
  const poolRow = page.locator(".maprow", { hasText: "Pooling" }).first();
  if (await poolRow.count()) {
    await poolRow.locator("canvas.fmap").first().click();
    await page.waitForSelector("#detail-body >> text=before pooling", { timeout: 10000 });
    console.log("pooling map clicked: before and after shown");
    // Its unit's receptive field is marked in every earlier layer: the
    // input and the maps before it are dimmed outside the window.
    await page.waitForFunction(() => document.querySelectorAll(".maprow.field").length >= 2, null, { timeout: 10000 })
      .catch(() => fail("the receptive field is not marked in the earlier layers"));
    const field = await page.evaluate(() => {
      const rows = [...document.querySelectorAll(".maprow.field")].map((r) => r.id);
      const cv = document.getElementById("input-canvas");
      const d = cv.getContext("2d").getImageData(0, 0, cv.width, cv.height).data;
      const t = document.querySelector("#patch-view .muted").textContent;
      const [, top, bottom, left, right] = t.match(/rows (\d+)-(\d+), columns (\d+)-(\d+)/).map(Number);
      let bad = 0;
      for (let y = 0; y < cv.height; y++) for (let x = 0; x < cv.width; x++) {
        const v = Math.round(255 * Math.max(0, Math.min(1, LAST.input.vals[y * cv.width + x])));
        const inside = y >= top && y <= bottom && x >= left && x <= right;
        const want = inside ? v : Math.round(v * 0.25 + 255 * 0.75);
        if (d[4 * (y * cv.width + x)] !== want) bad++;
      }
      return { rows, bad, window: [top, bottom, left, right] };
    });
    if (field.bad || !field.rows.includes("maps-input")) fail(`receptive field marks: ${JSON.stringify(field)}`);
    console.log(`receptive field ${field.window.join(",")} marked in ${field.rows.join(", ")}`);
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
  // A photo of a digit, dark ink on light paper, off-centre and five times
  // larger (each class's most confident test image, inverted and placed on
  // a 300x220 page): prepared as MNIST's digits were, it is read right.
  const examples = await page.evaluate(() => [...document.querySelectorAll(".examples .mistake")]
    .map((d) => ({ index: Number(d.dataset.index), label: d.querySelector("span").textContent.replace(/ \(\d+ %\)$/, "") })));
  if (examples.length < 2) fail(`too few sample images: ${examples.length}`);
  let right = 0, rawRight = 0;
  for (const ex of examples) {
    const png = await page.evaluate(async (index) => {
      const img = new Image();
      img.src = `/api/sample?index=${index}`;
      await img.decode();
      const c = document.createElement("canvas");
      c.width = 300; c.height = 220;
      const ctx = c.getContext("2d");
      ctx.fillStyle = "#f0f0ea"; ctx.fillRect(0, 0, 300, 220);
      const t = document.createElement("canvas");
      t.width = 28; t.height = 28;
      const tc = t.getContext("2d");
      tc.drawImage(img, 0, 0);
      const d = tc.getImageData(0, 0, 28, 28);
      // Dark ink on the light paper: paper * (1 - v) + ink * v.
      for (let i = 0; i < d.data.length; i += 4) {
        const v = d.data[i] / 255;
        for (let k = 0; k < 3; k++) d.data[i + k] = Math.round([240, 240, 234][k] * (1 - v) + 30 * v);
      }
      tc.putImageData(d, 0, 0);
      ctx.imageSmoothingEnabled = true;
      ctx.drawImage(t, 150, 40, 140, 140);
      return c.toDataURL("image/png").split(",")[1];
    }, ex.index);
    for (const prepare of [true, false]) {
      await page.setChecked("#prepare", prepare);
      // Wait for this upload's answer to be shown, not the last one's: the
      // switch re-predicts the previous photo (answered in milliseconds).
      await page.waitForTimeout(700);
      await page.evaluate(() => { LAST = null; });
      await page.setInputFiles("#upload", { name: `photo-${ex.index}.png`, mimeType: "image/png", buffer: Buffer.from(png, "base64") });
      await page.waitForFunction(() => LAST !== null, null, { timeout: 10000 });
      const top = await page.locator("#probs .bar.top span").first().textContent();
      if (prepare && top === ex.label) right++;
      if (!prepare && top === ex.label) rawRight++;
      if (prepare && top !== ex.label) console.log(`photo of a ${ex.label} (test image ${ex.index}) read as ${top}`);
    }
  }
  await page.setChecked("#prepare", true);
  console.log(`photos of digits on paper: ${right} of ${examples.length} read right prepared, ${rawRight} without preparation`);
  if (right < examples.length) fail(`prepared photos read right: ${right} of ${examples.length}`);
  await page.screenshot({ path: `${out}/explorer-upload.png`, fullPage: true });

  // A file that is not an image leaves nothing of the previous prediction.
  await page.setInputFiles("#upload", { name: "notes.png", mimeType: "image/png", buffer: Buffer.from("not an image") });
  await page.waitForFunction(() => document.getElementById("probs").textContent.startsWith("error")
    && !document.querySelector("canvas.fmap") && document.getElementById("detail").hidden
    && document.getElementById("why").hidden && !document.querySelector(".layer.sel"),
    null, { timeout: 10000 }).catch(() => fail("a failed upload left the previous prediction on the page"));
  console.log("a failed upload resets the panels and says why");

  // 800 px wide: nothing wider than the window, the maps panel at full
  // width, no title cut at its edge.
  await page.setViewportSize({ width: 800, height: 900 });
  await page.waitForTimeout(300);
  const narrow = await page.evaluate(() => {
    const maps = document.getElementById("right").getBoundingClientRect();
    const cut = [...document.querySelectorAll(".maprow .title, #detail-title, #why-title")]
      .filter((t) => t.offsetParent && t.scrollWidth > t.clientWidth + 1).length;
    const over = [...document.querySelectorAll("section canvas, section table")].filter((e) => {
      const r = e.getBoundingClientRect(), p = e.closest("section").getBoundingClientRect();
      return e.offsetParent && r.right > p.right + 1;
    }).map((e) => e.id || e.className);
    return { page: document.documentElement.scrollWidth, maps: maps.width, cut, over: over.slice(0, 5) };
  });
  if (narrow.page > 800 || narrow.maps < 600 || narrow.cut || narrow.over.length) fail(`at 800 px: ${JSON.stringify(narrow)}`);
  console.log(`at 800 px: page ${narrow.page} px wide, maps panel ${Math.round(narrow.maps)} px, no title cut`);
  await page.screenshot({ path: `${out}/explorer-800px.png`, fullPage: false });
  await page.setViewportSize({ width: 1500, height: 1000 });

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
