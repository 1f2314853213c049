// video-audit supervisor web: the search page. Loaded after app.js, whose helpers (h, api, T, fmt, ms, isoOf,
// errorBox, root, LANG, TZ, CSRF) it uses: top-level names of classic scripts are shared.
"use strict";

// --- search ------------------------------------------------------------------------------------

function pageSearch() {
  const field = (name, label, type = "text") =>
    h("label", {}, label, " ", h("input", { name, type, id: "q-" + name }));
  const select = h("select", { name: "event_type", id: "q-event_type" },
    h("option", { value: "" }, T("any")), EVENT_TYPES.map((e) => h("option", { value: e }, e)));
  const out = h("div", { id: "results" });
  const form = h("form", { id: "search-form", class: "search" },
    field("case_number", T("case_number")), field("subject_name", T("subject")),
    field("officer_id", T("officer"), "number"), field("room_id", T("room")),
    h("label", {}, T("event_type"), " ", select),
    field("start", T("from"), "datetime-local"), field("end", T("to"), "datetime-local"),
    h("button", { type: "submit" }, T("find")));
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form).entries()) {
      if (!v) continue;
      q.set(k, k === "start" || k === "end" ? isoOf(v) : v);
    }
    out.replaceChildren(T("find") + "…");
    try {
      const res = await api("/api/v1/cases?" + q.toString());
      if (!res.items.length) { out.replaceChildren(h("p", {}, T("none"))); return; }
      out.replaceChildren(h("h2", {}, `${T("results")} (${res.total})`), h("table", { class: "results" },
        h("tr", {}, h("th", {}, T("case_number")), h("th", {}, T("title")), h("th", {}, T("charge")),
          h("th", {}, T("subjects"))),
        res.items.map((c) => h("tr", {},
          h("td", {}, h("a", { href: `/cases/${c.id}`, class: "case-link" }, c.case_number)),
          h("td", {}, c.title), h("td", {}, c.charge),
          h("td", {}, c.subjects.map((s) => `${s.name} (${s.role})`).join(", "))))));
    } catch (err) { out.replaceChildren(errorBox(err)); }
  };
  root.append(form, out);
}

PAGE_STARTS.search = pageSearch;
