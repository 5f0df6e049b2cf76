"""The default category dictionary, event classes and the 'ten disorders' list.

A county loads these as rows (table ``category``) and may edit them; nothing in the code keys on a
particular category except through its theme. Event classes follow GB/T 30428.2; the ten-disorders
list has no national version, so the one here is a typical city list and stays configurable.
"""

from __future__ import annotations

from dataclasses import dataclass

EVENT_CLASSES: dict[str, str] = {
    "市容环境": "City appearance and environment",
    "宣传广告": "Advertising and promotion",
    "施工管理": "Construction management",
    "街面秩序": "Street order",
    "突发事件": "Emergencies",
    "市场监管": "Market supervision (local extension)",
    "环境保护": "Environmental protection (local extension)",
    "公用设施": "Public facilities (component class)",
}


@dataclass(frozen=True)
class CategorySpec:
    """One category of the default dictionary."""

    code: str
    name: str
    name_en: str
    event_class: str
    theme: str
    # Domain of the power list that governs it; the power decides bureau or department.
    power_domain: str
    holder: str  # "bureau" or "department"
    # Working hours allowed by urgency: normal, urgent, emergency.
    limits: tuple[float, float, float] = (24.0, 8.0, 2.0)
    geometry_kind: str = "point"
    dup_radius_m: float = 50.0
    dup_window_h: float = 72.0


TEN_DISORDERS: tuple[tuple[str, str, str], ...] = (
    ("TD01", "乱搭乱建", "Unauthorised sheds and add-ons"),
    ("TD02", "乱摆摊点", "Unauthorised stalls"),
    ("TD03", "乱堆乱放", "Goods and materials piled in public space"),
    ("TD04", "乱贴乱画", "Flyposting and graffiti"),
    ("TD05", "乱扔乱倒", "Littering and fly-tipping"),
    ("TD06", "乱停乱放", "Disorderly parking of vehicles"),
    ("TD07", "乱拉乱挂", "Wires, banners and laundry strung over streets"),
    ("TD08", "乱设广告", "Unauthorised billboards and signs"),
    ("TD09", "乱排污水", "Sewage discharged onto streets"),
    ("TD10", "乱占道路", "Road space occupied"),
)

_TD_CLASS = {
    "TD01": "施工管理", "TD02": "街面秩序", "TD03": "市容环境", "TD04": "宣传广告", "TD05": "市容环境",
    "TD06": "街面秩序", "TD07": "市容环境", "TD08": "宣传广告", "TD09": "市容环境", "TD10": "街面秩序",
}
_TD_DOMAIN = {
    "TD01": "城市规划", "TD02": "市容环境卫生", "TD03": "市容环境卫生", "TD04": "市容环境卫生",
    "TD05": "市容环境卫生", "TD06": "市政管理", "TD07": "市容环境卫生", "TD08": "市容环境卫生",
    "TD09": "市政管理", "TD10": "市政管理",
}

DEFAULT_CATEGORIES: tuple[CategorySpec, ...] = (
    *(
        CategorySpec(code, name, en, _TD_CLASS[code], "ten_disorders", _TD_DOMAIN[code], "bureau",
                     limits=(16.0, 8.0, 2.0))
        for code, name, en in TEN_DISORDERS
    ),
    CategorySpec("IO01", "占道经营", "Trading on the carriageway or pavement", "街面秩序", "illegal_operation",
                 "市容环境卫生", "bureau", limits=(8.0, 4.0, 1.0)),
    CategorySpec("IO02", "店外经营", "Shop trading outside its front", "街面秩序", "illegal_operation",
                 "市容环境卫生", "bureau", limits=(16.0, 8.0, 2.0)),
    CategorySpec("IO03", "流动摊贩", "Mobile hawkers", "街面秩序", "illegal_operation",
                 "市容环境卫生", "bureau", limits=(8.0, 4.0, 1.0)),
    CategorySpec("IO04", "夜市超时超范围经营", "Night market outside permitted hours or area", "街面秩序",
                 "illegal_operation", "市容环境卫生", "bureau", limits=(8.0, 4.0, 1.0)),
    CategorySpec("IS01", "违法建设", "Illegal structure", "施工管理", "illegal_structures",
                 "城市规划", "bureau", limits=(120.0, 40.0, 8.0), geometry_kind="polygon",
                 dup_radius_m=30.0, dup_window_h=720.0),
    CategorySpec("FS01", "餐饮油烟超标排放", "Restaurant cooking fume above the limit", "环境保护",
                 "fume_sites", "环境保护", "bureau", limits=(40.0, 16.0, 4.0), dup_window_h=168.0),
    CategorySpec("FS02", "未安装油烟净化设施", "No cooking-fume purifier installed", "环境保护",
                 "fume_sites", "环境保护", "bureau", limits=(80.0, 24.0, 8.0), dup_window_h=168.0),
    CategorySpec("PR01", "未经批准举办宣传活动", "Unapproved promotional event in public space", "宣传广告",
                 "promotion", "市容环境卫生", "bureau", limits=(8.0, 4.0, 1.0)),
    CategorySpec("MS01", "产品质量违法", "Product quality violation", "市场监管", "market_supervision",
                 "市场监管", "department", limits=(80.0, 24.0, 8.0)),
    CategorySpec("MS02", "特种设备安全违法", "Special equipment safety violation", "市场监管", "market_supervision",
                 "市场监管", "department", limits=(40.0, 16.0, 4.0)),
    CategorySpec("MS03", "食品药品违法", "Food and drug violation", "市场监管", "market_supervision",
                 "市场监管", "department", limits=(40.0, 16.0, 4.0)),
    CategorySpec("MS04", "价格违法", "Price violation", "市场监管", "market_supervision",
                 "市场监管", "department", limits=(80.0, 24.0, 8.0)),
    CategorySpec("MS05", "其他市场监管违法", "Other market supervision violation", "市场监管",
                 "market_supervision", "市场监管", "department", limits=(80.0, 24.0, 8.0)),
    CategorySpec("MU01", "井盖缺失破损", "Missing or broken manhole cover", "公用设施", "municipal",
                 "市政管理", "bureau", limits=(8.0, 2.0, 1.0)),
    CategorySpec("MU02", "路灯损坏", "Broken street light", "公用设施", "municipal", "市政管理", "bureau"),
    CategorySpec("MU03", "绿地毁坏", "Damaged green space", "市容环境", "municipal", "城区绿化", "bureau"),
    CategorySpec("MU04", "渣土撒漏", "Spilled construction spoil", "施工管理", "municipal",
                 "市容环境卫生", "bureau", limits=(8.0, 4.0, 1.0)),
    CategorySpec("DP01", "河道违法排污倾倒", "Dumping or discharge into rivers", "环境保护", "municipal",
                 "河道及水资源管理", "department"),
    CategorySpec("DP02", "建筑施工无资质", "Construction without qualification", "施工管理", "municipal",
                 "住房和城乡建设", "department", limits=(80.0, 24.0, 8.0)),
    CategorySpec("DP03", "非法出版物销售", "Sale of illegal publications", "市场监管", "municipal",
                 "文化广电新闻出版", "department"),
    CategorySpec("DP04", "从事迷信活动", "Superstitious practices for profit", "街面秩序", "municipal",
                 "从事迷信活动", "department"),
)
