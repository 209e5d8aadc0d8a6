/* ibledger report: search over the order index, per-order detail loaded on demand. No network. */
(function () {
  var C = JSON.parse(document.getElementById('index-cols').textContent);
  var D = JSON.parse(document.getElementById('index-data').textContent);
  var FILES = document.body.getAttribute('data-files'), CHUNK = +document.body.getAttribute('data-chunk');
  var col = {}; C.forEach(function (c, i) { col[c] = i; });
  var PAGE = 200, shown = PAGE, hits = [], chunks = {}, waiting = {};
  var q = document.getElementById('q'), st = document.getElementById('state'),
      from = document.getElementById('from'), to = document.getElementById('to');
  var tbody = document.getElementById('order-rows');
  function esc(s) { return String(s == null ? '' : s).replace(/[&<>"']/g, function (c) {
    return {'&': '&amp;', '<': '&lt;', '>': '&gt;', '"': '&quot;', "'": '&#39;'}[c]; }); }
  function iso(ns) { return ns ? new Date(ns / 1e6).toISOString().replace('T', ' ').slice(0, 23) : ''; }
  function toNs(v) { return v ? Date.parse(v + 'Z') * 1e6 : null; }
  function stateCell(r) {
    var s = r[col.state] + (r[col.overlay] ? ' / ' + r[col.overlay] : '');
    if (r[col.state] === 'Blocked') return "<span class='pill blocked'>BLOCKED</span>";
    if (r[col.is_live]) return "<span class='pill live'>LIVE</span> " + esc(s);
    if (r[col.unconfirmed]) return "<span class='pill unconf'>UNCONFIRMED</span>";
    if (r[col.state] === 'Inactive' && r[col.why_held]) return "<span class='pill live'>HELD</span> " + esc(s);
    return esc(s);
  }
  function match(r, toks, state, f, t) {
    if (state && r[col.state] !== state) return false;
    var ns = r[col.first_seen_ns];
    if (f !== null && ns < f) return false;
    if (t !== null && ns > t) return false;
    for (var k = 0; k < toks.length; k++) {
      var x = toks[k], ok = String(r[col.perm_id]) === x || String(r[col.order_id]) === x ||
        (r[col.client_id] + ':' + r[col.order_id]) === x || String(r[col.symbol]).toLowerCase() === x ||
        String(r[col.state]).toLowerCase() === x || String(r[col.key]).toLowerCase().indexOf(x) >= 0;
      if (!ok) return false;
    }
    return true;
  }
  function run() {
    var toks = q.value.trim().toLowerCase().split(/\s+/).filter(Boolean), s = st.value,
        f = toNs(from.value), t = toNs(to.value);
    hits = [];
    for (var i = 0; i < D.length; i++) if (match(D[i], toks, s, f, t)) hits.push(i);
    shown = PAGE; draw();
  }
  function draw() {
    var out = [];
    for (var j = 0; j < Math.min(shown, hits.length); j++) {
      var i = hits[j], r = D[i];
      out.push("<tr class='o' data-i='" + i + "' data-key='" + esc(r[col.key]) + "'><td>" + iso(r[col.first_seen_ns]) +
        '</td><td>' + esc(r[col.symbol]) + '</td><td>' + esc(r[col.action]) + ' ' + r[col.total_qty] + ' ' +
        esc(r[col.order_type]) + (r[col.lmt_price] == null ? '' : ' @ ' + r[col.lmt_price]) + '</td><td>' +
        stateCell(r) + '</td><td>' + esc(r[col.broker_status] || '-') + '</td><td>' + r[col.filled] + '</td><td>' +
        (r[col.perm_id] || '-') + '</td><td>' + r[col.client_id] + ':' + r[col.order_id] + '</td><td>' +
        (r[col.anomaly_count] || '') + '</td></tr>');
    }
    tbody.innerHTML = out.join('');
    document.getElementById('hits').textContent = hits.length;
    document.getElementById('more').style.display = hits.length > shown ? '' : 'none';
  }
  window.ibledgerDetail = function (n, orders) { chunks[n] = orders; (waiting[n] || []).forEach(function (f) { f(); }); };
  function load(i, then) {
    var n = Math.floor(i / CHUNK);
    if (chunks[n]) return then(chunks[n][i % CHUNK]);
    (waiting[n] = waiting[n] || []).push(function () { then(chunks[n][i % CHUNK]); });
    if (waiting[n].length > 1) return;
    var s = document.createElement('script');
    s.src = FILES + '/detail-' + ('0000' + n).slice(-5) + '.js';
    s.onerror = function () { document.getElementById('detail').textContent = 'cannot load ' + s.src; };
    document.head.appendChild(s);
  }
  var SC = JSON.parse(document.getElementById('state-colors').textContent),
      KC = JSON.parse(document.getElementById('status-colors').textContent);
  function timeline(evs, trs) {
    var W = 1100, Lm = 80, Rm = 20, lanes = ['governor', 'intent', 'status', 'fill', 'error'];
    /* an order the governor blocked was never sent: its whole band is Blocked, not the instant of
       'Unconfirmed' between the recorded intent and its decision */
    if (trs.length && trs[trs.length - 1][1] === 'Blocked') trs = [[trs[0][0], 'Blocked']];
    var ts = evs.map(function (e) { return e[0]; }).concat(trs.map(function (t) { return t[0]; }));
    var t0 = Math.min.apply(null, ts), t1 = Math.max.apply(null, ts), span = Math.max(t1 - t0, 1);
    var end = t1 + span * 0.2;  /* the final state stays visible (a Blocked order is drawn blocked) */
    function x(t) { return Lm + (W - Lm - Rm) * (t - t0) / (end - t0 || 1); }
    var p = ["<svg class='timeline' viewBox='0 0 " + W + " 140' role='img'><text x='4' y='17'>state</text>"];
    for (var k = 0; k < trs.length; k++) {
      var a = trs[k], b = k + 1 < trs.length ? trs[k + 1][0] : end, x0 = x(a[0]), x1 = Math.max(x(b), x0 + 3);
      p.push("<rect class='band band-" + esc(a[1]) + "' x='" + x0 + "' y='8' width='" + (x1 - x0) +
        "' height='12' fill='" + (SC[a[1]] || '#e5e7eb') + "'><title>" + esc(a[1]) + '</title></rect>');
      if (x1 - x0 > 50) p.push("<text x='" + (x0 + 3) + "' y='17'>" + esc(a[1]) + '</text>');
    }
    lanes.forEach(function (l, n) { var y = 40 + n * 20;
      p.push("<text x='4' y='" + (y + 3) + "'>" + l + "</text><line x1='" + Lm + "' y1='" + y + "' x2='" + (W - Rm) +
        "' y2='" + y + "' stroke='#e5e7eb'/>"); });
    evs.forEach(function (e) {
      var lane = lanes.indexOf(e[1]), y = 40 + lane * 20, cx = x(e[0]), tip = '<title>' + esc(e[3]) + '</title>';
      if (e[1] === 'status') p.push("<circle class='ev ev-status' cx='" + cx + "' cy='" + y + "' r='5' fill='" + (KC[e[2]] || '#9ca3af') + "'>" + tip + '</circle>');
      else if (e[1] === 'fill') p.push("<path class='ev ev-fill" + (e[6] ? ' ev-redelivered' : '') + "' d='M" + cx + ',' + (y - 6) + " l6,11 h-12 z' fill='" + (e[6] ? 'none' : '#15803d') + "' stroke='#15803d'>" + tip + '</path>');
      else if (e[1] === 'governor') p.push("<path class='ev ev-governor' d='M" + cx + ',' + (y - 6) + " l6,6 l-6,6 l-6,-6 z' fill='" + (/BLOCK|EMERGENCY/.test(e[3]) ? '#dc2626' : '#7c3aed') + "'>" + tip + '</path>');
      else if (e[1] === 'intent') p.push("<rect class='ev ev-intent' x='" + (cx - 5) + "' y='" + (y - 5) + "' width='10' height='10' fill='#0ea5e9'>" + tip + '</rect>');
      else p.push("<path class='ev ev-error' d='M" + (cx - 5) + ',' + (y - 5) + " l10,10 m0,-10 l-10,10' stroke='#dc2626' stroke-width='2.5'>" + tip + '</path>');
    });
    p.push('</svg>'); return p.join('');
  }
  function show(i) {
    var r = D[i];
    document.querySelectorAll('tr.o.sel').forEach(function (el) { el.classList.remove('sel'); });
    var row = tbody.querySelector("tr[data-i='" + i + "']"); if (row) row.classList.add('sel');
    document.getElementById('detail').innerHTML = '<p class=note>loading ' + esc(r[col.key]) + '...</p>';
    load(i, function (d) {
      var evs = d[0], trs = d[1], t0 = evs.length ? evs[0][0] : 0;
      var rows = evs.map(function (e) {
        return '<tr><td>+' + ((e[0] - t0) / 1e6).toFixed(1) + ' ms</td><td>' + esc(e[4]) + '</td><td' +
          (e[6] ? " class='redelivered'" : '') + '>' + esc(e[3]) + (e[6] ? ' (re-delivered: already counted)' : '') +
          '</td><td>' + esc(e[5]) + '</td></tr>'; }).join('');
      document.getElementById('detail').innerHTML = "<h3 id='detail-title' data-key='" + esc(r[col.key]) + "'>" +
        esc(r[col.symbol]) + ' ' + esc(r[col.action]) + ' ' + r[col.total_qty] + ' ' + stateCell(r) +
        ' <small>' + esc(r[col.key]) + ' · perm ' + (r[col.perm_id] || '-') + ' · client ' + r[col.client_id] +
        ' order ' + r[col.order_id] + ' · filled ' + r[col.filled] + ' · commission ' + r[col.commission] +
        '</small></h3>' + timeline(evs, trs) + '<table><tr><th>t</th><th>time (UTC)</th><th>event</th>' +
        '<th>ledger state</th></tr>' + rows + '</table>';
    });
  }
  tbody.addEventListener('click', function (ev) { var tr = ev.target.closest('tr.o'); if (tr) show(+tr.getAttribute('data-i')); });
  document.getElementById('more').addEventListener('click', function () { shown += PAGE * 5; draw(); });
  [q, st, from, to].forEach(function (el) { el.addEventListener('input', run); });
  var h = new URLSearchParams(location.hash.slice(1));
  if (h.get('q')) q.value = h.get('q'); if (h.get('state')) st.value = h.get('state');
  if (h.get('from')) from.value = h.get('from'); if (h.get('to')) to.value = h.get('to');
  run();
  if (h.get('order')) { for (var i = 0; i < D.length; i++) if (D[i][col.key] === h.get('order')) { show(i); break; } }
  document.body.setAttribute('data-ready-ms', Math.round(performance.now()));
})();
