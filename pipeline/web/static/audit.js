// video-audit supervisor web: the audit trail page. Loaded after app.js, whose helpers (h, api, T, fmt, ms, isoOf,
// errorBox, root, LANG, TZ, CSRF) it uses: top-level names of classic scripts are shared.
"use strict";

// --- audit ---------------------------------------------------------------------------------------

function pageAudit() {
  const actions = h("select", { name: "action" }, h("option", { value: "" }, T("any")),
    Object.keys(LABELS.audit_action).map((a) => h("option", { value: a }, label("audit_action", a))));
  const form = h("form", { id: "audit-form" },
    h("label", {}, T("user"), " ", h("input", { name: "user" })),
    h("label", {}, T("action"), " ", actions),
    h("label", {}, T("object"), " ", h("input", { name: "object" })),
    h("button", { type: "submit" }, T("load")));
  const verify = h("button", { id: "verify" }, T("verify"));
  const status = h("span", { id: "verify-result" });
  const table = h("table", { id: "audit-rows" });
  const more = h("button", { id: "older" }, T("older"));
  let before = null;
  async function load(reset) {
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form).entries()) if (v) q.set(k, v);
    if (!reset && before !== null) q.set("before", before);
    try {
      const [rows, p] = [(await api("/api/v1/audit?" + q.toString())).rows, await places()];
      if (reset) table.replaceChildren(h("tr", {}, ["#", T("time"), T("user"), T("action"), T("object"), T("client"), T("hash")].map((x) => h("th", {}, x))));
      for (const r of rows) {
        // codes in words; the row as stored stays in the titles (what the hash chain covers)
        table.append(h("tr", { class: "audit-row", "data-action": r.action }, h("td", {}, r.seq), h("td", {}, fmt(isoOf(r.time_us / 1000))),
          h("td", {}, label("user_name", r.user)), h("td", { title: r.action }, label("audit_action", r.action)),
          h("td", { title: r.object }, auditObject(p, r.object)), h("td", {}, label("audit_client", r.client_addr)),
          h("td", { class: "hash", title: r.hash }, r.hash.slice(0, 12))));
      }
      if (rows.length) before = rows[rows.length - 1].seq;
    } catch (err) { table.replaceChildren(errorBox(err)); }
  }
  form.onsubmit = (ev) => { ev.preventDefault(); before = null; load(true); };
  more.onclick = () => load(false);
  verify.onclick = async () => {
    let r;
    try { r = await api("/api/v1/audit/verify"); } catch (err) { status.replaceChildren(errorBox(err)); return; }
    const problems = (r.anchor_problems || []).join("; ");
    status.textContent = r.ok
      ? `${T("chain_ok")} (${r.rows} ${T("rows")}; ${r.anchors} ${T("anchors")}, ${r.unanchored_rows} ${T("unanchored")})`
      : `${T("chain_broken")} ${r.first_broken || ""}: ${r.reason || ""} ${problems}`;
  };
  root.append(form, h("p", {}, verify, " ", status), table, more);
  load(true);
}

PAGE_STARTS.audit = pageAudit;
