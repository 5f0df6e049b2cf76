import pytest

from gis_platform import vocab
from gis_platform.errors import Conflict
from gis_platform.workflow import ACTIONS, allowed_actions, transition


def test_happy_path_of_the_closed_loop():
    status = "reported"
    for action in ("file", "dispatch", "accept", "feedback", "close", "evaluate"):
        status = transition(status, action)
    assert status == "evaluated"


def test_rework_and_return_loops():
    assert transition("handled", "rework") == "accepted"
    assert transition("accepted", "return") == "returned"
    assert transition("returned", "dispatch") == "dispatched"


def test_illegal_transition_lists_allowed_actions():
    with pytest.raises(Conflict) as err:
        transition("reported", "close")
    assert err.value.status == 409
    assert set(err.value.extra["allowed"]) == {"file", "cancel", "merge", "reroute"}
    assert "file" in err.value.detail


@pytest.mark.parametrize("status", vocab.CASE_STATUSES)
def test_every_illegal_pair_is_rejected(status):
    for action in ACTIONS:
        if status in action.sources and action.manual:
            assert transition(status, action.name) in vocab.CASE_STATUSES
        else:
            with pytest.raises(Conflict):
                transition(status, action.name)


def test_terminal_states_have_no_way_out():
    assert allowed_actions("cancelled") == []
    assert allowed_actions("merged") == []
    assert allowed_actions("evaluated") == []


def test_actions_only_name_known_states_and_roles():
    for action in ACTIONS:
        assert set(action.sources) <= set(vocab.CASE_STATUSES)
        assert action.target is None or action.target in vocab.CASE_STATUSES
        assert set(action.roles) <= set(vocab.ROLES) | {"citizen"}
