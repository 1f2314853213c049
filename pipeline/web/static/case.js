// video-audit supervisor web: the case page. Loaded after app.js, whose helpers (h, api, T, fmt, ms, isoOf,
// errorBox, root, LANG, TZ, CSRF) it uses: top-level names of classic scripts are shared.
"use strict";

// --- case --------------------------------------------------------------------------------------

function lane(stays, events, lo, hi, width, p) {
  const x = (t) => Math.max(0, Math.min(width, ((t - lo) / Math.max(hi - lo, 1)) * width));
  const NS = "http://www.w3.org/2000/svg";
  const svg = document.createElementNS(NS, "svg");
  svg.setAttribute("width", width); svg.setAttribute("height", 46); svg.setAttribute("class", "lane");
  const add = (tag, attrs, title) => {
    const el = document.createElementNS(NS, tag);
    for (const [k, v] of Object.entries(attrs)) el.setAttribute(k, v);
    if (title) { const t = document.createElementNS(NS, "title"); t.textContent = title; el.append(t); }
    svg.append(el);
    return el;
  };
  for (const st of stays) {
    const a = ms(st.interval.start), b = ms(st.interval.end);
    add("rect", { x: x(a), y: 4, width: Math.max(1, x(b) - x(a)), height: 22,
      class: st.unexplained_seconds > 0 ? "stay holes" : "stay" },
      `${roomName(p, st.stay.room_id)} ${fmt(st.interval.start)} – ${st.stay.end ? fmt(st.interval.end) : T("in_area")}`);
    const name = add("text", { x: x(a) + 3, y: 19, class: "stay-label" });
    name.textContent = roomName(p, st.stay.room_id);
    for (const cam of st.cameras) {
      for (const g of cam.gaps) {
        add("rect", { x: x(ms(g.start)), y: 27, width: Math.max(2, x(ms(g.end)) - x(ms(g.start))), height: 6,
          class: "gap" }, `${T("gaps")}: ${cameraName(p, cam.camera_id)} ${label("cause", g.cause)} ${fmt(g.start)}–${fmt(g.end)}`);
      }
      for (const u of cam.unexplained) {
        add("rect", { x: x(ms(u.start)), y: 27, width: Math.max(2, x(ms(u.end)) - x(ms(u.start))), height: 6,
          class: "unexplained" }, `${T("unexplained")}: ${cameraName(p, cam.camera_id)} ${fmt(u.start)}–${fmt(u.end)}`);
      }
    }
  }
  for (const e of events) {
    add("rect", { x: x(ms(e.time)) - 1, y: 34, width: 2, height: 10, class: "event" }, `${label("event", e.type)} ${fmt(e.time)}`);
  }
  return svg;
}

async function pageCase() {
  const id = root.dataset.caseId;
  let info, tl, p;
  try {
    [info, tl, p] = await Promise.all([api(`/api/v1/cases/${id}`), api(`/api/v1/cases/${id}/timeline`), places()]);
  } catch (err) { root.append(errorBox(err)); return; }
  root.querySelector("h1").textContent = `${info.case_number} ${info.title}`;
  root.append(h("p", {}, `${T("charge")}: ${info.charge}`),
    h("p", {}, `${T("officers")}: `, info.officers.map((o) => `${o.name} (${o.badge_number}${o.role ? ", " + label("officer_role", o.role) : ""})`).join("; ")));
  const jobsBox = h("div", { id: "exports" });
  for (const sj of tl.subjects) {
    const s = sj.subject;
    const evs = tl.events.filter((e) => e.subject_id === s.id || e.subject_id === null);
    const times = sj.stays.flatMap((st) => [ms(st.interval.start), ms(st.interval.end)]).concat(evs.map((e) => ms(e.time)));
    const lo = Math.min(...times), hi = Math.max(...times);
    // EXPORT (export_dialog.js): the button opens the dialog; the plan line shows the export's holes
    const exportBtn = h("button", { class: "export", "data-subject": s.id }, T("export"));
    exportBtn.onclick = () => openExportDialog(info, s, () => refreshJobs());
    const rows = sj.stays.map((st) => {
      const cams = st.cameras.map((c) => `${cameraName(p, c.camera_id)}: ${c.footage_seconds.toFixed(0)}${T("seconds")}` +
        (c.gaps.length ? `, ${T("gaps")} ${c.gaps.map((g) => label("cause", g.cause)).join("/")}` : "") +
        (c.unexplained_seconds ? `, ${T("unexplained")} ${c.unexplained_seconds.toFixed(0)}${T("seconds")}` : ""));
      // an open stay: the subject is still inside (its interval ends "now"); its last seconds may
      // not be indexed yet (pending), which the API does not count as unexplained
      const end = st.stay.end ? fmt(st.interval.end)
        : h("span", { class: "in-area", title: fmt(st.interval.end) }, T("in_area"), st.pending ? ` (${T("pending")})` : "");
      const play = `/play?room=${encodeURIComponent(st.stay.room_id)}&start=${encodeURIComponent(st.interval.start)}` +
        `&end=${encodeURIComponent(st.interval.end)}&case=${id}`;
      return h("tr", { class: st.stay.end ? "stay-row" : "stay-row open" }, h("td", {}, roomName(p, st.stay.room_id)),
        h("td", {}, fmt(st.interval.start)), h("td", {}, end), h("td", {}, cams.join("; ")),
        h("td", {}, st.cameras.length ? h("a", { href: play, class: "play-link" }, T("play")) : ""));
    });
    const late = (sj.late_readings || []).length ? [h("h3", {}, T("late_readings")), h("table", { class: "late-readings" },
      h("tr", {}, h("th", {}, T("time")), h("th", {}, T("room")), h("th", {}, T("entered_by")), h("th", {}, T("entered_at"))),
      sj.late_readings.map((o) => h("tr", { class: "late" }, h("td", {}, fmt(o.time)), h("td", {}, roomName(p, o.room_id)),
        h("td", {}, o.entered_by || ""), h("td", {}, o.entered_at ? fmt(o.entered_at) : ""))))] : [];
    root.append(h("section", { class: "subject" },
      h("h2", {}, `${s.name} (${label("role", s.role)}${s.id_number ? ", " + s.id_number : ""})`, " ", exportBtn,
        " ", h("a", { href: `/cases/${id}/replay?subject=${s.id}`, class: "replay-link" }, T("replay"))),
      exportPlanLine(info, s),
      h("h3", {}, T("trajectory")), lane(sj.stays, evs, lo, hi, 900, p),
      h("table", {}, h("tr", {}, h("th", {}, T("room")), h("th", {}, T("start")), h("th", {}, T("end")),
        h("th", {}, T("coverage")), h("th", {}, "")), rows), late));
  }
  // A late entry says who entered it and when: the record was made after the fact.
  root.append(h("h2", {}, T("events")), h("table", { class: "events" },
    h("tr", {}, h("th", {}, T("time")), h("th", {}, T("event_type")), h("th", {}, T("room")), h("th", {}, T("late"))),
    tl.events.map((e) =>
    h("tr", { class: e.late ? "late" : null }, h("td", {}, fmt(e.time)), h("td", {}, label("event", e.type)),
      h("td", {}, roomName(p, e.room_id)),
      h("td", { class: "late-mark" }, e.late ? `${T("late")}: ${e.entered_by || ""} ${e.entered_at ? fmt(e.entered_at) : ""}` : "")))));
  root.append(h("h2", {}, T("exports")), jobsBox);
  const refreshJobs = exportJobs(jobsBox, info, Object.fromEntries(tl.subjects.map((sj) => [String(sj.subject.id), sj.subject.name])));
}

PAGE_STARTS.case = pageCase;
