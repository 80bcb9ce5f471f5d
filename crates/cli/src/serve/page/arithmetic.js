// convnet explorer: the arithmetic of one output value (CNN Explainer's
// view), from /api/arithmetic: a convolution's patch x kernel + bias and
// activation (a grouped or depthwise filter's own channels), a pooling
// window and its max or mean, a Dense unit's largest products, the softmax's steps;
// and a step-through of the window sliding over the layer's input.
"use strict";

const fmt = (v) => (v === null || v === undefined ? "pad" : Number(v).toPrecision(4));

// Fetches and shows the arithmetic of unit (y, x) of map `ch` of node `index`.
async function showArithmetic(index, ch, y, x) {
  const box = $("arith");
  box.hidden = false;
  const prepare = preparing() && !inputRaw ? 1 : 0;
  const r = await fetch(`/api/arithmetic?layer=${index}&map=${ch}&y=${y}&x=${x}&prepare=${prepare}`,
    { method: "POST", body: inputBlob });
  const v = await r.json();
  if (!r.ok) { box.textContent = v.error; return; }
  if (!LAST) { box.hidden = true; return; } // cleared meanwhile
  box.innerHTML = "";
  const h = document.createElement("h3");
  box.appendChild(h);
  if (v.kind === "conv") {
    h.textContent = `unit (${y}, ${x}) of map ${ch}: ${v.activation}(sum of patch x kernel + bias)`;
    box.appendChild(convTable(v));
    const p = document.createElement("p");
    p.className = "sum";
    p.textContent = `sum ${fmt(v.sum)} + bias ${fmt(v.bias)} = ${fmt(v.z)};  ${v.activation}(${fmt(v.z)}) = ${fmt(v.result)}  (the model: ${fmt(v.model_output)})`;
    box.appendChild(p);
    box.appendChild(slider(index, ch, v));
  } else if (v.kind === "max" || v.kind === "average") {
    h.textContent = `unit (${y}, ${x}) of map ${ch}: the ${v.kind} of its window`;
    const t = document.createElement("table");
    t.className = "arith";
    v.window.forEach((row) => {
      const tr = t.insertRow();
      row.forEach((c) => {
        const td = tr.insertCell();
        td.textContent = fmt(c);
        if (v.kind === "max" && c === v.result) td.className = "hit";
      });
    });
    box.appendChild(t);
    const p = document.createElement("p");
    p.className = "sum";
    p.textContent = `${v.kind} = ${fmt(v.result)}  (the model: ${fmt(v.model_output)})`;
    box.appendChild(p);
    box.appendChild(slider(index, ch, v));
  }
}

// A Dense unit: the largest products x_i w_i, the others summed, + bias,
// then the activation.
async function showDense(index, unit) {
  const box = $("arith");
  box.hidden = false;
  const prepare = preparing() && !inputRaw ? 1 : 0;
  const r = await fetch(`/api/arithmetic?layer=${index}&map=${unit}&y=0&x=0&prepare=${prepare}`, { method: "POST", body: inputBlob });
  const v = await r.json();
  if (!r.ok) { box.textContent = v.error; return; }
  if (!LAST) { box.hidden = true; return; } // cleared meanwhile
  box.innerHTML = "";
  const h = document.createElement("h3");
  h.textContent = `unit ${unit}: ${v.activation}(sum over ${v.inputs} inputs of input x weight + bias)`;
  box.appendChild(h);
  const t = document.createElement("table");
  t.className = "arith";
  t.id = "dense-terms";
  const head = t.insertRow();
  ["input i", "x_i", "w_i", "x_i w_i"].forEach((s) => { const th = document.createElement("th"); th.textContent = s; head.appendChild(th); });
  v.terms.forEach((k) => {
    const tr = t.insertRow();
    [k.i, fmt(k.x), fmt(k.w), fmt(k.product)].forEach((s) => { tr.insertCell().textContent = s; });
  });
  if (v.inputs > v.terms.length) {
    const tr = t.insertRow();
    [`the other ${v.inputs - v.terms.length}`, "", "", fmt(v.rest)].forEach((s) => { tr.insertCell().textContent = s; });
  }
  box.appendChild(t);
  const p = document.createElement("p");
  p.className = "sum";
  p.textContent = `sum ${fmt(v.sum)} + bias ${fmt(v.bias)} = ${fmt(v.z)};  ${v.activation}(${fmt(v.z)}) = ${fmt(v.result)}  (the model: ${fmt(v.model_output)})`;
  box.appendChild(p);
}

// The softmax of the output, step by step.
async function showSoftmax(index) {
  const box = $("arith");
  box.hidden = false;
  const prepare = preparing() && !inputRaw ? 1 : 0;
  const r = await fetch(`/api/arithmetic?layer=${index}&map=0&y=0&x=0&prepare=${prepare}`, { method: "POST", body: inputBlob });
  const v = await r.json();
  if (!r.ok || v.kind !== "softmax") { box.textContent = v.error || "not a softmax output"; return; }
  box.innerHTML = `<h3>softmax: p = exp(z - max z) / sum of exp(z - max z)</h3>`;
  const t = document.createElement("table");
  t.className = "arith";
  const head = t.insertRow();
  ["class", "logit z", "exp(z - max)", "/ sum", "= p"].forEach((s) => { const th = document.createElement("th"); th.textContent = s; head.appendChild(th); });
  v.logits.forEach((z, k) => {
    const tr = t.insertRow();
    [MODEL.classes[k], fmt(z), fmt(v.exps[k]), fmt(v.sum), fmt(v.result[k])].forEach((s) => { tr.insertCell().textContent = s; });
  });
  box.appendChild(t);
  const p = document.createElement("p");
  p.className = "sum";
  p.textContent = `max z = ${fmt(v.max)}; sum of exponentials = ${fmt(v.sum)}`;
  box.appendChild(p);
}

// How many channels the layer's input has (a grouped or depthwise filter reads fewer).
const MODEL_CHANNELS = (v) => v.geometry.input[2];

// Patch x kernel for a convolution: one table per input channel shown (the
// first four), each cell "input x weight"; then every channel's partial sum.
function convTable(v) {
  const [kh, kw, c] = v.shape;
  const wrap = document.createElement("div");
  const show = Math.min(c, 4);
  for (let ch = 0; ch < show; ch++) {
    const t = document.createElement("table");
    t.className = "arith";
    t.caption = t.createCaption();
    t.caption.textContent = `input channel ${v.channels[ch]}: input x weight`;
    for (let ky = 0; ky < kh; ky++) {
      const tr = t.insertRow();
      for (let kx = 0; kx < kw; kx++) {
        const i = (ky * kw + kx) * c + ch;
        const td = tr.insertCell();
        td.textContent = `${fmt(v.rows[ky] === null || v.cols[kx] === null ? null : v.patch[i])} x ${fmt(v.weights[i])}`;
      }
    }
    wrap.appendChild(t);
  }
  if (c > 1) {
    const sums = [];
    for (let ch = 0; ch < c; ch++) {
      let s = 0;
      for (let k = 0; k < kh * kw; k++) s += v.patch[k * c + ch] * v.weights[k * c + ch];
      sums.push(s);
    }
    const p = document.createElement("p");
    p.className = "muted";
    const which = v.channels[0] === 0 && v.channels.length === MODEL_CHANNELS(v) ? "" : ` (channels ${v.channels[0]}..${v.channels[c - 1]}: this filter's group)`;
    p.textContent = `per input channel: ${sums.map((s) => s.toPrecision(3)).join(" + ")}` + (c > show ? ` (${c} channels; the first ${show} shown above)` : "") + which;
    wrap.appendChild(p);
  }
  return wrap;
}

// A step-through of the window sliding over the layer's input (channel 0 of
// it, or the map's own channel for pooling) while the output fills in.
function slider(index, ch, v) {
  const g = v.geometry, meta = MODEL.layers[index];
  const src = MODEL.layers.findIndex((m) => m.name === meta.inputs[0]);
  const input = src >= 0 ? LAST.layers[src] : LAST.input;
  const out = LAST.layers[index];
  const inCh = v.kind === "conv" ? v.channels[0] : ch;
  const [ih, iw, ic] = input.shape, [oh, ow, oc] = out.shape;
  const box = document.createElement("div");
  const button = document.createElement("button");
  button.textContent = "Slide the window";
  button.id = "slide";
  const sIn = Math.max(2, Math.floor(140 / Math.max(ih, iw))), sOut = Math.max(2, Math.floor(140 / Math.max(oh, ow)));
  const a = document.createElement("canvas"), b = document.createElement("canvas");
  a.width = iw * sIn; a.height = ih * sIn; b.width = ow * sOut; b.height = oh * sOut;
  a.className = b.className = "slide";
  const mIn = maxAbs(input.vals, ic, -1), mOut = maxAbs(out.vals, oc, ch);
  const baseIn = divergingCanvas(input.vals, input.shape, inCh, 1, mIn);
  const drawAt = (step) => {
    const y = Math.floor(step / ow), x = step % ow;
    const ca = a.getContext("2d"), cb = b.getContext("2d");
    ca.imageSmoothingEnabled = cb.imageSmoothingEnabled = false;
    ca.drawImage(baseIn, 0, 0, a.width, a.height);
    const top = y * g.strides[0] - g.pad[0], left = x * g.strides[1] - g.pad[1];
    const spanY = (g.kernel[0] - 1) * g.dilation[0] + 1, spanX = (g.kernel[1] - 1) * g.dilation[1] + 1;
    ca.strokeStyle = "#ff9800"; ca.lineWidth = 2;
    ca.strokeRect(left * sIn, top * sIn, spanX * sIn, spanY * sIn);
    // The output so far: computed units in colour, the rest blank.
    const partial = pixelCanvas(oh, ow, 1, (i) => (i <= step ? diverging(out.vals[i * oc + ch] / (mOut || 1)) : [255, 255, 255]));
    cb.drawImage(partial, 0, 0, b.width, b.height);
    cb.strokeStyle = "#ff9800"; cb.lineWidth = 2;
    cb.strokeRect(x * sOut, y * sOut, sOut, sOut);
    button.dataset.step = step;
  };
  drawAt(oh * ow - 1);
  let timer = null;
  button.onclick = () => {
    if (timer) { clearInterval(timer); timer = null; button.textContent = "Slide the window"; return; }
    let step = 0;
    button.textContent = "Stop";
    const per = Math.max(1, Math.ceil(oh * ow / 240)); // about 8 s at 30 steps a second
    timer = setInterval(() => {
      drawAt(Math.min(step, oh * ow - 1));
      step += per;
      if (step >= oh * ow + per) { clearInterval(timer); timer = null; button.textContent = "Slide the window"; }
    }, 33);
  };
  const row = document.createElement("div");
  row.className = "row";
  row.append(labelled(a, v.kind === "conv" ? `input channel ${inCh} (${ih}x${iw})` : `before (${ih}x${iw})`), labelled(b, `map ${ch} (${oh}x${ow})`));
  box.append(button, row);
  return box;
}
