"""The live page at `/`: one self-contained HTML file (no outside scripts) that polls /stats every second and
shows the queue, the running batch, tokens/s and each MoE layer's expert load as a heatmap. The page holds no
data itself, so it needs no API key; /stats does, and the page asks for it when the server wants one."""

LIVE_PAGE = """<!doctype html>
<html lang="en"><head><meta charset="utf-8"><title>dsmoe serve</title>
<style>
body { font: 14px system-ui, sans-serif; margin: 2em; color: #222; }
.numbers span { display: inline-block; margin-right: 2em; } .numbers b { font-size: 1.4em; }
table { border-collapse: collapse; margin-top: 1em; } td, th { padding: 2px 4px; text-align: center; font-size: 11px; }
td.cell { width: 28px; height: 20px; color: #000; } #key { display: none; margin: 1em 0; }
</style></head>
<body>
<h1>dsmoe serve: <span id="model"></span></h1>
<div id="key">This server needs its API key: <input id="key-input" type="password">
<button onclick="sessionStorage.setItem('dsmoe-key', document.getElementById('key-input').value)">use</button></div>
<div class="numbers">
<span>waiting <b id="queue">-</b></span><span>running <b id="running">-</b></span>
<span>tokens/s <b id="rate">-</b></span><span>generated <b id="generated">-</b></span>
</div>
<p>Expert load: each MoE layer's share of its routed tokens per expert since the server started (a balanced layer is
one colour).</p>
<table id="load"></table>
<script>
let previous = null;
function colour(share, balanced) {
  const t = Math.min(1, share / (2 * balanced));  // white at 0, orange at balance, dark red at twice it
  return `rgb(255, ${Math.round(255 - 200 * t)}, ${Math.round(255 - 255 * t)})`;
}
function drawLoad(load) {
  const experts = load.tokens_per_expert.length ? load.tokens_per_expert[0].length : 0;
  let html = "<tr><th>layer</th>" + [...Array(experts).keys()].map(e => `<th>${e}</th>`).join("") + "</tr>";
  load.tokens_per_expert.forEach((counts, z) => {
    const total = counts.reduce((a, b) => a + b, 0) || 1;
    html += `<tr><th>${load.moe_layers[z]}</th>` + counts.map(c => `<td class="cell" title="${c} tokens" ` +
      `style="background:${colour(c / total, 1 / experts)}"></td>`).join("") + "</tr>";
  });
  document.getElementById("load").innerHTML = html;
}
async function poll() {
  const key = sessionStorage.getItem("dsmoe-key");
  const response = await fetch("stats", {headers: key ? {Authorization: "Bearer " + key} : {}});
  document.getElementById("key").style.display = response.status === 401 ? "block" : "none";
  if (!response.ok) return;
  const stats = await response.json(), now = performance.now();
  document.getElementById("model").textContent = stats.model;
  document.getElementById("queue").textContent = stats.queue_depth;
  document.getElementById("running").textContent = stats.running_batch_size;
  document.getElementById("generated").textContent = stats.generated_tokens;
  if (previous) {
    const rate = (stats.generated_tokens - previous.tokens) / ((now - previous.at) / 1000);
    document.getElementById("rate").textContent = rate.toFixed(1);
  }
  previous = {tokens: stats.generated_tokens, at: now};
  drawLoad(stats.expert_load);
}
setInterval(() => poll().catch(() => {}), 1000);
poll().catch(() => {});
</script>
</body></html>
"""
