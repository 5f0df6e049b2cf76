"""Controlled vocabularies shared by the models, the workflow and the wire formats.

Each tuple is the single source of the allowed values; the database holds them as CHECK constraints.
Chinese labels come first because operators read Chinese; English names are the identifiers in code.
"""

from __future__ import annotations

ADMIN_LEVELS = ("county", "subdistrict", "town", "zone")
ADMIN_LEVEL_LABELS = {"county": "县", "subdistrict": "街道", "town": "乡镇", "zone": "开发区"}

AGENCY_KINDS = (
    "bureau",  # 综合行政执法局（城市管理局）
    "brigade",  # 综合行政执法大队
    "squad",  # 综合行政执法中队
    "dept_team",  # 部门综合执法队伍（领域内一支队伍）
    "department",  # 县级业务主管部门
    "township_office",  # 乡镇（街道）综合行政执法办公室
)
AGENCY_KIND_LABELS = {
    "bureau": "综合行政执法局",
    "brigade": "执法大队",
    "squad": "执法中队",
    "dept_team": "部门执法队伍",
    "department": "业务主管部门",
    "township_office": "乡镇综合执法办公室",
}

ROLES = ("admin", "supervisor", "operator", "patroller", "planner", "liaison")
ROLE_LABELS = {
    "admin": "系统管理员",
    "supervisor": "监督员（核实、核查）",
    "operator": "指挥调度员",
    "patroller": "网格巡查员",
    "planner": "分析规划人员",
    "liaison": "部门联络员",
}

CASE_SOURCES = ("patroller", "citizen", "hotline", "video", "referral")
CASE_SOURCE_LABELS = {
    "patroller": "巡查上报",
    "citizen": "群众举报",
    "hotline": "热线转办",
    "video": "视频发现",
    "referral": "部门移交",
}

URGENCIES = ("normal", "urgent", "emergency")
URGENCY_LABELS = {"normal": "一般", "urgent": "紧急", "emergency": "特急"}

# Statuses of the seven-step closed loop plus its side branches; transitions live in workflow.py.
CASE_STATUSES = (
    "reported",  # 信息采集：已上报，待核实
    "filed",  # 案卷建立：已立案，待派遣
    "cancelled",  # 核实无效，作废
    "dispatched",  # 任务派遣：已派遣，待接收（计时开始）
    "accepted",  # 任务处理：处置中
    "returned",  # 退回/争议：非本单位职责，待重新派遣
    "handled",  # 处理反馈：已反馈，待核查
    "closed",  # 核查结案
    "evaluated",  # 综合评价
    "deferred",  # 挂账/缓办
    "merged",  # 重复案件，已合并
)
CASE_STATUS_LABELS = {
    "reported": "待核实",
    "filed": "待派遣",
    "cancelled": "已作废",
    "dispatched": "已派遣",
    "accepted": "处置中",
    "returned": "已退回",
    "handled": "待核查",
    "closed": "已结案",
    "evaluated": "已评价",
    "deferred": "挂账",
    "merged": "已合并",
}
OPEN_STATUSES = ("reported", "filed", "dispatched", "accepted", "returned", "handled", "deferred")

COORD_SYSTEMS = ("wgs84", "gcj02", "bd09", "cgcs2000")

# Themes group categories into the thematic layers and the seed's reported figures.
THEMES = (
    "ten_disorders",  # 十乱
    "illegal_operation",  # 违规经营
    "illegal_structures",  # 违法建设
    "fume_sites",  # 餐饮油烟
    "promotion",  # 宣传活动
    "market_supervision",  # 市场监管
    "municipal",  # 市政设施等其他城市管理事项
)
THEME_LABELS = {
    "ten_disorders": "十乱",
    "illegal_operation": "违规经营",
    "illegal_structures": "违法建设",
    "fume_sites": "餐饮油烟",
    "promotion": "宣传活动",
    "market_supervision": "市场监管",
    "municipal": "市政设施",
}

POWER_TYPES = ("penalty", "coercion", "inspection")  # 行政处罚、行政强制、行政检查
POWER_HOLDERS = ("bureau", "department")

STRUCTURE_STAGES = ("discovered", "filed", "order_served", "self_demolished", "forced_demolished", "closed")
STRUCTURE_STAGE_LABELS = {
    "discovered": "发现",
    "filed": "立案",
    "order_served": "已下达限拆通知",
    "self_demolished": "自行拆除",
    "forced_demolished": "强制拆除",
    "closed": "结案",
}

FUME_SIZE_CLASSES = ("small", "medium", "large")
SEIZED_STATUSES = ("held", "returned", "confiscated")
HOTLINE_STATUSES = ("open", "replied", "closed")

COORDINATION_KINDS = ("determination", "appraisal", "advice", "hazard_notice")
COORDINATION_KIND_LABELS = {
    "determination": "认定",
    "appraisal": "技术鉴定",
    "advice": "咨询意见",
    "hazard_notice": "重大隐患通报",
}
COORDINATION_STATUSES = ("sent", "received", "answered", "closed")
REFERRAL_STATUSES = ("referred", "accepted", "enforced", "fed_back", "closed")

TOKEN_KINDS = ("bearer", "open311")
