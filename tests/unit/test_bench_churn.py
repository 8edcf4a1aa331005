"""The benchmark's steady churn plan: every change is undone, after it, and only once."""

import pytest

from bench.changes import ChangeMaker
from bench.churn import UNDO_BLOCK, steady
from bench.double import DoubleControl
from bench.stack import ClusterShape


@pytest.mark.parametrize("total", [1, 40, 2 * UNDO_BLOCK, 5 * UNDO_BLOCK + 7])
async def test_a_steady_plan_undoes_each_change_once_and_after_it(total: int) -> None:
    """Each change has exactly one undo, later in the plan, of the kind that reverts it."""
    control = DoubleControl("http://127.0.0.1:9")
    try:
        plan = steady(ChangeMaker(control, ClusterShape(100, 10), "cs"), total)
    finally:
        await control.aclose()
    made = [i for i, (_, undoes) in enumerate(plan) if undoes is None]
    undone = [undoes for _, undoes in plan if undoes is not None]
    assert len(plan) >= total
    assert sorted(undone) == made
    assert all(undoes < i for i, (_, undoes) in enumerate(plan) if undoes is not None)
    reverts = {
        "node_join": "node_leave",
        "node_fail": "node_fail_undone",
        "instance_add": "service_deregister",
        "service_register": "service_unregister",
    }
    for change, undoes in plan:
        if undoes is not None:
            assert change.kind == reverts[plan[undoes][0].kind]
            assert change.node == plan[undoes][0].node
