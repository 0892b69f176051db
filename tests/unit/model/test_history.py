from __future__ import annotations

import copy
import pickle

from segflow.model.history import MISSING


def test_missing_stays_one_sentinel_through_pickle_and_deepcopy() -> None:
    assert pickle.loads(pickle.dumps({"x": MISSING}))["x"] is MISSING
    assert copy.deepcopy([MISSING])[0] is MISSING
