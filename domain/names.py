"""What the domain's codes are called where people read them: the disc (statement, gap report,
subtitles, chapters), the playback subtitles and the web pages.

One table per code, (zh-CN, English), so that a court clerk comparing the web with the disc reads
the same words for the same event or gap. The web pages' copy of these tables
(``pipeline/web/static/labels.js``) is kept equal by ``tests/pipeline/web/test_labels.py``.
"""

from __future__ import annotations

from domain.types import EventType, GapCause

EVENT_NAMES: dict[EventType, tuple[str, str]] = {
    EventType.ARREST: ("抓获", "Arrest"),
    EventType.ENTRY: ("入区登记", "Entry"),
    EventType.SEARCH: ("人身检查", "Body search"),
    EventType.PROPERTY: ("物品登记", "Property registration"),
    EventType.INFO_COLLECTION: ("信息采集", "Information collection"),
    EventType.WAITING: ("候问", "Waiting"),
    EventType.TAKEN_OUT: ("提押", "Taken out"),
    EventType.RETURNED: ("还押", "Returned"),
    EventType.INTERROGATION_START: ("讯问开始", "Interrogation start"),
    EventType.INTERROGATION_END: ("讯问结束", "Interrogation end"),
    EventType.TRANSCRIPT_SIGNED: ("笔录签字", "Transcript signed"),
    EventType.EXIT: ("离区", "Exit"),
    EventType.OTHER: ("其他", "Other"),
}

GAP_CAUSE_NAMES: dict[GapCause, tuple[str, str]] = {
    GapCause.STALL: ("信号停滞", "stream stalled"),
    GapCause.DISCONNECT: ("连接中断", "disconnected"),
    GapCause.RECORDER_RESTART: ("录制程序重启", "recorder restart"),
    GapCause.TIMESTAMP_JUMP: ("摄像机时间跳变", "camera clock jump"),
    GapCause.STORAGE_FAILURE: ("存储故障", "storage failure"),
    GapCause.STREAM_ERROR: ("码流错误", "stream error"),
    GapCause.NODE_FAILOVER: ("节点切换", "node failover"),
    GapCause.CLOCK_STEP: ("录像主机时钟跳变", "recorder clock step"),
    GapCause.AUDIO_LOST: ("无声音（画面照常）", "audio lost, picture recorded"),
}


def gap_heading(cause: GapCause, lang: str) -> str:
    """ "录像中断：连接中断" / "gap: disconnected"; a lost audio track is a 录音中断 (audio gap)."""
    zh, en = GAP_CAUSE_NAMES[cause]
    if lang == "en":
        return f"{'gap' if cause.video_missing else 'audio gap'}: {en}"
    return f"{'录像中断' if cause.video_missing else '录音中断'}：{zh}"
