"""Reference data of the Yanggu demo: agencies, the 707-item power list, demo users.

Counts and structure come from the 2021 reform report (see ``shared/seed``): one bureau with one
brigade, 10 squads ("3+5+2"), 6 departmental teams with 334 officers, township offices with 120
staff, and 707 powers of which 171 are exercised by the bureau and 536 by departments. Power *names*
are synthetic (the real list was not published with the report); their counts per holder are real.
"""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class AgencySpec:
    """An agency of the demo county."""

    code: str
    name: str
    name_en: str
    kind: str
    parent: str | None = None
    staff: int | None = None
    # Power-list domains this agency exercises (departments and their teams).
    domains: tuple[str, ...] = ()


BUREAU = AgencySpec("YG-ZFJ", "阳谷县综合行政执法局（城市管理局）",
                    "Yanggu County Comprehensive Administrative Law-Enforcement Bureau (Urban Management Bureau)",
                    "bureau")
BRIGADE = AgencySpec("YG-ZFDD", "阳谷县综合行政执法大队", "Yanggu County Comprehensive Law-Enforcement Brigade",
                     "brigade", parent="YG-ZFJ")

DEPARTMENTS: tuple[AgencySpec, ...] = (
    AgencySpec("YG-SCJ", "阳谷县市场监督管理局", "Market Supervision Administration", "department"),
    AgencySpec("YG-YJJ", "阳谷县应急管理局", "Emergency Management Bureau", "department"),
    AgencySpec("YG-JTJ", "阳谷县交通运输局", "Transport Bureau", "department"),
    AgencySpec("YG-NYJ", "阳谷县农业农村局", "Agriculture and Rural Affairs Bureau", "department"),
    AgencySpec("YG-ZRJ", "阳谷县自然资源和规划局", "Natural Resources and Planning Bureau", "department"),
    AgencySpec("YG-RSJ", "阳谷县人力资源和社会保障局", "Human Resources and Social Security Bureau", "department"),
    AgencySpec("YG-ZJJ", "阳谷县住房和城乡建设局", "Housing and Urban-Rural Development Bureau", "department",
               domains=("住房和城乡建设",)),
    AgencySpec("YG-WLJ", "阳谷县文化和旅游局", "Culture and Tourism Bureau", "department",
               domains=("文化广电新闻出版",)),
    AgencySpec("YG-MZJ", "阳谷县民族宗教事务局", "Ethnic and Religious Affairs Bureau", "department",
               domains=("从事迷信活动",)),
    AgencySpec("YG-SLJ", "阳谷县水利局", "Water Resources Bureau", "department", domains=("河道及水资源管理",)),
)

# "领域内一支队伍管执法": six departmental teams, 334 officers between them.
DEPT_TEAMS: tuple[AgencySpec, ...] = (
    AgencySpec("YG-SCJG-DD", "阳谷县市场监管综合执法大队", "Market Supervision Enforcement Team", "dept_team",
               parent="YG-SCJ", staff=98, domains=("市场监管",)),
    AgencySpec("YG-AQSC-DD", "阳谷县应急管理综合执法大队", "Work Safety Enforcement Team", "dept_team",
               parent="YG-YJJ", staff=46, domains=("安全生产",)),
    AgencySpec("YG-JTYS-DD", "阳谷县交通运输综合执法大队", "Transport Enforcement Team", "dept_team",
               parent="YG-JTJ", staff=72, domains=("交通运输",)),
    AgencySpec("YG-NYNC-DD", "阳谷县农业综合执法大队", "Agriculture and Rural Affairs Enforcement Team",
               "dept_team", parent="YG-NYJ", staff=52, domains=("农业农村",)),
    AgencySpec("YG-ZRZY-DD", "阳谷县自然资源和规划执法大队", "Natural Resources and Planning Enforcement Team",
               "dept_team", parent="YG-ZRJ", staff=38, domains=("自然资源和规划",)),
    AgencySpec("YG-RSBZ-DD", "阳谷县劳动保障监察大队", "Labour Security Inspection Team", "dept_team",
               parent="YG-RSJ", staff=28, domains=("人力资源和社会保障",)),
)

# Powers per domain: bureau 171, departments 536 (707 in all), as the report gives.
BUREAU_DOMAINS: dict[str, int] = {
    "城市规划": 30, "市容环境卫生": 45, "城区绿化": 18, "市政管理": 32, "环境保护": 26, "市场监管": 12, "食品卫生": 8,
}
DEPARTMENT_DOMAINS: dict[str, int] = {
    "住房和城乡建设": 68, "文化广电新闻出版": 52, "从事迷信活动": 6, "河道及水资源管理": 46, "市场监管": 142,
    "安全生产": 58, "交通运输": 54, "农业农村": 48, "自然资源和规划": 36, "人力资源和社会保障": 26,
}
TOWNSHIP_OFFICE_STAFF = 120

# Demo accounts (documented in the README); the loader never creates these outside the demo.
DEMO_PASSWORD = "Yanggu@2021"
DEMO_OPEN311_KEY = "yanggu-demo-open311-key"


@dataclass(frozen=True)
class DemoUser:
    """A demo account: username, display name, role and the agency code it belongs to."""

    username: str
    display_name: str
    role: str
    agency: str | None


DEMO_USERS: tuple[DemoUser, ...] = (
    DemoUser("admin", "系统管理员", "admin", "YG-ZFJ"),
    DemoUser("supervisor", "监督员 张敏", "supervisor", "YG-ZFJ"),
    DemoUser("supervisor2", "监督员 李华", "supervisor", "YG-ZFJ"),
    DemoUser("operator", "调度员 王强", "operator", "YG-ZFJ"),
    DemoUser("planner", "分析员 赵静", "planner", "YG-ZFJ"),
    DemoUser("liaison", "市场监管联络员 孙磊", "liaison", "YG-SCJG-DD"),
)


def power_name(domain: str, number: int, power_type: str) -> str:
    """Return a synthetic but well-formed power name for a domain."""
    kind = {"penalty": "行政处罚", "coercion": "行政强制", "inspection": "行政检查"}[power_type]
    return f"对违反{domain}管理规定行为的{kind}（第{number}项）"


def power_type_for(number: int) -> str:
    """Return the kind of the n-th power of a domain: mostly penalties, some coercion, few checks."""
    if number % 8 == 0:
        return "coercion"
    if number % 25 == 0:
        return "inspection"
    return "penalty"
