// convnet explorer: draws on a canvas, asks the server for predictions and
// every layer's outputs, and shows maps, filters, receptive fields, pooling
// before/after, curves, the confusion matrix and mistakes. No libraries;
// colours and values in maps.js.
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
let inputRaw = false;  // a test image: sent as stored, never prepared
let DETAIL = null;     // the map whose detail is open: {index, ch}
let WHY_CLASS = null;  // the class "why" explains (null: the predicted one)

async function getJSON(url) {
  const r = await fetch(url);
  const v = await r.json();
  if (!r.ok) throw new Error(v.error || r.statusText);
  return v;
}

// ---- architecture ----
// A chain as a list of boxes, top to bottom; a graph as a graph (graph.js).
function drawArchitecture() {
  const arch = $("arch");
  arch.innerHTML = "";
  const box = (v) => {
    const d = document.createElement("div");
    d.className = "layer";
    if (v === 0) {
      d.id = "layer-input";
      d.innerHTML = `<b>input</b> ${esc(MODEL.input_shape.join("x"))}`;
      return d;
    }
    const l = MODEL.layers[v - 1];
    d.id = "layer-" + l.index;
    const params = `${l.params.toLocaleString()} params`;
    if (MODEL.graph) {
      // Compact: name and shape (Keras's names say the kind); the rest on hover.
      d.innerHTML = `<b>${esc(l.name)}</b><div>${esc(l.output_shape.join("x"))}</div>`;
      d.title = `${l.name} (${l.kind}) -> ${l.output_shape.join("x")}, ${params}` +
        (l.formula ? `\n${l.formula}` : "") + `\ninputs: ${l.inputs.join(", ")}`;
    } else {
      d.innerHTML = `<b>${esc(l.name)}</b> (${esc(l.kind)}) &rarr; ${esc(l.output_shape.join("x"))}` +
        ` &middot; ${params}` + (l.formula ? `<div class="f">${esc(l.formula)}</div>` : "");
    }
    d.onclick = () => {
      const row = $("maps-" + l.index);
      if (row) row.scrollIntoView({ behavior: "smooth", block: "center" });
    };
    return d;
  };
  if (MODEL.graph) drawGraph(arch, box);
  else for (let v = 0; v <= MODEL.layers.length; v++) arch.appendChild(box(v));
  const total = MODEL.trainable + MODEL.non_trainable;
  $("run").textContent = `${MODEL.run} · ${total.toLocaleString()} parameters`;
}

// A graph's lanes follow the column's width: drawn again when the window's
// width changes (the selected layer stays selected).
let redrawTimer = null;
window.addEventListener("resize", () => {
  if (!MODEL || !MODEL.graph) return;
  clearTimeout(redrawTimer);
  redrawTimer = setTimeout(() => {
    drawArchitecture();
    if (DETAIL) { const b = $("layer-" + DETAIL.index); if (b) b.classList.add("sel"); }
  }, 100);
});

// ---- prediction ----
// Back to "nothing predicted": no probabilities, no maps, no detail (Clear,
// or an input that could not be predicted: nothing of the previous one stays).
function resetPrediction() {
  LAST = null;
  inputBlob = null;
  $("probs").innerHTML = "";
  $("prep-note").textContent = "";
  DETAIL = null;
  WHY_CLASS = null;
  $("why").hidden = true;
  $("arith").hidden = true;
  document.querySelectorAll(".layer.sel").forEach((e) => e.classList.remove("sel"));
  $("maps").innerHTML = '<p class="muted">Draw or upload an image.</p>';
  $("detail").hidden = true;
}

// Whether uploads and drawings are prepared as MNIST's digits were (only
// offered for 28x28x1 models).
const preparing = () => !$("prepare-row").hidden && $("prepare").checked;

async function predict(blob, raw = false, whyClass = null) {
  inputBlob = blob;
  inputRaw = raw;
  WHY_CLASS = whyClass;
  const prepare = preparing() && !raw ? 1 : 0;
  const cls = whyClass === null ? "" : `&class=${Number(whyClass)}`;
  const r = await fetch(`/api/predict?prepare=${prepare}${cls}`, { method: "POST", body: blob });
  const v = await r.json();
  if (!r.ok) {
    resetPrediction();
    // Before the first epoch's weights (503): kept, and predicted when they come.
    if (r.status === 503) { inputBlob = blob; inputRaw = raw; }
    $("probs").textContent = (r.status === 503 ? "" : "error: ") + v.error;
    return;
  }
  if (inputBlob !== blob) return; // a newer input was sent meanwhile
  LAST = v;
  v.input.vals = valuesOf(v.input.values);
  v.layers.forEach((l) => { l.vals = valuesOf(l.values); });
  $("prep-note").textContent = raw ? "a test image: as stored, not prepared again" : v.preparation.note;
  showProbabilities(v.probabilities);
  showWhy(v);
  showMaps(v);
  refreshDetail();
}

// Why this class: Grad-CAM on the last convolution over the input, and
// gradient x input (blue: pixels that lower the class's score, red: raise it).
function showWhy(v) {
  const s = v.saliency, [h, w] = v.input.shape;
  $("why").hidden = false;
  $("why-title").textContent = `Why "${s.class_name}"`;
  const body = $("why-body");
  body.innerHTML = "";
  const scale = Math.max(1, Math.floor(140 / Math.max(h, w)));
  if (s.grad_cam) {
    s.grad_cam.up = valuesOf(s.grad_cam.upsampled);
    const cv = overlayCanvas(v.input.vals, v.input.shape, s.grad_cam.up, scale);
    cv.id = "why-cam";
    hoverValues(cv, h, w, (y, x) => `Grad-CAM (${y}, ${x}) = ${s.grad_cam.up[y * w + x].toPrecision(4)}`);
    body.appendChild(labelled(cv, `Grad-CAM on ${s.grad_cam.layer} (${s.grad_cam.shape.join("x")})`));
  }
  const gx = valuesOf(s.gradient_x_input);
  const m = maxAbs(gx, 1, -1);
  const gc = divergingCanvas(gx, [h, w, 1], 0, scale, m);
  gc.id = "why-gxi";
  hoverValues(gc, h, w, (y, x) => `gradient x input (${y}, ${x}) = ${gx[y * w + x].toPrecision(4)}`);
  const box = labelled(gc, "gradient x input");
  box.appendChild(legend(m, true));
  body.appendChild(box);
}

// The open detail follows the newest prediction (never the last one's).
function refreshDetail() {
  if (DETAIL && LAST && !$("detail").hidden) showDetail(LAST.layers[DETAIL.index], DETAIL.ch, false);
}

function showProbabilities(probs) {
  const best = probs.reduce((a, b) => (b.p > a.p ? b : a), probs[0]);
  const box = $("probs");
  box.innerHTML = "";
  probs.forEach((p) => {
    const row = document.createElement("div");
    row.className = "bar" + (p === best ? " top" : "");
    row.title = `why "${p.class}"?`;
    row.onclick = () => { if (inputBlob) predict(inputBlob, inputRaw, probs.indexOf(p)); };
    row.innerHTML = `<span>${esc(p.class)}</span><div><div class="fill"></div></div><span>${(100 * p.p).toFixed(1)} %</span>`;
    // Through the CSSOM: the Content-Security-Policy allows no inline style.
    row.querySelector(".fill").style.width = `${(100 * p.p).toFixed(1)}%`;
    box.appendChild(row);
  });
}

// Per-map or per-layer colour scale (the switch above the maps).
const perMap = () => $("scale").value === "map";

function showMaps(v) {
  const box = $("maps");
  box.innerHTML = "";
  const inputRow = document.createElement("div");
  inputRow.className = "maprow";
  inputRow.id = "maps-input";
  const [ih, iw, ic] = v.input.shape;
  inputRow.innerHTML = `<div class="title">input ${esc(v.input.shape.join("x"))}: exactly what the model receives (0 black, 1 white)</div>`;
  const inputCv = inputCanvas(v.input.vals, v.input.shape, Math.max(1, Math.floor(84 / ih)));
  inputCv.id = "input-canvas";
  hoverValues(inputCv, ih, iw, (y, x) => `input (${y}, ${x}) = ` +
    [...v.input.vals.slice((y * iw + x) * ic, (y * iw + x + 1) * ic)].map((a) => a.toFixed(4)).join(", "));
  inputRow.appendChild(inputCv);
  box.appendChild(inputRow);
  const last = v.layers.length - 1;
  v.layers.forEach((l) => {
    const meta = MODEL.layers[l.index];
    const row = document.createElement("div");
    row.className = "maprow";
    row.id = "maps-" + l.index;
    const title = document.createElement("div");
    title.className = "title";
    title.textContent = `${meta.name} (${meta.kind}) ${l.shape.join("x")}  range ${l.min.toFixed(3)}..${l.max.toFixed(3)} `;
    row.appendChild(title);
    const maps = document.createElement("div");
    maps.className = "maps";
    const signed = l.min < 0;
    if (l.shape.length === 3) {
      const [h, w, c] = l.shape;
      const scale = Math.max(1, Math.floor(48 / h));
      const layerMax = maxAbs(l.vals, c, -1);
      if (!perMap()) title.appendChild(legend(layerMax, signed));
      for (let ch = 0; ch < c; ch++) {
        const m = perMap() ? maxAbs(l.vals, c, ch) : layerMax;
        const cv = divergingCanvas(l.vals, l.shape, ch, scale, m);
        cv.className = "fmap";
        cv.dataset.map = ch;
        hoverValues(cv, h, w, (y, x) => `${meta.name} map ${ch} (${y}, ${x}) = ${l.vals[(y * w + x) * c + ch].toPrecision(5)}`);
        cv.onclick = () => showDetail(l, ch);
        maps.appendChild(cv);
      }
      if (perMap()) title.appendChild(document.createTextNode("(each map scaled to its own largest |value|)"));
    } else {
      // A vector (Flatten, Dense, the output): rows of cells; the output's
      // cells named by class.
      const m = maxAbs(l.vals, 1, -1);
      title.appendChild(legend(m, signed));
      const labels = l.index === last ? MODEL.classes : null;
      const cells = vectorCanvas(l.vals, m, labels);
      const cv = cells.tagName === "CANVAS" ? cells : cells.querySelector("canvas");
      cv.className = "vec";
      const n = l.vals.length, perRow = cv.width;
      hoverValues(cv, cv.height, perRow, (y, x) => {
        const i = y * perRow + x;
        if (i >= n) return "";
        const name = labels ? ` (${labels[i]})` : "";
        return `${meta.name} unit ${i}${name} = ${l.vals[i].toPrecision(5)}`;
      });
      if (meta.kind === "Dense" && l.index !== last) {
        cv.title = "click a unit: its sum of inputs x weights";
        cv.onclick = (e) => {
          const at = unitAt(cv, e, cv.height, perRow);
          if (!at || at[0] * perRow + at[1] >= n) return;
          const unit = at[0] * perRow + at[1];
          $("detail").hidden = false;
          $("detail-title").textContent = `${meta.name} (Dense), unit ${unit}`;
          $("detail-body").innerHTML = "";
          $("detail-note").textContent = "";
          DETAIL = null;
          showDense(l.index, unit);
          $("detail").scrollIntoView({ block: "nearest" });
        };
      }
      if (l.index === last && MODEL.classes.length === l.vals.length) {
        cv.title = "click: the softmax, step by step";
        cv.onclick = () => {
          $("detail").hidden = false;
          $("detail-title").textContent = `${meta.name}: the output`;
          $("detail-body").innerHTML = "";
          $("detail-note").textContent = "";
          DETAIL = null;
          showSoftmax(l.index);
          $("detail").scrollIntoView({ block: "nearest" });
        };
      }
      maps.appendChild(cells);
    }
    row.appendChild(maps);
    box.appendChild(row);
  });
}

// ---- one map: zoomed, its filter, its receptive field, pooling before/after ----
async function showDetail(l, ch, scroll = true) {
  const meta = MODEL.layers[l.index];
  DETAIL = { index: l.index, ch };
  document.querySelectorAll(".layer.sel").forEach((e) => e.classList.remove("sel"));
  const box = $("layer-" + l.index);
  if (box) box.classList.add("sel");
  $("detail").hidden = false;
  if (scroll) $("detail").scrollIntoView({ block: "nearest" });
  $("detail-title").textContent = `${meta.name} (${meta.kind}), map ${ch}`;
  const body = $("detail-body");
  body.innerHTML = "";
  $("arith").hidden = true;
  const [h, w] = l.shape;
  const scale = Math.max(2, Math.floor(160 / Math.max(h, w)));
  const c = l.shape[2];
  const zoom = divergingCanvas(l.vals, l.shape, ch, scale, maxAbs(l.vals, c, perMap() ? ch : -1));
  hoverValues(zoom, h, w, (y, x) => `map ${ch} (${y}, ${x}) = ${l.vals[(y * w + x) * c + ch].toPrecision(5)}`);
  zoom.id = "detail-map";
  zoom.title = "click a pixel: the input patch it looks at";
  body.appendChild(labelled(zoom, "this map (click a pixel)"));
  const patchAt = async (y, x) => {
    try {
      const p = await getJSON(`/api/patch?layer=${l.index}&y=${y}&x=${x}`);
      showPatch(p, y, x);
      if (meta.role === "filters" || meta.role === "pooling") showArithmetic(l.index, ch, y, x);
    } catch (err) { $("detail-note").textContent = err.message; }
  };
  zoom.onclick = (e) => {
    const at = unitAt(zoom, e, h, w);
    if (at) patchAt(...at);
  };
  // Start with the patch of the map's strongest pixel.
  let best = 0;
  for (let i = 1; i < h * w; i++) if (l.vals[i * c + ch] > l.vals[best * c + ch]) best = i;
  patchAt(Math.floor(best / w), best % w);
  if (meta.role === "filters") {
    try {
      const f = await getJSON(`/api/filter?layer=${l.index}&map=${ch}`);
      const fv = valuesOf(f.values);
      const fs = Math.max(4, Math.floor(72 / f.shape[0]));
      const row = document.createElement("div");
      const show = Math.min(f.shape[2], 8);
      const fm = maxAbs(fv, 1, -1);
      for (let k = 0; k < show; k++) {
        const kc = divergingCanvas(fv, f.shape, k, fs, fm);
        const [kh, kw, kn] = f.shape;
        hoverValues(kc, kh, kw, (y, x) => `weight (${y}, ${x}) of input channel ${k} = ${fv[(y * kw + x) * kn + k].toPrecision(5)}`);
        row.appendChild(kc);
      }
      row.appendChild(legend(fm, true));
      body.appendChild(labelled(row, `its filter ${f.shape.join("x")}` + (f.shape[2] > show ? ` (first ${show} of ${f.shape[2]} input channels)` : "")));
    } catch (err) { $("detail-note").textContent = err.message; }
  }
  if (meta.role === "pooling" && meta.inputs.length) {
    const src = MODEL.layers.findIndex((m) => m.name === meta.inputs[0]);
    // After an await: the prediction may have been cleared or replaced.
    if (!LAST || LAST.layers[l.index] !== l) return;
    const before = src >= 0 ? LAST.layers[src] : LAST.input;
    if (before.shape.length === 3 && ch < before.shape[2]) {
      const bs = Math.max(2, Math.floor(160 / before.shape[0]));
      const bc = before.shape[2];
      body.insertBefore(labelled(divergingCanvas(before.vals, before.shape, ch, bs, maxAbs(before.vals, bc, perMap() ? ch : -1)),
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

// The receptive field of the clicked unit in every earlier layer: the
// maps of those layers (and the input) are dimmed outside it.
function highlightFields(p) {
  document.querySelectorAll(".maprow").forEach((row) => {
    const idx = row.id === "maps-input" ? "input" : Number(row.id.replace("maps-", ""));
    const win = idx === "input" ? p : (p.layers || []).find((f) => f.index === idx);
    if (!win && !row.dimmed) return;
    row.querySelectorAll("canvas").forEach((cv) => { if (cv.pixel) dimOutside(cv, cv.pixel, win); });
    row.dimmed = !!win;
    row.classList.toggle("field", !!win);
  });
}

function showPatch(p, y, x) {
  highlightFields(p);
  const src = $("input-canvas");
  if (!LAST) return; // cleared while the window was fetched
  const [h, w] = LAST.input.shape;
  const scale = Math.max(2, Math.floor(160 / h));
  const cv = inputCanvas(LAST.input.vals, LAST.input.shape, 1);
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
  $("prepare").onchange = () => { if (inputBlob) predict(inputBlob, inputRaw, WHY_CLASS); };
  $("scale").onchange = () => { if (LAST) { showMaps(LAST); refreshDetail(); } };
  $("upload").onchange = (e) => { const f = e.target.files[0]; if (f) { showUpload(f); predict(f); } };
}

// The upload on the drawing canvas (a file the browser cannot show leaves
// it blank, as the server's answer leaves the panels).
function showUpload(blob) {
  const img = new Image();
  const cv = $("draw"), ctx = cv.getContext("2d");
  const blank = () => { ctx.fillStyle = "#000"; ctx.fillRect(0, 0, cv.width, cv.height); };
  img.onload = () => {
    blank();
    ctx.imageSmoothingEnabled = false;
    // Aspect kept, centred.
    const k = Math.min(cv.width / img.width, cv.height / img.height);
    const w = img.width * k, h = img.height * k;
    ctx.drawImage(img, (cv.width - w) / 2, (cv.height - h) / 2, w, h);
    URL.revokeObjectURL(img.src);
  };
  img.onerror = blank;
  img.src = URL.createObjectURL(blob);
}

// ---- curves ----
// Series with no points are left out of the legend; the y range is padded so
// that no point sits on the frame; epochs are labelled on the x axis.
function plot(canvas, series, title) {
  const ctx = canvas.getContext("2d");
  const W = canvas.width, H = canvas.height;
  const left = 44, right = W - 8, top = 18, bottom = H - 22;
  ctx.clearRect(0, 0, W, H);
  ctx.font = "11px sans-serif";
  ctx.fillStyle = "#222"; ctx.fillText(title, 4, 12);
  const shown = series.filter((s) => s.points.length);
  // The legend on the title's line, right-aligned: never over the curves.
  let lx = right;
  [...shown].reverse().forEach((s) => {
    lx -= ctx.measureText(s.name).width + 16;
    ctx.fillStyle = s.color; ctx.fillRect(lx, 6, 8, 3);
    ctx.fillStyle = "#333"; ctx.fillText(s.name, lx + 11, 12);
  });
  const pts = shown.flatMap((s) => s.points);
  if (!pts.length) { ctx.fillStyle = "#777"; ctx.fillText("no epochs yet", left, H / 2); return; }
  const xs = pts.map((p) => p[0]), ys = pts.map((p) => p[1]);
  const x0 = Math.min(0, ...xs), x1 = Math.max(...xs, x0 + 1);
  let y0 = Math.min(...ys), y1 = Math.max(...ys);
  const padY = Math.max((y1 - y0) * 0.06, 1e-3);
  y0 -= padY; y1 += padY;
  const X = (x) => left + (right - left) * (x - x0) / (x1 - x0);
  const Y = (y) => bottom - (bottom - top) * (y - y0) / (y1 - y0);
  ctx.strokeStyle = "#999"; ctx.strokeRect(left, top, right - left, bottom - top);
  ctx.fillStyle = "#555";
  ctx.textAlign = "right";
  [y1 - padY, (y0 + y1) / 2, y0 + padY].forEach((v) => ctx.fillText(v.toFixed(3), left - 4, Y(v) + 4));
  ctx.textAlign = "center";
  const every = Math.max(1, Math.ceil((x1 - x0) / 10));
  for (let e = Math.ceil(x0); e <= x1; e += every) ctx.fillText(String(e), X(e), bottom + 13);
  ctx.textAlign = "left";
  ctx.fillText("epoch", right - 30, H - 2);
  ctx.save();
  ctx.beginPath(); ctx.rect(left, top, right - left, bottom - top); ctx.clip();
  shown.forEach((s) => {
    ctx.strokeStyle = s.color; ctx.beginPath();
    s.points.forEach((p, j) => (j ? ctx.lineTo(X(p[0]), Y(p[1])) : ctx.moveTo(X(p[0]), Y(p[1]))));
    ctx.stroke();
    if (s.points.length < 60) {
      // Epoch points as dots, so that a single epoch shows too.
      ctx.fillStyle = s.color;
      s.points.forEach((p) => { ctx.beginPath(); ctx.arc(X(p[0]), Y(p[1]), 2.5, 0, 2 * Math.PI); ctx.fill(); });
    }
  });
  ctx.restore();
}

let SEEN_EPOCHS = -1; // epochs the page has re-predicted for (live training)

async function refreshHistory() {
  const h = await getJSON("/api/history");
  const ep = (k) => h.epochs.filter((e) => e[k] !== null && e[k] !== undefined).map((e) => [e.epoch, e[k]]);
  const batchL = h.batches.map((b) => [b[0], b[1]]), batchA = h.batches.map((b) => [b[0], b[2]]);
  plot($("loss"), [{ name: "batches", color: "#90caf9", points: batchL }, { name: "loss", color: "#1e88e5", points: ep("loss") },
    { name: "val_loss", color: "#e53935", points: ep("val_loss") }], "loss");
  plot($("acc"), [{ name: "batches", color: "#90caf9", points: batchA }, { name: "accuracy", color: "#1e88e5", points: ep("accuracy") },
    { name: "val_accuracy", color: "#e53935", points: ep("val_accuracy") }], "accuracy");
  const n = h.total_epochs;
  if (h.training) {
    const batch = h.steps ? `, batch ${h.step} of ${h.steps}` : "";
    const rate = h.lr_pending ? `, learning rate ${Number(h.lr_pending.toPrecision(6))} from the next batch`
      : (h.lr ? `, learning rate ${Number(h.lr.toPrecision(6))}` : "");
    $("status").textContent = `${h.paused ? "paused" : "training"}: epoch ${h.epoch} of ${n}${batch}${rate}`;
  } else {
    $("status").textContent = MODEL.live ? `training finished: ${h.epochs.length} of ${n} epochs` : "";
  }
  // Not offered over several ranks (the server says why if asked).
  $("pause").hidden = !h.training || h.ranks > 1;
  $("lr-box").hidden = !h.training;
  if (h.lr !== null && h.lr !== undefined && document.activeElement !== $("lr")) $("lr").placeholder = h.lr.toPrecision(3);
  $("pause").textContent = h.paused ? "Resume" : "Pause";
  // New weights after each epoch: predict the input again with them.
  if (MODEL.live && h.epochs.length !== SEEN_EPOCHS) {
    SEEN_EPOCHS = h.epochs.length;
    if (inputBlob) predict(inputBlob, inputRaw, WHY_CLASS);
  }
  if (h.training) setTimeout(refreshHistory, 1000);
}

async function setRate() {
  const r = await fetch(`/api/lr?value=${encodeURIComponent($("lr").value.trim())}`, { method: "POST" });
  const v = await r.json();
  $("status").textContent = r.ok ? `learning rate ${Number(v.lr_pending.toPrecision(6))} from the next batch` : v.error;
  if (r.ok) $("lr").value = "";
}

async function togglePause() {
  const on = $("pause").textContent === "Pause" ? 1 : 0;
  await fetch(`/api/pause?on=${on}`, { method: "POST" });
  const h = await getJSON("/api/history");
  $("pause").textContent = h.paused ? "Resume" : "Pause";
  $("status").textContent = `${h.paused ? "paused" : "training"}: epoch ${h.epoch} of ${h.total_epochs}`;
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
  box.insertAdjacentHTML("beforeend", t + "</table>");
  // Test images to load into the predictor: one per class (its most
  // confident right prediction), then the most confident mistakes.
  const samples = (title, items, caption, cls) => {
    box.insertAdjacentHTML("beforeend", `<h2>${title} <small>(click one to load it)</small></h2>`);
    const grid = document.createElement("div");
    grid.className = "mistakes " + cls;
    items.forEach((m) => {
      const d = document.createElement("div");
      d.className = "mistake";
      d.dataset.index = Number(m.index);
      d.innerHTML = `<img src="/api/sample?index=${Number(m.index)}" alt="test image ${Number(m.index)}"><span>${caption(m)}</span>`;
      d.onclick = async () => {
        const b = await (await fetch(`/api/sample?index=${Number(m.index)}`)).blob();
        showUpload(b);
        predict(b, true);
      };
      grid.appendChild(d);
    });
    box.appendChild(grid);
  };
  samples("One per class", v.examples, (m) => `${esc(v.classes[m.class])} (${(100 * m.confidence).toFixed(0)} %)`, "examples");
  samples("Most confident mistakes", v.mistakes,
    (m) => `${esc(v.classes[m.truth])} &rarr; ${esc(v.classes[m.pred])} (${(100 * m.confidence).toFixed(0)} %)`, "wrong");
}

async function main() {
  MODEL = await getJSON("/api/model");
  drawArchitecture();
  setupCanvas();
  const [h, w, c] = MODEL.input_shape;
  $("prepare-row").hidden = !(h === 28 && w === 28 && c === 1);
  $("hint").textContent = (h === 28 && w === 28 && c === 1)
    ? "Draw a digit (white on black); the prediction updates as you draw."
    : `The model takes ${h}x${w}x${c} images: upload one (drawings are resized).`;
  $("evaluate").onclick = evaluate;
  $("pause").onclick = togglePause;
  $("lr-set").onclick = setRate;
  refreshHistory();
}

main().catch((e) => { $("status").textContent = "error: " + e.message; });
