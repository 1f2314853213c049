// video-audit supervisor web: what the codes of the API are called on screen. The API speaks codes
// (event types, roles, gap causes, export states, audit actions, error codes); a zh-CN page must never
// show one raw. label(kind, code) gives the name in the page's language, and the code itself only
// for a code this table does not know (a newer server), so that nothing is hidden.
// Loaded after app.js on every page (and by itself on the alerts page): it reads the page's language
// from <main data-lang>, not from app.js, so that it stands alone.
"use strict";

const LABELS = {
  // domain.types.EventType
  event: {
    arrest: ["抓获", "Arrest"], entry: ["入区登记", "Entry"], search: ["人身检查", "Body search"],
    property: ["物品登记", "Property registration"], info_collection: ["信息采集", "Information collection"],
    waiting: ["候问", "Waiting"], taken_out: ["提押", "Taken out"], returned: ["还押", "Returned"],
    interrogation_start: ["讯问开始", "Interrogation start"], interrogation_end: ["讯问结束", "Interrogation end"],
    transcript_signed: ["笔录签字", "Transcript signed"], exit: ["离区", "Exit"], other: ["其他", "Other"],
  },
  // indexer.models.SUBJECT_ROLES and the officers' roles in a case
  role: {
    suspect: ["犯罪嫌疑人", "Suspect"], witness: ["证人", "Witness"], victim: ["被害人", "Victim"],
    interrogator: ["讯问人", "Interrogator"], recorder: ["记录人", "Recorder"], escort: ["看管民警", "Escort"],
    guardian: ["监护人", "Guardian"], interpreter: ["翻译人员", "Interpreter"], lawyer: ["律师", "Lawyer"],
  },
  // indexer.models.users.ROLES (who uses the web)
  user_role: {
    officer: ["办案民警", "Officer"], supervisor: ["监督员", "Supervisor"], legal: ["法制员", "Legal affairs"],
    admin: ["管理员", "Administrator"], court_viewer: ["法庭查看", "Court viewer"],
  },
  // domain.types.GapCause
  cause: {
    stall: ["信号停滞", "stream stalled"], disconnect: ["连接中断", "disconnected"],
    recorder_restart: ["录制程序重启", "recorder restart"], timestamp_jump: ["摄像机时间跳变", "camera clock jump"],
    storage_failure: ["存储故障", "storage failure"], stream_error: ["码流错误", "stream error"],
    node_failover: ["节点切换", "node failover"], clock_step: ["录像主机时钟跳变", "recorder clock step"],
    audio_lost: ["无声音（画面照常）", "audio lost, picture recorded"],
  },
  // domain.types.RoomKind
  room_kind: {
    arrest: ["抓获现场", "Arrest scene"], entry: ["入区登记", "Entry"], search: ["人身检查室", "Search room"],
    property: ["物品保管", "Property"], info: ["信息采集室", "Information collection"], waiting: ["候问室", "Waiting room"],
    sobering: ["醒酒室", "Sobering room"], interrogation: ["讯问室", "Interrogation room"], inquiry: ["询问室", "Inquiry room"],
    corridor: ["走廊", "Corridor"], exit: ["出口", "Exit"], other: ["其他", "Other"],
  },
  // pipeline.export.service: a job's state
  export_state: {
    queued: ["排队中", "queued"], running: ["制作中", "running"], done: ["已完成", "done"], failed: ["失败", "failed"],
    cancelled: ["已取消", "cancelled"],
  },
  // pipeline.export.service: why a job failed, by error code (the English message stays beside it)
  export_error: {
    export_unexplained: ["导出范围内有时段既无录像也无中断记录，导出被拒绝。请在导出对话框中为这些时段逐段填写说明并接受后重新导出", "Seconds of the range have neither footage nor a recorded gap: the export was refused. Accept them with a note in the export dialog and export again"],
    export_range_invalid: ["无法确定导出范围：请在导出对话框中填写开始和结束时间", "The export range cannot be derived: give its start and end in the export dialog"],
    disc_capacity: ["文件放不进所选光盘：请选择容量更大的光盘", "A file does not fit on the chosen disc: choose a larger medium"],
    export_cancelled: ["导出已取消", "The export was cancelled"],
    service_stopped: ["导出服务正在停止，请稍后重新导出", "The export service is stopping: start the export again later"],
    source_integrity: ["录像文件与采集时的哈希不符，拒绝封存：请联系管理员核查存储", "A stored segment does not match its capture hash: refused to seal it; have the storage checked"],
    export_media_error: ["录像无法读取或写入，导出失败", "Footage could not be read or written"],
    export_tool_missing: ["服务器缺少制作光盘所需的程序（如 Chromium），请联系管理员", "A tool the disc needs (e.g. Chromium) is missing on the server"],
    interrupted: ["导出过程中服务重启，已写入的内容不提供下载，请重新导出", "The service stopped during the export; start it again"],
    files_missing: ["光盘镜像文件已不存在，请重新导出", "The disc images are gone; export again"],
    not_found: ["找不到该案件或人员", "No such case or subject"],
    validation_failed: ["导出请求有误", "The export request is invalid"],
    conflict: ["该姓名对应多名人员，请用人员编号", "The name matches several subjects; use the subject id"],
    storage_error: ["读取存储中的录像失败，导出失败", "Reading footage from storage failed"],
    storage_unavailable: ["存储暂不可用，请稍后重新导出", "Storage is unavailable; export again later"],
    integrity_error: ["录像完整性校验失败，拒绝封存", "An integrity check failed: refused to seal"],
    index_error: ["索引数据库出错，导出失败", "The index database failed"],
    forbidden: ["无权导出该案件", "You may not export this case"],
    internal_error: ["服务器内部错误，导出失败", "Internal error"],
  },
  // exporter.iso_image.MEDIA_BYTES
  medium: {
    dvd5: ["DVD-5（4.7 GB）", "DVD-5 (4.7 GB)"], dvd9: ["DVD-9（8.5 GB）", "DVD-9 (8.5 GB)"],
    bd25: ["BD-25（25 GB）", "BD-25 (25 GB)"], bd50: ["BD-50（50 GB）", "BD-50 (50 GB)"],
  },
  // domain.types.ObservationSource
  source: { wristband: ["手环定位", "wristband"], face: ["人脸识别", "face recognition"], manual: ["人工登记", "manual"] },
  // an officer's part in a case (pipeline.api.cases.CaseOfficerIn.role)
  officer_role: {
    lead: ["主办", "lead"], assist: ["协办", "assist"], recorder: ["记录人", "recorder"], interpreter: ["翻译", "interpreter"],
    interrogator: ["讯问人", "interrogator"],
  },
  // the "code" of the API's error shape (pipeline.api.errors); the English message stays in the title
  error: {
    forbidden: ["无权进行此操作", "Not allowed"], csrf_failed: ["页面已过期，请刷新后重试", "The page has expired: reload it"],
    not_found: ["未找到所请求的内容", "Not found"], unauthorized: ["请先登录", "Please log in"],
    service_stopped: ["服务正在停止，请稍后再试", "The service is stopping: try again later"],
    validation_failed: ["请求的参数有误", "The request is not valid"], bad_request: ["请求有误", "Bad request"],
    conflict: ["与已有记录冲突", "Conflicts with a stored record"], too_many_requests: ["尝试次数过多，请稍后再试", "Too many attempts"],
    payload_too_large: ["提交的内容过大", "Request too large"], internal_error: ["服务器内部错误", "Internal error"],
    footage_altered: ["录像文件与采集时的哈希不符，已停止播放", "The footage no longer matches its capture hash"],
    export_unexplained: ["导出范围内有无说明的录像缺失", "Unexplained footage gaps in the export range"],
    export_range_invalid: ["导出范围无效", "Invalid export range"], disc_capacity: ["超出光盘容量", "Larger than the disc"],
    export_cancelled: ["导出已取消", "Export cancelled"], storage_error: ["存储故障", "Storage failure"],
    storage_unavailable: ["存储不可用", "Storage unavailable"], index_error: ["索引数据库不可用", "Index database unavailable"],
    integrity_error: ["数据完整性校验失败", "Integrity check failed"], stream_error: ["码流错误", "Stream error"],
    method_not_allowed: ["不支持此操作", "Method not allowed"], network: ["无法连接服务器", "Cannot reach the server"],
    unknown: ["操作失败", "The request failed"],
  },
  // the "action" of an audit row (indexer.audit; written by pipeline.api and pipeline.retention)
  audit_action: {
    login: ["登录", "login"], logout: ["退出", "logout"], login_failed: ["登录失败", "login failed"],
    login_throttled: ["登录受限", "login throttled"], token_issued: ["签发令牌", "token issued"],
    token_refused: ["令牌申请被拒", "token refused"], token_revoked: ["吊销令牌", "token revoked"],
    token_revoked_all: ["吊销全部令牌", "all tokens revoked"], search: ["检索案件", "search"],
    view_case: ["查看案件", "view case"], view_subject: ["查看人员", "view subject"], playback: ["回放录像", "playback"],
    playback_refused: ["回放被拒（哈希不符）", "playback refused"], live_view: ["查看实时画面", "live view"],
    export: ["导出光盘", "export"], export_cancel: ["取消导出", "export cancelled"], download: ["下载光盘镜像", "download"],
    case_create: ["新建案件", "case created"], subject_create: ["登记人员", "subject created"],
    officer_create: ["登记民警", "officer created"], case_officer_add: ["指派民警", "officer attached"],
    event_write: ["录入事件", "events written"], observation_write: ["录入位置", "observations written"],
    readings_confirm: ["确认记录", "readings confirmed"], bodycam_upload: ["上传执法记录仪视频", "body-camera upload"],
    alert_raised: ["产生告警", "alert raised"], alert_acknowledge: ["确认告警", "alert acknowledged"],
    alert_resolve: ["处置告警", "alert resolved"], view_alert_snapshot: ["查看告警截图", "alert snapshot viewed"],
    audit_browse: ["查阅审计日志", "audit browsed"], audit_verify: ["校验审计哈希链", "audit verified"],
    user_create: ["新建用户", "user created"], user_disable: ["停用用户", "user disabled"],
    board_view: ["查看在区人员", "board viewed"],
    "legal_hold.place": ["设置法律保全", "legal hold placed"], "legal_hold.release": ["解除法律保全", "legal hold released"],
    "retention.delete": ["到期删除录像", "retention delete"], "retention.run": ["执行保存期限清理", "retention run"],
  },
  // what an audit row's object names, before its colon (case:A-1, camera:int-1-a, ...)
  audit_object: {
    case: ["案件", "case"], camera: ["摄像机", "camera"], user: ["用户", "user"], user_id: ["用户编号", "user id"],
    subject: ["人员", "subject"], officer: ["民警", "officer"], alert: ["告警", "alert"], export: ["光盘", "disc"],
    export_job: ["导出任务", "export job"], clip: ["执法记录仪视频", "clip"], segment: ["录像片段", "segment"],
    live: ["实时画面", "live"], board: ["在区人员", "board"], grid: ["全部画面", "grid"], cases: ["案件", "cases"], auth: ["身份认证", "authentication"],
    audit_log: ["审计日志", "audit log"], readings: ["位置与事件记录", "readings"], storage: ["存储", "storage"],
  },
  // an audit row's client when it is not a network address (pipeline.cli writes "cli")
  audit_client: { cli: ["命令行", "command line"] },
  // a user name that is not a person's (indexer.audit)
  user_name: { system: ["系统", "system"] },
};

function label(kind, code) {
  if (code === null || code === undefined || code === "") return "";
  const main = document.getElementById("app") || document.getElementById("alerts");
  const en = ((main && main.dataset.lang) || "zh-CN") === "en";
  const entry = LABELS[kind] && LABELS[kind][code];
  return entry ? entry[en ? 1 : 0] : String(code);
}

function labelLang() {
  const main = document.getElementById("app") || document.getElementById("alerts");
  return (main && main.dataset.lang) || "zh-CN";
}

// An API error (app.js's api() gives it code and detail) in the page's words: the code's name;
// the English message of the API goes into the title, for whoever reports the problem.
function errorText(err) {
  const code = (err && err.code) || (err instanceof TypeError ? "network" : "unknown");
  const entry = LABELS.error[code] || LABELS.error.unknown;
  return entry[labelLang() === "en" ? 1 : 0];
}

// Rooms and cameras by name (GET /api/v1/rooms, readable by every role), fetched once per page.
// A camera without a name is called after its room ("讯问室1 摄像机2"), never by its id.
let PLACES = null;
function places() {
  if (PLACES === null) {
    PLACES = fetch("/api/v1/rooms", { credentials: "same-origin", headers: { Accept: "application/json" } })
      .then((r) => (r.ok ? r.json() : { rooms: [] }))
      .catch(() => ({ rooms: [] }))
      .then((doc) => {
        const en = labelLang() === "en";
        const room = new Map(), camera = new Map(), rooms = doc.rooms || [];
        for (const r of rooms) {
          room.set(r.id, r.name || r.id);
          r.cameras.forEach((c, i) => camera.set(c.id, c.name || `${r.name} ${en ? "camera" : "摄像机"}${i + 1}`));
        }
        return { room, camera, rooms };
      });
  }
  return PLACES;
}
const roomName = (p, id) => (id ? p.room.get(id) || id : "");
const cameraName = (p, id) => (id ? p.camera.get(id) || id : "");

// An audit row's object ("camera:int-1-a") in words: the kind's name and the thing's own name.
function auditObject(p, obj) {
  const text = String(obj || "");
  const at = text.indexOf(":");
  if (at < 0) return label("audit_object", text);
  const kind = text.slice(0, at), rest = text.slice(at + 1);
  const name = kind === "camera" ? cameraName(p, rest) : kind === "live" ? label("audit_object", rest) : rest;
  return `${label("audit_object", kind)} ${name}`;
}
