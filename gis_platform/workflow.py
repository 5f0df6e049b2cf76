"""The seven-step closed loop (GB/T 30428.8 style) as data: actions, the roles allowed, and states.

An action moves a case from one of its source states to its target state. Actions whose target is
``None`` record an event without changing state (supervision, extension requests and the like).
"""

from __future__ import annotations

from dataclasses import dataclass

from gis_platform.errors import Conflict
from gis_platform.vocab import CASE_STATUSES


@dataclass(frozen=True)
class Action:
    """One allowed step: its name, labels, source states, target state and roles."""

    name: str
    label: str
    sources: tuple[str, ...]
    target: str | None
    roles: tuple[str, ...]
    # Steps that start, pause or stop the handling clock.
    starts_clock: bool = False
    # False for steps recorded by another service (a merge, a seizure, a demolition stage):
    # they appear in the history but are not offered as transitions.
    manual: bool = True


ACTIONS: tuple[Action, ...] = (
    Action("report", "上报", (), "reported", ("patroller", "operator", "supervisor", "admin", "citizen")),
    Action("file", "核实立案", ("reported",), "filed", ("supervisor", "admin")),
    Action("cancel", "核实作废", ("reported",), "cancelled", ("supervisor", "admin")),
    Action("dispatch", "派遣", ("filed", "returned"), "dispatched", ("operator", "admin"), starts_clock=True),
    Action("accept", "接收处置", ("dispatched",), "accepted", ("patroller", "liaison", "operator", "admin")),
    Action("return", "退回/争议", ("dispatched", "accepted"), "returned", ("patroller", "liaison", "admin")),
    Action("feedback", "处理反馈", ("accepted",), "handled", ("patroller", "liaison", "admin")),
    Action("rework", "返工", ("handled",), "accepted", ("supervisor", "admin")),
    Action("close", "核查结案", ("handled",), "closed", ("supervisor", "admin")),
    Action("evaluate", "综合评价", ("closed",), "evaluated", ("supervisor", "operator", "admin")),
    Action("defer", "挂账", ("filed", "dispatched", "accepted"), "deferred", ("operator", "admin")),
    Action("resume", "恢复办理", ("deferred",), "dispatched", ("operator", "admin")),
    Action("merge", "合并重复", ("reported", "filed"), "merged", ("supervisor", "operator", "admin")),
    Action("request_extension", "申请延期", ("dispatched", "accepted"), None, ("patroller", "liaison", "admin")),
    Action("approve_extension", "批准延期", ("dispatched", "accepted"), None, ("operator", "supervisor", "admin")),
    Action("supervise", "督办", ("dispatched", "accepted", "returned", "deferred"), None,
           ("operator", "supervisor", "admin")),
    Action("reroute", "改派/重新定位", ("reported", "filed", "returned"), None, ("operator", "supervisor", "admin")),
    # Recorded on the surviving case when a duplicate is merged into it.
    Action("link_duplicate", "关联重复案件", ("reported", "filed", "dispatched", "accepted", "returned", "handled",
                                            "deferred"), None, ("supervisor", "operator", "admin"), manual=False),
    # Recorded by the theme services (layers/rules) on the case they belong to.
    Action("structure_stage", "违建阶段变更", CASE_STATUSES, None, ("patroller", "operator", "supervisor", "admin"),
           manual=False),
    Action("seize_item", "暂扣物品", CASE_STATUSES, None, ("patroller", "operator", "supervisor", "admin"),
           manual=False),
    Action("return_item", "退还物品", CASE_STATUSES, None, ("patroller", "operator", "supervisor", "admin"),
           manual=False),
    Action("confiscate_item", "没收物品", CASE_STATUSES, None, ("operator", "supervisor", "admin"), manual=False),
)

ACTIONS_BY_NAME: dict[str, Action] = {a.name: a for a in ACTIONS}


def allowed_actions(status: str) -> list[str]:
    """Return the actions a person may take from a status."""
    return [a.name for a in ACTIONS if a.manual and status in a.sources]


def transition(status: str, action_name: str) -> str:
    """Return the status after an action, or raise Conflict listing the allowed actions."""
    action = ACTIONS_BY_NAME.get(action_name)
    if action is None or status not in action.sources or not action.manual:
        allowed = allowed_actions(status)
        raise Conflict(
            f"action {action_name!r} is not allowed from status {status!r}; allowed: {', '.join(allowed) or 'none'}",
            allowed=allowed,
        )
    return action.target or status
