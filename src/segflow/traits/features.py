"""Per-customer behavioural features as of an instant, as NumPy columns.

Everything the value scores and predictions need (orders, spend, recency, the BG/NBD
summary, email and visit engagement) comes out of one store query
(``ScoreStore.feature_table``), read back as Arrow and turned into NumPy arrays; the
model math never touches SQL rows.
"""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import TYPE_CHECKING, Final, TypeAlias

import numpy as np
import numpy.typing as npt

if TYPE_CHECKING:
    from segflow.store.protocols import ScoreStore

FloatA: TypeAlias = npt.NDArray[np.float64]
IntA: TypeAlias = npt.NDArray[np.int64]


@dataclass(frozen=True)
class Features:
    """Column arrays aligned on ``profile_id`` (sorted); customers have ``orders >= 1``.

    BG/NBD summary in whole days: ``x`` = distinct order days - 1, ``t_x`` = last - first
    order day, ``T`` = as-of day - first order day; ``m`` = mean revenue of the repeat
    order days (0 without repeats).
    """

    at: datetime
    profile_id: npt.NDArray[np.object_]
    orders: IntA
    monetary: FloatA
    x: FloatA
    t_x: FloatA
    T: FloatA
    m: FloatA
    days_since_last: FloatA
    days_since_first: FloatA
    orders_30d: IntA
    orders_90d: IntA
    orders_182d: IntA
    orders_365d: IntA
    spend_365d: FloatA
    opens: IntA
    clicks: IntA
    visit_days: IntA
    campaigns_sent: int

    @property
    def customers(self) -> npt.NDArray[np.bool_]:
        out: npt.NDArray[np.bool_] = self.orders > 0
        return out

    def __len__(self) -> int:
        return int(self.profile_id.size)


_INTS: Final = frozenset(
    {"orders", "orders_30d", "orders_90d", "orders_182d", "orders_365d", "opens", "clicks"}
    | {"visit_days"}
)


def extract_features(store: ScoreStore, at: datetime, window_days: int = 90) -> Features:
    """The store's feature table as of ``at`` as NumPy columns."""
    table = store.feature_table(at, window_days)
    cols: dict[str, object] = {}
    for f in fields(Features):
        if f.name in ("at", "campaigns_sent"):
            continue
        arr = table.column(f.name)
        if f.name == "profile_id":
            cols[f.name] = arr.to_numpy().astype(object)
        else:
            cols[f.name] = arr.to_numpy().astype(np.int64 if f.name in _INTS else np.float64)
    sent = table.column("campaigns_sent")
    campaigns = int(sent[0].as_py()) if table.num_rows else 0
    return Features(at=at, campaigns_sent=campaigns, **cols)  # type: ignore[arg-type]
