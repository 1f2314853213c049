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
    arrest: ["抓获", "Arrest"], entry: ["入区登记", "Entry"], search: ["人身检查", "Search"],
    property: ["物品登记", "Property"], info_collection: ["信息采集", "Information collection"],
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
    stall: ["无数据", "stalled"], disconnect: ["连接断开", "disconnected"], recorder_restart: ["录像服务重启", "recorder restart"],
    timestamp_jump: ["摄像机时钟跳变", "camera clock jump"], storage_failure: ["存储故障", "storage failure"],
    stream_error: ["码流错误", "stream error"], node_failover: ["节点切换", "node failover"],
    clock_step: ["服务器时钟调整", "server clock step"], audio_lost: ["音频丢失", "audio lost"],
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
};

function label(kind, code) {
  if (code === null || code === undefined || code === "") return "";
  const main = document.getElementById("app") || document.getElementById("alerts");
  const en = ((main && main.dataset.lang) || "zh-CN") === "en";
  const entry = LABELS[kind] && LABELS[kind][code];
  return entry ? entry[en ? 1 : 0] : String(code);
}
