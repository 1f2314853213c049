// video-audit supervisor web: the playback pages. /play: one camera or a room's cameras over a range;
// /cases/{id}/replay?subject=N (全程回放): one subject's whole stay, the arrest clip, then room after room.
// Loaded after app.js and labels.js; it loads the player (player.js), the timeline (timeline.js) and
// their styles (play.css) before it draws.
"use strict";

const REPLAY_TEXT = {
  "zh-CN": { replay: "全程回放", room_all: "全部摄像机", alerts_here: "本段告警", to_footage: "看录像",
    moment: "此刻链接", copied: "已复制链接", bad_time: "时间无法识别", bad_range: "结束时间须晚于开始时间",
    not_playable: "所选摄像机或房间不在您可回放的范围内（或不存在）：请在上面重新选择" },
  en: { replay: "Full-stay replay", room_all: "all cameras", alerts_here: "Alerts in this range", to_footage: "Watch",
    moment: "Link to this moment", copied: "Link copied", bad_time: "Unreadable time",
    bad_range: "The end must come after the start",
    not_playable: "The camera or room asked for is not one you may play (or does not exist): choose again above" },
};
const RT = (k) => (REPLAY_TEXT[LANG] || REPLAY_TEXT["zh-CN"])[k] || k;

function loadPlayer() {
  document.head.append(h("link", { rel: "stylesheet", href: "/static/play.css" }));
  const one = (src) => new Promise((ok, fail) => {
    const s = h("script", { src });
    s.onload = ok; s.onerror = () => fail(new Error(`${src} did not load`));
    document.body.append(s);
  });
  return one("/static/player.js").then(() => one("/static/timeline.js"));
}

const enc = encodeURIComponent;
const caseQs = (caseId) => (caseId ? `&case_id=${enc(caseId)}` : "");

// Footage runs (touching segments joined) and gaps of one camera over [lo, hi), for the player and timeline.
async function footageOf(camId, lo, hi, caseId) {
  const qs = `start=${enc(isoOf(lo))}&end=${enc(isoOf(hi))}${caseQs(caseId)}`;
  const [s, g] = await Promise.all([api(`/api/v1/cameras/${enc(camId)}/segments?${qs}&limit=10000`),
    api(`/api/v1/cameras/${enc(camId)}/gaps?${qs}`)]);
  const runs = [];
  for (const seg of s.segments) {
    const a = ms(seg.start), b = ms(seg.end), last = runs[runs.length - 1];
    if (last && a - last[1] < 500) last[1] = Math.max(last[1], b); else runs.push([a, b]);
  }
  return { runs, gaps: g.gaps };
}

// Events and alerts on the timeline (labels.js names), each event also a button that plays from it.
async function marksOf(timeline, player, caseId, lo, hi, keep, list) {
  const events = [], alerts = [];
  if (caseId) {
    try {
      for (const e of (await api(`/api/v1/cases/${enc(caseId)}/events`)).events) {
        const t = ms(e.time);
        if (t < lo || t > hi || !keep(e)) continue;
        events.push({ time: t, type: e.type, title: label("event", e.type) });
        const b = h("button", { type: "button", class: "jump-event", "data-time": e.time },
          `${T("jump")}: ${label("event", e.type)} ${fmt(e.time)}`);
        b.onclick = () => player.seek(t);
        list.append(b);
      }
    } catch (_) { /* a page without events still plays */ }
  }
  try {
    const found = await api(`/api/v1/alerts${caseId ? `?case_id=${enc(caseId)}` : ""}`);
    for (const a of found.items) {
      const t = ms(a.start);
      if (t > hi || (a.end && ms(a.end) < lo) || !keep(a)) continue;
      const title = (a.label && a.label[LANG]) || a.rule;
      alerts.push({ id: a.id, start: Math.max(t, lo), end: a.end ? Math.min(ms(a.end), hi) : null, severity: a.severity, title });
      const go = h("button", { type: "button", class: "alert-jump", "data-alert": a.id }, `${RT("to_footage")}: ${title} ${fmt(a.start)}`);
      go.onclick = () => player.seek(Math.max(t, lo));
      list.append(go);
    }
  } catch (_) { /* alerts are optional here (no alert store on this node) */ }
  timeline.setMarks(events, alerts);
  player.setEvents(events.map((e) => e.time));
}

// Where to open: at= in the address (the moment a link or a reload names; t= from older links).
function openingMoment(q) {
  const asked = q.get("at") || q.get("t");
  if (!asked) return null;
  const t = ms(asked);
  if (Number.isNaN(t)) { root.append(errorBox(new Error(`${RT("bad_time")}: ${asked}`))); return null; }
  return t;
}

// The address names the moment where the picture came to rest (a jump, a pause), so that a reload
// opens there and the link (此刻链接) can be sent on.
function momentLink() {
  const link = h("a", { class: "moment-link", id: "moment-link", href: location.href }, RT("moment"));
  const said = h("span", { class: "moment-said", role: "status" });
  link.onclick = (ev) => {
    if (!navigator.clipboard || !window.isSecureContext) return; // no clipboard: the link opens the moment
    ev.preventDefault();
    navigator.clipboard.writeText(link.href).then(() => { said.textContent = RT("copied"); setTimeout(() => { said.textContent = ""; }, 3000); },
      () => { location.href = link.href; });
  };
  const write = (t) => {
    const q = new URLSearchParams(location.search);
    q.delete("t");
    q.set("at", isoOf(Math.round(t)));
    history.replaceState(history.state, "", `${location.pathname}?${q.toString()}`);
    link.href = location.href;
  };
  return { el: h("span", {}, link, " ", said), write };
}

function mountPlayer(scenes, rows, stays, start) {
  const lo = scenes[0].start, hi = Math.max(...scenes.map((x) => x.end));
  let timeline = null;
  const moment = momentLink();
  const player = new Player(scenes, { onTime: (t) => timeline && timeline.setTime(t), onMoment: moment.write });
  player.controls.append(moment.el);
  timeline = new Timeline({ lo, hi, rows, stays, onSeek: (t) => player.seek(t) });
  const list = h("div", { class: "jump" });
  root.append(player.el, timeline.el, list);
  window.vauditSeek = (t) => player.seek(t); // for tests and power users: seek to a wall time in ms
  window.vauditPlayer = player;
  if (start) player.seek(start);
  return { player, timeline, list };
}

async function pagePlay() {
  await loadPlayer();
  const q = new URLSearchParams(location.search);
  const start = q.get("start"), end = q.get("end"), caseId = q.get("case");
  let all;
  try { all = (await api(`/api/v1/playback/cameras${caseId ? `?case_id=${enc(caseId)}` : ""}`)).cameras; }
  catch (err) { root.append(errorBox(err)); return; }
  let cams = [];
  if (q.get("camera")) cams = all.filter((c) => c.id === q.get("camera"));
  else if (q.get("room")) cams = all.filter((c) => c.room_id === q.get("room"));
  const picked = q.get("camera") || (q.get("room") ? `room:${q.get("room")}` : "");
  const options = [];
  for (const roomId of [...new Set(all.map((c) => c.room_id))]) {
    const inRoom = all.filter((c) => c.room_id === roomId);
    if (inRoom.length > 1) options.push([`room:${roomId}`, `${inRoom[0].room_name} / ${RT("room_all")}`]);
    for (const c of inRoom) options.push([c.id, `${c.room_name} / ${c.name}`]);
  }
  // the range shown, in the centre's wall time (what the clock and the subtitles say)
  const when = (name, iso) => h("input", { name, type: "datetime-local", step: 1,
    ...(iso && !Number.isNaN(ms(iso)) ? { value: zoned(ms(iso), "T") } : {}) });
  const msg = h("span", { class: "error", role: "alert" });
  const pick = h("form", { id: "play-form" },
    h("label", {}, T("camera"), " ", h("select", { name: "camera" }, options.map(([v, text]) =>
      h("option", { value: v, ...(v === picked ? { selected: "" } : {}) }, text)))),
    h("label", {}, T("from"), " ", when("start", start)), h("label", {}, T("to"), " ", when("end", end)),
    h("button", { type: "submit" }, T("play")), " ", msg);
  pick.onsubmit = (ev) => {
    ev.preventDefault();
    const f = new FormData(pick);
    const which = String(f.get("camera") || "");
    const p = new URLSearchParams(which.startsWith("room:") ? { room: which.slice(5) } : { camera: which });
    // typed: the centre's wall time; left empty: the range shown (or the last 10 minutes)
    const a = f.get("start") ? unzoned(f.get("start")) : start ? ms(start) : Date.now() - 600000;
    const b = f.get("end") ? unzoned(f.get("end")) : end ? ms(end) : Date.now();
    if (a === null || b === null || Number.isNaN(a) || Number.isNaN(b)) { msg.textContent = RT("bad_time"); return; }
    if (b <= a) { msg.textContent = RT("bad_range"); return; }
    p.set("start", isoOf(a));
    p.set("end", isoOf(b));
    if (caseId) p.set("case", caseId); // an officer plays through their case; everyone keeps its marks
    location.search = p.toString();
  };
  root.append(pick);
  if ((q.get("camera") || q.get("room")) && !cams.length) {
    root.append(h("p", { class: "error not-playable", role: "alert" }, RT("not_playable")));
  }
  if (!cams.length || !start || !end) return;
  const lo = ms(start), hi = ms(end);
  const tiles = cams.map((c) => ({
    key: c.id, title: `${c.room_name} / ${c.name}`, start: lo, end: hi, gaps: [], segs: null,
    url: (t) => `/api/v1/playback/${enc(c.id)}.mp4?start=${enc(isoOf(t))}&end=${enc(end)}${caseQs(caseId)}`,
    vtt: `/api/v1/playback/${enc(c.id)}.vtt?start=${enc(start)}&end=${enc(end)}${caseQs(caseId)}`,
  }));
  const rows = tiles.map((x) => ({ key: x.key, title: x.title }));
  const { player, timeline, list } = mountPlayer([{ start: lo, end: hi, title: cams[0].room_name, tiles }], rows, [],
    openingMoment(q));
  for (const tile of tiles) {
    footageOf(tile.key, lo, hi, caseId).then(({ runs, gaps }) => {
      tile.segs = runs; tile.gaps = gaps;
      timeline.setFootage(tile.key, runs, gaps);
    }).catch((err) => root.append(errorBox(err)));
  }
  const rooms = new Set(cams.map((c) => c.room_id)), ids = new Set(cams.map((c) => c.id));
  marksOf(timeline, player, caseId, lo, hi,
    (x) => (x.room_id ? rooms.has(x.room_id) : true) && (!x.camera_id || ids.has(x.camera_id)), list);
}

async function pageReplay() {
  await loadPlayer();
  const caseId = root.dataset.caseId;
  const q = new URLSearchParams(location.search);
  let tl, all;
  try {
    [tl, all] = await Promise.all([api(`/api/v1/cases/${enc(caseId)}/timeline`),
      api(`/api/v1/playback/cameras?case_id=${enc(caseId)}`)]);
  } catch (err) { root.append(errorBox(err)); return; }
  all = all.cameras;
  const sj = tl.subjects.find((x) => String(x.subject.id) === q.get("subject")) || tl.subjects[0];
  if (!sj) { root.append(errorBox(new Error(T("none")))); return; }
  root.querySelector("h1").textContent = `${RT("replay")}: ${tl.case.case_number} ${sj.subject.name}`;
  const camName = new Map(all.map((c) => [c.id, c]));
  const roomName = (id) => (all.find((c) => c.room_id === id) || {}).room_name || id;
  const scenes = [], rows = [], stays = [];
  for (const clip of sj.clips) {
    const a = ms(clip.start), b = ms(clip.end), key = `clip-${clip.clip_id}`;
    const title = `${PT("clip")} ${clip.device_id}`;
    scenes.push({ start: a, end: b, title, tiles: [{ key, title, start: a, end: b, gaps: [], segs: [[a, b]],
      url: () => `/api/v1/playback/clips/${enc(clip.clip_id)}.mp4?case_id=${enc(caseId)}` }] });
    rows.push({ key, title });
    stays.push({ start: a, end: b, title });
  }
  for (const st of sj.stays) {
    const a = ms(st.interval.start), b = ms(st.interval.end), room = roomName(st.stay.room_id);
    stays.push({ start: a, end: b, title: room });
    const tiles = st.cameras.map((c) => {
      const info = camName.get(c.camera_id);
      const title = `${room} / ${info ? info.name : c.camera_id}`;
      if (!rows.some((r) => r.key === c.camera_id)) rows.push({ key: c.camera_id, title });
      return { key: c.camera_id, title, start: a, end: b, gaps: c.gaps, segs: c.runs.map((r) => [ms(r.start), ms(r.end)]),
        url: (t) => `/api/v1/playback/${enc(c.camera_id)}.mp4?start=${enc(isoOf(t))}&end=${enc(st.interval.end)}${caseQs(caseId)}`,
        vtt: `/api/v1/playback/${enc(c.camera_id)}.vtt?start=${enc(st.interval.start)}&end=${enc(st.interval.end)}${caseQs(caseId)}` };
    });
    scenes.push({ start: a, end: b, title: room, tiles });
  }
  scenes.sort((x, y) => x.start - y.start);
  if (!scenes.length) { root.append(errorBox(new Error(T("none")))); return; }
  const { player, timeline, list } = mountPlayer(scenes, rows, stays, openingMoment(q));
  for (const sc of scenes) for (const tile of sc.tiles) {
    const row = timeline.rows.find((r) => r.key === tile.key);
    timeline.setFootage(tile.key, row.segs.concat(tile.segs), row.gaps.concat(tile.gaps));
  }
  const lo = scenes[0].start, hi = Math.max(...scenes.map((s) => s.end));
  marksOf(timeline, player, caseId, lo, hi, (x) => x.subject_id === undefined || x.subject_id === null || x.subject_id === sj.subject.id, list);
}

PAGE_STARTS.play = () => (root.dataset.mode === "replay" ? pageReplay() : pagePlay());
