// convnet explorer: values as colours. The server sends every value as
// little-endian f32 (base64); the page colours the model's own numbers:
// the input exactly as the model receives it (0 black, 1 white, nothing
// stretched), feature maps on a diverging scale (blue negative, white 0,
// red positive) scaled per layer or per map, and any unit's value on hover.
"use strict";

// base64 of little-endian f32 bytes -> Float32Array.
function valuesOf(b64) {
  const s = atob(b64);
  const bytes = new Uint8Array(s.length);
  for (let i = 0; i < s.length; i++) bytes[i] = s.charCodeAt(i);
  return new Float32Array(bytes.buffer);
}

// ColorBrewer's RdBu, 5 stops from -1 to 1, linear between them.
const RDBU = [[33, 102, 172], [146, 197, 222], [247, 247, 247], [244, 165, 130], [178, 24, 43]];
function diverging(t) {
  const u = (Math.max(-1, Math.min(1, t)) + 1) * 2; // 0..4
  const i = Math.min(3, Math.floor(u)), f = u - i;
  const a = RDBU[i], b = RDBU[i + 1];
  return [0, 1, 2].map((k) => Math.round(a[k] + (b[k] - a[k]) * f));
}

// A value in [0, 1] as the grey byte it is (the model's input).
const grey = (v) => Math.round(255 * Math.max(0, Math.min(1, v)));

// An h x w canvas shown `scale` times larger; pixel(i) gives [r, g, b].
function pixelCanvas(h, w, scale, pixel) {
  const cv = document.createElement("canvas");
  cv.width = w; cv.height = h;
  cv.style.width = (w * scale) + "px"; cv.style.height = (h * scale) + "px";
  paint(cv, pixel);
  return cv;
}

// Paints every pixel of an existing canvas; pixel(i) gives [r, g, b].
function paint(cv, pixel) {
  const h = cv.height, w = cv.width;
  const ctx = cv.getContext("2d");
  const img = ctx.createImageData(w, h);
  for (let i = 0; i < h * w; i++) {
    const [r, g, b] = pixel(i);
    img.data[4 * i] = r; img.data[4 * i + 1] = g; img.data[4 * i + 2] = b; img.data[4 * i + 3] = 255;
  }
  ctx.putImageData(img, 0, 0);
}

// Dims (blends towards white) what lies outside `win` = {top, bottom, left,
// right} of a map painted by `pixel`; no window: as painted.
function dimOutside(cv, pixel, win) {
  const w = cv.width;
  paint(cv, (i) => {
    const c = pixel(i), y = Math.floor(i / w), x = i % w;
    const inside = !win || (y >= win.top && y <= win.bottom && x >= win.left && x <= win.right);
    return inside ? c : c.map((v) => Math.round(v * 0.25 + 255 * 0.75));
  });
}

// The model's input [H, W, C] (C = 1 grey, 3 colour) as it receives it.
function inputCanvas(vals, shape, scale) {
  const [h, w, c] = shape;
  const pixel = c === 3 ? (i) => [grey(vals[3 * i]), grey(vals[3 * i + 1]), grey(vals[3 * i + 2])]
    : (i) => { const v = grey(vals[i * c]); return [v, v, v]; };
  const cv = pixelCanvas(h, w, scale, pixel);
  cv.pixel = pixel;
  return cv;
}

// Channel `ch` of an [H, W, C] tensor on the diverging scale, `m` = |value| shown fully red or blue.
function divergingCanvas(vals, shape, ch, scale, m) {
  const [h, w, c] = shape;
  const k = m > 0 ? 1 / m : 0;
  const pixel = (i) => diverging(vals[i * c + ch] * k);
  const cv = pixelCanvas(h, w, scale, pixel);
  cv.pixel = pixel;
  return cv;
}

// The largest |value| of channel `ch` (or of every channel when ch < 0).
function maxAbs(vals, c, ch) {
  let m = 0;
  for (let i = ch < 0 ? 0 : ch; i < vals.length; i += ch < 0 ? 1 : c) m = Math.max(m, Math.abs(vals[i]) || 0);
  return m;
}

// A legend: the scale from -m to +m (or 0 to m when nothing is negative).
function legend(m, signed) {
  const d = document.createElement("span");
  d.className = "legend";
  const bar = pixelCanvas(1, 64, 1, (i) => diverging(signed ? (i / 63) * 2 - 1 : i / 63));
  bar.style.width = "64px"; bar.style.height = "8px";
  const lo = document.createElement("span"), hi = document.createElement("span");
  lo.textContent = signed ? (-m).toPrecision(3) : "0";
  hi.textContent = m.toPrecision(3);
  d.append(lo, bar, hi);
  return d;
}

// The floating box that shows a hovered unit's value.
function tip() {
  let t = document.getElementById("tip");
  if (!t) {
    t = document.createElement("div");
    t.id = "tip";
    t.hidden = true;
    document.body.appendChild(t);
  }
  return t;
}

// The unit (y, x) of an h x w map drawn in `cv` under the pointer event
// `e` (inside the border), or null.
function unitAt(cv, e, h, w) {
  const r = cv.getBoundingClientRect();
  const y = Math.floor((e.clientY - r.top - cv.clientTop) * h / cv.clientHeight);
  const x = Math.floor((e.clientX - r.left - cv.clientLeft) * w / cv.clientWidth);
  return y >= 0 && y < h && x >= 0 && x < w ? [y, x] : null;
}

// Hovering `cv` (an h x w map) shows text(y, x) by the pointer.
function hoverValues(cv, h, w, text) {
  cv.addEventListener("mousemove", (e) => {
    const at = unitAt(cv, e, h, w);
    if (!at) return;
    const [y, x] = at;
    const t = tip();
    t.textContent = text(y, x);
    t.hidden = false;
    t.style.left = (e.pageX + 12) + "px";
    t.style.top = (e.pageY + 12) + "px";
  });
  cv.addEventListener("mouseleave", () => { tip().hidden = true; });
}

// A vector (Flatten, Dense, the output) as rows of cells, `labels` under
// each cell when given (class names of the output).
function vectorCanvas(vals, m, labels) {
  const n = vals.length;
  const perRow = Math.min(n, 64), rows = Math.ceil(n / perRow);
  const cell = labels && n <= 32 ? 28 : n <= 16 ? 18 : n <= 64 ? 8 : 5;
  const k = m > 0 ? 1 / m : 0;
  const cv = pixelCanvas(rows, perRow, cell, (i) => (i < n ? diverging(vals[i] * k) : [255, 255, 255]));
  if (!labels) return cv;
  const box = document.createElement("div");
  box.className = "units";
  box.appendChild(cv);
  const names = document.createElement("div");
  names.className = "unit-names";
  labels.slice(0, n).forEach((l) => {
    const s = document.createElement("span");
    s.textContent = l;
    s.title = l;
    s.style.width = cell + "px";
    names.appendChild(s);
  });
  box.appendChild(names);
  return box;
}

// Grad-CAM over the input: the input's grey (or colours) under a heat
// overlay whose opacity and hue follow the map (scaled to its maximum).
function overlayCanvas(input, shape, cam, scale) {
  const [h, w, c] = shape;
  let m = 0;
  cam.forEach((v) => { m = Math.max(m, v); });
  return pixelCanvas(h, w, scale, (i) => {
    const t = m > 0 ? cam[i] / m : 0, a = 0.65 * t;
    const base = c === 3 ? [0, 1, 2].map((k) => grey(input[3 * i + k])) : Array(3).fill(grey(input[i * c]));
    const heat = [255, Math.round(255 * (1 - t)), 0];
    return base.map((b, k) => Math.round(b * (1 - a) + heat[k] * a));
  });
}
