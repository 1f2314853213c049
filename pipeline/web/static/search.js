// video-audit supervisor web: the search page. Loaded after app.js, whose helpers (h, api, T, fmt, ms, isoOf,
// errorBox, root, LANG, TZ, CSRF) it uses: top-level names of classic scripts are shared.
"use strict";

// --- search ------------------------------------------------------------------------------------

async function pageSearch() {
  const field = (name, text, type = "text") =>
    h("label", {}, text, " ", h("input", { name, type, id: "q-" + name }));
  const select = h("select", { name: "event_type", id: "q-event_type" },
    h("option", { value: "" }, T("any")), EVENT_TYPES.map((e) => h("option", { value: e }, label("event", e))));
  // rooms by name; the API takes the id (or the name). A room without an event type also finds the
  // people who stayed there during the time range.
  const rooms = h("select", { name: "room_id", id: "q-room_id" }, h("option", { value: "" }, T("any")));
  const out = h("div", { id: "results" });
  const form = h("form", { id: "search-form", class: "search" },
    field("case_number", T("case_number")), field("subject_name", T("subject")), field("id_number", T("id_number")),
    field("badge_number", T("badge")), h("label", {}, T("room"), " ", rooms),
    h("label", {}, T("event_type"), " ", select),
    field("start", T("from"), "datetime-local"), field("end", T("to"), "datetime-local"),
    h("button", { type: "submit" }, T("find")));
  form.onsubmit = async (ev) => {
    ev.preventDefault();
    const q = new URLSearchParams();
    for (const [k, v] of new FormData(form).entries()) {
      if (!v) continue;
      q.set(k, k === "start" || k === "end" ? isoOf(unzoned(v)) : v); // typed in the centre's wall time
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
          h("td", {}, c.subjects.map((s) => `${s.name} (${label("role", s.role)})`).join("，"))))));
    } catch (err) { out.replaceChildren(errorBox(err)); }
  };
  root.append(form, out);
  const p = await places();
  rooms.append(...p.rooms.map((r) => h("option", { value: r.id }, r.name || r.id)));
}

PAGE_STARTS.search = pageSearch;
