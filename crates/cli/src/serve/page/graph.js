// convnet explorer: a graph model drawn as a graph. Each node sits in the row
// of its depth (the longest path from the input), so the branches of an
// inception module, or a residual block's projection, stand side by side in
// one row; columns ("lanes") keep a path straight: a node takes its first
// input's lane when that is free in its row. An edge to the next row is a
// curve from the box's bottom to the other's top; an edge that skips rows runs
// down a lane that no box and no other source's edge uses in those rows, so
// no edge crosses a box (the browser test checks it).
"use strict";

// The layout: {rows, lanes, place: [{row, lane}] per node (index 0: the
// input, i + 1: layers[i]), edges: [{from, to, lane}] (lane: the channel of an
// edge that skips rows, else null)}. `layers` are in topological order, each
// with the names of its inputs ("input" for the model's input).
function graphLayout(layers) {
  const id = new Map([["input", 0]]);
  layers.forEach((l, i) => id.set(l.name, i + 1));
  const inputs = [[], ...layers.map((l) => l.inputs.map((n) => id.get(n)).filter((j) => j !== undefined))];
  const n = inputs.length;
  const row = new Array(n).fill(0);
  for (let v = 1; v < n; v++) row[v] = 1 + Math.max(0, ...inputs[v].map((u) => row[u]));
  const rows = 1 + Math.max(...row);
  // occupied[r]: lane -> what uses it there (a node: "n<v>", a channel: "e<source>")
  const occupied = Array.from({ length: rows }, () => new Map());
  const free = (r, lane, who) => !occupied[r].has(lane) || occupied[r].get(lane) === who;
  const lane = new Array(n).fill(0);
  occupied[0].set(0, "n0");
  const order = [...Array(n).keys()].slice(1).sort((a, b) => row[a] - row[b] || a - b);
  for (const v of order) {
    const want = inputs[v].length ? lane[inputs[v][0]] : 0;
    let l = want;
    if (!free(row[v], l, "n" + v)) { l = 0; while (!free(row[v], l, "n" + v)) l++; }
    lane[v] = l;
    occupied[row[v]].set(l, "n" + v);
  }
  // Channels for the edges that skip rows, after every node is placed:
  // the source's lane, else the target's, else the nearest free one.
  const edges = [];
  for (let v = 1; v < n; v++) {
    for (const u of inputs[v]) {
      if (row[v] === row[u] + 1) { edges.push({ from: u, to: v, lane: null }); continue; }
      const who = "e" + u;
      const clear = (l) => { for (let r = row[u] + 1; r < row[v]; r++) if (!free(r, l, who)) return false; return true; };
      const tries = [lane[u], lane[v]];
      for (let d = 1; d <= n; d++) tries.push(lane[u] + d, lane[u] - d);
      const l = tries.find((t) => t >= 0 && clear(t));
      for (let r = row[u] + 1; r < row[v]; r++) occupied[r].set(l, who);
      edges.push({ from: u, to: v, lane: l });
    }
  }
  const lanes = 1 + Math.max(...lane, ...edges.map((e) => e.lane ?? 0));
  return { rows, lanes, place: row.map((r, v) => ({ row: r, lane: lane[v] })), edges };
}

// Draws the layout into #arch: one absolutely placed box per node (ids
// layer-input and layer-<index>, as in the list of a chain) and the edges in
// an SVG beneath them. `makeBox(v)` builds node v's box (0: the input).
function drawGraph(arch, makeBox) {
  const g = graphLayout(MODEL.layers);
  const gapX = 10, gapY = 16, boxH = 40;
  arch.style.width = "";
  const boxW = Math.max(96, Math.min(240, (arch.clientWidth - (g.lanes - 1) * gapX) / g.lanes));
  const x = (l) => l * (boxW + gapX), y = (r) => r * (boxH + gapY);
  arch.classList.add("graph");
  arch.style.height = `${y(g.rows) - gapY}px`;
  arch.style.width = `${x(g.lanes) - gapX}px`;
  const svg = document.createElementNS("http://www.w3.org/2000/svg", "svg");
  svg.id = "edges";
  svg.setAttribute("width", x(g.lanes) - gapX);
  svg.setAttribute("height", y(g.rows) - gapY);
  arch.appendChild(svg);
  g.place.forEach((p, v) => {
    const d = makeBox(v);
    d.style.left = `${x(p.lane)}px`;
    d.style.top = `${y(p.row)}px`;
    d.style.width = `${boxW}px`;
    d.style.height = `${boxH}px`;
    arch.appendChild(d);
  });
  const mid = (v) => x(g.place[v].lane) + boxW / 2;
  for (const e of g.edges) {
    const x1 = mid(e.from), y1 = y(g.place[e.from].row) + boxH;
    const x2 = mid(e.to), y2 = y(g.place[e.to].row);
    let d;
    if (e.lane === null) {
      d = `M ${x1} ${y1} C ${x1} ${y1 + gapY / 2}, ${x2} ${y2 - gapY / 2}, ${x2} ${y2}`;
    } else {
      // Into the channel in the gap below the source, down it, out of it in
      // the gap above the target.
      const c = x(e.lane) + boxW / 2, top = y1 + gapY, bottom = y2 - gapY;
      d = `M ${x1} ${y1} C ${x1} ${y1 + gapY / 2}, ${c} ${y1 + gapY / 2}, ${c} ${top}` +
        ` L ${c} ${bottom} C ${c} ${bottom + gapY / 2}, ${x2} ${y2 - gapY / 2}, ${x2} ${y2}`;
    }
    const path = document.createElementNS("http://www.w3.org/2000/svg", "path");
    path.setAttribute("d", d);
    path.setAttribute("class", e.lane === null ? "edge" : "edge skip");
    path.dataset.from = e.from === 0 ? "input" : MODEL.layers[e.from - 1].name;
    path.dataset.to = MODEL.layers[e.to - 1].name;
    svg.appendChild(path);
  }
}
