// A graph model in the explorer (headless Chromium): fails unless every node
// has a box, no two boxes overlap, each connection of the model is one edge
// from its source box's bottom to its target box's top, no edge passes
// through a third box, the branches of the inception module stand side by
// side in one row, and a drawn digit is predicted with a Grad-CAM map. Saves
// OUT/explorer-graph.png.
//   node graph_test.mjs http://127.0.0.1:PORT OUT_DIR
import { chromium } from "playwright-core";
import { mkdirSync } from "node:fs";

const [url, out] = process.argv.slice(2);
if (!url || !out) {
  console.error("usage: node graph_test.mjs URL OUT_DIR");
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
  await page.goto(url);
  await page.waitForSelector("#edges path", { state: "attached", timeout: 20000 });

  // The layout's checks; returns the boxes' width.
  const checkLayout = async (when) => {
    const layout = await page.evaluate(() => {
      const base = document.getElementById("arch").getBoundingClientRect();
      const rect = (el) => {
        const r = el.getBoundingClientRect();
        return { l: r.left - base.left, t: r.top - base.top, r: r.right - base.left, b: r.bottom - base.top };
      };
      const boxes = new Map([["input", rect(document.getElementById("layer-input"))]]);
      for (const l of MODEL.layers) {
        const el = document.getElementById("layer-" + l.index);
        if (el) boxes.set(l.name, rect(el));
      }
      const edges = [...document.querySelectorAll("#edges path")].map((p) => {
        const n = p.getTotalLength(), pts = [];
        for (let i = 0; i <= 200; i++) { const q = p.getPointAtLength((n * i) / 200); pts.push([q.x, q.y]); }
        return { from: p.dataset.from, to: p.dataset.to, pts };
      });
      const wanted = MODEL.layers.flatMap((l) => l.inputs.map((i) => `${i}->${l.name}`));
      return { boxes: [...boxes.entries()], edges, wanted, layers: MODEL.layers.map((l) => ({ name: l.name, kind: l.kind, inputs: l.inputs })) };
    });
    const boxes = new Map(layout.boxes);
    if (boxes.size !== layout.layers.length + 1) fail(`${boxes.size} boxes for ${layout.layers.length} layers and the input`);
    const names = [...boxes.keys()];
    for (let i = 0; i < names.length; i++) for (let j = i + 1; j < names.length; j++) {
      const a = boxes.get(names[i]), b = boxes.get(names[j]);
      if (a.l < b.r && b.l < a.r && a.t < b.b && b.t < a.b) fail(`boxes ${names[i]} and ${names[j]} overlap`);
    }
    const got = layout.edges.map((e) => `${e.from}->${e.to}`).sort();
    if (JSON.stringify(got) !== JSON.stringify([...layout.wanted].sort()))
      fail(`edges ${JSON.stringify(got)} are not the model's connections ${JSON.stringify(layout.wanted)}`);
    const near = (p, x, y) => Math.abs(p[0] - x) < 1.5 && Math.abs(p[1] - y) < 1.5;
    let skips = 0;
    for (const e of layout.edges) {
      const a = boxes.get(e.from), b = boxes.get(e.to), s = e.pts[0], t = e.pts[e.pts.length - 1];
      if (!near(s, (a.l + a.r) / 2, a.b) || !near(t, (b.l + b.r) / 2, b.t))
        fail(`edge ${e.from}->${e.to} runs from ${s} to ${t}, not from ${e.from}'s bottom to ${e.to}'s top`);
      for (const [name, r] of boxes) {
        if (name === e.from || name === e.to) continue;
        const hit = e.pts.find(([x, y]) => x > r.l + 1 && x < r.r - 1 && y > r.t + 1 && y < r.b - 1);
        if (hit) fail(`edge ${e.from}->${e.to} passes through ${name}'s box at ${hit}`);
      }
      if (b.t - a.b > 30) skips++;
    }
    // The inception module: the layers that read the same node and feed no
    // layer of each other start side by side, in one row.
    const concat = layout.layers.find((l) => l.kind === "Concatenate");
    if (!concat) fail("the test model has no Concatenate");
    const firstOf = (name) => { // walk a branch up to the node after the fork
      let l = layout.layers.find((m) => m.name === name);
      while (l.inputs.length === 1) {
        const up = layout.layers.find((m) => m.name === l.inputs[0]);
        if (!up || layout.layers.filter((m) => m.inputs.includes(up.name)).length > 1) break;
        l = up;
      }
      return l.name;
    };
    const starts = concat.inputs.map(firstOf).map((n) => boxes.get(n));
    if (new Set(starts.map((r) => Math.round(r.t))).size !== 1 || new Set(starts.map((r) => Math.round(r.l))).size !== starts.length)
      fail(`the inception branches do not start side by side: ${JSON.stringify(starts)}`);
    console.log(`${when}: graph drawn: ${boxes.size} boxes, none overlapping; ${layout.edges.length} edges, each the model's, none through a box (${skips} skipping rows); the ${starts.length} inception branches side by side`);
    return boxes.get("input").r - boxes.get("input").l;
  };
  const wide = await checkLayout("at 1500 px");
  // At 800 px the architecture has the column beside the input: the lanes widen.
  await page.setViewportSize({ width: 800, height: 900 });
  await page.waitForTimeout(400);
  const narrow = await checkLayout("at 800 px");
  const pageWidth = await page.evaluate(() => document.documentElement.scrollWidth);
  if (pageWidth > 800 || Math.abs(narrow - wide) < 1) fail(`at 800 px: page ${pageWidth} px wide, boxes ${narrow} px (${wide} px at 1500)`);
  console.log(`at 800 px: the graph drawn again, boxes ${Math.round(narrow)} px wide (${Math.round(wide)} at 1500 px), the page ${pageWidth} px`);
  await page.setViewportSize({ width: 1500, height: 1000 });
  await page.waitForTimeout(400);

  // A drawn stroke is predicted, with Grad-CAM on the graph's last convolution.
  const box = await page.locator("#draw").boundingBox();
  await page.mouse.move(box.x + 0.5 * box.width, box.y + 0.2 * box.height);
  await page.mouse.down();
  await page.mouse.move(box.x + 0.5 * box.width, box.y + 0.8 * box.height, { steps: 10 });
  await page.mouse.up();
  await page.waitForSelector("#probs .bar.top", { timeout: 20000 });
  await page.waitForSelector("#why-cam", { timeout: 20000 });
  await page.waitForLoadState("networkidle");
  const why = await page.locator("#why-title").textContent();
  console.log(`prediction: ${await page.locator("#probs .bar.top span").first().textContent()}; ${why}`);
  // The screenshot shows the second residual block and the inception module.
  await page.evaluate(() => {
    const c = MODEL.layers.find((l) => l.kind === "Concatenate");
    document.getElementById("layer-" + c.index).scrollIntoView({ block: "end" });
  });
  await page.screenshot({ path: `${out}/explorer-graph.png`, fullPage: false });
  if (errors.length) fail(`script errors: ${errors.join("; ")}`);
  console.log("graph test passed");
} finally {
  await browser.close();
}
