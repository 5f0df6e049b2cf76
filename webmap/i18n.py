"""Labels of the map pages in Chinese (the default) and English, one key per label.

Chinese labels of statuses, urgencies, themes and roles come from ``gis_platform.vocab``, so the pages
say what the rest of the platform says; English ones are kept here. The pages receive the whole table
as JSON and switch language without a reload.
"""

from __future__ import annotations

from gis_platform import vocab
from gis_platform.workflow import ACTIONS

LANGUAGES = ("zh", "en")
DEFAULT_LANGUAGE = "zh"
LANG_COOKIE = "gis_lang"

STATUS_EN = {
    "reported": "Awaiting verification", "filed": "Awaiting dispatch", "cancelled": "Cancelled",
    "dispatched": "Dispatched", "accepted": "In hand", "returned": "Returned", "handled": "Awaiting check",
    "closed": "Closed", "evaluated": "Evaluated", "deferred": "Deferred", "merged": "Merged",
}
URGENCY_EN = {"normal": "Normal", "urgent": "Urgent", "emergency": "Emergency"}
THEME_EN = {
    "ten_disorders": "Ten disorders", "illegal_operation": "Illegal street trading",
    "illegal_structures": "Illegal structures", "fume_sites": "Cooking fumes", "promotion": "Promotion",
    "market_supervision": "Market supervision", "municipal": "Municipal facilities",
}
ROLE_EN = {"admin": "Administrator", "supervisor": "Supervisor", "operator": "Dispatcher",
           "patroller": "Patroller", "planner": "Planner", "liaison": "Department liaison"}
SOURCE_EN = {"patroller": "Patrol", "citizen": "Citizen", "hotline": "Hotline", "video": "Video",
             "referral": "Referral"}
AGENCY_KIND_EN = {"bureau": "Bureau", "brigade": "Brigade", "squad": "Squad", "dept_team": "Department team",
                  "department": "Department", "township_office": "Township office"}
ACTION_EN = {
    "report": "Reported", "file": "Verified and filed", "cancel": "Cancelled as invalid", "dispatch": "Dispatched",
    "accept": "Accepted", "return": "Returned", "feedback": "Feedback", "rework": "Rework",
    "close": "Checked and closed",
    "evaluate": "Evaluated", "defer": "Deferred", "resume": "Resumed", "merge": "Merged as a duplicate",
    "request_extension": "Extension requested", "approve_extension": "Extension approved", "supervise": "Supervised",
    "reroute": "Re-routed", "link_duplicate": "Duplicate linked", "structure_stage": "Structure stage changed",
    "seize_item": "Item seized", "return_item": "Item returned", "confiscate_item": "Item confiscated",
}

# Page labels: key -> (Chinese, English).
PAGE: dict[str, tuple[str, str]] = {
    "app.title": ("阳谷县数字城管指挥中心", "Yanggu Digital City Management Command Centre"),
    "lang.switch": ("English", "中文"),
    "lang.switch_title": ("切换到英文", "Switch to Chinese"),
    "user.logout": ("退出", "Sign out"),
    "live.connecting": ("实时连接中…", "Connecting…"),
    "live.live": ("实时", "Live"),
    "live.reconnecting": ("重新连接中…", "Reconnecting…"),
    "live.offline": ("实时推送中断", "Live updates stopped"),
    "filter.category": ("类别", "Category"),
    "filter.status": ("状态", "Status"),
    "filter.squad": ("中队", "Squad"),
    "filter.time": ("上报时间", "Reported"),
    "filter.all": ("全部", "All"),
    "filter.open": ("未结案件", "Open cases"),
    "filter.queue": ("待核实、待派遣", "Awaiting verification or dispatch"),
    "filter.closed": ("已结案、已评价", "Closed or evaluated"),
    "time.any": ("不限", "Any time"),
    "time.today": ("今天", "Today"),
    "time.7d": ("近 7 天", "Last 7 days"),
    "time.30d": ("近 30 天", "Last 30 days"),
    "time.365d": ("近一年", "Last year"),
    "filter.squad_lowzoom": ("缩放级别较低时，地图上的聚合点不按中队筛选；放大后按中队显示。",
                             "At low zoom the map's aggregates are not filtered by squad; zoom in to filter."),
    "queue.title": ("待办队列", "Queue"),
    "queue.subtitle": ("待核实、待派遣、已退回", "Awaiting verification, dispatch or re-dispatch"),
    "queue.empty": ("暂无待办案件", "Nothing waiting"),
    "queue.remaining": ("剩余", "left"),
    "queue.overdue_by": ("已超时", "overdue by"),
    "queue.verify_by": ("核实时限", "verify within"),
    "queue.dispatch_by": ("派遣时限", "dispatch within"),
    "queue.routed": ("建议承办", "routed to"),
    "queue.more": ("仅显示前 {n} 件", "showing the first {n}"),
    "unit.min": ("分钟", "min"),
    "unit.h": ("小时", "h"),
    "unit.workh": ("工作小时", "working hours"),
    "details.title": ("案件详情", "Case details"),
    "details.close": ("返回队列", "Back to the queue"),
    "details.category": ("类别", "Category"),
    "details.urgency": ("紧急程度", "Urgency"),
    "details.source": ("来源", "Source"),
    "details.address": ("地址", "Address"),
    "details.description": ("描述", "Description"),
    "details.reported_at": ("上报时间", "Reported at"),
    "details.routed": ("承办单位", "Assigned unit"),
    "details.grid": ("单元网格", "Grid cell"),
    "details.due_at": ("处置时限", "Due"),
    "details.remaining": ("剩余工作时间", "Working time left"),
    "details.overdue": ("已超期", "Overdue"),
    "details.near_boundary": ("靠近辖区边界，请确认承办单位", "Near a jurisdiction boundary: confirm the unit"),
    "details.fallback": ("无对应中队，按属地兜底", "No unit covers it: township fallback"),
    "details.photos": ("照片", "Photos"),
    "details.no_photos": ("无照片", "No photos"),
    "details.timeline": ("办理过程", "Timeline"),
    "details.loading": ("加载中…", "Loading…"),
    "details.failed": ("加载失败", "Could not load"),
    "action.file": ("核实立案", "Verify and file"),
    "action.cancel": ("核实作废", "Cancel as invalid"),
    "action.dispatch": ("派遣", "Dispatch"),
    "action.locate": ("在地图上定位", "Show on the map"),
    "dispatch.title": ("派遣案件", "Dispatch the case"),
    "dispatch.target": ("承办单位", "Unit"),
    "dispatch.routed_mark": ("（系统建议）", " (routed)"),
    "dispatch.reason": ("改派理由（与系统建议不同时必填）", "Reason for the override (required when it differs)"),
    "dispatch.reason_required": ("请填写改派理由", "Give a reason for the override"),
    "dispatch.submit": ("确认派遣", "Dispatch"),
    "dispatch.cancel": ("取消", "Cancel"),
    "dispatch.done": ("已派遣", "Dispatched"),
    "cancel.reason": ("作废理由（必填）", "Why it is invalid (required)"),
    "cancel.submit": ("确认作废", "Cancel the report"),
    "file.done": ("已立案", "Filed"),
    "error.conflict": ("案件已被他人更新，已重新加载，请再次确认。", "Someone else changed the case; it was reloaded, check again."),
    "error.generic": ("操作失败：", "Failed: "),
}


def messages() -> dict[str, dict[str, str]]:
    """Return every label by language: page labels, statuses, urgencies, themes, sources, roles and steps."""
    out: dict[str, dict[str, str]] = {lang: {} for lang in LANGUAGES}
    for key, (zh, en) in PAGE.items():
        out["zh"][key], out["en"][key] = zh, en
    tables = (("status", vocab.CASE_STATUS_LABELS, STATUS_EN), ("urgency", vocab.URGENCY_LABELS, URGENCY_EN),
              ("theme", vocab.THEME_LABELS, THEME_EN), ("role", vocab.ROLE_LABELS, ROLE_EN),
              ("source", vocab.CASE_SOURCE_LABELS, SOURCE_EN), ("kind", vocab.AGENCY_KIND_LABELS, AGENCY_KIND_EN),
              ("step", {a.name: a.label for a in ACTIONS}, ACTION_EN))
    for prefix, zh_labels, en_labels in tables:
        for key, zh in zh_labels.items():
            out["zh"][f"{prefix}.{key}"] = zh
            out["en"][f"{prefix}.{key}"] = en_labels[key]
    return out


def label(key: str, lang: str = DEFAULT_LANGUAGE) -> str:
    """Return one label in a language (Chinese when the language is unknown)."""
    table = messages()
    return table.get(lang, table[DEFAULT_LANGUAGE])[key]


def choose_language(value: str | None) -> str:
    """Return a supported language for a cookie or query value, Chinese by default."""
    return value if value in LANGUAGES else DEFAULT_LANGUAGE
