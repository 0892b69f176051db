"""Typed OpenAPI models of the segment definition language (DESIGN.md §2) and of the
API's responses.

The definition models exist so /openapi.json describes the language fully and a
client can be generated from it; requests are still parsed by
``segflow.model.definition`` so that errors carry the definition's JSON paths.
"""

from __future__ import annotations

from typing import Annotated, Any, Literal

from pydantic import BaseModel, ConfigDict, Field

DurationText = Annotated[
    str,
    Field(
        pattern=r"^\s*\d+(\.\d+)?\s*[smhdw]\s*$",
        description="A fixed duration: a number and one of s m h d w (e.g. 7d, 1.5h).",
    ),
]
Instant = Annotated[str, Field(description="An ISO 8601 instant (UTC when no offset).")]
Scalar = str | float | bool


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", populate_by_name=True)


class AgoWindow(_Strict):
    """``t - from_ago < ts <= t - to_ago``."""

    from_ago: DurationText
    to_ago: DurationText | Literal[0, "0"]


class SinceWindow(_Strict):
    """``since <= ts``."""

    since: Instant


class FromToWindow(_Strict):
    """``from <= ts < to``."""

    from_: Instant = Field(alias="from")
    to: Instant


Window = DurationText | AgoWindow | SinceWindow | FromToWindow


class Comparisons(_Strict):
    """Exactly one comparison operator per condition (the parser rejects several)."""

    eq: Scalar | None = None
    ne: Scalar | None = None
    gt: float | None = None
    gte: float | None = None
    lt: float | None = None
    lte: float | None = None
    between: Annotated[list[float], Field(min_length=2, max_length=2)] | None = None
    in_: Annotated[list[Scalar], Field(min_length=1)] | None = Field(None, alias="in")
    not_in: Annotated[list[Scalar], Field(min_length=1)] | None = None
    contains: str | None = None
    starts_with: str | None = None
    ends_with: str | None = None
    exists: bool | None = None
    not_exists: bool | None = None
    within_last: DurationText | None = None
    older_than: DurationText | None = None
    before: Instant | None = None
    after: Instant | None = None


class PropertyPredicate(Comparisons):
    """A predicate on one event field (``category`` means ``properties.category``)."""

    property: str


EventNames = str | Annotated[list[str], Field(min_length=1)]
CallNames = Annotated[
    Literal[True] | str | Annotated[list[str], Field(min_length=1)],
    Field(description="true (any) or a page/screen name or names (the call's ``name``)"),
]


class _Calls(_Strict):
    """Exactly one of ``event`` (track calls), ``page`` or ``screen`` (page/screen
    calls; ``where`` reads their ``name``, ``path``, ``url``, ``referrer``, ``title``,
    ``search`` properties)."""

    event: EventNames | None = None
    page: CallNames | None = None
    screen: CallNames | None = None
    where: list[PropertyPredicate] | None = None


class EventFilter(_Calls):
    pass


class TraitCondition(Comparisons):
    """The trait's value as of t satisfies the comparison."""

    trait: str


class ComputedCondition(Comparisons):
    """A computed trait of the profile view compared as the profile shows it."""

    computed: Literal[
        "ltv",
        "order_count",
        "aov",
        "first_order_at",
        "last_order_at",
        "days_since_last_order",
        "top_category_30d",
        "wishlist",
        "cart_items",
        "cart_value",
    ]


class EventCondition(_Calls, Comparisons):
    """A measure over matching events in the window satisfies the comparison
    (default: count >= 1)."""

    within: Window | None = None
    measure: (
        Literal["count", "sum", "avg", "min", "max", "distinct", "top", "first_time", "last_time"]
        | None
    ) = None
    of: str | None = None


class AbandonmentCondition(_Calls):
    """The latest ``event`` in the window is at least ``for`` old and nothing matching
    ``not_followed_by`` came after it."""

    not_followed_by: EventNames | EventFilter
    for_: DurationText = Field(alias="for")
    within: Window | None = None


class SequenceCondition(_Strict):
    """Events matching each step in strictly increasing time, all in the window."""

    sequence: Annotated[list[EventFilter], Field(min_length=2)]
    within: Window | None = None
    span: DurationText | None = None


class InSegmentCondition(_Strict):
    in_segment: str


class BucketRange(_Strict):
    salt: str
    from_: Annotated[float, Field(ge=0, le=100)] = Field(0, alias="from")
    to: Annotated[float, Field(ge=0, le=100)]


class BucketCondition(_Strict):
    """A stable hash of (profile id, salt) into [0, 100) falls in [from, to)."""

    bucket: BucketRange


class Holdout(_Strict):
    """A stable share of the members kept out of activation: a member is held out
    when the hash of (profile id, salt) into [0, 100) is below ``percent``."""

    percent: Annotated[float, Field(gt=0, lt=100)]
    salt: str | None = Field(None, description="defaults to the segment id")


class AllCondition(_Strict):
    all_: list[Condition] = Field(alias="all")


class AnyCondition(_Strict):
    any_: list[Condition] = Field(alias="any")


class NotCondition(_Strict):
    not_: Condition = Field(alias="not")


Condition = (
    AllCondition
    | AnyCondition
    | NotCondition
    | TraitCondition
    | ComputedCondition
    | EventCondition
    | AbandonmentCondition
    | SequenceCondition
    | InSegmentCondition
    | BucketCondition
)


class SegmentDefinition(_Strict):
    """A segment as written in YAML or JSON (the same keys)."""

    id: Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")]
    name: str | None = None
    description: str | None = None
    purpose: str | None = None
    tags: list[str] | None = None
    mode: Literal["realtime", "scheduled", "static"] | None = None
    schedule: str | None = Field(None, description="cron expression (scheduled segments)")
    snapshot_at: Instant | None = None
    members: list[str] | None = None
    emit_events: bool | None = None
    protected: bool | None = None
    version: int | None = None
    condition: Condition | None = None
    holdout: Holdout | None = None


for _m in (AllCondition, AnyCondition, NotCondition):
    _m.model_rebuild()
SegmentDefinition.model_rebuild()


# ---------------------------------------------------------------------------
# responses


class ErrorItem(BaseModel):
    path: str
    message: str


class ErrorBody(BaseModel):
    status: int
    message: str
    errors: list[ErrorItem] = []


class ErrorResponse(BaseModel):
    error: ErrorBody


class SegmentOut(BaseModel):
    id: str
    version: int
    definition: SegmentDefinition
    size: int | None = Field(None, description="members at the last evaluation or live count")


class SegmentList(BaseModel):
    segments: list[SegmentOut]


class Diff(BaseModel):
    """Who would enter and leave when a definition changes (computed now)."""

    segment_id: str
    size_before: int
    size_after: int
    entering: list[str]
    leaving: list[str]


class WarningItem(BaseModel):
    """A name the store has never seen (the definition is accepted; it may match nobody)."""

    path: str
    message: str
    suggestions: list[str] = Field(description="the closest names the store has seen")


class SaveResult(BaseModel):
    segment: SegmentOut
    status: Literal["created", "updated", "unchanged", "dry_run"]
    diff: Diff | None = None
    warnings: list[WarningItem] = []
    unknown_ids: list[str] = Field(
        [], description="ids of a static member list that no profile has (not members)"
    )


class ValidateResult(BaseModel):
    valid: bool
    errors: list[ErrorItem] = []
    warnings: list[WarningItem] = []
    canonical: dict[str, Any] | None = None


class PreviewResult(BaseModel):
    size: int
    sample: list[str]
    at: str
    warnings: list[WarningItem] = []


class FeatureEstimate(BaseModel):
    key: str = Field(description="the feature's fingerprint in the feature plan")
    kind: Literal["event", "trait", "sequence", "cart", "static"]
    description: str
    shared_with: list[str] = Field(
        description="saved segments that already compute this feature (empty: new)"
    )
    new: bool
    events: list[str] = Field(description="event names it reads (page/screen calls by type)")
    trait: str | None = Field(None, description="the trait key it reads")


class EventReads(BaseModel):
    names: list[str] = Field(description="one event-name set a new feature scans")
    events: int = Field(description="stored events of these names up to the instant")


class TraitReads(BaseModel):
    key: str
    rows: int = Field(description="stored writes of this trait key up to the instant")


class EstimateTiming(BaseModel):
    library_seconds: float = Field(description="one batch evaluation of the saved library")
    with_draft_seconds: float = Field(description="the same with the draft added")
    added_seconds: float = Field(description="the difference, never below zero")


class EstimateResult(BaseModel):
    segment_id: str
    at: str
    size: int
    profiles: int
    share: float = Field(description="size / profiles (0 with no profiles)")
    features: list[FeatureEstimate]
    events: list[EventReads] = Field(description="rows the draft's new features read")
    traits: list[TraitReads] = Field(description="trait writes its new features read")
    timing: EstimateTiming
    warnings: list[WarningItem] = []


class MembersPage(BaseModel):
    members: list[str]
    size: int
    next_cursor: str | None = None
    at: str | None = Field(None, description="the instant evaluated (absent: live members)")


class ChangeOut(BaseModel):
    seq: int
    segment_id: str
    profile_id: str
    entered: bool
    at: str
    reason: str
    version: int
    held_out: bool = Field(
        False, description="the profile is in the segment's holdout (not to be activated)"
    )


class ChangesPage(BaseModel):
    changes: list[ChangeOut]
    next_cursor: int | None = None


class SizePoint(BaseModel):
    at: str
    size: int
    source: Literal["evaluation", "changes"]


class SizeHistory(BaseModel):
    segment_id: str
    points: list[SizePoint]


class ProfileSegments(BaseModel):
    profile_id: str
    segments: dict[str, str | None] = Field(description="segment id -> member since")


class Identity(BaseModel):
    kind: str
    value: str


class ProfileView(BaseModel):
    """The customer view (values as stored: traits are free-form)."""

    profile_id: str
    first_seen: str | None
    last_seen: str | None
    identities: list[Identity]
    traits: dict[str, Any]
    computed_traits: dict[str, Any]
    orders: list[dict[str, Any]]
    cart: list[dict[str, Any]]
    wishlist: list[Any]
    recent_events: list[dict[str, Any]]
    segments: dict[str, str | None] = Field(description="segment id -> member since")


class MdeSampleSize(BaseModel):
    """Members each arm needs to detect ``effect`` (null with ``reason`` when it cannot
    be computed)."""

    effect: float
    treatment: int | None
    holdout: int | None
    total: int | None
    reason: str | None


class ExperimentResult(BaseModel):
    """Treatment (members activated) vs holdout on a goal metric over a period; the
    cohort is everyone who was a member at some time in the period, each measured from
    its entry and held out by the holdout of the version it entered under."""

    model_config = ConfigDict(populate_by_name=True)

    segment_id: str
    version: int
    goal: Literal["conversion", "revenue_per_member", "orders_per_member"]
    from_: str = Field(alias="from")
    to: str
    holdout: Holdout
    cohort: int = Field(description="members measured, both arms")
    at_start: int = Field(description="members at the start of the period")
    joiners: int = Field(description="profiles that entered during the period (change log)")
    without_holdout: int = Field(
        description="left out: entered under a version that had no holdout"
    )
    holdouts: dict[str, Holdout | None] = Field(
        description="version -> its holdout, for the versions members entered under"
    )
    report: dict[str, Any] = Field(
        description="lifts, interval, p-value, verdict and sample still needed"
    )
    mde: MdeSampleSize | None = None


class ExplainResult(BaseModel):
    """Why a profile is (not) a member: ``condition`` is the tree of nodes, each with
    ``op``, ``value`` (its truth) and, at leaves, the feature and its value."""

    segment: str
    profile: str
    at: str
    member: bool
    version: int | None = None
    condition: dict[str, Any]


class DeleteResult(BaseModel):
    deleted: str
    exits: int = 0
    suppressed: bool = False
    pseudonym: str | None = Field(
        None, description="the id the change log keeps for the erased profile"
    )


class WebhookIn(_Strict):
    segment_id: str
    url: Annotated[str, Field(pattern=r"^https?://", max_length=2048)]
    events: list[Literal["entered", "exited"]] = ["entered", "exited"]
    secret: Annotated[str, Field(min_length=16, max_length=256)] | None = Field(
        None, description="HMAC key; generated and returned once when omitted"
    )


class WebhookOut(BaseModel):
    id: str
    segment_id: str
    url: str
    events: list[str]
    created_at: str
    secret: str | None = Field(None, description="only in the response that created it")


class WebhookList(BaseModel):
    webhooks: list[WebhookOut]


class DeliveryOut(BaseModel):
    id: int
    webhook_id: str
    change_seq: int
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    next_attempt_at: str | None
    last_error: str | None
    body: dict[str, Any]


class DeliveryList(BaseModel):
    deliveries: list[DeliveryOut]


class ReplayResult(BaseModel):
    replayed: int
