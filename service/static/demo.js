// seqserve live demo: stream the weekly CO2 series into a session over the WebSocket, plot each
// week's one-week-ahead prediction as it arrives, and a 13-week forecast from the current state.
// Plain JS and <canvas>, no libraries. window.seqserveDemo holds what the chart shows (tests read it).
"use strict";

(() => {
  const HORIZON = 13;
  const VIEW_WEEKS = 156; // the chart shows the last three years and the forecast
  const $ = (id) => document.getElementById(id);
  const demo = (window.seqserveDemo = {
    points: [], forecast: [], forecastStep: null, sessionId: null, running: false, done: false,
    error: null,
  });
  let series = null;
  let socket = null;
  let forecastBusy = false;

  const keyInput = $("key");
  keyInput.value = localStorage.getItem("seqserve.apiKey") || "";
  keyInput.addEventListener("change", () => {
    localStorage.setItem("seqserve.apiKey", keyInput.value);
    loadModels();
  });

  function headers(extra) {
    const h = Object.assign({}, extra || {});
    if (keyInput.value) h["X-API-Key"] = keyInput.value;
    return h;
  }

  function setStatus(text, isError) {
    $("status").textContent = text;
    $("status").className = "status" + (isError ? " error" : "");
    if (isError) demo.error = text;
  }

  async function api(method, path, body) {
    const init = { method, headers: headers(body ? { "Content-Type": "application/json" } : {}) };
    if (body) init.body = JSON.stringify(body);
    const response = await fetch(path, init);
    const data = response.status === 204 ? null : await response.json();
    if (!response.ok) throw new Error((data && (data.detail || data.title)) || response.statusText);
    return data;
  }

  function weekDate(i) {
    const d = new Date(series.start + "T00:00:00Z");
    d.setUTCDate(d.getUTCDate() + series.step_days * i);
    return d;
  }

  async function loadModels() {
    const select = $("model");
    try {
      const { models } = await api("GET", "/v1/models");
      select.innerHTML = "";
      // the CO2 series has one feature: only models that take one can be fed it
      for (const m of models.filter((m) => m.features.length === 1)) {
        const option = new Option(`${m.name} (v${m.latest}, ${m.cell})`, m.name);
        option.dataset.forecastable = m.forecastable;
        select.add(option);
      }
      if (!select.options.length) throw new Error("no loaded model takes a single feature");
      const co2 = [...select.options].find((o) => o.value === "co2");
      if (co2) select.value = "co2";
      $("start").disabled = false;
      setStatus("Ready: press Start stream.");
    } catch (err) {
      $("start").disabled = true;
      setStatus(`Cannot list models: ${err.message}`, true);
    }
  }

  // Server-Sent Events read with fetch (EventSource cannot send the X-API-Key header)
  async function fetchForecast() {
    const id = demo.sessionId;
    const url = `/v1/sessions/${id}/forecast/stream?horizon=${HORIZON}`;
    const response = await fetch(url, { headers: headers({ Accept: "text/event-stream" }) });
    if (!response.ok) throw new Error(`forecast: HTTP ${response.status}`);
    const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
    const rows = [];
    let buffer = "";
    let step = null;
    for (;;) {
      const { value, done } = await reader.read();
      if (done) break;
      buffer += value;
      let cut;
      while ((cut = buffer.indexOf("\n\n")) >= 0) {
        const block = buffer.slice(0, cut);
        buffer = buffer.slice(cut + 2);
        const event = /^event: (.*)$/m.exec(block);
        const data = /^data: (.*)$/m.exec(block);
        if (!event || !data) continue;
        const payload = JSON.parse(data[1]);
        if (event[1] === "forecast") rows[payload.index] = payload.forecast[0];
        if (event[1] === "end") step = payload.step;
      }
    }
    if (id === demo.sessionId) {
      demo.forecast = rows;
      demo.forecastStep = step;
      draw();
    }
  }

  function refreshForecast() {
    if (forecastBusy || !demo.sessionId || !$("model").selectedOptions[0]) return;
    if ($("model").selectedOptions[0].dataset.forecastable !== "true") return;
    forecastBusy = true;
    fetchForecast()
      .catch((err) => setStatus(err.message, true))
      .finally(() => { forecastBusy = false; });
  }

  function wsUrl(id) {
    const scheme = location.protocol === "https:" ? "wss:" : "ws:";
    return `${scheme}//${location.host}/v1/sessions/${id}/stream`;
  }

  function base64url(text) {
    const bytes = new TextEncoder().encode(text);
    return btoa(String.fromCharCode(...bytes)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
  }

  async function start() {
    stop();
    const weeks = Math.max(1, Math.min(series.values.length, Number($("weeks").value) || 1));
    Object.assign(demo, { points: [], forecast: [], forecastStep: null, done: false, error: null });
    setStatus("Creating a session…");
    let session;
    try {
      session = await api("POST", "/v1/sessions", { model: $("model").value });
    } catch (err) {
      setStatus(`Cannot create a session: ${err.message}`, true);
      return;
    }
    demo.sessionId = session.id;
    demo.running = true;
    $("session").textContent = session.id.slice(0, 12) + "…";
    $("session").title = session.id;
    $("start").disabled = true;
    $("stop").disabled = false;
    // browsers cannot set headers on a WebSocket: the key travels as a subprotocol
    const protocols = ["seqserve"];
    if (keyInput.value) protocols.push("seqserve.key." + base64url(keyInput.value));
    socket = new WebSocket(wsUrl(session.id), protocols);
    const ws = socket;
    let week = 0;
    const send = () => ws.send(JSON.stringify({ inputs: [[series.values[week]]], step: week, id: week }));
    ws.onopen = () => { setStatus(`Streaming ${weeks} weeks…`); send(); };
    ws.onmessage = async (message) => {
      const reply = JSON.parse(message.data);
      if (reply.error) {
        setStatus(`Stream error: ${reply.error.detail}`, true);
        stop();
        return;
      }
      demo.points.push({
        week, date: weekDate(week).toISOString().slice(0, 10),
        actual: series.values[week], predicted: reply.outputs[0][0],
      });
      $("step").textContent = reply.step;
      $("date").textContent = weekDate(week).toISOString().slice(0, 10);
      updateErrors();
      week += 1;
      if (week % HORIZON === 0) refreshForecast();
      draw();
      if (week < weeks && ws === socket) {
        setTimeout(() => { if (ws === socket && ws.readyState === WebSocket.OPEN) send(); },
          Math.max(0, Number($("delay").value) || 0));
        return;
      }
      ws.close(1000);
      socket = null;
      while (forecastBusy) await new Promise((r) => setTimeout(r, 20));
      try {
        await fetchForecast(); // the final forecast, from the state after the last week
      } catch (err) {
        setStatus(err.message, true);
      }
      finish(`Done: ${weeks} weeks streamed; the forecast starts at step ${demo.forecastStep}.`);
    };
    ws.onclose = (event) => {
      if (ws === socket && !demo.done) {
        socket = null;
        finish(`The stream closed (${event.code} ${event.reason || ""}).`.trim(), event.code !== 1000);
      }
    };
  }

  function finish(text, isError) {
    demo.running = false;
    demo.done = !isError;
    $("start").disabled = false;
    $("stop").disabled = true;
    setStatus(text, isError);
  }

  function stop() {
    if (socket) {
      const ws = socket;
      socket = null;
      ws.close(1000);
      finish("Stopped.");
    }
  }

  function updateErrors() {
    const p = demo.points;
    let model = 0, naive = 0, n = 0;
    for (let i = 1; i < p.length; i++) {
      model += Math.abs(p[i - 1].predicted - p[i].actual);
      naive += Math.abs(p[i - 1].actual - p[i].actual);
      n += 1;
    }
    $("mae").textContent = n ? (model / n).toFixed(3) + " ppm" : "–";
    $("naive").textContent = n ? (naive / n).toFixed(3) + " ppm" : "–";
  }

  // ---- chart ----
  const canvas = $("chart");
  const ctx = canvas.getContext("2d");

  function draw() {
    const ratio = window.devicePixelRatio || 1;
    const cssW = canvas.clientWidth || 1100;
    const cssH = Math.round(cssW * 0.4);
    if (canvas.width !== Math.round(cssW * ratio)) {
      canvas.width = Math.round(cssW * ratio);
      canvas.height = Math.round(cssH * ratio);
    }
    ctx.setTransform(ratio, 0, 0, ratio, 0, 0);
    ctx.clearRect(0, 0, cssW, cssH);
    const pad = { l: 58, r: 18, t: 14, b: 30 };
    const p = demo.points;
    const last = p.length ? p[p.length - 1].week : 0;
    const x0 = Math.max(0, last - VIEW_WEEKS + 1);
    const x1 = Math.max(x0 + VIEW_WEEKS, last + 1 + HORIZON);
    const visible = p.filter((q) => q.week >= x0);
    const ys = visible.flatMap((q) => [q.actual, q.predicted]).concat(demo.forecast);
    const values = ys.length ? ys : series.values.slice(0, VIEW_WEEKS);
    let lo = Math.min(...values), hi = Math.max(...values);
    const margin = Math.max(0.5, (hi - lo) * 0.08);
    lo -= margin; hi += margin;
    const X = (w) => pad.l + ((w - x0) / (x1 - x0)) * (cssW - pad.l - pad.r);
    const Y = (v) => pad.t + (1 - (v - lo) / (hi - lo)) * (cssH - pad.t - pad.b);

    // grid and axes
    ctx.font = "12px system-ui, sans-serif";
    ctx.fillStyle = "#5f6b7a";
    ctx.strokeStyle = "#edf0f5";
    ctx.lineWidth = 1;
    const stepY = niceStep((hi - lo) / 6);
    ctx.textAlign = "right";
    ctx.textBaseline = "middle";
    for (let v = Math.ceil(lo / stepY) * stepY; v <= hi; v += stepY) {
      ctx.beginPath(); ctx.moveTo(pad.l, Y(v)); ctx.lineTo(cssW - pad.r, Y(v)); ctx.stroke();
      ctx.fillText(v.toFixed(stepY < 1 ? 1 : 0), pad.l - 8, Y(v));
    }
    ctx.textAlign = "center";
    ctx.textBaseline = "top";
    let lastYear = null;
    for (let w = x0; w < x1; w++) {
      const year = weekDate(w).getUTCFullYear();
      if (lastYear !== null && year !== lastYear) {
        ctx.beginPath(); ctx.moveTo(X(w), pad.t); ctx.lineTo(X(w), cssH - pad.b); ctx.stroke();
        ctx.fillText(String(year), X(w), cssH - pad.b + 8);
      }
      lastYear = year;
    }
    ctx.save();
    ctx.translate(14, (pad.t + cssH - pad.b) / 2);
    ctx.rotate(-Math.PI / 2);
    ctx.fillText("CO\u2082 (ppm)", 0, 0);
    ctx.restore();

    // forecast region, then the lines
    if (demo.forecast.length && demo.forecastStep !== null) {
      const f0 = demo.forecastStep; // the first forecast row is week f0 (0-based)
      ctx.fillStyle = "rgba(28, 126, 214, 0.07)";
      ctx.fillRect(X(f0 - 0.5), pad.t, X(f0 + HORIZON - 0.5) - X(f0 - 0.5), cssH - pad.t - pad.b);
      const anchor = p.find((q) => q.week === f0 - 1);
      const pts = demo.forecast.map((v, k) => [X(f0 + k), Y(v)]);
      if (anchor) pts.unshift([X(anchor.week), Y(anchor.actual)]);
      line(pts, "#1c7ed6", 2, [6, 4]);
      dots(demo.forecast.map((v, k) => [X(f0 + k), Y(v)]), "#1c7ed6", 2.5);
    }
    line(visible.map((q) => [X(q.week), Y(q.actual)]), "#1d2433", 1.6);
    // the prediction made at week w is for week w + 1
    line(visible.map((q) => [X(q.week + 1), Y(q.predicted)]), "#e8590c", 1.6);
    ctx.strokeStyle = "#cfd6e0";
    ctx.strokeRect(pad.l, pad.t, cssW - pad.l - pad.r, cssH - pad.t - pad.b);
    canvas.dataset.points = String(p.length);
    canvas.dataset.forecast = String(demo.forecast.length);
  }

  function line(pts, color, width, dash) {
    if (pts.length < 2) return;
    ctx.save();
    ctx.strokeStyle = color; ctx.lineWidth = width; ctx.lineJoin = "round";
    ctx.setLineDash(dash || []);
    ctx.beginPath();
    pts.forEach(([x, y], i) => (i ? ctx.lineTo(x, y) : ctx.moveTo(x, y)));
    ctx.stroke();
    ctx.restore();
  }

  function dots(pts, color, r) {
    ctx.fillStyle = color;
    for (const [x, y] of pts) { ctx.beginPath(); ctx.arc(x, y, r, 0, 2 * Math.PI); ctx.fill(); }
  }

  function niceStep(raw) {
    const p = Math.pow(10, Math.floor(Math.log10(raw)));
    const f = raw / p;
    return (f < 1.5 ? 1 : f < 3.5 ? 2 : f < 7.5 ? 5 : 10) * p;
  }

  $("start").addEventListener("click", start);
  $("stop").addEventListener("click", stop);
  window.addEventListener("resize", () => series && draw());

  fetch("/static/co2.json")
    .then((r) => r.json())
    .then((data) => {
      series = data;
      $("source").textContent = `Data: ${data.name}; ${data.source}; ${data.license}.`;
      draw();
      return loadModels();
    })
    .catch((err) => setStatus(`Cannot load the CO2 series: ${err.message}`, true));
})();
