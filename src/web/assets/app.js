// toolwarden console: the pages work without this script; it only adds live updates and conveniences.
// It never inserts server text as markup except HTML fragments the console itself rendered and escaped.
"use strict";
document.addEventListener("DOMContentLoaded", () => {
  // Copy buttons: <button data-copy="ID"> copies the text of element ID.
  for (const button of document.querySelectorAll("[data-copy]")) {
    button.addEventListener("click", async () => {
      const source = document.getElementById(button.dataset.copy);
      if (!source) return;
      const text = source.textContent;
      try {
        await navigator.clipboard.writeText(text);
      } catch (_) {
        const range = document.createRange();
        range.selectNodeContents(source);
        const sel = window.getSelection();
        sel.removeAllRanges();
        sel.addRange(range);
        document.execCommand("copy");
      }
      button.textContent = "Copied";
      setTimeout(() => { button.textContent = "Copy rule"; }, 2000);
    });
  }

  // The approval queue refreshes itself, unless someone is typing a reason in it.
  const pending = document.querySelector("table[data-refresh]");
  if (pending) {
    const body = pending.tBodies[0];
    setInterval(async () => {
      if (body.contains(document.activeElement) && document.activeElement.tagName !== "BUTTON") return;
      try {
        const response = await fetch(pending.dataset.refresh, { credentials: "same-origin" });
        if (!response.ok) return;
        const html = await response.text();
        if (html !== body.dataset.last) {
          body.dataset.last = html;
          body.innerHTML = html;
        }
      } catch (_) { /* the console is restarting: try again next tick */ }
    }, 1500);
  }

  // The static site: search the index embedded in the page.
  const data = document.getElementById("catalogue-data");
  const form = document.getElementById("static-search");
  if (data && form) {
    const tools = JSON.parse(data.textContent);
    const table = document.getElementById("static-results");
    const count = document.getElementById("result-count");
    const rank = { low: 0, medium: 1, high: 2, critical: 3 };
    const render = () => {
      const words = document.getElementById("q").value.toLowerCase().split(/\s+/).filter(Boolean);
      const risk = document.getElementById("risk").value;
      const category = document.getElementById("category").value;
      const hits = tools.filter(([server, name, r, c, description]) => {
        if (risk && r !== risk) return false;
        if (category && c !== category) return false;
        const hay = (server + " " + name.replace(/[_-]/g, " ") + " " + name + " " + description).toLowerCase();
        return words.every((w) => hay.includes(w));
      });
      hits.sort((a, b) => rank[b[2]] - rank[a[2]] || a[0].localeCompare(b[0]) || a[1].localeCompare(b[1]));
      const body = table.tBodies[0];
      body.replaceChildren();
      for (const [server, name, r, c, description, href] of hits.slice(0, 200)) {
        const row = body.insertRow();
        const badge = document.createElement("span");
        badge.className = "badge risk-" + r;
        badge.textContent = r;
        row.insertCell().append(badge);
        row.insertCell().textContent = c;
        const link = document.createElement("a");
        link.href = href;
        link.textContent = name;
        const where = document.createElement("span");
        where.className = "server";
        where.textContent = " " + server;
        row.insertCell().append(link, where);
        row.insertCell().textContent = description;
      }
      table.hidden = hits.length === 0;
      count.textContent = hits.length + " tools match" + (hits.length > 200 ? "; the first 200 are shown" : "") + ".";
    };
    form.addEventListener("input", render);
    form.addEventListener("submit", (e) => { e.preventDefault(); render(); });
    render();
  }
});
