// report.js — the script of `tidemark report`'s page (compiled into the
// binary by embed.cmake; no library, nothing fetched).  It reads the JSON in
// #tm-data (written by viz/report_data.c and cmd_report.c), builds the
// frame tree of each trace and draws on canvases: flame graph, timeline,
// sweep charts.  State lives in the URL's hash (#trace=0&view=peak...), so a
// view can be linked and the tests can open one directly.  What the page
// shows is also written, as JSON, into #tm-selftest for the tests to read,
// and every error into #tm-errors.
(function () {
  'use strict';
  var errors = [];
  function fail(msg) {
    errors.push(String(msg));
    var e = document.getElementById('tm-errors');
    e.textContent = errors.join('\n');
    e.style.display = 'block';
  }
  window.addEventListener('error', function (e) {
    fail('error: ' + e.message + ' (line ' + e.lineno + ')');
  });

  // --- helpers -------------------------------------------------------------
  function el(tag, attrs, kids) {
    var e = document.createElement(tag);
    for (var k in attrs || {}) {
      if (k === 'text') e.textContent = attrs[k];
      else if (k === 'cls') e.className = attrs[k];
      else if (k.slice(0, 2) === 'on') e.addEventListener(k.slice(2), attrs[k]);
      else e.setAttribute(k, attrs[k]);
    }
    (kids || []).forEach(function (c) {
      if (c != null) e.appendChild(typeof c === 'string' ? document.createTextNode(c) : c);
    });
    return e;
  }
  function bytes(v) {
    if (v == null || !isFinite(v)) return '-';
    var neg = v < 0, a = Math.abs(v), u = ['B', 'KiB', 'MiB', 'GiB', 'TiB'], i = 0;
    while (a >= 1024 && i < 4) { a /= 1024; i++; }
    var s = i === 0 ? String(Math.round(a)) : a.toFixed(a < 10 ? 2 : a < 100 ? 1 : 0);
    return (neg ? '-' : '') + s + ' ' + u[i];
  }
  // Bytes per invocation: below 10 B with one decimal (0.1 B kept per call
  // matters over 500 000 calls).
  function perInv(v) { return v != null && isFinite(v) && Math.abs(v) < 10 && v !== Math.round(v) ? v.toFixed(1) + ' B' : bytes(v); }
  function blocks(n) { return count(n) + (n === 1 ? ' block' : ' blocks'); }
  function count(v) { return v == null ? '-' : Math.round(v).toLocaleString('en-US'); }
  function fixed(v, d) { return v == null || !isFinite(v) ? '-' : Number(v).toFixed(d); }
  function secs(v) { return v < 1 ? (v * 1000).toFixed(1) + ' ms' : v.toFixed(3) + ' s'; }
  function hashColor(s, sat, light) {
    var h = 0;
    for (var i = 0; i < s.length; i++) h = (h * 31 + s.charCodeAt(i)) | 0;
    return 'hsl(' + (Math.abs(h) % 360) + ',' + sat + '%,' + light + '%)';
  }
  function canvas(w, h) {
    var c = el('canvas'), r = window.devicePixelRatio || 1;
    c.width = w * r; c.height = h * r;
    c.style.width = w + 'px'; c.style.height = h + 'px';
    var g = c.getContext('2d');
    g.scale(r, r);
    g.font = '11px system-ui, sans-serif';
    return {c: c, g: g, w: w, h: h};
  }
  var tip = null;
  function showTip(ev, lines) {
    if (!tip) { tip = el('div', {id: 'tm-tip'}); document.body.appendChild(tip); }
    tip.textContent = '';
    lines.forEach(function (l, i) { tip.appendChild(i ? el('div', {text: l}) : el('b', {text: l})); });
    tip.style.display = 'block';
    var x = ev.clientX + 14, y = ev.clientY + 14;
    if (x + 420 > window.innerWidth) x = Math.max(0, ev.clientX - 420);
    tip.style.left = x + 'px'; tip.style.top = y + 'px';
  }
  function hideTip() { if (tip) tip.style.display = 'none'; }

  // --- state in the URL hash ------------------------------------------------
  var state = {trace: 0, view: 'leaked', measure: 'bytes', region: '', range: '', q: '', zoom: 0, sort: '-1', interp: 0};
  function readHash() {
    location.hash.replace(/^#/, '').split('&').forEach(function (kv) {
      var i = kv.indexOf('=');
      if (i > 0) {
        var k = decodeURIComponent(kv.slice(0, i)), v = decodeURIComponent(kv.slice(i + 1));
        if (k in state) state[k] = typeof state[k] === 'number' ? Number(v) || 0 : v;
      }
    });
  }
  function writeHash() {
    var parts = [];
    for (var k in state) parts.push(k + '=' + encodeURIComponent(state[k]));
    history.replaceState(null, '', '#' + parts.join('&'));
  }

  // --- the model of one trace -------------------------------------------------
  var KINDS = [
    ['Python (own code)', '#5cb85c'], ['Python (library)', '#b5dfa5'],
    ['native (own code)', '#f0a04b'], ['native (library)', '#8fb8de'],
    ['interpreter', '#c8c8c8'], ['unknown', '#e8e8e8']];

  // The tree of one trace.  With `hide`, the interpreter's frames and
  // frames with no symbol are left out and the paths that become the same
  // merge (a Python function called through different C paths of the
  // interpreter is one box); `remap` takes the data's node ids to the
  // model's.  Parents come before their children in the data, which gives
  // each node as (its id minus its parent's, frame).
  // The tree (D.tree) is one for all the traces of the page.
  function Model(t, tree, hide) {
    this.t = t;
    this.tree = tree;
    var nd = tree.nodes.length / 2 + 1, F = tree.frames, S = tree.strs;
    var remap = new Int32Array(nd), parent = [-1], frame = [-1], keys = {}, i;
    for (i = 1; i < nd; i++) {
      var p = remap[i - tree.nodes[2 * (i - 1)]], f = tree.nodes[2 * (i - 1) + 1];
      if (hide && (F[5 * f] >= 4 || F[5 * f + 1] < 0 || S[F[5 * f + 1]] === '??')) { remap[i] = p; continue; }
      var k = p + ',' + f;
      if (!(k in keys)) { keys[k] = parent.length; parent.push(p); frame.push(f); }
      remap[i] = keys[k];
    }
    var n = parent.length;
    this.n = n;
    this.remap = remap;
    this.parent = Int32Array.from(parent);
    this.frame = Int32Array.from(frame);
    this.depth = new Int32Array(n);
    var kids = [];
    for (i = 0; i < n; i++) kids.push([]);
    for (i = 1; i < n; i++) {
      this.depth[i] = this.depth[this.parent[i]] + 1;
      kids[this.parent[i]].push(i);
    }
    this.kids = kids;
  }
  Model.prototype.fr = function (node) {
    var f = this.frame[node], F = this.tree.frames, S = this.tree.strs;
    if (f < 0) return {name: 'all', kind: 5, file: null, line: 0, module: null};
    var o = 5 * f;
    return {kind: F[o], name: F[o + 1] >= 0 ? S[F[o + 1]] : '??',
            file: F[o + 2] >= 0 ? S[F[o + 2]] : null, line: F[o + 3],
            module: F[o + 4] >= 0 ? S[F[o + 4]] : null};
  };
  Model.prototype.label = function (node) {
    var f = this.fr(node);
    if (f.kind <= 1 && f.file) return f.name + ' (' + f.file.replace(/.*\//, '') + ':' + f.line + ')';
    return f.name;
  };
  // Totals per node from [node, bytes, blocks, ...] (self values at leaves).
  Model.prototype.totals = function (triples, stride, pick) {
    var b = new Float64Array(this.n), k = new Float64Array(this.n);
    for (var i = 0; i < triples.length; i += stride) {
      if (pick && !pick(triples, i)) continue;
      b[this.remap[triples[i]]] += triples[i + stride - 2];
      k[this.remap[triples[i]]] += triples[i + stride - 1];
    }
    for (var v = this.n - 1; v > 0; v--) {
      b[this.parent[v]] += b[v];
      k[this.parent[v]] += k[v];
    }
    return {bytes: b, blocks: k};
  };

  // The values the flame graph shows for the current state.
  function viewData(m) {
    var t = m.t, v = state.view;
    if (v === 'kept') {
      var r = t.regions.filter(function (x) { return x.name === state.region; })[0] ||
              t.regions[0];
      if (!r) return {tot: m.totals([], 3), title: 'kept: no regions in this trace'};
      state.region = r.name;
      var tot = m.totals(r.kept, 3);
      return {tot: tot, region: r,
              title: 'kept by region ' + r.name + ' (inclusive): allocated in an invocation and alive when it ended, ' +
                     perInv(tot.bytes[0] / Math.max(1, r.invocations)) + ' per invocation over ' +
                     count(r.invocations) + (r.invocations === 1 ? ' invocation' : ' invocations')};
    }
    if (v === 'range') {
      var ab = rangeBins(t);
      var a = ab[0], b = ab[1];
      return {tot: m.totals(t.range.cells, 5, function (c, i) {
        return c[i + 1] >= a && c[i + 1] <= b && c[i + 2] > b;
      }), title: 'allocated between ' + secs(a * t.range.bin) + ' and ' + secs((b + 1) * t.range.bin) +
                 ' and alive at its end'};
    }
    if (!t.views[v]) v = state.view = 'leaked';
    var titles = {leaked: 'leaked at exit (built-in suppressions applied, as in tidemark leaks)',
                  peak: 'live at the heap peak (' + secs(t.summary.peak_time) + ')',
                  allocated: 'allocated over the whole run'};
    return {tot: m.totals(t.views[v], 3), title: titles[v]};
  }
  function rangeBins(t) {
    var p = state.range.split(','), bin = t.range.bin, nb = t.range.bins;
    var a = Math.max(0, Math.floor(Number(p[0]) / bin || 0));
    var b = Math.min(nb - 1, Math.max(a, Math.ceil(Number(p[1]) / bin || nb) - 1));
    return [a, b];
  }

  // --- flame graph (icicle: the outermost frame on top) ------------------------
  function flame(box, m, vd) {
    var W = Math.max(600, box.clientWidth - 4), ROW = 17;
    var val = state.measure === 'count' && (state.view === 'allocated' || state.view === 'kept' ||
              state.view === 'range') ? vd.tot.blocks : vd.tot.bytes;
    var isCount = val === vd.tot.blocks;
    var zoom = state.zoom > 0 && state.zoom < m.n && val[state.zoom] > 0 ? state.zoom : 0;
    var root = zoom, total = val[0];
    var q = state.q.toLowerCase(), matched = new Uint8Array(m.n), matchTotal = 0;
    // Boxes: x, width, node; children ordered by value, largest left.
    var rects = [], maxd = 0, base = m.depth[root];
    var chain = [];
    for (var a = m.parent[root]; a >= 0; a = m.parent[a]) chain.unshift(a);
    chain.forEach(function (nd, i) { rects.push([0, W, nd, i]); });
    var off = chain.length;
    function lay(nd, x, w, d) {
      rects.push([x, w, nd, d]);
      if (d > maxd) maxd = d;
      var ks = m.kids[nd].filter(function (k) { return val[k] > 0; });
      ks.sort(function (p, r) { return val[r] - val[p]; });
      var cx = x;
      for (var i = 0; i < ks.length; i++) {
        var cw = w * val[ks[i]] / val[nd];
        if (cw >= 0.4) lay(ks[i], cx, cw, d + 1);
        cx += cw;
      }
    }
    if (val[root] > 0) lay(root, 0, W, off);
    if (q) {
      // The matched share counts each matched box once (not its matched
      // descendants again).
      for (var v = 1; v < m.n; v++) {
        if (val[v] > 0 && m.label(v).toLowerCase().indexOf(q) >= 0) matched[v] = 1;
      }
      for (v = 1; v < m.n; v++) {
        if (!matched[v]) continue;
        var up = m.parent[v], inside = false;
        for (; up > 0; up = m.parent[up]) if (matched[up]) { inside = true; break; }
        if (!inside) matchTotal += val[v];
      }
    }
    var cv = canvas(W, (maxd + 1) * ROW + 2), g = cv.g;
    rects.forEach(function (r) {
      var nd = r[2], f = m.fr(nd), y = r[3] * ROW;
      g.fillStyle = matched[nd] ? '#e040e0' : nd === 0 ? '#ddd' : KINDS[f.kind][1];
      g.fillRect(r[0] + 0.5, y + 0.5, Math.max(0.5, r[1] - 1), ROW - 1);
      if (r[1] > 30) {
        g.fillStyle = '#111';
        g.save();
        g.beginPath(); g.rect(r[0], y, r[1] - 2, ROW); g.clip();
        g.fillText(nd === 0 ? 'all (' + (isCount ? count(total) : bytes(total)) + ')' : m.label(nd),
                   r[0] + 3, y + 12);
        g.restore();
      }
    });
    function hit(ev) {
      var b = cv.c.getBoundingClientRect(), x = ev.clientX - b.left, y = ev.clientY - b.top;
      var d = Math.floor(y / ROW);
      for (var i = rects.length - 1; i >= 0; i--) {
        var r = rects[i];
        if (r[3] === d && x >= r[0] && x < r[0] + r[1]) return r[2];
      }
      return -1;
    }
    cv.c.addEventListener('mousemove', function (ev) {
      var nd = hit(ev);
      if (nd < 0) return hideTip();
      var f = m.fr(nd), share = total ? 100 * val[nd] / total : 0;
      var lines = [m.label(nd),
        bytes(vd.tot.bytes[nd]) + ' in ' + blocks(vd.tot.blocks[nd]) + ' (' +
          share.toFixed(1) + '% of the view' + (isCount ? ', by count' : '') + ')',
        KINDS[f.kind][0]];
      if (vd.region)
        lines.push(perInv(vd.tot.bytes[nd] / Math.max(1, vd.region.invocations)) + ' per invocation of ' +
                   vd.region.name + ' (' + count(vd.region.invocations) + ')');
      if (f.file) lines.push(f.file + (f.line ? ':' + f.line : ''));
      if (f.module) lines.push(f.module);
      showTip(ev, lines);
    });
    cv.c.addEventListener('mouseleave', hideTip);
    cv.c.addEventListener('click', function (ev) {
      var nd = hit(ev);
      if (nd >= 0) { state.zoom = nd === zoom ? m.parent[nd] : nd; if (state.zoom < 0) state.zoom = 0; render(); }
    });
    box.appendChild(cv.c);
    return {total: total, isCount: isCount, matchTotal: matchTotal, val: val, boxes: rects.length};
  }

  // --- timeline -----------------------------------------------------------------
  function timeline(box, t, small, onRange) {
    var tl = t.timeline, W = small ? 300 : Math.max(600, box.clientWidth - 4);
    var lanes = small ? 0 : tl.lanes, H = small ? 90 : 220 + lanes * 14;
    var cv = canvas(W, H), g = cv.g;
    var L = small ? 4 : 64, R = small ? 4 : 64, T = small ? 4 : 10, B = small ? 4 : 24 + lanes * 14;
    var dur = Math.max(t.summary.duration, 1e-9);
    var hmax = 1, rmax = 1, i;
    for (i = 2; i < tl.heap.length; i += 3) hmax = Math.max(hmax, tl.heap[i]);
    for (i = 1; i < tl.rss.length; i += 2) rmax = Math.max(rmax, tl.rss[i]);
    var maps = tl.maps || [];
    for (i = 1; i < maps.length; i += 2) hmax = Math.max(hmax, maps[i]);
    var own = rmax > 4 * hmax;   // RSS on its own axis when far above the heap
    var ymaxL = own ? hmax : Math.max(hmax, rmax), ymaxR = own ? rmax : ymaxL;
    function X(s) { return L + (W - L - R) * s / dur; }
    function Y(v, m) { return T + (H - T - B) * (1 - v / m); }
    g.strokeStyle = '#ccc'; g.strokeRect(L, T, W - L - R, H - T - B);
    if (!small) {
      g.fillStyle = '#333';
      for (i = 0; i <= 4; i++) {
        var yv = ymaxL * i / 4;
        g.fillText(bytes(yv), 2, Y(yv, ymaxL) + 4);
        if (own) g.fillText(bytes(ymaxR * i / 4), W - R + 4, Y(yv, ymaxL) + 4);
        g.fillText(secs(dur * i / 4), X(dur * i / 4) - (i === 4 ? 40 : i ? 20 : 0), H - B + 14);
      }
    }
    // The heap: the band between each bucket's lowest and highest value.
    function heapArea() {
      var h = tl.heap, bw = tl.bucket || 0, k;
      if (!h.length) return;
      g.fillStyle = 'rgba(31,95,168,0.25)'; g.strokeStyle = '#1f5fa8'; g.lineWidth = 1.5;
      g.beginPath();
      for (k = 0; k < h.length; k += 3) {
        g.lineTo(X(h[k]), Y(h[k + 2], ymaxL)); g.lineTo(X(Math.min(dur, h[k] + bw)), Y(h[k + 2], ymaxL));
      }
      for (k = h.length - 3; k >= 0; k -= 3) {
        g.lineTo(X(Math.min(dur, h[k] + bw)), Y(h[k + 1], ymaxL)); g.lineTo(X(h[k]), Y(h[k + 1], ymaxL));
      }
      g.closePath(); g.fill();
      g.beginPath();
      for (k = 0; k < h.length; k += 3) {
        g.lineTo(X(h[k]), Y(h[k + 2], ymaxL)); g.lineTo(X(Math.min(dur, h[k] + bw)), Y(h[k + 2], ymaxL));
      }
      g.stroke();
    }
    function line(s, col, m) {
      g.strokeStyle = col; g.lineWidth = 1.5; g.beginPath();
      for (var k = 0; k < s.length; k += 2) g.lineTo(X(s[k]), Y(s[k + 1], m));
      if (s.length) g.lineTo(X(dur), Y(s[s.length - 1], m));
      g.stroke();
    }
    var sel = null;
    function draw() {
      g.clearRect(L + 1, T + 1, W - L - R - 2, H - T - B - 2);
      if (sel) { g.fillStyle = '#cfe0ff'; g.fillRect(X(sel[0]), T + 1, Math.max(1, X(sel[1]) - X(sel[0])), H - T - B - 2); }
      if (!small) {
        // Labels in up to 4 rows, each placed in the first row where it
        // does not run into the one before it.
        var ends = [-1e9, -1e9, -1e9, -1e9];
        tl.marks.forEach(function (mk) {
          var x = X(mk[0]), w = g.measureText(mk[1]).width + 6, row = 0;
          while (row < 3 && ends[row] > x) row++;
          ends[row] = x + w;
          g.strokeStyle = '#999'; g.setLineDash([3, 3]); g.beginPath();
          g.moveTo(x, T); g.lineTo(x, H - B); g.stroke(); g.setLineDash([]);
          g.fillStyle = '#555'; g.fillText(mk[1], x + 2, T + 10 + 12 * row);
        });
      }
      line(tl.rss, '#e67e22', ymaxR);
      if (maps.length) line(maps, '#2a9d4a', ymaxL);
      heapArea();
    }
    draw();
    if (!small) {
      tl.bands.forEach(function (b) {
        var y = H - B + 20 + b[3] * 14;
        g.fillStyle = hashColor(b[2], 55, 65);
        g.fillRect(X(b[0]), y, Math.max(1, X(b[1]) - X(b[0])), 11);
      });
      var x0 = null;
      cv.c.addEventListener('mousedown', function (ev) { x0 = ev.offsetX; });
      cv.c.addEventListener('mousemove', function (ev) {
        var s = Math.min(dur, Math.max(0, (ev.offsetX - L) / (W - L - R) * dur));
        if (x0 !== null) {
          var s0 = Math.min(dur, Math.max(0, (x0 - L) / (W - L - R) * dur));
          sel = [Math.min(s, s0), Math.max(s, s0)]; draw();
        }
        var band = tl.bands.filter(function (b) {
          var y = H - B + 20 + b[3] * 14;
          return ev.offsetY >= y && ev.offsetY < y + 11 && s >= b[0] - dur / W && s <= b[1] + dur / W;
        })[0];
        var hv = 0;
        var hl = 0;
        for (var k = 0; k < tl.heap.length; k += 3) if (tl.heap[k] <= s) { hl = tl.heap[k + 1]; hv = tl.heap[k + 2]; }
        showTip(ev, [secs(s), 'heap ' + (hl === hv ? bytes(hv) : bytes(hl) + ' - ' + bytes(hv))].concat(band ? ['region ' + band[2] + ' ' +
          secs(band[0]) + ' - ' + secs(band[1])] : []).concat(['drag to pick a time range']));
      });
      cv.c.addEventListener('mouseleave', hideTip);
      cv.c.addEventListener('mouseup', function (ev) {
        if (x0 === null) return;
        var a = Math.max(0, (Math.min(x0, ev.offsetX) - L) / (W - L - R) * dur);
        var b = Math.min(dur, (Math.max(x0, ev.offsetX) - L) / (W - L - R) * dur);
        x0 = null;
        if (b - a > dur / 500) onRange(a, b);
      });
      if (state.view === 'range' && state.range) {
        var p = state.range.split(',');
        sel = [Number(p[0]), Number(p[1])]; draw();
      }
    }
    box.appendChild(cv.c);
    if (!small) {
      var lg = el('div', {cls: 'legend'}, [
        el('span', {}, [el('i', {style: 'background:#1f5fa8'}), 'heap (live bytes, lowest to highest in each of ' + (tl.heap.length / 3) + ' steps)']),
        el('span', {}, [el('i', {style: 'background:#e67e22'}), 'RSS' + (own ? ' (right axis)' : '')])]);
      if (maps.length)
        lg.appendChild(el('span', {}, [el('i', {style: 'background:#2a9d4a'}), 'anonymous maps (mapped bytes)']));
      var names = {};
      tl.bands.forEach(function (b) { names[b[2]] = 1; });
      Object.keys(names).slice(0, 20).forEach(function (nm) {
        lg.appendChild(el('span', {}, [el('i', {style: 'background:' + hashColor(nm, 55, 65)}), nm]));
      });
      box.appendChild(lg);
    }
    return cv;
  }

  // --- regions table -----------------------------------------------------------
  // Columns: [title, value, format, tooltip]; the values are the keys of
  // `tidemark regions --json` (own = exclusive, incl = inclusive).
  function f2(v) { return fixed(v, 2); }
  function f1(v) { return fixed(v, 1); }
  var COLS = [
    ['region', function (r) { return r.name; }, String, 'the region\'s name'],
    ['invocations', function (r) { return r.invocations; }, count, 'times it was entered'],
    ['allocs/inv', function (r) { return r.own.allocs.mean; }, f2, 'allocations per invocation while it was the innermost region'],
    ['allocs/inv incl.', function (r) { return r.incl.allocs.mean; }, f2, 'allocations per invocation, nested regions included'],
    ['net B/inv', function (r) { return r.own.net_bytes.mean; }, f1, 'bytes allocated minus bytes freed per invocation (own)'],
    ['net B/inv incl.', function (r) { return r.incl.net_bytes.mean; }, f1, 'net bytes per invocation, nested regions included'],
    ['kept B/inv', function (r) { return r.own.kept_bytes.mean; }, f1, 'bytes allocated in an invocation and alive when it ended (own)'],
    ['kept B/inv incl.', function (r) { return r.incl.kept_bytes.mean; }, f1, 'kept bytes per invocation, nested regions included'],
    ['peak B/inv incl.', function (r) { return r.incl.peak_bytes.mean; }, f1, 'most bytes an invocation had allocated and alive at once'],
    ['grows B/inv', function (r) { return r.kept_per_invocation; }, f1, 'how much the live memory allocated in it grows with each call (fitted): what the sweep judges'],
    ['inv. keeping', function (r) { return r.incl.invocations_keeping; }, count, 'invocations that kept bytes (inclusive)'],
    ['escaped', function (r) { return r.escaped_bytes; }, bytes, 'kept by an invocation, freed later'],
    ['leaked at exit', function (r) { return r.leaked_bytes; }, bytes, 'allocated in it and never freed'],
    ['accumulates', function (r) { return r.accumulates ? 1 : 0; }, function (v) { return v ? 'yes' : 'no'; }, 'grows B/inv is over the threshold']];
  function regionsTable(box, t) {
    if (!t.regions.length) {
      box.appendChild(el('p', {cls: 'muted', text: 'No regions in this trace (tidemark_region_begin/end, tidemark.region(), or the bridge\'s callbacks open them).'}));
      return;
    }
    var sortCol = Math.min(COLS.length - 1, Math.abs(parseInt(state.sort, 10) || 0));
    var sortDesc = String(state.sort).charAt(0) === '-';
    var rows = t.regions.slice();
    rows.sort(function (a, b) {
      var x = COLS[sortCol][1](a), y = COLS[sortCol][1](b);
      var c = x < y ? -1 : x > y ? 1 : 0;
      return sortDesc ? -c : c;
    });
    var head = el('tr', {}, COLS.map(function (c, i) {
      return el('th', {text: c[0] + (i === sortCol ? (sortDesc ? ' \u25bc' : ' \u25b2') : ''), title: c[3], onclick: function () {
        var desc = sortCol === i ? !sortDesc : i !== 0;
        state.sort = (desc ? '-' : '') + i;
        render();
      }});
    }));
    var body = el('tbody', {}, rows.map(function (r) {
      return el('tr', {cls: state.view === 'kept' && state.region === r.name ? 'sel' : '',
                       'data-region': r.name,
                       onclick: function () { state.view = 'kept'; state.region = r.name; state.zoom = 0; render(); }},
        COLS.map(function (c) { return el('td', {text: c[2](c[1](r)), 'data-value': c[1](r)}); }));
    }));
    box.appendChild(el('div', {cls: 'scroll'}, [el('table', {id: 'tm-regions'}, [el('thead', {}, [head]), body])]));
    box.appendChild(el('p', {cls: 'muted', text: 'The figures of tidemark regions: plain columns count what ran while the region was the innermost open one, "incl." counts nested regions too. Kept = allocated in an invocation and alive when it ended; grows = how much of that stays call after call. Click a column to sort, a row to see in the flame graph what the region kept.'}));
  }

  // --- summary ---------------------------------------------------------------
  function summary(box, t) {
    var s = t.summary, lk = t.leaks;
    var rows = [
      ['leak verdict', el('span', {cls: 'verdict ' + lk.verdict, text: lk.verdict})],
      ['leaked (unsuppressed)', bytes(lk.leaked_bytes) + ' in ' + blocks(lk.leaked_blocks)],
      ['suppressed (runtimes)', bytes(lk.suppressed_bytes) + ' in ' + blocks(lk.suppressed_blocks)],
      ['duration', secs(s.duration)],
      ['allocations', count(s.alloc_calls) + ' calls, ' + bytes(s.bytes_allocated)],
      ['frees', count(s.free_calls) + ' calls'],
      ['heap peak', bytes(s.peak_bytes) + ' in ' + blocks(s.peak_blocks) + ' at ' + secs(s.peak_time)],
      ['RSS peak', s.rss_peak_bytes ? bytes(s.rss_peak_bytes) : 'not sampled'],
      ['anonymous maps', s.mmap_calls ? bytes(s.maps_bytes) + ' in ' + count(s.maps_count) + (s.maps_count === 1 ? ' range' : ' ranges') + ' at the end, peak ' +
        bytes(s.maps_peak_bytes) + ' at ' + secs(s.maps_peak_time) : 'none recorded'],
      ['threads', count(s.threads)],
      ['ended by', s.end + (s.lost_events ? ', ' + count(s.lost_events) + ' events lost' : '')]];
    var rec = t.recorded || {};
    rows.push(['python stacks', rec.python_stacks || 'off']);
    rows.push(['python allocator', rec.python_allocator || s.python_allocator || 'not recorded']);
    for (var k in rec) if (k !== 'python_stacks' && k !== 'python_allocator') rows.push([k.replace(/_/g, ' '), rec[k]]);
    rows.push(['events', count(s.events)]);
    if (t.param != null) rows.push(['parameter', String(t.param)]);
    box.appendChild(el('table', {cls: 'kv', id: 'tm-summary'}, rows.map(function (r) {
      return el('tr', {}, [el('td', {text: r[0]}), el('td', {}, [r[1]])]);
    })));
  }

  // --- sweep page -------------------------------------------------------------
  function chart(sw, values, label, threshold, isBytes) {
    var cv = canvas(300, 160), g = cv.g, L = 60, R = 8, T = 16, B = 22;
    var xs = [], ys = [];
    for (var i = 0; i < values.length; i++) {
      if (values[i] != null && sw.values[i] != null) { xs.push(sw.values[i]); ys.push(values[i]); }
    }
    g.fillStyle = '#333'; g.fillText(label, 4, 11);
    if (!xs.length) return cv.c;
    var x0 = Math.log(Math.min.apply(null, xs)), x1 = Math.log(Math.max.apply(null, xs));
    var y0 = Math.min(0, Math.min.apply(null, ys)), y1 = Math.max.apply(null, ys.concat(threshold != null ? [threshold] : []));
    if (y1 <= y0) y1 = y0 + 1;
    function X(v) { return L + (300 - L - R) * (x1 > x0 ? (Math.log(v) - x0) / (x1 - x0) : 0.5); }
    function Y(v) { return T + (160 - T - B) * (1 - (v - y0) / (y1 - y0)); }
    g.strokeStyle = '#ccc'; g.strokeRect(L, T, 300 - L - R, 160 - T - B);
    if (isBytes == null) isBytes = /bytes/.test(label);
    g.fillStyle = '#333';
    g.fillText(isBytes ? bytes(y1) : fixed(y1, 1), 2, T + 8);
    g.fillText(isBytes ? bytes(y0) : fixed(y0, 1), 2, 160 - B);
    // The parameter's values under the axis, skipping those that would run
    // into the one before; the last one kept inside the chart.
    var lastEnd = -1e9;
    xs.forEach(function (x) {
      var txt = String(x), w = g.measureText(txt).width;
      var at = Math.min(300 - R - w, Math.max(L - w / 2, X(x) - w / 2));
      if (at < lastEnd + 4) return;
      g.fillText(txt, at, 160 - 6);
      lastEnd = at + w;
    });
    if (threshold != null) {
      g.strokeStyle = '#c0392b'; g.setLineDash([4, 3]); g.beginPath();
      g.moveTo(L, Y(threshold)); g.lineTo(300 - R, Y(threshold)); g.stroke(); g.setLineDash([]);
    }
    g.strokeStyle = '#1f5fa8'; g.lineWidth = 1.5; g.beginPath();
    xs.forEach(function (x, k) { if (k) g.lineTo(X(x), Y(ys[k])); else g.moveTo(X(x), Y(ys[k])); });
    g.stroke();
    g.fillStyle = '#1f5fa8';
    xs.forEach(function (x, k) { g.fillRect(X(x) - 2, Y(ys[k]) - 2, 5, 5); });
    return cv.c;
  }
  function sweepPage(box) {
    var sw = D.sweep, vd = sw.verdict || 'NONE';
    box.appendChild(el('p', {}, ['Verdict over ' + D.traces.length + ' traces, against ' + sw.param + ': ',
      el('span', {cls: 'verdict ' + vd, id: 'tm-sweep-verdict', text: sw.verdict || 'no verdict'})]));
    if (sw.reasons.length)
      box.appendChild(el('ul', {}, sw.reasons.map(function (r) { return el('li', {text: r}); })));
    var charts = el('div', {cls: 'runs'});
    sw.criteria.forEach(function (c) {
      charts.appendChild(el('div', {cls: 'run', title: c.explanation}, [
        chart(sw, c.values, c.name + ' \u2014 ' + c.verdict, c.threshold, c.unit === 'bytes')]));
    });
    charts.appendChild(el('div', {cls: 'run'}, [chart(sw, sw.peak_bytes, 'heap peak bytes')]));
    charts.appendChild(el('div', {cls: 'run'}, [chart(sw, sw.rss_peak_bytes, 'RSS peak bytes')]));
    box.appendChild(charts);
    var runs = el('div', {cls: 'runs'});
    sw.order.forEach(function (ti, k) {
      var t = D.traces[ti], d = el('div', {cls: 'run' + (ti === state.trace ? ' sel' : ''),
        onclick: function () { state.trace = ti; state.zoom = 0; render(); }});
      d.appendChild(el('div', {}, [sw.param + ' = ' + (sw.values[k] == null ? '?' : sw.values[k]) + '  ',
        el('span', {cls: 'verdict ' + t.leaks.verdict, text: t.leaks.verdict}),
        ' peak ' + bytes(t.summary.peak_bytes)]));
      timeline(d, t, true);
      runs.appendChild(d);
    });
    box.appendChild(el('p', {cls: 'muted', text: 'One timeline per trace (heap blue, RSS orange, anonymous maps green); a click opens the trace below.'}));
    box.appendChild(runs);
  }

  // --- the page --------------------------------------------------------------------
  var D, models = {}, renderedAt = null, selftestTimer = null;
  function section(title, id) {
    var s = el('section', {id: id}, [el('h2', {text: title})]);
    return s;
  }
  function render() {
    hideTip();
    var app = document.getElementById('app');
    app.textContent = '';
    if (!(state.trace >= 0 && state.trace < D.traces.length)) state.trace = 0;
    var t = D.traces[state.trace];
    var mk = state.trace + (state.interp ? '+' : '-');
    var m = models[mk] || (models[mk] = new Model(t, D.tree, !state.interp));
    var hdr = el('header', {}, [el('h1', {text: D.title})]);
    if (D.traces.length > 1) {
      hdr.appendChild(el('select', {id: 'tm-trace', onchange: function (e) {
        state.trace = Number(e.target.value); state.zoom = 0; render();
      }}, D.traces.map(function (x, i) {
        var o = el('option', {value: i, text: x.trace + (x.param != null ? ' (' + x.param + ')' : '')});
        if (i === state.trace) o.selected = true;
        return o;
      })));
    } else {
      hdr.appendChild(el('span', {text: t.trace}));
    }
    hdr.appendChild(el('span', {cls: 'muted', style: 'color:#cde', text: D.tool}));
    app.appendChild(hdr);
    if (t.error)
      app.appendChild(el('div', {cls: 'banner', id: 'tm-trace-error'},
        ['This trace is damaged or incomplete: ' + t.error + '. The report shows what could be read.']));
    if (D.sweep) {
      var sws = section('Sweep', 'tm-sweep');
      sweepPage(sws);
      app.appendChild(sws);
    }
    var ss = section('Summary', 'tm-summary-box');
    summary(ss, t);
    app.appendChild(ss);

    var fs = section('Flame graph', 'tm-flame');
    var ctl = el('div', {cls: 'controls'});
    var views = [['leaked', 'leaked at exit'], ['peak', 'live at peak'], ['allocated', 'allocated'],
                 ['kept', 'kept per invocation'], ['range', 'time range']];
    var vsel = el('select', {id: 'tm-view', onchange: function (e) {
      state.view = e.target.value; state.zoom = 0; render();
    }}, views.map(function (v) {
      var o = el('option', {value: v[0], text: v[1]});
      if (v[0] === state.view) o.selected = true;
      return o;
    }));
    ctl.appendChild(el('label', {}, ['view ', vsel]));
    if (state.view === 'allocated' || state.view === 'kept' || state.view === 'range') {
      var msel = el('select', {id: 'tm-measure', onchange: function (e) { state.measure = e.target.value; render(); }},
        [['bytes', 'bytes'], ['count', 'count (blocks)']].map(function (v) {
          var o = el('option', {value: v[0], text: v[1]});
          if (v[0] === state.measure) o.selected = true;
          return o;
        }));
      ctl.appendChild(el('label', {}, ['by ', msel]));
    }
    if (state.view === 'kept' && t.regions.length) {
      var rsel = el('select', {id: 'tm-region', onchange: function (e) { state.region = e.target.value; state.zoom = 0; render(); }},
        t.regions.map(function (r) {
          var o = el('option', {value: r.name, text: r.name});
          if (r.name === state.region) o.selected = true;
          return o;
        }));
      ctl.appendChild(el('label', {}, ['region ', rsel]));
    }
    if (state.view === 'range' && !state.range)
      state.range = '0,' + t.summary.duration;
    var ib = el('input', {id: 'tm-interp', type: 'checkbox', onchange: function (e) {
      state.interp = e.target.checked ? 1 : 0; state.zoom = 0; render();
    }});
    ib.checked = !!state.interp;
    ctl.appendChild(el('label', {title: 'the interpreter\'s own C frames and frames without a symbol'},
                       [ib, 'interpreter frames']));
    var search = el('input', {id: 'tm-search', type: 'search', placeholder: 'search frames', value: state.q});
    search.addEventListener('change', function () { state.q = search.value; render(); });
    ctl.appendChild(search);
    if (state.zoom) ctl.appendChild(el('button', {text: 'reset zoom', onclick: function () { state.zoom = 0; render(); }}));
    fs.appendChild(ctl);
    var vd = viewData(m);
    var info = el('div', {cls: 'controls'});
    fs.appendChild(info);
    var fbox = el('div', {id: 'tm-flame-graph'});
    fs.appendChild(fbox);
    app.appendChild(fs);
    var fg = flame(fbox, m, vd);
    info.appendChild(el('span', {cls: 'total', id: 'tm-total',
      text: vd.title + ': ' + bytes(vd.tot.bytes[0]) + ' in ' + blocks(vd.tot.blocks[0])}));
    if (state.q)
      info.appendChild(el('span', {id: 'tm-match', text: 'matching "' + state.q + '": ' +
        (fg.isCount ? count(fg.matchTotal) : bytes(fg.matchTotal)) + ' (' +
        (fg.total ? (100 * fg.matchTotal / fg.total).toFixed(1) : '0') + '%)'}));
    var lg = el('div', {cls: 'legend'}, KINDS.map(function (k) {
      return el('span', {}, [el('i', {style: 'background:' + k[1]}), k[0]]);
    }));
    lg.appendChild(el('span', {}, [el('i', {style: 'background:#e040e0'}), 'search match']));
    fs.appendChild(lg);
    fs.appendChild(el('p', {cls: 'muted', text: 'The outermost frame on top; width is the share of the view. Click a frame to zoom (click it again to go back up).'}));

    var ts = section('Timeline', 'tm-timeline');
    app.appendChild(ts);
    timeline(ts, t, false, function (a, b) {
      state.view = 'range'; state.range = a.toFixed(6) + ',' + b.toFixed(6); state.zoom = 0; render();
    });
    ts.appendChild(el('p', {cls: 'muted', text: 'Drag across the plot to see, in the flame graph, what was allocated in that time range and still alive at its end.'}));

    var rs = section('Regions', 'tm-regions-box');
    regionsTable(rs, t);
    app.appendChild(rs);
    writeHash();
    // The tests' record of what is shown, once the page is drawn (a
    // later render replaces it).
    renderedAt = window.performance ? performance.now() : null;
    clearTimeout(selftestTimer);
    selftestTimer = setTimeout(function () { selftest(t, m, vd, fg); }, 0);
  }

  // What the page shows, for the tests: each view's totals and the names of
  // the frames it holds.
  function selftest(t, m, vd, fg) {
    var kinds = {};
    function names(tot) {
      var seen = {}, out = [];
      for (var v = 1; v < m.n && out.length < 5000; v++) {
        if (tot.bytes[v] > 0 || tot.blocks[v] > 0) {
          var f = m.fr(v);
          if (!seen[f.name]) { seen[f.name] = 1; out.push(f.name); kinds[f.name] = KINDS[f.kind][0]; }
        }
      }
      return out;
    }
    var views = {};
    ['leaked', 'peak', 'allocated'].forEach(function (v) {
      var tot = m.totals(t.views[v], 3);
      views[v] = {bytes: tot.bytes[0], blocks: tot.blocks[0], functions: names(tot)};
    });
    var kept = {};
    t.regions.forEach(function (r) {
      var tot = m.totals(r.kept, 3);
      kept[r.name] = {bytes: tot.bytes[0], blocks: tot.blocks[0], functions: names(tot)};
    });
    var rows = [], values = [];
    document.querySelectorAll('#tm-regions tbody tr').forEach(function (tr) {
      rows.push([].map.call(tr.children, function (td) { return td.textContent; }));
      values.push([].map.call(tr.children, function (td) { return td.getAttribute('data-value'); }));
    });
    var out = {trace: state.trace, view: state.view, title: vd.title,
               shown: {bytes: vd.tot.bytes[0], blocks: vd.tot.blocks[0], functions: names(vd.tot),
                       match: state.q ? fg.matchTotal : null, zoom: state.zoom,
                       boxes: fg.boxes}, views: views, kept: kept, kinds: kinds,
               timeline: {heap_points: t.timeline.heap.length / 3, bands: t.timeline.bands.length,
                          maps_points: (t.timeline.maps || []).length / 2, rss_points: t.timeline.rss.length / 2,
                          marks: t.timeline.marks.length},
               error: t.error, banner: !!document.getElementById('tm-trace-error'),
               regions: {columns: COLS.map(function (c) { return c[0]; }), rows: rows, values: values},
               sweep: D.sweep ? D.sweep.verdict : undefined, errors: errors,
               render_ms: renderedAt};
    var st = document.getElementById('tm-selftest');
    if (!st) { st = el('pre', {id: 'tm-selftest'}); document.body.appendChild(st); }
    st.textContent = JSON.stringify(out);
  }

  try {
    D = JSON.parse(document.getElementById('tm-data').textContent);
    // With several traces, the largest value of the parameter first.
    if (D.sweep && D.sweep.order.length) state.trace = D.sweep.order[D.sweep.order.length - 1];
    readHash();
    render();
  } catch (e) {
    fail('error: ' + (e && e.stack || e));
  }
})();
