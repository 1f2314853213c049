// video-audit supervisor web: the export dialog and the export job list of the case page.
// The dialog asks the server for the export's own plan (GET /api/v1/exports/plan) so that what it
// shows as unexplained is exactly what the exporter would refuse; each such interval can be
// accepted with a note, which the disc's statement and gap report quote. The job list says who
// started each export and when, its progress, the master (母盘) and working (工作盘) images, and
// why a failed one failed (a Chinese sentence per error code, the server's English detail beside).
// Loaded on the case page after app.js and labels.js (h, T, fmt, ms, zoned, unzoned, LANG, CSRF, label).
"use strict";

const EXPORT_TEXT = {
  "zh-CN": {
    title: "导出光盘", range: "导出范围", from: "开始", to: "结束", medium: "光盘类型", copies: "光盘",
    master: "母盘", working: "工作盘", master_note: "母盘含原始录像", originals_on_working: "工作盘也包含原始录像",
    holes: "无说明缺失", holes_intro: "以下时段既无录像也无中断记录。导出会被拒绝，除非逐段填写说明并接受（说明将写入录音录像说明和中断报告）：",
    none_holes: "导出范围内每一秒都有录像或中断记录", accept: "接受", note: "说明", note_needed: "请为接受的时段填写说明",
    start: "开始导出", cancel: "取消", recompute: "按此范围重新计算", plan: "导出计划", stages: "个阶段", gaps: "处录像中断",
    seconds: "秒", segments: "段", who: "发起人", started: "开始时间", finished: "结束时间", state: "状态",
    progress: "进度", files: "光盘镜像", reason: "失败原因", subject: "人员", no_jobs: "暂无导出任务",
    time_hint: "格式 YYYY-MM-DD HH:MM:SS（本中心时区）", bad_time: "时间格式应为 YYYY-MM-DD HH:MM:SS",
    accepted: "已接受的时段", cancel_job: "取消导出",
  },
  en: {
    title: "Export disc", range: "Export range", from: "From", to: "To", medium: "Medium", copies: "Discs",
    master: "Master", working: "Working copy", master_note: "the master holds the originals",
    originals_on_working: "Originals on the working copy too",
    holes: "Unexplained", holes_intro: "These intervals have neither footage nor a recorded gap. The export is refused unless each is accepted with a note (the note goes onto the statement and the gap report):",
    none_holes: "Every second of the range has footage or a recorded gap", accept: "Accept", note: "Note",
    note_needed: "Give a note for every accepted interval", start: "Start export", cancel: "Cancel",
    recompute: "Recompute for this range", plan: "Export plan", stages: "stage(s)", gaps: "recording gap(s)",
    seconds: "s", segments: "interval(s)", who: "Started by", started: "Started", finished: "Finished", state: "State",
    progress: "Progress", files: "Disc images", reason: "Why it failed", subject: "Subject", no_jobs: "No export jobs",
    time_hint: "YYYY-MM-DD HH:MM:SS (the centre's time zone)", bad_time: "Times are YYYY-MM-DD HH:MM:SS",
    accepted: "Accepted intervals", cancel_job: "Cancel export",
  },
};
const ET = (k) => (EXPORT_TEXT[LANG] && EXPORT_TEXT[LANG][k]) || k;
document.head.append(Object.assign(document.createElement("link"), { rel: "stylesheet", href: "/static/export_dialog.css" }));

// A request that keeps the error's code and details (app.js's api() keeps only the message).
async function exportCall(path, body) {
  const opts = { method: body === undefined ? "GET" : "POST", credentials: "same-origin",
    headers: { Accept: "application/json" } };
  if (body !== undefined) {
    Object.assign(opts.headers, { "Content-Type": "application/json", "X-CSRF-Token": CSRF });
    opts.body = JSON.stringify(body);
  }
  const resp = await fetch(path, opts);
  if (resp.status === 401) { location.href = "/login?next=" + encodeURIComponent(location.pathname); throw new Error("unauthorized"); }
  const data = await resp.json().catch(() => ({}));
  if (!resp.ok) {
    const e = data.error || { code: "internal_error", message: resp.statusText, details: {} };
    throw Object.assign(new Error(e.message), { code: e.code, details: e.details || {} });
  }
  return data;
}

const secs = (x) => `${Number(x).toFixed(1)} ${ET("seconds")}`;
const span = (u) => `${fmt(u.start)} – ${fmt(u.end)}`;

// Why an export or a request failed: the sentence for its code, the intervals of an unexplained
// refusal, and the server's own (English) message as the box's title.
function exportReason(err) {
  const code = err.code || "internal_error";
  const sentence = label("export_error", code);
  const box = h("div", { class: "export-reason", role: "alert", "data-code": code }, h("strong", {}, sentence));
  const ivs = (err.details && err.details.intervals) || [];
  if (ivs.length) {
    box.append(h("ul", { class: "reason-intervals" }, ivs.map((u) =>
      h("li", {}, `${span(u)}（${secs((ms(u.end) - ms(u.start)) / 1000)}）`))));
  }
  // The dialog's own messages are in the page's language: shown. The server's English message
  // stays at hand (hover) without putting English on a zh-CN page.
  if (err.local) box.append(h("div", { class: "reason-detail" }, err.message));
  else if (err.message && err.message !== sentence) box.title = err.message;
  return box;
}

// --- the plan: what the case page shows beside each subject, and the dialog's basis ----------------
function planQuery(info, subject, range) {
  const q = new URLSearchParams({ case: info.case_number, subject: String(subject.id) });
  if (range && range.from) q.set("from", range.from);
  if (range && range.to) q.set("to", range.to);
  return `/api/v1/exports/plan?${q}`;
}

function planSummary(plan) {
  const n = plan.unexplained.length;
  const el = h("span", { class: n ? "plan-holes holes" : "plan-holes", "data-unexplained-seconds": String(plan.unexplained_seconds) },
    `${ET("plan")}: ${fmt(plan.range.start)} – ${fmt(plan.range.end)}, ${plan.stages.length} ${ET("stages")}, ` +
    `${plan.gaps} ${ET("gaps")}; ${ET("holes")} ${secs(plan.unexplained_seconds)}` + (n ? `（${n} ${ET("segments")}）` : ""));
  if (n) el.title = plan.unexplained.map(span).join("\n");
  return el;
}

// The case page's line under a subject: the export plan's range and its unexplained seconds,
// counted by the same plan the exporter refuses on (the transfer into the centre included).
function exportPlanLine(info, subject) {
  const line = h("p", { class: "export-plan", "data-subject": subject.id });
  exportCall(planQuery(info, subject)).then((plan) => line.replaceChildren(planSummary(plan)))
    .catch((err) => line.replaceChildren(err.code === "forbidden" ? "" : exportReason(err))); // a role that may not export
  return line;
}

// --- the dialog -------------------------------------------------------------------------------
function openExportDialog(info, subject, started) {
  document.querySelectorAll("dialog.export-dialog").forEach((d) => d.remove());
  const dlg = h("dialog", { class: "export-dialog", "data-subject": subject.id });
  const fromIn = h("input", { name: "from", class: "export-from", size: 20, placeholder: ET("time_hint") });
  const toIn = h("input", { name: "to", class: "export-to", size: 20, placeholder: ET("time_hint") });
  const media = h("select", { name: "media", class: "export-media" });
  const orig = h("input", { type: "checkbox", name: "originals_on_working", class: "export-originals" });
  const planBox = h("div", { class: "export-plan-box" });
  const holes = h("div", { class: "export-holes" });
  const errors = h("div", { class: "export-errors" });
  const go = h("button", { type: "button", class: "export-start" }, ET("start"));
  const close = h("button", { type: "button", class: "export-cancel" }, ET("cancel"));
  const again = h("button", { type: "button", class: "export-recompute" }, ET("recompute"));
  let plan = null, shown = { from: "", to: "" };

  function range() {
    const out = {};
    for (const [k, el] of [["from", fromIn], ["to", toIn]]) {
      const v = el.value.trim();
      if (!v || v === shown[k]) continue; // unchanged: the server's default rule applies
      const t = unzoned(v);
      if (t === null) throw Object.assign(new Error(ET("bad_time")), { code: "validation_failed", local: true });
      out[k] = new Date(t).toISOString();
    }
    return out;
  }

  async function load(rng) {
    errors.replaceChildren();
    go.disabled = true;
    try { plan = await exportCall(planQuery(info, subject, rng)); } catch (err) {
      plan = null; planBox.replaceChildren(); holes.replaceChildren(); errors.append(exportReason(err)); return;
    }
    shown = { from: zoned(ms(plan.range.start)), to: zoned(ms(plan.range.end)) };
    fromIn.value = shown.from; toIn.value = shown.to;
    if (!media.options.length) {
      media.append(...plan.media.map((m) => h("option", { value: m.name }, label("medium", m.name))));
      media.value = plan.default_media;
      orig.checked = plan.originals_on_working;
    }
    planBox.replaceChildren(planSummary(plan));
    holes.replaceChildren(plan.unexplained.length
      ? h("div", {}, h("p", {}, ET("holes_intro")), h("table", { class: "export-holes-table" },
          h("tr", {}, h("th", {}, ET("accept")), h("th", {}, ET("from")), h("th", {}, ET("to")), h("th", {}, ET("seconds")), h("th", {}, ET("note"))),
          plan.unexplained.map((u, i) => h("tr", { class: "hole", "data-start": u.start, "data-end": u.end },
            h("td", {}, h("input", { type: "checkbox", class: "hole-accept", "data-i": i })),
            h("td", {}, fmt(u.start)), h("td", {}, fmt(u.end)), h("td", {}, Number(u.seconds).toFixed(1)),
            h("td", {}, h("input", { class: "hole-note", "data-i": i, size: 36, maxlength: 500 }))))))
      : h("p", { class: "muted" }, ET("none_holes")));
    go.disabled = false;
  }

  again.onclick = () => { try { load(range()); } catch (err) { errors.replaceChildren(exportReason(err)); } };
  close.onclick = () => { dlg.close(); dlg.remove(); };
  go.onclick = async () => {
    errors.replaceChildren();
    const body = { case: info.case_number, subject: String(subject.id), media: media.value,
      originals_on_working: orig.checked, accept: [] };
    try {
      Object.assign(body, range());
      for (const row of holes.querySelectorAll("tr.hole")) {
        if (!row.querySelector(".hole-accept").checked) continue;
        const note = row.querySelector(".hole-note").value.trim();
        if (!note) throw Object.assign(new Error(ET("note_needed")), { code: "validation_failed", local: true });
        body.accept.push({ start: row.dataset.start, end: row.dataset.end, note });
      }
    } catch (err) { errors.append(exportReason(err)); return; }
    go.disabled = true;
    try {
      await exportCall("/api/v1/exports", body);
      dlg.close(); dlg.remove();
      started();
    } catch (err) { errors.append(exportReason(err)); go.disabled = false; }
  };

  dlg.append(h("h2", {}, `${ET("title")}：${subject.name}`),
    h("fieldset", {}, h("legend", {}, ET("range")),
      h("label", {}, ET("from"), " ", fromIn), " ", h("label", {}, ET("to"), " ", toIn), " ", again,
      h("div", { class: "muted" }, `${ET("time_hint")}`)),
    h("fieldset", {}, h("legend", {}, ET("copies")),
      h("label", {}, ET("medium"), " ", media), " ",
      h("span", { class: "muted" }, `${ET("master")}（${ET("master_note")}）/ ${ET("working")}`), " ",
      h("label", {}, orig, " ", ET("originals_on_working"))),
    planBox, holes, errors, h("p", { class: "export-buttons" }, go, " ", close));
  document.body.append(dlg);
  dlg.showModal();
  load(null);
  return dlg;
}

// --- the job list -----------------------------------------------------------------------------
// Draws the case's export jobs into ``box`` (``names``: subject id → name); returns the refresh
// function (it polls while a job is queued or running).
function exportJobs(box, info, names = {}) {
  let timer = null;
  const fileLinks = (j, names, copy) => names.length ? h("div", { class: `files ${copy}` }, h("span", { class: "copy" }, `${ET(copy)}: `),
    names.map((f) => h("a", { href: `/api/v1/exports/${j.id}/files/${encodeURIComponent(f)}`, class: `file ${copy}` }, f + " "))) : null;
  const row = (j) => {
    const failed = j.state === "failed" || (j.state === "cancelled" && j.error);
    return h("tr", { class: "job", "data-state": j.state, "data-id": j.id },
      h("td", { class: "job-subject" }, names[j.subject] || j.subject),
      h("td", { class: "job-state" }, label("export_state", j.state)),
      h("td", { class: "job-progress", title: j.message || "" }, h("progress", { max: 1, value: j.progress }), ` ${(j.progress * 100).toFixed(0)}%`),
      h("td", { class: "job-who" }, j.exported_by || ""),
      h("td", { class: "job-started" }, fmt(j.created)),
      h("td", { class: "job-finished" }, j.finished ? fmt(j.finished) : ""),
      h("td", { class: "job-files" }, fileLinks(j, j.master_files || [], "master"), fileLinks(j, j.working_files || [], "working"),
        (j.accepted || []).length ? h("div", { class: "job-accepted muted" }, `${ET("accepted")}: `,
          j.accepted.map((a) => `${span(a)} ${a.note}`).join("；")) : null),
      h("td", { class: "job-reason" }, failed && j.error ? exportReason(j.error) : null,
        j.state === "queued" || j.state === "running"
          ? h("button", { type: "button", class: "job-cancel", onclick: async () => {
            try { await exportCall(`/api/v1/exports/${j.id}/cancel`, {}); } catch (err) { box.prepend(exportReason(err)); }
            refresh();
          } }, ET("cancel_job")) : null));
  };
  async function refresh() {
    clearTimeout(timer);
    try {
      const res = await exportCall("/api/v1/exports");
      const mine = res.exports.filter((j) => j.case === info.case_number || j.case === String(info.id));
      box.replaceChildren(mine.length ? h("table", { class: "export-jobs" },
        h("tr", {}, [ET("subject"), ET("state"), ET("progress"), ET("who"), ET("started"), ET("finished"), ET("files"), ET("reason")]
          .map((k) => h("th", {}, k))), mine.map(row)) : h("p", { class: "muted" }, ET("no_jobs")));
      if (mine.some((j) => j.state === "queued" || j.state === "running")) timer = setTimeout(refresh, 1000);
    } catch (err) { box.replaceChildren(exportReason(err)); }
  }
  refresh();
  return refresh;
}
