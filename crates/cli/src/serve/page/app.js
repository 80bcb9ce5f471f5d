// convnet explorer: draws on a canvas, asks the server for predictions and
// every layer's outputs, and shows maps, filters, receptive fields, pooling
// before/after, curves, the confusion matrix and mistakes. No libraries.
"use strict";

const $ = (id) => document.getElementById(id);
// Every string that comes from the run (layer and class names, kinds,
// formulas) is escaped before it goes into markup: a class name such as
// `<img src=x onerror=...>` shows as text and never runs.
const esc = (v) => String(v).replace(/[&<>"']/g, (c) =>
  ({ "&": "&amp;", "<": "&lt;", ">": "&gt;", '"': "&quot;", "'": "&#39;" })[c]);
let MODEL = null;     // /api/model
let LAST = null;      // the last /api/predict answer
let inputBlob = null; // what was predicted (drawn or uploaded)

function bytesOf(b64) {
  const s = atob(b64);
  const out = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) out[i] = s.charCodeAt(i);
  return out;
}

// An [H, W, C] byte tensor drawn into a canvas scaled by `scale`: channel
// `ch` as grey, or (rgb) the three channels as colour.
function drawBytes(bytes, shape, scale, pixel) {
  const [h, w] = shape;
  const cv = document.createElement("canvas");
  cv.width = w; cv.height = h;
  cv.style.width = (w * scale) + "px"; cv.style.height = (h * scale) + "px";
  const ctx = cv.getContext("2d");
  const img = ctx.createImageData(w, h);
  for (let i = 0; i < h * w; i++) {
    const [r, g, b] = pixel(i);
    img.data[4 * i] = r; img.data[4 * i + 1] = g; img.data[4 * i + 2] = b; img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
  return cv;
}

// Channel `ch` of an [H, W, C] byte tensor, grey.
function mapCanvas(bytes, shape, ch, scale) {
  const c = shape[2];
  return drawBytes(bytes, shape, scale, (i) => { const v = bytes[i * c + ch]; return [v, v, v]; });
}

// An RGB or grey [H, W, C] image (C = 1 or 3) as one canvas.
function imageCanvas(bytes, shape, scale) {
  if (shape[2] !== 3) return mapCanvas(bytes, shape, 0, scale);
  return drawBytes(bytes, shape, scale, (i) => [bytes[3 * i], bytes[3 * i + 1], bytes[3 * i + 2]]);
}

async function getJSON(url) {
  const r = await fetch(url);
  const v = await r.json();
  if (!r.ok) throw new Error(v.error || r.statusText);
  return v;
}

// ---- architecture ----
function drawArchitecture() {
  const arch = $("arch");
  arch.innerHTML = "";
  const inp = document.createElement("div");
  inp.className = "layer";
  inp.id = "layer-input";
  inp.innerHTML = `<b>input</b> ${esc(MODEL.input_shape.join("x"))}`;
  arch.appendChild(inp);
  MODEL.layers.forEach((l) => {
    const d = document.createElement("div");
    d.className = "layer";
    d.id = "layer-" + l.index;
    const inputs = MODEL.graph ? `<div class="in">&larr; ${esc(l.inputs.join(", "))}</div>` : "";
    d.innerHTML = `<b>${esc(l.name)}</b> (${esc(l.kind)}) &rarr; ${esc(l.output_shape.join("x"))}` +
      ` &middot; ${l.params.toLocaleString()} params` +
      (l.formula ? `<div class="f">${esc(l.formula)}</div>` : "") + inputs;
    d.onclick = () => {
      const row = $("maps-" + l.index);
      if (row) row.scrollIntoView({ behavior: "smooth", block: "center" });
    };
    arch.appendChild(d);
  });
  if (MODEL.graph) requestAnimationFrame(drawEdges);
  const total = MODEL.trainable + MODEL.non_trainable;
  $("run").textContent = `${MODEL.run} · ${total.toLocaleString()} parameters`;
}

// A graph's connections that skip the box just above (shortcuts, branches,
// merges) as curves on the right of the boxes.
function drawEdges() {
  const arch = $("arch");
  arch.classList.add("graph");
  const old = $("edges");
  if (old) old.remove();
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.id = "edges";
  svg.setAttribute("width", arch.scrollWidth);
  svg.setAttribute("height", arch.scrollHeight);
  const base = arch.getBoundingClientRect();
  const names = ["input", ...MODEL.layers.map((l) => l.name)];
  const box = (name) => $(name === "input" ? "layer-input" : "layer-" + MODEL.layers.findIndex((l) => l.name === name));
  MODEL.layers.forEach((l, i) => {
    l.inputs.forEach((src) => {
      if (src === names[i]) return; // the box just above: adjacency says it
      const a = box(src), b = $("layer-" + i);
      if (!a || !b) return;
      const ra = a.getBoundingClientRect(), rb = b.getBoundingClientRect();
      const x = ra.right - base.left, y1 = ra.top + ra.height / 2 - base.top, y2 = rb.top + rb.height / 2 - base.top;
      const bend = Math.min(36, 10 + (y2 - y1) / 12);
      const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
      path.setAttribute("d", `M ${x} ${y1} C ${x + bend} ${y1}, ${x + bend} ${y2}, ${x} ${y2}`);
      path.setAttribute("class", "edge");
      svg.appendChild(path);
    });
  });
  arch.appendChild(svg);
}

// ---- prediction ----
// Back to "nothing predicted": no probabilities, no maps, no detail (Clear,
// or an input that could not be predicted: nothing of the previous one stays).
function resetPrediction() {
  LAST = null;
  inputBlob = null;
  $("probs").innerHTML = "";
  $("maps").innerHTML = '<p class="muted">Draw or upload an image.</p>';
  $("detail").hidden = true;
}

async function predict(blob) {
  inputBlob = blob;
  const r = await fetch("/api/predict", { method: "POST", body: blob });
  const v = await r.json();
  if (!r.ok) { resetPrediction(); $("probs").textContent = "error: " + v.error; return; }
  LAST = v;
  showProbabilities(v.probabilities);
  showMaps(v);
}

function showProbabilities(probs) {
  const best = probs.reduce((a, b) => (b.p > a.p ? b : a), probs[0]);
  const box = $("probs");
  box.innerHTML = "";
  probs.forEach((p) => {
    const row = document.createElement("div");
    row.className = "bar" + (p === best ? " top" : "");
    row.innerHTML = `<span>${esc(p.class)}</span><div><div class="fill"></div></div><span>${(100 * p.p).toFixed(1)} %</span>`;
    // Through the CSSOM: the Content-Security-Policy allows no inline style.
    row.querySelector(".fill").style.width = `${(100 * p.p).toFixed(1)}%`;
    box.appendChild(row);
  });
}

function showMaps(v) {
  const box = $("maps");
  box.innerHTML = "";
  const inputRow = document.createElement("div");
  inputRow.className = "maprow";
  inputRow.innerHTML = `<div class="title">input ${esc(v.input.shape.join("x"))}</div>`;
  const inputCv = imageCanvas(bytesOf(v.input.data), v.input.shape, Math.max(1, Math.floor(84 / v.input.shape[0])));
  inputCv.id = "input-canvas";
  inputRow.appendChild(inputCv);
  box.appendChild(inputRow);
  v.layers.forEach((l) => {
    const meta = MODEL.layers[l.index];
    const row = document.createElement("div");
    row.className = "maprow";
    row.id = "maps-" + l.index;
    const title = document.createElement("div");
    title.className = "title";
    title.textContent = `${meta.name} (${meta.kind}) ${l.shape.join("x")}  range ${l.min.toFixed(3)}..${l.max.toFixed(3)}`;
    row.appendChild(title);
    const maps = document.createElement("div");
    maps.className = "maps";
    const bytes = bytesOf(l.data);
    if (l.shape.length === 3) {
      const [h, , c] = l.shape;
      const scale = Math.max(1, Math.floor(48 / h));
      for (let ch = 0; ch < c; ch++) {
        const cv = mapCanvas(bytes, l.shape, ch, scale);
        cv.title = `${meta.name} map ${ch}`;
        cv.className = "fmap";
        cv.onclick = () => showDetail(l, ch);
        maps.appendChild(cv);
      }
    } else {
      // A vector: one bar of cells.
      const n = l.shape[0];
      const cv = mapCanvas(bytes, [1, n, 1], 0, Math.max(1, Math.floor(300 / n)));
      cv.style.height = "16px";
      maps.appendChild(cv);
    }
    row.appendChild(maps);
    box.appendChild(row);
  });
}

// ---- one map: zoomed, its filter, its receptive field, pooling before/after ----
async function showDetail(l, ch) {
  const meta = MODEL.layers[l.index];
  document.querySelectorAll(".layer.sel").forEach((e) => e.classList.remove("sel"));
  const box = $("layer-" + l.index);
  if (box) box.classList.add("sel");
  $("detail").hidden = false;
  $("detail").scrollIntoView({ block: "nearest" });
  $("detail-title").textContent = `${meta.name} (${meta.kind}), map ${ch}`;
  const body = $("detail-body");
  body.innerHTML = "";
  const [h, w] = l.shape;
  const scale = Math.max(2, Math.floor(160 / Math.max(h, w)));
  const zoom = mapCanvas(bytesOf(l.data), l.shape, ch, scale);
  zoom.id = "detail-map";
  zoom.title = "click a pixel: the input patch it looks at";
  body.appendChild(labelled(zoom, "this map (click a pixel)"));
  const patchAt = async (y, x) => {
    try {
      const p = await getJSON(`/api/patch?layer=${l.index}&y=${y}&x=${x}`);
      showPatch(p, y, x);
    } catch (err) { $("detail-note").textContent = err.message; }
  };
  zoom.onclick = (e) => {
    const r = zoom.getBoundingClientRect();
    patchAt(Math.floor((e.clientY - r.top) / scale), Math.floor((e.clientX - r.left) / scale));
  };
  // Start with the patch of the map's strongest pixel.
  const mb = bytesOf(l.data), c = l.shape[2];
  let best = 0;
  for (let i = 1; i < h * w; i++) if (mb[i * c + ch] > mb[best * c + ch]) best = i;
  patchAt(Math.floor(best / w), best % w);
  if (meta.role === "filters") {
    try {
      const f = await getJSON(`/api/filter?layer=${l.index}&map=${ch}`);
      const fb = bytesOf(f.data);
      const fs = Math.max(4, Math.floor(72 / f.shape[0]));
      const row = document.createElement("div");
      const show = Math.min(f.shape[2], 8);
      for (let c = 0; c < show; c++) row.appendChild(mapCanvas(fb, f.shape, c, fs));
      body.appendChild(labelled(row, `its filter ${f.shape.join("x")}` + (f.shape[2] > show ? ` (first ${show} of ${f.shape[2]} input channels)` : "")));
    } catch (err) { $("detail-note").textContent = err.message; }
  }
  if (meta.role === "pooling" && meta.inputs.length) {
    const src = MODEL.layers.findIndex((m) => m.name === meta.inputs[0]);
    const before = src >= 0 ? LAST.layers[src] : { data: LAST.input.data, shape: LAST.input.shape };
    if (before.shape.length === 3 && ch < before.shape[2]) {
      const bs = Math.max(2, Math.floor(160 / before.shape[0]));
      body.insertBefore(labelled(mapCanvas(bytesOf(before.data), before.shape, ch, bs),
        `before pooling ${before.shape[0]}x${before.shape[1]}`), zoom.parentNode);
      $("detail-note").textContent = `Pooling keeps the ${meta.kind.startsWith("Max") ? "largest" : "mean"} value of each window: ${before.shape[0]}x${before.shape[1]} becomes ${h}x${w}.`;
      return;
    }
  }
  $("detail-note").textContent = meta.formula ? `Output size: ${meta.formula}` : "";
}

function labelled(el, text) {
  const d = document.createElement("div");
  const t = document.createElement("div");
  t.className = "muted"; t.textContent = text;
  d.appendChild(t); d.appendChild(el);
  return d;
}

function showPatch(p, y, x) {
  const src = $("input-canvas");
  const [h, w] = LAST.input.shape;
  const scale = Math.max(2, Math.floor(160 / h));
  const cv = imageCanvas(bytesOf(LAST.input.data), LAST.input.shape, scale);
  const big = document.createElement("canvas");
  big.width = w * scale; big.height = h * scale;
  const ctx = big.getContext("2d");
  ctx.imageSmoothingEnabled = false;
  ctx.drawImage(cv, 0, 0, big.width, big.height);
  ctx.strokeStyle = "#e53935"; ctx.lineWidth = 2;
  ctx.strokeRect(p.left * scale, p.top * scale, (p.right - p.left + 1) * scale, (p.bottom - p.top + 1) * scale);
  const old = $("patch-view");
  if (old) old.remove();
  const l = labelled(big, `pixel (${y}, ${x}) looks at input rows ${p.top}-${p.bottom}, columns ${p.left}-${p.right}`);
  l.id = "patch-view";
  $("detail-body").appendChild(l);
  if (src) src.title = "input";
}

// ---- drawing ----
function setupCanvas() {
  const cv = $("draw"), ctx = cv.getContext("2d");
  const clear = () => { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, cv.width, cv.height); };
  clear();
  let drawing = false, last = null, pending = false;
  const send = () => {
    if (pending) return;
    pending = true;
    setTimeout(() => { pending = false; cv.toBlob((b) => predict(b), "image/png"); }, 120);
  };
  const pos = (e) => { const r = cv.getBoundingClientRect(); return [e.clientX - r.left, e.clientY - r.top]; };
  cv.addEventListener("pointerdown", (e) => { drawing = true; last = pos(e); cv.setPointerCapture(e.pointerId); });
  cv.addEventListener("pointermove", (e) => {
    if (!drawing) return;
    const p = pos(e);
    ctx.strokeStyle = "#fff"; ctx.lineWidth = 20; ctx.lineCap = "round";
    ctx.beginPath(); ctx.moveTo(last[0], last[1]); ctx.lineTo(p[0], p[1]); ctx.stroke();
    last = p;
    send();
  });
  cv.addEventListener("pointerup", () => { drawing = false; send(); });
  $("clear").onclick = () => { clear(); resetPrediction(); };
  $("upload").onchange = (e) => { const f = e.target.files[0]; if (f) { showUpload(f); predict(f); } };
}

function showUpload(blob) {
  const img = new Image();
  img.onload = () => {
    const cv = $("draw"), ctx = cv.getContext("2d");
    ctx.fillStyle = "#000"; ctx.fillRect(0, 0, cv.width, cv.height);
    ctx.imageSmoothingEnabled = false;
    ctx.drawImage(img, 0, 0, cv.width, cv.height);
  };
  img.src = URL.createObjectURL(blob);
}

// ---- curves ----
function plot(canvas, series, title) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height, pad = 28;
  ctx.clearRect(0, 0, W, H);
  ctx.fillStyle = "#222"; ctx.font = "12px sans-serif"; ctx.fillText(title, pad, 12);
  const pts = series.flatMap((s) => s.points);
  if (!pts.length) { ctx.fillText("no epochs yet", pad, H / 2); return; }
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const x0 = Math.min(...xs), x1 = Math.max(...xs, x0 + 1), y0 = Math.min(...ys), y1 = Math.max(...ys, y0 + 1e-6);
  const X = (x) => pad + (W - pad - 8) * (x - x0) / (x1 - x0), Y = (y) => H - pad + 8 - (H - pad - 12) * (y - y0) / (y1 - y0);
  ctx.strokeStyle = "#999"; ctx.strokeRect(pad, 16, W - pad - 8, H - pad - 12);
  ctx.fillText(y1.toFixed(3), 0, 24); ctx.fillText(y0.toFixed(3), 0, H - pad + 8);
  series.forEach((s, i) => {
    ctx.strokeStyle = s.color; ctx.beginPath();
    s.points.forEach((p, j) => (j ? ctx.lineTo(X(p[0]), Y(p[1])) : ctx.moveTo(X(p[0]), Y(p[1]))));
    ctx.stroke();
    if (s.points.length < 60) {
      // Epoch points as dots, so that a single epoch shows too.
      ctx.fillStyle = s.color;
      s.points.forEach((p) => { ctx.beginPath(); ctx.arc(X(p[0]), Y(p[1]), 2.5, 0, 2 * Math.PI); ctx.fill(); });
    }
    ctx.fillStyle = s.color; ctx.fillText(s.name, W - 110, 28 + 12 * i);
  });
}

async function refreshHistory() {
  const h = await getJSON("/api/history");
  const ep = (k) => h.epochs.filter((e) => e[k] !== null && e[k] !== undefined).map((e) => [e.epoch, e[k]]);
  const batchL = h.batches.map((b) => [b[0], b[1]]), batchA = h.batches.map((b) => [b[0], b[2]]);
  plot($("loss"), [{ name: "batches", color: "#90caf9", points: batchL }, { name: "loss", color: "#1e88e5", points: ep("loss") },
    { name: "val_loss", color: "#e53935", points: ep("val_loss") }], "loss");
  plot($("acc"), [{ name: "batches", color: "#90caf9", points: batchA }, { name: "accuracy", color: "#1e88e5", points: ep("accuracy") },
    { name: "val_accuracy", color: "#e53935", points: ep("val_accuracy") }], "accuracy");
  $("status").textContent = h.training ? `training… epoch ${h.epochs.length + 1}` : (MODEL.live ? "training finished" : "");
  if (h.training) setTimeout(refreshHistory, 1000);
}

// ---- evaluation: confusion matrix and mistakes ----
async function evaluate() {
  $("evaluation").textContent = "predicting the test images…";
  let v;
  try { v = await getJSON("/api/evaluation"); } catch (e) { $("evaluation").textContent = e.message; return; }
  const box = $("evaluation");
  box.innerHTML = `<p>Accuracy ${(100 * v.accuracy).toFixed(2)} % on ${esc(v.samples)} ${esc(v.split)} images.</p>`;
  let t = "<table class='cm'><tr><th>true \\ predicted</th>" + v.classes.map((c) => `<th>${esc(c)}</th>`).join("") + "</tr>";
  v.confusion.forEach((row, i) => {
    t += `<tr><th>${esc(v.classes[i])}</th>` + row.map((n, j) => `<td class="${i === j ? "diag" : ""}">${n}</td>`).join("") + "</tr>";
  });
  box.insertAdjacentHTML("beforeend", t + "</table><h2>Most confident mistakes <small>(click one to load it)</small></h2>");
  const grid = document.createElement("div");
  grid.className = "mistakes";
  v.mistakes.forEach((m) => {
    const d = document.createElement("div");
    d.className = "mistake";
    d.innerHTML = `<img src="/api/sample?index=${Number(m.index)}" alt="test image ${Number(m.index)}"><span>${esc(v.classes[m.truth])} &rarr; ${esc(v.classes[m.pred])} (${(100 * m.confidence).toFixed(0)} %)</span>`;
    d.onclick = async () => {
      const b = await (await fetch(`/api/sample?index=${m.index}`)).blob();
      showUpload(b);
      predict(b);
    };
    grid.appendChild(d);
  });
  box.appendChild(grid);
}

async function main() {
  MODEL = await getJSON("/api/model");
  drawArchitecture();
  setupCanvas();
  const [h, w, c] = MODEL.input_shape;
  $("hint").textContent = (h === 28 && w === 28 && c === 1)
    ? "Draw a digit (white on black); the prediction updates as you draw."
    : `The model takes ${h}x${w}x${c} images: upload one (drawings are resized).`;
  $("evaluate").onclick = evaluate;
  refreshHistory();
}

main().catch((e) => { $("status").textContent = "error: " + e.message; });
