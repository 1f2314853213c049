// video-audit supervisor web: the 在区人员 board (GET /api/v1/live/board). Who is in the centre now,
// in which room since when, how long they have been held against the 12/24 h limit that applies to
// them, and their active alerts; the nearest deadline first. Loaded after app.js and labels.js.
"use strict";

(() => {
  const BOARD_TEXT = {
    "zh-CN": {
      name: "姓名", role: "身份", case: "案件", room: "所在房间", room_since: "进入房间", since: "在区起始",
      held: "已在区", limit: "时限", left: "剩余", status: "状态", alerts: "告警", nobody: "中心内当前无人",
      hours: "小时", minutes: "分", over: "已超", ok: "正常", approaching: "将到时限", exceeded: "已超时",
      no_limit: "不适用", serious: "重大案件", updated: "更新于", limits: "时限：一般案件 {h} 小时，重大案件 {s} 小时；到时限前 {w} 分钟提示",
    },
    en: {
      name: "Name", role: "Role", case: "Case", room: "Room", room_since: "In the room since", since: "In the centre since",
      held: "Held", limit: "Limit", left: "Left", status: "Status", alerts: "Alerts", nobody: "Nobody is in the centre",
      hours: "h", minutes: "min", over: "over by", ok: "ok", approaching: "limit approaching", exceeded: "limit exceeded",
      no_limit: "not applicable", serious: "serious case", updated: "updated", limits: "Limits: {h} h, serious cases {s} h; warned {w} min before",
    },
  };
  const B = (k) => (BOARD_TEXT[LANG] && BOARD_TEXT[LANG][k]) || k;
  document.head.append(Object.assign(document.createElement("link"), { rel: "stylesheet", href: "/static/board.css" }));

  const dur = (s) => {
    const m = Math.floor(Math.abs(s) / 60);
    return `${Math.floor(m / 60)} ${B("hours")} ${String(m % 60).padStart(2, "0")} ${B("minutes")}`;
  };
  const alertName = (a) => (LANG === "en" ? a.label.en : a.label["zh-CN"]);

  function row(p) {
    const left = p.remaining_seconds === null ? "—"
      : p.remaining_seconds >= 0 ? dur(p.remaining_seconds) : `${B("over")} ${dur(p.remaining_seconds)}`;
    return h("tr", { class: `present status-${p.status}`, "data-subject": p.subject_id, "data-room": p.room_id, "data-status": p.status },
      h("td", { class: "who" }, p.name),
      h("td", {}, label("role", p.role)),
      h("td", {}, h("a", { href: `/cases/${p.case_id}` }, p.case_number), p.serious ? h("span", { class: "serious" }, ` ${B("serious")}`) : null),
      h("td", { class: "room" }, p.room_name),
      h("td", { class: "room-since" }, fmt(p.room_since)),
      h("td", { class: "since" }, fmt(p.in_centre_since)),
      h("td", { class: "held" }, dur(p.held_seconds)),
      h("td", { class: "limit" }, p.limit_hours === null ? "—" : `${p.limit_hours} ${B("hours")}`),
      h("td", { class: "left" }, left),
      h("td", {}, h("span", { class: `limit-state ${p.status}` }, B(p.status))),
      h("td", { class: "board-alerts" }, p.alerts.map((a) =>
        h("a", { href: "/alerts", class: `alert-badge sev-${a.severity}`, "data-rule": a.rule, title: fmt(a.start) }, alertName(a)))));
  }

  async function pageBoard() {
    const note = h("p", { class: "muted board-limits" });
    const box = h("div", { id: "board" });
    const stamp = h("p", { class: "muted board-updated" });
    root.append(note, box, stamp);
    async function refresh() {
      try {
        const res = await api("/api/v1/live/board");
        const L = res.limits;
        note.textContent = B("limits").replace("{h}", L.hours).replace("{s}", L.serious_hours).replace("{w}", L.warn_before_minutes);
        box.replaceChildren(res.people.length ? h("table", { class: "board" },
          h("tr", {}, ["name", "role", "case", "room", "room_since", "since", "held", "limit", "left", "status", "alerts"]
            .map((k) => h("th", {}, B(k)))), res.people.map(row)) : h("p", { class: "muted nobody" }, B("nobody")));
        stamp.textContent = `${B("updated")} ${fmt(res.now)}`;
      } catch (err) { box.replaceChildren(errorBox(err)); }
    }
    await refresh();
    setInterval(refresh, 15000);
  }

  PAGE_STARTS.board = pageBoard;
})();
