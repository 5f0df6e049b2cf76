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
    # /planning (webmap/planning.py, static/planning.js)
    "planning.title": ("阳谷县数字城管 · 分析规划", "Yanggu City Management · Planning"),
    "planning.brand": ("分析规划", "Planning"),
    "planning.month": ("月份", "Month"),
    "planning.all_months": ("全部月份", "All months"),
    "planning.play": ("逐月播放", "Play by month"),
    "planning.pause": ("暂停", "Pause"),
    "planning.summary": ("{period}：共 {n} 件案件，{cells} 个网格有案件", "{period}: {n} cases in {cells} grid cells"),
    "planning.outside": ("（{n} 件不在任何网格内）", " ({n} outside every grid cell)"),
    "planning.loading": ("加载中…", "Loading…"),
    "planning.failed": ("加载失败：", "Could not load: "),
    "planning.charts": ("考核指标", "Indicators"),
    "planning.by_squad": ("各中队及承办单位", "By squad and assigned unit"),
    "planning.by_township": ("各街道、乡镇", "By township"),
    "planning.axis_count": ("案件数", "Cases"),
    "planning.axis_rate": ("比率（%）", "Rate (%)"),
    "planning.no_data": ("所选范围内无数据", "No data for this selection"),
    "planning.yoy": ("同比", "On a year earlier"),
    "planning.yoy_none": ("去年同期为 0", "none a year earlier"),
    "planning.export": ("导出", "Export"),
    "planning.export_map": ("地图 PNG", "Map PNG"),
    "planning.export_chart": ("PNG", "PNG"),
    "planning.export_cells_csv": ("网格计数 CSV", "Grid counts CSV"),
    "planning.export_chart_csv": ("CSV", "CSV"),
    "planning.export_failed": ("导出失败：", "Export failed: "),
    "planning.briefing": ("周例会简报", "Weekly briefing"),
    "planning.township": ("街道/乡镇", "Township"),
    "planning.week": ("周次", "Week"),
    "planning.open_html": ("打开简报", "Open the briefing"),
    "planning.open_csv": ("下载 CSV", "Download CSV"),
    "planning.briefing_unavailable": ("本服务器尚未提供周例会简报", "This server does not serve the weekly briefing yet"),
    "planning.analytics_unavailable": ("本服务器尚未提供热点分析", "This server does not serve hot-spot analysis yet"),
    "planning.analytics_loading": ("热点分析计算中…", "Computing hot spots…"),
    "legend.heat": ("案件热力图", "Case heat map"),
    "legend.few": ("相对少", "fewer"),
    "legend.many": ("相对多", "more"),
    "legend.cells": ("网格案件数", "Cases per grid cell"),
    "legend.cases": ("{min}–{max} 件", "{min}–{max}"),
    "legend.case": ("{min} 件", "{min}"),
    "legend.none": ("无案件", "No cases"),
    "legend.none_significant": ("无显著网格", "No significant cell"),
    # /patrol (webmap/patrol.py, static/patrol.js)
    "patrol.title": ("阳谷县数字城管 · 巡查上报", "Yanggu City Management · Patrol"),
    "patrol.brand": ("巡查上报", "Patrol"),
    "where.locating": ("正在定位…", "Locating…"),
    "where.grid": ("网格", "Grid"),
    "where.squad": ("中队", "Squad"),
    "where.accuracy": ("精度约 {m} 米", "within about {m} m"),
    "where.outside": ("当前位置不在本县范围内", "You are outside the county"),
    "where.denied": ("无法定位：请允许访问位置，或在地图上点选上报位置",
                     "No position: allow location access, or tap the map to place the report"),
    "where.lookup_failed": ("网格查询失败：", "Could not look up the grid: "),
    "tab.report": ("上报", "Report"),
    "tab.tasks": ("我的任务", "My tasks"),
    "tab.outbox": ("待发送", "Outbox"),
    "report.category": ("问题类别", "Category"),
    "report.search": ("搜索类别（名称或编码）", "Search categories (name or code)"),
    "report.choose": ("请选择类别", "Choose a category"),
    "report.matches": ("{n} 项", "{n} found"),
    "report.no_match": ("没有匹配的类别", "No category matches"),
    "report.urgency": ("紧急程度", "Urgency"),
    "report.description": ("问题描述", "Description"),
    "report.address": ("地址（可选）", "Address (optional)"),
    "report.location": ("上报位置", "Location"),
    "report.location_none": ("尚未确定：请允许定位或在地图上点选", "Not set: allow location access or tap the map"),
    "report.location_gps": ("当前位置", "my position"),
    "report.location_map": ("地图选点", "picked on the map"),
    "report.use_gps": ("使用当前位置", "Use my position"),
    "report.tap_hint": ("点击地图可改选上报位置", "Tap the map to move the report"),
    "report.routed": ("将派往", "Goes to"),
    "report.photo": ("现场照片", "Photo"),
    "report.photo_remove": ("移除照片", "Remove the photo"),
    "report.photo_too_big": ("照片超过 {mb} MB", "The photo is larger than {mb} MB"),
    "report.photo_type": ("只能上传 JPEG、PNG 或 WebP 照片", "Only JPEG, PNG or WebP photos"),
    "report.submit": ("提交上报", "Submit the report"),
    "report.need_category": ("请选择问题类别", "Choose a category"),
    "report.need_location": ("请先确定上报位置", "Set the report's location first"),
    "report.too_long": ("内容过长", "Too long"),
    "report.queued": ("已存入待发送，正在发送…", "Saved in the outbox; sending…"),
    "outbox.empty": ("没有待发送的上报", "Nothing waiting to be sent"),
    "outbox.state.queued": ("待发送", "Queued"),
    "outbox.state.sending": ("发送中", "Sending"),
    "outbox.state.photo": ("上传照片中", "Uploading the photo"),
    "outbox.state.sent": ("已发送", "Sent"),
    "outbox.state.failed": ("发送失败", "Not sent"),
    "outbox.state.auth": ("需重新登录", "Sign in again"),
    "outbox.retry_in": ("{s} 秒后重试", "retrying in {s} s"),
    "outbox.offline": ("网络已断开，联网后自动发送", "Offline: it is sent when the network is back"),
    "outbox.attempts": ("已尝试 {n} 次", "{n} attempts"),
    "outbox.retry": ("立即重试", "Retry now"),
    "outbox.discard": ("删除", "Discard"),
    "outbox.auth_hint": ("登录已失效：重新登录后自动发送", "Signed out: sign in again and it is sent"),
    "outbox.photo_failed": ("案件已上报，照片未上传：", "The case was reported but not its photo: "),
    "outbox.network": ("网络错误", "Network error"),
    "outbox.timeout": ("请求超时", "Timed out"),
    "outbox.busy": ("服务器暂不可用", "Server unavailable"),
    "outbox.storage": ("本机浏览器无法保存待发送上报，断网时请勿提交", "This browser cannot keep an outbox: do not "
                       "submit while offline"),
    "tasks.empty": ("暂无待办任务", "No tasks"),
    "tasks.left": ("剩余", "left"),
    "tasks.overdue": ("已超期", "Overdue"),
    "tasks.no_due": ("未设时限", "No deadline"),
    "tasks.refresh": ("刷新", "Refresh"),
    "tasks.failed": ("任务加载失败：", "Could not load the tasks: "),
    "tasks.more": ("仅显示前 {n} 件", "showing the first {n}"),
    "task.back": ("返回任务列表", "Back to my tasks"),
    "task.accept": ("接收处置", "Accept"),
    "task.feedback": ("处理反馈", "Send feedback"),
    "task.return": ("退回", "Return"),
    "task.after_photo": ("处置后照片（必需）", "After-photo (required)"),
    "task.note": ("处理说明", "What was done"),
    "task.return_reason": ("退回理由（必填）", "Why it is not your squad's (required)"),
    "task.need_photo": ("请拍摄处置后照片", "Take an after-photo"),
    "task.need_reason": ("请填写退回理由", "Give a reason"),
    "task.submit_feedback": ("提交反馈", "Send feedback"),
    "task.submit_return": ("确认退回", "Return the case"),
    "task.cancel": ("取消", "Cancel"),
    "task.uploading": ("正在上传照片…", "Uploading the photo…"),
    "task.done.accept": ("已接收，请前往处置", "Accepted: go and handle it"),
    "task.done.feedback": ("已反馈，等待核查", "Feedback sent: awaiting the check"),
    "task.done.return": ("已退回指挥中心", "Returned to the command centre"),
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
