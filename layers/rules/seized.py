"""Seized items (暂扣物品): tools and goods taken under a case, later returned or confiscated.

Seizure is allowed on an open case of the street themes, illegal operation (违规经营) and the ten
disorders (十乱): those are where the bureau takes stalls, tricycles, umbrellas and goods piled in
public space. Structures are demolished rather than seized, fume sites are penalised, and market
supervision is a department's own power, so their cases take no seizures here.
An item is held until it is returned to its owner or confiscated (没收, a penalty decision).
"""

from __future__ import annotations

from datetime import datetime

from sqlalchemy import select
from sqlalchemy.orm import Session

from gis_platform import models as m
from gis_platform import vocab
from gis_platform.errors import Conflict, FieldError, Forbidden, NotFound, ValidationError
from layers.cases import Actor, append_event
from layers.rules import STAFF_ROLES, require_aware, require_role, require_text

#: Themes whose open cases may take seizures.
SEIZABLE_THEMES = ("illegal_operation", "ten_disorders")

#: Status → the outcomes that may follow it.
ITEM_TRANSITIONS: dict[str, tuple[str, ...]] = {
    "held": ("returned", "confiscated"),
    "returned": (),
    "confiscated": (),
}

#: Outcome → roles that may decide it. Returning goods is routine; confiscation is a penalty decision,
#: so a patroller in the field cannot record it alone.
OUTCOME_ROLES: dict[str, tuple[str, ...]] = {
    "returned": STAFF_ROLES,
    "confiscated": ("operator", "supervisor", "admin"),
}

OUTCOME_ACTIONS = {"returned": "return_item", "confiscated": "confiscate_item"}


def seize(session: Session, case_id: int, *, description: str, quantity: int, seized_at: datetime,
          actor: Actor) -> m.SeizedItem:
    """Record goods seized under an open street case; flush, never commit."""
    require_role(actor.role, STAFF_ROLES, "seize goods")
    text = require_text(description, "description", max_length=200)
    if isinstance(quantity, bool) or not isinstance(quantity, int) or quantity < 1:
        raise ValidationError(FieldError("quantity", "must be a whole number, at least 1"))
    require_aware(seized_at, "seized_at")
    case = session.get(m.Case, case_id)
    if case is None:
        raise NotFound(f"case {case_id} does not exist")
    theme = session.scalar(select(m.Category.theme).where(m.Category.id == case.category_id))
    if theme not in SEIZABLE_THEMES:
        raise ValidationError(FieldError(
            "case_id", f"case {case.case_no} is of theme {theme}; goods are seized only under "
                       f"{' or '.join(SEIZABLE_THEMES)} cases"))
    if case.status not in vocab.OPEN_STATUSES:
        raise Conflict(f"case {case.case_no} is {case.status}; goods are seized only under an open case",
                       case_status=case.status)
    if actor.role == "patroller" and actor.agency_id != case.assigned_agency_id:
        raise Forbidden("this case is assigned to another unit")
    item = m.SeizedItem(county_code=case.county_code, case_id=case.id, description=text, quantity=quantity,
                        seized_at=seized_at, status="held")
    session.add(item)
    session.flush()
    append_event(session, case, "seize_item", case.status, case.status, actor, seized_at, note=text,
                  data={"item_id": item.id, "quantity": quantity})
    session.flush()
    return item


def resolve(session: Session, item_id: int, outcome: str, *, at: datetime, actor: Actor,
            note: str | None = None) -> m.SeizedItem:
    """Return a held item to its owner or confiscate it; any other move is a Conflict."""
    if outcome not in OUTCOME_ROLES:
        raise ValidationError(FieldError("outcome", f"must be one of {', '.join(OUTCOME_ROLES)}"))
    require_aware(at, "at")
    item = session.get(m.SeizedItem, item_id)
    if item is None:
        raise NotFound(f"seized item {item_id} does not exist")
    allowed = list(ITEM_TRANSITIONS[item.status])
    if outcome not in allowed:
        raise Conflict(f"a seized item that is {item.status} cannot become {outcome}; "
                       f"allowed: {', '.join(allowed) or 'none'}", allowed=allowed)
    require_role(actor.role, OUTCOME_ROLES[outcome], f"record seized goods as {outcome}")
    if at < item.seized_at:
        raise ValidationError(FieldError("at", f"{at.isoformat()} is before the seizure "
                                               f"({item.seized_at.isoformat()})"))
    item.status = outcome
    item.resolved_at = at
    case = session.get(m.Case, item.case_id)
    if case is not None:
        # The case may already be closed: the goods' fate is still part of its record.
        append_event(session, case, OUTCOME_ACTIONS[outcome], case.status, case.status, actor, at, note=note,
                      data={"item_id": item.id, "outcome": outcome})
    session.flush()
    return item


def held_items(session: Session, county_code: str) -> list[m.SeizedItem]:
    """Return the items still held in a county, oldest seizure first."""
    return list(session.scalars(select(m.SeizedItem).where(
        m.SeizedItem.county_code == county_code, m.SeizedItem.status == "held")
        .order_by(m.SeizedItem.seized_at, m.SeizedItem.id)))
