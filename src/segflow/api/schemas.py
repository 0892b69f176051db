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


class GroupMemberRef(_Strict):
    """A segment's resolved membership in a priority group (the segment id ``group:segment``)."""

    group: str
    segment: str


class InSegmentCondition(_Strict):
    in_segment: str | GroupMemberRef


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
    tags: (
        Annotated[list[Annotated[str, Field(min_length=1, max_length=64)]], Field(max_length=50)]
        | None
    ) = Field(None, description="labels (metadata only); stored trimmed, deduplicated, sorted")
    folder: Annotated[str, Field(min_length=1, max_length=256)] | None = Field(
        None,
        description="where the segment sits in the UI's tree, '/'-separated "
        "(e.g. Lifecycle/Retention; metadata only)",
    )
    mode: Literal["realtime", "scheduled", "static"] | None = None
    schedule: str | None = Field(None, description="cron expression (scheduled segments)")
    snapshot_at: Instant | None = None
    members: list[str] | None = None
    emit_events: bool | None = None
    protected: bool | None = None
    public: bool | None = Field(
        None, description="shown to the shop's pages by GET /v1/onsite/segments (default false)"
    )
    version: int | None = None
    condition: Condition | None = None
    holdout: Holdout | None = None


class ResolvedMemberDefinition(_Strict):
    """A priority group's resolved member as the segment list shows it: ``group:segment``,
    the segment and none listed before it (read-only; change the group instead)."""

    id: str
    name: str
    description: str | None = None
    mode: Literal["realtime"]
    emit_events: bool
    protected: bool
    public: bool | None = None
    version: int | None = None
    group: str
    condition: Condition


class GroupDefinition(_Strict):
    """A priority group as written in YAML or JSON: segments highest priority first."""

    group: Annotated[str, Field(pattern=r"^[A-Za-z0-9_][A-Za-z0-9_.\-]{0,127}$")]
    name: str | None = None
    description: str | None = None
    segments: Annotated[list[str], Field(min_length=1)]
    emit_events: bool | None = None
    version: int | None = None


for _m in (AllCondition, AnyCondition, NotCondition):
    _m.model_rebuild()
SegmentDefinition.model_rebuild()
ResolvedMemberDefinition.model_rebuild()


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
    definition: SegmentDefinition | ResolvedMemberDefinition
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


class MemberRow(BaseModel):
    """A member as a member table shows it."""

    profile_id: str
    name: str | None = Field(description="the name trait, else first and last name")
    email: str | None
    ltv: float | None = Field(description="the ltv computed trait (the store's currency)")
    orders: int
    since: str | None = Field(description="when it last entered (null: not in the change log)")
    last_order_at: str | None
    held_out: bool = Field(description="in the segment's holdout (left out of activation)")


class MembersPage(BaseModel):
    members: list[str]
    size: int = Field(description="members in all (before q)")
    next_cursor: str | None = None
    at: str | None = Field(None, description="the instant evaluated (absent: live members)")
    matches: int | None = Field(None, description="members matching q (only with q)")
    rows: list[MemberRow] | None = Field(None, description="one per member (columns=true)")


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
    group: str | None = Field(None, description="the priority group of a resolved member")
    group_segment: str | None = Field(
        None, description="the segment a resolved member stands for in its group"
    )


class GroupMemberOut(BaseModel):
    segment: str
    resolved_id: str = Field(description="the resolution's segment id, group:segment")
    size: int | None = Field(None, description="live members of the resolution")


class GroupOut(BaseModel):
    group: str
    version: int
    definition: GroupDefinition
    members: list[GroupMemberOut]


class GroupList(BaseModel):
    groups: list[GroupOut]


class GroupSaveResult(BaseModel):
    group: GroupOut
    status: Literal["created", "updated", "unchanged", "dry_run"]
    diff: list[Diff] = Field(
        description="per resolved member (priority order): who the save moves (computed"
        " before it; dry_run: who it would move)"
    )


class GroupMembers(BaseModel):
    group: str
    at: str | None = Field(None, description="the instant evaluated (absent: live members)")
    members: dict[str, list[str]] = Field(
        description="each listed segment, highest priority first -> its resolved members"
    )
    size: int


class StreamTokenOut(BaseModel):
    """A short-lived token that opens the change stream (and nothing else)."""

    token: str = Field(description="pass as ?api_key= to GET /v1/changes/stream; shown once")
    expires_at: str = Field(description="when it stops opening streams (open ones go on)")
    scope: Literal["changes.stream"] = "changes.stream"


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


class ConsentState(BaseModel):
    granted: bool
    source: str = Field(description="trait <key> or event Consent Updated")
    at: str


class ChannelConsent(BaseModel):
    channel: str
    state: Literal["granted", "denied", "unknown"]
    reason: str = Field(description="the decision in words, with the statement's time and source")
    source: str | None = Field(description="trait <key> or event Consent Updated (null: unknown)")
    at: str | None
    default: Literal["allow", "deny"] | None = Field(
        None,
        description="unknown only: the configured rule for the profile's region "
        "(a destination's own unknown_consent overrides it)",
    )
    region: str | None = Field(None, description="unknown only: the profile's region, if any")


class ProfileView(BaseModel):
    """The customer view (values as stored: traits are free-form)."""

    profile_id: str
    name: str | None = Field(None, description="the name trait, else first and last name")
    email: str | None = None
    first_seen: str | None
    last_seen: str | None
    identities: list[Identity]
    traits: dict[str, Any]
    consent: dict[str, ConsentState] = Field(
        default_factory=dict, description="channel -> the latest statement on it"
    )
    consent_channels: list[ChannelConsent] = Field(
        default_factory=list,
        description="every channel: granted, denied or unknown (with the default that applies)",
    )
    computed_traits: dict[str, Any]
    orders: list[dict[str, Any]] = Field(
        description="newest first, each with products: [{product_id, name, price, quantity, "
        "category}] (its products list, else the cart it closed)"
    )
    cart: list[dict[str, Any]] = Field(
        description="open cart lines: product_id, quantity, added_at, and the name, price "
        "and category of the latest product event that carried them"
    )
    wishlist: list[Any] = Field(description="product ids")
    wishlist_items: list[dict[str, Any]] = Field(
        [], description="the wishlist's products with name, price and category"
    )
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


class DestinationReach(BaseModel):
    """Whether a profile is sent to one destination, and why."""

    destination_id: str
    name: str
    type: str
    channel: str | None
    excluded: bool
    reason: str = Field(
        description="e.g. 'excluded from email: no consent since 2026-11-03T10:00:00Z "
        "(source: identify (trait consent.email))', 'excluded from sms: unknown consent, "
        "default deny', 'sent: no consent check'"
    )


class ExplainResult(BaseModel):
    """Why a profile is (not) a member: ``condition`` is the tree of nodes, each with
    ``op``, ``value`` (its truth) and, at leaves, the feature and its value;
    ``destinations``: each destination receiving the segment, whether the profile is
    excluded from it and why."""

    segment: str
    profile: str
    at: str
    member: bool
    version: int | None = None
    condition: dict[str, Any]
    destinations: list[DestinationReach] = Field(default_factory=list)


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


# ---------------------------------------------------------------------------
# the web UI's reads: catalogue, dashboard, segment summaries

FieldType = Literal["string", "number", "boolean", "timestamp", "list", "object"]


class CatalogueProperty(BaseModel):
    path: str = Field(
        description="as a condition's where names it: category for properties.category; "
        "context fields keep their root (context.device.type)"
    )
    type: FieldType
    examples: list[Any] = Field(description="up to 5 of the most common values (none for lists)")


class CatalogueEvent(BaseModel):
    name: str
    count: int = Field(description="stored events of this name")
    first_seen: str
    last_seen: str = Field(description="the latest event timestamp of this name")
    properties: list[CatalogueProperty] = Field(
        description="fields seen in a sample of its newest events"
    )


class CatalogueTrait(BaseModel):
    key: str
    type: FieldType
    profiles: int = Field(description="profiles holding a current value")
    examples: list[Any]


class CatalogueComputed(BaseModel):
    name: str
    type: FieldType
    description: str


class SegmentRef(BaseModel):
    id: str
    name: str


class CataloguePages(BaseModel):
    count: int = Field(description="stored page calls")
    paths: list[str] = Field(description="up to 20 of the most viewed paths")
    names: list[str] = Field(description="up to 20 of the most viewed page names")


class Catalogue(BaseModel):
    """What the builder's pickers offer: names the store has seen, with examples."""

    events: list[CatalogueEvent]
    traits: list[CatalogueTrait]
    computed: list[CatalogueComputed]
    segments: list[SegmentRef]
    pages: CataloguePages


class DayPoint(BaseModel):
    at: str = Field(description="the UTC day's start")
    size: int | None = Field(
        description="size at the day's end (today: now); null before the segment's "
        "history starts (no change logged and no batch evaluation by then)"
    )


class SegmentSummary(BaseModel):
    id: str
    name: str
    description: str
    tags: list[str]
    folder: str | None
    mode: Literal["realtime", "scheduled", "static"]
    version: int
    updated_at: str | None = Field(description="when the current version was saved")
    size: int | None = Field(description="members now (null: never evaluated)")
    share: float | None = Field(description="size / profiles")
    change_7d: int | None = Field(description="size now minus size at the end of 7 days ago")
    change_30d: int | None = Field(description="size now minus size at the end of 30 days ago")
    series: list[DayPoint] = Field(description="31 daily points, oldest first; the last is now")


class SegmentSummaries(BaseModel):
    segments: list[SegmentSummary]


class TimelineEvent(BaseModel):
    at: str
    type: str = Field(description="track, page, screen, identify, alias or group")
    event: str | None = Field(description="the track event's name")
    properties: dict[str, Any]
    message_id: str
    traits: dict[str, Any] | None = None
    context: dict[str, Any] | None = None


class Timeline(BaseModel):
    events: list[TimelineEvent] = Field(description="newest first")
    next_before: str | None = Field(description="pass as before for the next page")


class ProfileListItem(BaseModel):
    profile_id: str
    name: str | None
    email: str | None
    last_seen: str


class ProfileList(BaseModel):
    profiles: list[ProfileListItem]
    next_cursor: str | None = Field(description="pass as after for the next page")


class DailyPoint(BaseModel):
    day: str = Field(description="the UTC day, YYYY-MM-DD")
    size: int | None = Field(
        description="size at the day's end (today: now); null before the segment's history"
    )
    entered: int = Field(description="entries logged that day")
    exited: int = Field(description="exits logged that day")


class SegmentDaily(BaseModel):
    segment_id: str
    points: list[DailyPoint] = Field(description="oldest first; the last is today")


class SegmentVersion(BaseModel):
    version: int
    saved_at: str
    definition: dict[str, Any] = Field(description="the definition as saved (canonical form)")


class SegmentVersions(BaseModel):
    versions: list[SegmentVersion] = Field(description="newest first")


class Mover(BaseModel):
    id: str
    name: str
    size: int | None
    change_7d: int
    change_7d_pct: float | None = Field(description="percent of the size 7 days ago")


class EventAlert(BaseModel):
    kind: Literal["event_stopped", "unknown_event"]
    event: str
    last_seen: str
    message: str


class Dashboard(BaseModel):
    at: str
    profiles: int
    events_today: int = Field(description="events timestamped since today's UTC midnight")
    events_last_hour: int
    ingest_rate: float = Field(description="events stored per second over the last 60 s")
    segments: int
    growth: list[Mover] = Field(description="up to 5 segments that grew most over 7 days")
    decline: list[Mover] = Field(description="up to 5 segments that shrank most over 7 days")
    alerts: list[EventAlert]


class SyncOut(BaseModel):
    id: int
    destination_id: str
    trigger: str
    status: Literal["requested", "running", "done", "failed"]
    requested_at: str
    started_at: str | None
    finished_at: str | None
    members: int
    held_out: int
    sent: int
    detail: Any = None
    error: str | None


class DeliveryCounts(BaseModel):
    pending: int
    delivered: int
    dead: int = Field(description="the dead-letter list")


class DestinationOut(BaseModel):
    id: str
    name: str
    type: Literal["webhook", "redis", "nats", "kafka", "files", "ad_audience", "esp"]
    segments: list[str]
    groups: list[str] = Field(
        default_factory=list,
        description="priority groups it receives: every resolved member of each",
    )
    events: list[Literal["entered", "exited"]]
    changes: bool
    fields: dict[str, str] = Field(description="trait key -> the name it is sent under")
    batch_size: int
    schedule: str | None
    channel: Literal["email", "sms", "push", "ads", "profiling"] | None = Field(
        description="the consent channel its profiles must have granted (null: no check)"
    )
    unknown_consent: Literal["deny", "allow"] | None = Field(
        description="what a profile that never stated consent on the channel gets "
        "(null: the server's configured rule, by region)"
    )
    config: dict[str, Any] = Field(description="the type's settings (a secret only on creation)")
    created_at: str
    status: Literal["ok", "retrying", "failing"] | None = Field(
        None,
        description="failing: dead-lettered deliveries or a failed latest sync; "
        "retrying: deliveries waiting for another try",
    )
    last_error: str | None = Field(None, description="the latest delivery or sync error")
    deliveries: DeliveryCounts | None = Field(None, description="deliveries per status")
    syncs: list[SyncOut] | None = Field(None, description="the latest syncs, newest first")


class DestinationSetting(BaseModel):
    name: str
    required: bool
    input: Literal["text", "url", "secret", "path", "integer", "choice"]
    description: str
    choices: list[str] = Field(description="the allowed values of a choice")
    default: str | int | None


class DestinationType(BaseModel):
    type: str
    settings: list[DestinationSetting] = Field(description="its config keys, as a form lists them")


class DestinationTypes(BaseModel):
    types: list[DestinationType]
    channels: list[str] = Field(description="the consent channels")
    unknown_consent: list[str]
    events: list[str]


class DestinationList(BaseModel):
    destinations: list[DestinationOut]


class DestinationDeliveryOut(BaseModel):
    id: int
    destination_id: str
    change_seq: int
    idempotency_key: str
    status: Literal["pending", "delivered", "dead"]
    attempts: int
    next_attempt_at: str | None
    last_error: str | None
    body: dict[str, Any]


class DestinationDeliveryList(BaseModel):
    counts: dict[str, int]
    deliveries: list[DestinationDeliveryOut]


class SyncList(BaseModel):
    syncs: list[SyncOut]
