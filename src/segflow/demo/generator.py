"""A deterministic, vectorised generator of a year of a realistic online store.

Customers follow lifecycles (new, loyal, regular, lapsing, churned, one-time buyers,
browsers who never buy) that drive how often they come back; each visit is a session
with a funnel (pages, searches, product views, wishlist, cart, checkout, order) shaped
by the customer's category affinity and device; visitors browse anonymously until
they identify; consenting customers receive and open email campaigns.  Everything is
drawn with NumPy over whole blocks of customers at once (no per-event or per-customer
Python loops), so a million customers / ~100M events take minutes.

The output is the flat event table segflow ingests: core Segment fields as columns,
every scalar of ``properties`` / ``context`` / ``traits`` as a dotted column, written
as zstd Parquet.  The data is a pure function of ``(seed, customers, end, days)``:
``chunk_customers`` only decides how the customers are split into files.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future, ThreadPoolExecutor
from dataclasses import dataclass
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any, Final, TypeAlias

import numpy as np
import numpy.typing as npt
import orjson
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq

from segflow.model.time import EPOCH, from_us, naive_utc, to_us

IntA: TypeAlias = npt.NDArray[np.int64]
FloatA: TypeAlias = npt.NDArray[np.float64]
BoolA: TypeAlias = npt.NDArray[np.bool_]
U8A: TypeAlias = npt.NDArray[np.uint8]
Arr: TypeAlias = "pa.Array[Any]"

DEFAULT_END: Final = datetime(2026, 11, 1)
"""A fixed default instant (naive UTC), so that the same seed always gives the same shop."""

US_PER_S: Final = 1_000_000
US_PER_H: Final = 3_600 * US_PER_S
US_PER_D: Final = 24 * US_PER_H

BLOCK: int = 5_000
"""Customers drawn together from one random stream; fixed so that data does not depend on
``chunk_customers`` (module-level so tests can make it small)."""

CURRENCY: Final = "USD"

# ---------------------------------------------------------------------------
# the world: catalogue, places, devices, traffic, campaigns

# name, products, median price, log-sigma, min, max, popularity, buy factor, brands
_CATEGORIES: Final[tuple[tuple[str, int, float, float, float, float, float, float, str], ...]] = (
    ("Smartphones", 150, 650.0, 0.45, 99.0, 1_800.0, 1.1, 0.7, "Apple Samsung Google Xiaomi"),
    ("Laptops", 120, 1_300.0, 0.40, 349.0, 4_500.0, 0.7, 0.6, "Lenovo Apple Dell HP Asus"),
    (
        "Luxury Watches",
        80,
        6_500.0,
        0.60,
        1_500.0,
        60_000.0,
        0.18,
        0.35,
        "Rolex Omega Cartier TAG-Heuer Breitling",
    ),
    ("Shoes", 300, 95.0, 0.50, 25.0, 450.0, 1.3, 1.0, "Nike Adidas Asics NewBalance Vans"),
    ("Apparel", 500, 45.0, 0.60, 8.0, 400.0, 1.5, 1.0, "Levis Uniqlo Patagonia Zara H&M"),
    ("Beauty", 300, 28.0, 0.60, 5.0, 250.0, 1.0, 1.1, "Loreal Nivea Clinique Dior"),
    ("Home & Kitchen", 350, 60.0, 0.80, 6.0, 900.0, 1.0, 1.0, "Philips Tefal KitchenAid Ikea"),
    ("Books", 600, 16.0, 0.40, 5.0, 90.0, 0.9, 1.2, "Penguin HarperCollins Vintage Orbit"),
    ("Toys", 250, 30.0, 0.60, 5.0, 300.0, 0.7, 1.0, "Lego Hasbro Mattel Ravensburger"),
    ("Sports", 250, 70.0, 0.70, 8.0, 1_200.0, 0.8, 0.9, "Decathlon Wilson Garmin Yonex"),
)
CATEGORIES: Final = tuple(c[0] for c in _CATEGORIES)
_LUXURY: Final = CATEGORIES.index("Luxury Watches")
_NOUNS: Final = (
    ("Phone", "Phone Pro", "Phone Mini"),
    ("Laptop", "Notebook Pro", "Ultrabook"),
    ("Chronograph", "Diver", "Dress Watch", "GMT"),
    ("Runner", "Sneaker", "Boot", "Sandal"),
    ("Hoodie", "Jeans", "Shirt", "Jacket", "Dress"),
    ("Serum", "Lipstick", "Eau de Parfum", "Face Cream"),
    ("Blender", "Frying Pan", "Knife Set", "Coffee Maker", "Duvet"),
    ("Novel", "Cookbook", "Biography", "Picture Book"),
    ("Puzzle", "Building Set", "Board Game", "Plush"),
    ("Yoga Mat", "Racket", "Dumbbell Set", "Helmet"),
)
_CART_FACTOR: Final = np.array(
    [{"Luxury Watches": 2.5, "Laptops": 1.6, "Smartphones": 1.4}.get(c, 1.0) for c in CATEGORIES]
)
"""High-ticket items are put in the cart and left there more often (longer consideration)."""

_QUERIES: Final = (
    ("iphone", "galaxy s", "pixel", "android phone", "5g phone", "phone 256gb"),
    ("macbook", "gaming laptop", "thinkpad", "ultrabook", "chromebook", "laptop 16gb"),
    ("rolex", "omega seamaster", "swiss watch", "automatic watch", "cartier", "gold watch"),
    ("running shoes", "sneakers", "boots", "sandals", "trail shoes", "white sneakers"),
    ("hoodie", "jeans", "dress", "t-shirt", "winter jacket", "linen shirt"),
    ("moisturizer", "lipstick", "perfume", "sunscreen", "shampoo", "serum"),
    ("coffee maker", "air fryer", "knife set", "blender", "bedding", "cast iron pan"),
    ("cookbook", "thriller", "fantasy", "biography", "kids books", "sci-fi"),
    ("lego", "puzzle", "board game", "doll", "rc car", "plush"),
    ("yoga mat", "dumbbells", "tennis racket", "bike helmet", "football", "running watch"),
)
_ZERO_RESULT_QUERIES: Final = (
    "iphnoe 16",
    "gluten free dog sweater",
    "left handed scissors",
    "typewriter ribbon",
    "flux capacitor",
    "solar umbrella",
    "rolexx",
    "macbok air",
    "snekers",
    "waterproof book",
    "banana slicer pro",
    "unicorn saddle",
)
ZERO_RESULT_RATE: Final = 0.07

_COUNTRIES: Final = (
    ("US", 0.30, ("New York", "Los Angeles", "Chicago", "Houston", "Seattle")),
    ("GB", 0.10, ("London", "Manchester", "Birmingham")),
    ("DE", 0.10, ("Berlin", "Munich", "Hamburg")),
    ("FR", 0.07, ("Paris", "Lyon", "Marseille")),
    ("CA", 0.07, ("Toronto", "Vancouver", "Montreal")),
    ("PL", 0.06, ("Warsaw", "Krakow", "Wroclaw")),
    ("ES", 0.05, ("Madrid", "Barcelona")),
    ("IT", 0.05, ("Milan", "Rome")),
    ("BR", 0.05, ("São Paulo", "Rio de Janeiro")),
    ("NL", 0.04, ("Amsterdam", "Rotterdam")),
    ("AU", 0.04, ("Sydney", "Melbourne")),
    ("JP", 0.03, ("Tokyo", "Osaka")),
    ("SE", 0.02, ("Stockholm",)),
    ("CH", 0.02, ("Zurich", "Geneva")),
)


def _words(text: str) -> tuple[str, ...]:
    return tuple(text.split())


_DEVICES: Final = ("mobile", "desktop", "tablet")
_DEVICE_P: Final = (0.58, 0.34, 0.08)
_OSES: Final = ("iOS", "Android", "Windows", "macOS", "Linux", "iPadOS")
# P(os | device), rows follow _DEVICES
_OS_P: Final = (
    (0.50, 0.50, 0.0, 0.0, 0.0, 0.0),
    (0.0, 0.0, 0.62, 0.33, 0.05, 0.0),
    (0.0, 0.30, 0.0, 0.0, 0.0, 0.70),
)

# source, medium, campaign name, referrer, share of sessions
_SOURCES: Final = (
    ("direct", "(none)", None, None, 0.30),
    ("google", "organic", None, "https://www.google.com/", 0.20),
    ("google", "cpc", "shopping_always_on", "https://www.google.com/", 0.14),
    ("bing", "cpc", "brand_search", "https://www.bing.com/", 0.02),
    ("newsletter", "email", "weekly_newsletter", None, 0.08),
    ("instagram", "social", "creator_collab", "https://l.instagram.com/", 0.09),
    ("facebook", "social", "retargeting", "https://m.facebook.com/", 0.06),
    ("tiktok", "social", "viral_shorts", "https://www.tiktok.com/", 0.05),
    ("affiliate", "referral", "partner_blogs", "https://deals.example.net/", 0.04),
    ("pinterest", "social", None, "https://www.pinterest.com/", 0.02),
)
_EMAIL_SOURCE: Final = 4

_FIRST_NAMES: Final = _words(
    "Olivia Liam Emma Noah Amelia Oliver Sophia Elijah Mia Lucas Ava Mateo Isabella Leo "
    "Charlotte Hugo Zofia Jakub Lena Felix Chloe Louis Giulia Marco Sofia Pablo Yuki Haruto "
    "Freja Lars Ana Joao Ella Jack Priya Arjun Fatima Omar Nora Erik"
)
_LAST_NAMES: Final = _words(
    "Smith Johnson Brown Garcia Miller Davis Martin Bernard Muller Schmidt Nowak Kowalski "
    "Rossi Russo Fernandez Lopez Silva Santos Tanaka Suzuki Andersson Johansson Jansen "
    "DeVries Taylor Wilson Thompson White Moreau Dubois Weber Wagner Wojcik Ricci Costa "
    "Nakamura Nilsson Bakker Clarke Evans"
)
_EMAIL_DOMAINS: Final = ("example.com", "example.org", "example.net", "mail.example")

_COUPONS: Final = (
    ("WELCOME10", 0.10),
    ("SPRING15", 0.15),
    ("SUMMER20", 0.20),
    ("VIP25", 0.25),
    ("FREESHIP5", 0.05),
    ("BLACKFRIDAY30", 0.30),
)
_PLANS: Final = ("free", "plus", "premium")

_SUBJECTS: Final = (
    "New arrivals you'll love",
    "Your weekly picks",
    "Last chance: sale ends tonight",
    "Back in stock",
    "A gift for you inside",
    "Trending in {cat}",
    "Top deals in {cat}",
    "Members get early access",
    "Free shipping this weekend",
    "Our editors' favourites",
)

_STATIC_PAGES: Final = (
    ("Home", "/"),
    ("Sale", "/sale"),
    ("Cart", "/cart"),
    ("Account", "/account"),
    ("Blog", "/blog"),
    ("Help", "/help"),
)

# event kinds, in funnel order (stage decides the order inside a session)
K_LANDING, K_PAGE, K_SEARCH, K_VIEW, K_WISH, K_ADD, K_REMOVE, K_CHECKOUT, K_ORDER = range(9)
K_IDENTIFY, K_OPEN, K_CLICK = 9, 10, 11
_N_SESSION_KINDS: Final = 9
_STAGE: Final = np.array([0, 1, 1, 1, 2, 3, 4, 5, 6], dtype=np.int64)
_EVENT_NAMES: Final = (
    None,
    None,
    "Products Searched",
    "Product Viewed",
    "Product Added to Wishlist",
    "Product Added",
    "Product Removed",
    "Checkout Started",
    "Order Completed",
    None,
    "Email Opened",
    "Email Link Clicked",
)
_TYPES: Final = ("track", "identify", "page")
_TYPE_OF_KIND: Final = np.array([2, 2, 0, 0, 0, 0, 0, 0, 0, 1, 0, 0], dtype=np.int64)

# lifecycles: share, sessions per active day, P(buy), P(cart only) per session
LIFECYCLES: Final = ("new", "loyal", "regular", "lapsing", "churned", "one_time", "browser")
(L_NEW, L_LOYAL, L_REGULAR, L_LAPSING, L_CHURNED, L_ONE_TIME, L_BROWSER) = range(7)
_L_SHARE: Final = np.array([0.14, 0.08, 0.20, 0.12, 0.14, 0.12, 0.20])
_L_RATE: Final = np.array([0.20, 0.14, 0.045, 0.07, 0.08, 0.0, 0.04])
_L_BUY: Final = np.array([0.16, 0.26, 0.14, 0.14, 0.12, 0.0, 0.0])
_L_CART: Final = np.array([0.15, 0.12, 0.12, 0.12, 0.12, 0.15, 0.12])

# ---------------------------------------------------------------------------
# public API


@dataclass(frozen=True, slots=True)
class ShopSummary:
    """What ``generate_shop`` wrote: files, sizes and the time range of the data."""

    paths: tuple[Path, ...]
    events: int
    customers: int
    identified: int
    start: datetime
    end: datetime
    first_event_at: datetime | None
    last_event_at: datetime | None
    seed: int

    def read(self) -> pa.Table:
        """Every event, in file order (customer by customer, each in time order)."""
        return pa.concat_tables([pq.read_table(p) for p in self.paths])


def generate_shop(
    out_dir: Path,
    *,
    customers: int,
    seed: int = 42,
    end: datetime | None = None,
    days: int = 365,
    chunk_customers: int = 50_000,
    progress: Callable[[int, int], None] | None = None,
) -> ShopSummary:
    """Write ``days`` of a ``customers``-strong shop ending at ``end`` to ``out_dir``.

    One Parquet file per ``chunk_customers`` customers (rounded to whole blocks of
    ``BLOCK``), each customer's events in time order; ``progress(done, total)`` is called
    after every block.  Every timestamp lies strictly inside ``(end - days, end)``.
    """
    if customers < 1:
        raise ValueError(f"customers must be at least 1, got {customers}")
    if customers >= 10**8:
        raise ValueError(f"customers must be below 100,000,000, got {customers}")
    if days < 2:
        raise ValueError(f"days must be at least 2, got {days}")
    if chunk_customers < 1:
        raise ValueError(f"chunk_customers must be at least 1, got {chunk_customers}")
    end_dt = naive_utc(end if end is not None else DEFAULT_END)
    world = _World.build(seed, end_dt, days)
    out_dir.mkdir(parents=True, exist_ok=True)
    blocks_per_file = max(1, round(chunk_customers / BLOCK))
    n_blocks = -(-customers // BLOCK)
    events = identified = 0
    first = last = None
    with _Files(out_dir) as files:
        for b in range(n_blocks):
            lo = b * BLOCK
            n = min(BLOCK, customers - lo)
            table, n_identified = _block(world, b, lo, n)
            files.write(table, new_file=b % blocks_per_file == 0)
            events += table.num_rows
            identified += n_identified
            if table.num_rows:
                ts = pc.min_max(table["timestamp"])
                lo_ts, hi_ts = ts["min"].as_py(), ts["max"].as_py()
                first = lo_ts if first is None else min(first, lo_ts)
                last = hi_ts if last is None else max(last, hi_ts)
            if progress is not None:
                progress(lo + n, customers)
    return ShopSummary(
        paths=files.paths,
        events=events,
        customers=customers,
        identified=identified,
        start=end_dt - timedelta(days=days),
        end=end_dt,
        first_event_at=first,
        last_event_at=last,
        seed=seed,
    )


def write_jsonl(
    source: ShopSummary | pa.Table | Path | Sequence[Path], path: Path, limit: int | None = None
) -> int:
    """Write events as Segment-spec JSON Lines (what a store's tracking would send).

    Nested ``properties`` / ``context`` / ``traits``, camelCase ids, ISO timestamps with
    ``Z``; null fields are left out.  Returns the number of lines written.
    """
    written = 0
    with path.open("wb") as out:
        for batch in _batches(source):
            rows = batch.to_pylist()
            if limit is not None:
                rows = rows[: max(0, limit - written)]
            out.writelines(orjson.dumps(_segment_message(r)) + b"\n" for r in rows)
            written += len(rows)
            if limit is not None and written >= limit:
                break
    return written


class _Files:
    """Parquet files written on a background thread while the next block is drawn.

    Files are written under temporary names and renamed only when every block is done,
    so a failed run leaves the previous shop in ``out_dir`` untouched.
    """

    def __init__(self, out_dir: Path) -> None:
        self.out_dir = out_dir
        for stale in out_dir.glob(".events-*.parquet.partial"):
            stale.unlink()
        self.temp: list[Path] = []
        self.paths: tuple[Path, ...] = ()
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="segflow-shop")
        self._pending: Future[None] | None = None
        self._writer: pq.ParquetWriter | None = None

    def __enter__(self) -> _Files:
        return self

    def write(self, table: pa.Table, *, new_file: bool) -> None:
        self._wait()
        if new_file:
            self.temp.append(self.out_dir / f".events-{len(self.temp):05d}.parquet.partial")
        self._pending = self._pool.submit(self._write, table, self.temp[-1] if new_file else None)

    def _write(self, table: pa.Table, path: Path | None) -> None:
        if path is not None:
            if self._writer is not None:
                self._writer.close()
            self._writer = pq.ParquetWriter(
                path,
                _WRITE_SCHEMA,
                compression="zstd",
                store_schema=False,
                write_statistics=_STATISTICS,
            )
        assert self._writer is not None
        self._writer.write_table(table, row_group_size=max(1, table.num_rows))

    def _wait(self) -> None:
        if self._pending is not None:
            pending, self._pending = self._pending, None
            pending.result()

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        failed = exc_type is not None
        try:
            self._wait()
        except BaseException:
            failed = True
            raise
        finally:
            if self._writer is not None:
                self._writer.close()
            self._pool.shutdown()
            if failed:
                for p in self.temp:
                    p.unlink(missing_ok=True)
        if failed:
            return
        final = [self.out_dir / f"events-{i:05d}.parquet" for i in range(len(self.temp))]
        for old in self.out_dir.glob("events-*.parquet"):
            if old not in final:
                old.unlink()
        for tmp, path in zip(self.temp, final, strict=True):
            tmp.replace(path)
        self.paths = tuple(final)


# ---------------------------------------------------------------------------
# output schema

_COLUMNS: Final[list[tuple[str, pa.DataType]]] = [
    ("message_id", pa.string()),
    ("type", pa.string()),
    ("event", pa.string()),
    ("user_id", pa.string()),
    ("anonymous_id", pa.string()),
    ("timestamp", pa.timestamp("us")),
    ("properties.name", pa.string()),
    ("properties.path", pa.string()),
    ("properties.url", pa.string()),
    ("properties.referrer", pa.string()),
    ("properties.product_id", pa.string()),
    ("properties.category", pa.string()),
    ("properties.brand", pa.string()),
    ("properties.price", pa.float64()),
    ("properties.quantity", pa.int64()),
    ("properties.currency", pa.string()),
    ("properties.query", pa.string()),
    ("properties.results", pa.int64()),
    ("properties.order_id", pa.string()),
    ("properties.revenue", pa.float64()),
    ("properties.discount", pa.float64()),
    ("properties.coupon", pa.string()),
    ("properties.campaign_id", pa.string()),
    ("properties.subject", pa.string()),
    ("context.device.type", pa.string()),
    ("context.os.name", pa.string()),
    ("context.location.country", pa.string()),
    ("context.location.city", pa.string()),
    ("context.campaign.source", pa.string()),
    ("context.campaign.medium", pa.string()),
    ("context.campaign.name", pa.string()),
    ("traits.email", pa.string()),
    ("traits.first_name", pa.string()),
    ("traits.last_name", pa.string()),
    ("traits.country", pa.string()),
    ("traits.city", pa.string()),
    ("traits.created_at", pa.string()),
    ("traits.birthday", pa.string()),
    ("traits.plan", pa.string()),
    ("traits.vip", pa.bool_()),
    ("traits.consent_email", pa.bool_()),
]
SCHEMA: Final = pa.schema(_COLUMNS)
"""The flat event table: core Segment fields, then one typed column per dotted scalar path."""

_PLAIN_STRINGS: Final = frozenset({"message_id", "user_id", "anonymous_id", "properties.order_id"})
_WRITE_SCHEMA: Final = pa.schema(
    [
        pa.field(f.name, pa.dictionary(pa.int32(), pa.string()))
        if f.type == pa.string() and f.name not in _PLAIN_STRINGS
        else f
        for f in SCHEMA
    ]
)
"""What blocks are built as: low-cardinality strings stay dictionary-encoded all the way into
Parquet, which stores them as plain strings (files are written without the Arrow schema)."""
_STATISTICS: Final = ["type", "event", "user_id", "anonymous_id", "timestamp"]

_TYPE_VALUES: Final = pa.array(_TYPES, pa.string())


def _lookup(values: Sequence[str | None]) -> tuple[Arr, IntA]:
    """A null-free dictionary and the index map that sends ``None`` entries to -1 (null)."""
    index = np.array([-1 if v is None else i for i, v in enumerate(values)], dtype=np.int64)
    return pa.array([v or "" for v in values], pa.string()), index


_EVENT_VALUES, _EVENT_INDEX = _lookup(_EVENT_NAMES)
_CATEGORY_VALUES: Final = pa.array(CATEGORIES, pa.string())
_CURRENCY_VALUES: Final = pa.array([CURRENCY], pa.string())
_COUPON_VALUES: Final = pa.array([c[0] for c in _COUPONS], pa.string())
_DEVICE_VALUES: Final = pa.array(_DEVICES, pa.string())
_OS_VALUES: Final = pa.array(_OSES, pa.string())
_SOURCE_VALUES: Final = pa.array([x[0] for x in _SOURCES], pa.string())
_MEDIUM_VALUES: Final = pa.array([x[1] for x in _SOURCES], pa.string())
_CAMPAIGN_VALUES, _CAMPAIGN_INDEX = _lookup([x[2] for x in _SOURCES])
_REFERRER_VALUES, _REFERRER_INDEX = _lookup([x[3] for x in _SOURCES])
_FIRST_NAME_VALUES: Final = pa.array(_FIRST_NAMES, pa.string())
_LAST_NAME_VALUES: Final = pa.array(_LAST_NAMES, pa.string())
_DOMAIN_VALUES: Final = pa.array(_EMAIL_DOMAINS, pa.string())
_PLAN_VALUES: Final = pa.array(_PLANS, pa.string())


# ---------------------------------------------------------------------------
# the world shared by every block


@dataclass(frozen=True)
class _World:
    """Everything drawn once per seed: catalogue, places, campaigns, lookup tables."""

    seed: int
    start_us: int
    end_us: int
    days: int
    # catalogue
    product_cat: IntA
    product_price: FloatA
    product_brand: IntA
    product_ids: Arr
    names: Arr  # page names, then product names
    brands: Arr
    product_cdf: FloatA  # category index + within-category popularity CDF
    cat_weight: FloatA
    cat_buy: FloatA
    # places
    country_p: FloatA
    city_cdf: FloatA  # country index + within-country CDF
    countries: Arr
    cities: Arr
    # search
    queries: Arr
    query_base: FloatA
    # pages: static pages, then one page per category
    page_paths: Arr
    page_urls: Arr
    # campaigns
    campaign_send_us: IntA
    campaign_promo: BoolA
    campaign_ids: Arr
    campaign_subjects: Arr

    @staticmethod
    def build(seed: int, end: datetime, days: int) -> _World:
        rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 0xCA7A])))
        product_cat: list[IntA] = []
        prices: list[FloatA] = []
        brand_idx: list[IntA] = []
        cdf: list[FloatA] = []
        brand_names: list[str] = []
        names: list[str] = []
        for ci, (_cat, n, median, sigma, lo, hi, _w, _b, brands) in enumerate(_CATEGORIES):
            b_names = brands.split()
            raw = np.clip(median * np.exp(sigma * rng.standard_normal(n)), lo, hi)
            price = np.where(raw >= 1000, np.round(raw / 50) * 50, np.round(raw)) - 0.01
            pop = 1.0 / np.arange(1, n + 1) ** 0.9
            pop = rng.permutation(pop)
            b = rng.integers(0, len(b_names), n)
            nouns = _NOUNS[ci]
            noun = rng.integers(0, len(nouns), n)
            product_cat.append(np.full(n, ci, dtype=np.int64))
            prices.append(np.maximum(price, 0.99))
            brand_idx.append(b + len(brand_names))
            within = np.cumsum(pop) / pop.sum()
            within[-1] = 1.0
            cdf.append(ci + within)
            names.extend(
                f"{b_names[int(bi)]} {nouns[int(ni)]} {j + 1:03d}"
                for j, (bi, ni) in enumerate(zip(b, noun, strict=True))
            )
            brand_names.extend(b_names)
        cdf_all = np.concatenate(cdf)
        n_products = len(names)
        weights = np.array([c[6] for c in _CATEGORIES])

        country_p = np.array([c[1] for c in _COUNTRIES])
        city_cdf: list[float] = []
        city_names: list[str] = []
        for ki, (_code, _p, cities) in enumerate(_COUNTRIES):
            w = np.cumsum(1.0 / np.arange(1, len(cities) + 1))
            w /= w[-1]
            w[-1] = 1.0
            city_cdf.extend((ki + w).tolist())
            city_names.extend(cities)
        city_cdf_a = np.array(city_cdf)

        queries = [q for qs in _QUERIES for q in qs] + list(_ZERO_RESULT_QUERIES)
        n_found = len(queries) - len(_ZERO_RESULT_QUERIES)
        query_base = rng.uniform(5, 120, len(queries))
        query_base[n_found:] = 0

        page_names = [p[0] for p in _STATIC_PAGES] + list(CATEGORIES)
        page_paths = [p[1] for p in _STATIC_PAGES] + [
            "/c/" + c.lower().replace(" & ", "-").replace(" ", "-") for c in CATEGORIES
        ]

        start = end - timedelta(days=days)
        start_us = to_us(start)
        weeks = days // 7
        newsletter = start_us + (np.arange(weeks) * 7 + 1) * US_PER_D + 9 * US_PER_H
        newsletter += rng.integers(0, US_PER_H, weeks)
        n_promo = max(1, days // 30)
        promo = start_us + rng.integers(US_PER_H, days * US_PER_D - US_PER_H, n_promo)
        send = np.concatenate([newsletter, promo])
        is_promo = np.concatenate([np.zeros(weeks, bool), np.ones(n_promo, bool)])
        order = np.argsort(send, kind="stable")
        send, is_promo = send[order], is_promo[order]
        subj_idx = rng.integers(0, len(_SUBJECTS), len(send))
        subj_cat = rng.integers(0, len(CATEGORIES), len(send))
        subjects = [
            _SUBJECTS[int(s)].format(cat=CATEGORIES[int(c)])
            for s, c in zip(subj_idx, subj_cat, strict=True)
        ]
        campaign_ids = [
            f"{'promo' if p else 'news'}-{from_us(int(t)):%Y%m%d}-{i:03d}"
            for i, (t, p) in enumerate(zip(send, is_promo, strict=True))
        ]
        return _World(
            seed=seed,
            start_us=start_us,
            end_us=to_us(end),
            days=days,
            product_cat=np.concatenate(product_cat),
            product_price=np.round(np.concatenate(prices), 2).astype(np.float64),
            product_brand=np.concatenate(brand_idx),
            product_ids=pa.array([f"P{i:05d}" for i in range(n_products)], pa.string()),
            names=pa.array(page_names + names, pa.string()),
            brands=pa.array(brand_names, pa.string()),
            product_cdf=cdf_all,
            cat_weight=weights / weights.sum(),
            cat_buy=np.array([c[7] for c in _CATEGORIES]),
            country_p=country_p / country_p.sum(),
            city_cdf=city_cdf_a,
            countries=pa.array([c[0] for c in _COUNTRIES], pa.string()),
            cities=pa.array(city_names, pa.string()),
            queries=pa.array(queries, pa.string()),
            query_base=query_base,
            page_paths=pa.array(page_paths, pa.string()),
            page_urls=pa.array(["https://shop.example.com" + p for p in page_paths], pa.string()),
            campaign_send_us=send.astype(np.int64),
            campaign_promo=is_promo,
            campaign_ids=pa.array(campaign_ids, pa.string()),
            campaign_subjects=pa.array(subjects, pa.string()),
        )


# ---------------------------------------------------------------------------
# one block of customers


@dataclass
class _People:
    """Per-customer draws (index = customer position inside the block)."""

    gid: IntA  # global customer number
    life: IntA
    start_d: FloatA
    stop_d: FloatA
    alive: BoolA  # still active at the end of the window
    affinity_cdf: FloatA  # (n, categories) cumulative
    device: IntA
    os_u: FloatA
    source: IntA
    country: IntA
    city: IntA
    p_buy: FloatA
    p_cart: FloatA
    identifies: BoolA
    discount_only: BoolA
    engagement: FloatA
    collector: BoolA


@dataclass
class _Sessions:
    """Sessions sorted by (customer, start); ``first[c]`` is customer c's first session."""

    cust: IntA
    t0: IntA
    rank: IntA
    first: IntA
    count: IntA
    device: IntA
    os: IntA
    source: IntA
    focus: IntA
    intent: IntA  # 0 browse, 1 cart, 2 buy


def _block(world: _World, b: int, lo: int, n: int) -> tuple[pa.Table, int]:
    """Draw customers ``lo .. lo+n`` (block ``b``) and return their events as a table."""
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([world.seed, 1, b])))
    people = _people(world, rng, lo, n)
    sess = _sessions(world, rng, people)
    ev = _session_events(world, rng, people, sess)
    id_ts, ident = _identifies(world, rng, people, sess)
    emails = _emails(world, rng, people, ident, id_ts)
    cols = _concat([ev, ident.events, emails])
    keep = cols["ts"] < world.end_us
    cols = {k: v[keep] for k, v in cols.items()}
    order = np.lexsort((cols["ts"], cols["cust"]))
    cols = {k: v[order] for k, v in cols.items()}
    table = _to_table(world, rng, people, sess, ident, id_ts, cols)
    identified = int(np.count_nonzero(id_ts < world.end_us))
    return table, identified


def _people(world: _World, rng: np.random.Generator, lo: int, n: int) -> _People:
    """Who the customers are: lifecycle and active span (in days), tastes, place, habits."""
    days = float(world.days)
    life = rng.choice(len(LIFECYCLES), n, p=_L_SHARE / _L_SHARE.sum()).astype(np.int64)
    u1, u2 = rng.random(n), rng.random(n)
    start = np.empty(n)
    stop = np.full(n, days)
    sel = life == L_NEW
    start[sel] = days - np.minimum(60.0, days) * u1[sel]
    sel = life == L_LOYAL
    start[sel] = 0.1 * days * u1[sel]
    sel = life == L_REGULAR
    start[sel] = 0.8 * days * u1[sel]
    sel = life == L_LAPSING
    stop[sel] = days - np.minimum(35.0 + 65.0 * u2[sel], 0.5 * days)
    start[sel] = stop[sel] * 0.6 * u1[sel]
    sel = life == L_CHURNED
    stop[sel] = np.maximum(days - np.minimum(120.0 + 210.0 * u2[sel], 0.9 * days), 0.05 * days)
    start[sel] = stop[sel] * 0.7 * u1[sel]
    sel = (life == L_ONE_TIME) | (life == L_BROWSER)
    start[sel] = (days - 0.5) * u1[sel]
    span = np.where(life == L_ONE_TIME, 1.0 + 44.0 * u2, 1.0 + 239.0 * u2)
    stop[sel] = np.minimum(days, start[sel] + span[sel])
    start = np.clip(start, 0.0, days - 0.01)
    stop = np.clip(stop, start + 0.01, days)
    alive = stop >= days

    alpha = world.cat_weight * 1.5
    aff = rng.dirichlet(alpha, n)
    aff = 0.85 * aff + 0.15 * world.cat_weight
    # a few loyal customers are watch collectors: big tickets, long consideration
    collector = (life == L_LOYAL) & (rng.random(n) < 0.08)
    aff[collector] *= 0.35
    aff[collector, _LUXURY] += 0.65
    aff_cdf = np.cumsum(aff, axis=1)
    aff_cdf[:, -1] = 1.0

    country = _categorical(rng, world.country_p, n)
    city = _within(world.city_cdf, country, rng.random(n))

    jitter = np.exp(0.4 * rng.standard_normal(n))
    p_buy = np.clip(_L_BUY[life] * jitter, 0.0, 0.9)
    p_cart = np.clip(_L_CART[life] * np.exp(0.3 * rng.standard_normal(n)), 0.0, 0.6)
    identifies = (life != L_BROWSER) | (rng.random(n) < 0.45)
    discount_only = (life != L_BROWSER) & (rng.random(n) < 0.07)
    engagement = rng.beta(1.3, 3.5, n) * np.where(life == L_LOYAL, 1.6, 1.0)
    return _People(
        gid=np.arange(lo, lo + n, dtype=np.int64),
        life=life,
        start_d=start,
        stop_d=stop,
        alive=alive,
        affinity_cdf=aff_cdf,
        device=_categorical(rng, np.array(_DEVICE_P), n),
        os_u=rng.random(n),
        source=_categorical(rng, np.array([s[4] for s in _SOURCES]), n),
        country=country,
        city=city,
        p_buy=p_buy,
        p_cart=p_cart,
        identifies=identifies,
        discount_only=discount_only,
        engagement=np.clip(engagement, 0.0, 0.95),
        collector=collector,
    )


def _sessions(world: _World, rng: np.random.Generator, pp: _People) -> _Sessions:
    """Visits over each customer's active span (fading for lapsing ones), plus the recent
    visits and abandoned carts that make time-window segments meaningful at ``end``."""
    n = len(pp.gid)
    active = pp.stop_d - pp.start_d
    lam = _L_RATE[pp.life] * active * np.exp(0.5 * rng.standard_normal(n))
    lam = np.where(pp.life == L_ONE_TIME, 1.5, lam)
    count = 1 + rng.poisson(lam)
    cust = np.repeat(np.arange(n, dtype=np.int64), count)
    m = len(cust)
    u = rng.random(m)
    fading = np.isin(pp.life[cust], (L_LAPSING, L_CHURNED))
    u = np.where(fading, 1.0 - np.sqrt(1.0 - u), u)
    t_days = pp.start_d[cust] + active[cust] * u
    day = np.floor(t_days)
    hour = _diurnal(rng, m)
    t_days = np.minimum(day + hour / 24.0, pp.stop_d[cust])
    t0 = world.start_us + np.clip(
        (t_days * US_PER_D).astype(np.int64), 1, world.days * US_PER_D - 1
    )

    forced = np.full(m, -1, dtype=np.int64)
    one_time_first = np.searchsorted(cust, np.arange(n))
    pick = one_time_first + (rng.random(n) * count).astype(np.int64)
    ot = pp.life == L_ONE_TIME
    forced[pick[ot]] = 2

    # recent activity: people still around visit in the last two days, some left a cart this
    # week (keen buyers more often), and half of those came back in the last day to look at
    # the same category again
    recent = pp.alive & (rng.random(n) < 0.14)
    p_week = np.where(pp.collector, 0.35, 0.02 + 0.4 * pp.p_buy)
    cart_week = pp.alive & (pp.life != L_BROWSER) & (rng.random(n) < p_week)
    r_cust = np.flatnonzero(recent).astype(np.int64)
    c_cust = np.flatnonzero(cart_week).astype(np.int64)
    c_focus = _affine(rng, pp, c_cust)
    back = rng.random(len(c_cust)) < 0.5
    b_cust = c_cust[back]
    longest = world.days * US_PER_D - US_PER_H
    r_t = world.end_us - rng.integers(600 * US_PER_S, min(47 * US_PER_H, longest), len(r_cust))
    c_t = world.end_us - rng.integers(25 * US_PER_H, min(156 * US_PER_H, longest), len(c_cust))
    b_t = world.end_us - rng.integers(600 * US_PER_S, 24 * US_PER_H, len(b_cust))
    cust = np.concatenate([cust, r_cust, c_cust, b_cust])
    t0 = np.concatenate([t0, r_t, c_t, b_t])
    none = np.full(m + len(r_cust), -1, np.int64)
    forced = np.concatenate(
        [forced, none[: len(r_cust)], np.full(len(c_cust), 1, np.int64), none[: len(b_cust)]]
    )
    forced_focus = np.concatenate([none, c_focus, c_focus[back]])
    order = np.lexsort((t0, cust))
    cust, t0, forced, forced_focus = cust[order], t0[order], forced[order], forced_focus[order]
    m = len(cust)
    count = np.bincount(cust, minlength=n).astype(np.int64)
    first = np.concatenate([[0], np.cumsum(count)[:-1]]).astype(np.int64)
    rank = np.arange(m, dtype=np.int64) - first[cust]

    device = np.where(rng.random(m) < 0.8, pp.device[cust], _categorical(rng, _DEVICE_P, m))
    os_cdf = np.round(np.cumsum(np.array(_OS_P), axis=1), 9)
    os = (os_cdf[device] <= pp.os_u[cust][:, None]).sum(axis=1).astype(np.int64)
    source = np.where(
        rng.random(m) < 0.5,
        pp.source[cust],
        _categorical(rng, np.array([s[4] for s in _SOURCES]), m),
    )
    source = np.where((source == _EMAIL_SOURCE) & ~pp.identifies[cust], 0, source)
    focus = np.where(forced_focus >= 0, forced_focus, _affine(rng, pp, cust))

    u = rng.random(m)
    p_buy = pp.p_buy[cust] * np.where(pp.collector[cust], 1.0, world.cat_buy[focus])
    p_cart = pp.p_cart[cust] * _CART_FACTOR[focus]
    intent = np.where(u < p_buy, 2, np.where(u < p_buy + p_cart, 1, 0))
    ot_s = pp.life[cust] == L_ONE_TIME
    intent = np.where(ot_s & (intent == 2), 0, intent)
    intent = np.where(forced >= 0, forced, intent).astype(np.int64)
    return _Sessions(cust, t0, rank, first, count, device, os, source, focus, intent)


def _affine(rng: np.random.Generator, pp: _People, cust: IntA) -> IntA:
    """A category per row, drawn from the row's customer's category affinity."""
    idx: IntA = (pp.affinity_cdf[cust] < rng.random(len(cust))[:, None]).sum(axis=1)
    return np.minimum(idx, len(CATEGORIES) - 1).astype(np.int64)


def _session_events(
    world: _World, rng: np.random.Generator, pp: _People, ss: _Sessions
) -> dict[str, npt.NDArray[Any]]:
    """Expand sessions into funnel events: counts per kind, then ordered and timed."""
    m = len(ss.cust)
    shopping = ss.intent > 0
    k = np.zeros((m, _N_SESSION_KINDS), dtype=np.int64)
    k[:, K_LANDING] = 1
    k[:, K_PAGE] = rng.poisson(0.8, m)
    k[:, K_SEARCH] = rng.poisson(0.5, m)
    k[:, K_ADD] = np.where(shopping, 1 + rng.poisson(0.5, m), 0)
    k[:, K_VIEW] = np.maximum(1 + rng.poisson(4.0, m), k[:, K_ADD])
    k[:, K_WISH] = rng.random(m) < 0.08
    k[:, K_REMOVE] = (k[:, K_ADD] >= 2) & (rng.random(m) < 0.2)
    k[:, K_CHECKOUT] = (ss.intent == 2) | ((ss.intent == 1) & (rng.random(m) < 0.3))
    one_time = pp.life[ss.cust] == L_ONE_TIME
    k[:, K_ORDER] = (ss.intent == 2) & ((rng.random(m) < 0.92) | one_time)

    total = k.sum(axis=1)
    sess = np.repeat(np.arange(m, dtype=np.int64), total)
    kind = np.repeat(np.tile(np.arange(_N_SESSION_KINDS, dtype=np.int64), m), k.ravel())
    e = len(sess)
    key = (sess * 8 + _STAGE[kind]) * (1 << 20) + rng.integers(0, 1 << 20, e)
    order = np.argsort(key, kind="stable")
    sess, kind = sess[order], kind[order]
    start = np.concatenate([[0], np.cumsum(total)[:-1]]).astype(np.int64)

    gaps = (rng.exponential(35.0, e) * US_PER_S).astype(np.int64) + US_PER_S
    gaps[start] = 0
    csum = np.cumsum(gaps)
    offset = csum - np.repeat(csum[start], total)
    ts = ss.t0[sess] + offset

    product = np.full(e, -1, dtype=np.int64)
    # views: the session's focus category most of the time, otherwise the customer's taste
    vi = np.flatnonzero(kind == K_VIEW)
    vs = sess[vi]
    cust = ss.cust[vs]
    cat = np.where(rng.random(len(vi)) < 0.7, ss.focus[vs], _affine(rng, pp, cust))
    product[vi] = _within(world.product_cdf, cat, rng.random(len(vi)))
    v_first = np.searchsorted(vs, np.arange(m))
    n_view = k[:, K_VIEW]
    # adds take the session's first viewed products, wishlist and removals reuse them
    ai = np.flatnonzero(kind == K_ADD)
    a_s = sess[ai]
    a_rank = np.arange(len(ai)) - np.searchsorted(a_s, a_s)
    product[ai] = product[vi[v_first[a_s] + a_rank]]
    wi = np.flatnonzero(kind == K_WISH)
    w_s = sess[wi]
    product[wi] = product[vi[v_first[w_s] + (rng.random(len(wi)) * n_view[w_s]).astype(np.int64)]]
    ri = np.flatnonzero(kind == K_REMOVE)
    a_first = np.searchsorted(a_s, np.arange(m))
    product[ri] = product[ai[a_first[sess[ri]]]]

    qty = np.full(e, -1, dtype=np.int64)
    q = 1 + (rng.random(len(ai)) < 0.12) + (rng.random(len(ai)) < 0.03)
    cheap = world.product_price[product[ai]] < 100
    qty[ai] = np.where(cheap, q, 1)
    qty[ri] = qty[ai[a_first[sess[ri]]]]

    # cart value: everything added, less the removed first item
    line = world.product_price[product[ai]] * qty[ai]
    removed = np.zeros(len(ai), dtype=bool)
    removed[a_first[sess[ri]]] = True
    subtotal = np.bincount(a_s, weights=np.where(removed, 0.0, line), minlength=m)
    by_price = np.lexsort((np.where(removed, -1.0, line), a_s))
    last_per_s = np.searchsorted(a_s[by_price], np.arange(m), side="right") - 1
    main_cat = np.full(m, -1, dtype=np.int64)
    has_add = k[:, K_ADD] > 0
    main_cat[has_add] = world.product_cat[product[ai[by_price[last_per_s[has_add]]]]]

    discount_only = pp.discount_only[ss.cust]
    coupon_p = np.where(discount_only, 0.95, 0.08)
    use = rng.random(m) < coupon_p
    coupon = np.where(use, rng.integers(0, len(_COUPONS), m), -1)
    pct = np.array([c[1] for c in _COUPONS])[np.maximum(coupon, 0)]
    discount = np.where(use, np.round(subtotal * pct, 2), 0.0)

    oi = np.flatnonzero((kind == K_ORDER) | (kind == K_CHECKOUT))
    o_s = sess[oi]
    is_order = kind[oi] == K_ORDER
    amount = np.full(e, np.nan)
    amount[oi] = np.round(np.where(is_order, subtotal[o_s] - discount[o_s], subtotal[o_s]), 2)
    disc = np.full(e, np.nan)
    disc[oi[is_order]] = discount[o_s[is_order]]
    coup = np.full(e, -1, dtype=np.int64)
    coup[oi[is_order]] = coupon[o_s[is_order]]
    ocat = np.full(e, -1, dtype=np.int64)
    ocat[oi] = main_cat[o_s]

    si = np.flatnonzero(kind == K_SEARCH)
    query = np.full(e, -1, dtype=np.int64)
    results = np.full(e, -1, dtype=np.int64)
    s_cat = np.where(
        rng.random(len(si)) < 0.8, ss.focus[sess[si]], rng.integers(0, len(CATEGORIES), len(si))
    )
    n_q = len(_QUERIES[0])
    q_idx = s_cat * n_q + rng.integers(0, n_q, len(si))
    zero = rng.random(len(si)) < ZERO_RESULT_RATE
    q_idx = np.where(zero, len(world.queries) - len(_ZERO_RESULT_QUERIES), q_idx)
    q_idx = q_idx + np.where(zero, rng.integers(0, len(_ZERO_RESULT_QUERIES), len(si)), 0)
    query[si] = q_idx
    results[si] = np.where(zero, 0, 1 + rng.poisson(world.query_base[q_idx]))

    page = np.full(e, -1, dtype=np.int64)
    li = np.flatnonzero(kind == K_LANDING)
    n_static = len(_STATIC_PAGES)
    land_u = rng.random(len(li))
    page[li] = np.where(land_u < 0.5, 0, np.where(land_u < 0.85, n_static + ss.focus[sess[li]], 1))
    pi = np.flatnonzero(kind == K_PAGE)
    page_u = rng.random(len(pi))
    page[pi] = np.where(
        page_u < 0.5,
        n_static + ss.focus[sess[pi]],
        rng.integers(0, n_static + len(CATEGORIES), len(pi)),
    )
    return {
        "cust": ss.cust[sess],
        "ts": ts,
        "kind": kind,
        "sess": sess,
        "product": product,
        "qty": qty,
        "amount": amount,
        "discount": disc,
        "coupon": coup,
        "ocat": ocat,
        "query": query,
        "results": results,
        "page": page,
    }


@dataclass
class _Identities:
    """Identify calls: first (when the visitor logs in / signs up) and maybe a later update."""

    events: dict[str, npt.NDArray[Any]]
    first_name: IntA
    last_name: IntA
    domain: IntA
    created_us: IntA
    birthday_days: IntA  # days since epoch, -1 = not given
    plan: IntA  # (n, 2): first and second identify
    vip: BoolA
    consent: BoolA
    second_us: IntA  # time of the second identify, end_us+ if none


def _identifies(
    world: _World, rng: np.random.Generator, pp: _People, ss: _Sessions
) -> tuple[IntA, _Identities]:
    """Who identifies in which session: never after the first buy, loyal ones straight away."""
    n = len(pp.gid)
    never = np.iinfo(np.int64).max
    buys = np.flatnonzero(ss.intent == 2)
    first_buy = np.full(n, never, dtype=np.int64)
    ub, ui = np.unique(ss.cust[buys], return_index=True)
    first_buy[ub] = ss.rank[buys[ui]]
    k_id = rng.geometric(0.45, n).astype(np.int64) - 1
    k_id = np.where(pp.life == L_LOYAL, 0, k_id)
    k_id = np.minimum(np.minimum(k_id, first_buy), ss.count - 1)
    has_id = pp.identifies
    id_ts = np.full(n, never, dtype=np.int64)
    id_ts[has_id] = ss.t0[ss.first[has_id] + k_id[has_id]] + US_PER_S // 2

    left = ss.count - 1 - k_id
    has_2 = has_id & (left >= 1) & (rng.random(n) < 0.3)
    k2 = k_id + 1 + (rng.random(n) * np.maximum(left, 1)).astype(np.int64)
    second = np.full(n, never, dtype=np.int64)
    second[has_2] = ss.t0[ss.first[has_2] + k2[has_2]] + US_PER_S // 2

    loyal = pp.life == L_LOYAL
    before = loyal | ((pp.life == L_REGULAR) & (rng.random(n) < 0.5))
    created = np.where(
        before,
        world.start_us - rng.integers(30 * US_PER_D, 1500 * US_PER_D, n),
        np.minimum(id_ts, world.end_us),
    )
    birthday = np.where(
        rng.random(n) < 0.6,
        rng.integers(_days_since_epoch(1950), _days_since_epoch(2007), n),
        -1,
    )
    plan1 = _categorical(rng, np.array([0.72, 0.2, 0.08]), n)
    plan1 = np.where(loyal & (rng.random(n) < 0.5), 2, plan1)
    plan2 = np.maximum(plan1, _categorical(rng, np.array([0.4, 0.35, 0.25]), n))
    vip1 = rng.random(n) < np.where(loyal, 0.25, 0.02)
    vip2 = vip1 | (rng.random(n) < np.where(loyal, 0.4, 0.05))
    consent1 = rng.random(n) < 0.65
    consent2 = np.where(rng.random(n) < 0.15, ~consent1, consent1)

    c1 = np.flatnonzero(has_id)
    c2 = np.flatnonzero(has_2)
    cust = np.concatenate([c1, c2]).astype(np.int64)
    ts = np.concatenate([id_ts[c1], second[c2]])
    which = np.concatenate([np.zeros(len(c1), np.int64), np.ones(len(c2), np.int64)])
    # the identify belongs to the session it happens in (for device, location, source)
    sess = ss.first[cust] + np.where(which == 0, k_id[cust], k2[cust])
    events: dict[str, npt.NDArray[Any]] = {
        "cust": cust,
        "ts": ts,
        "kind": np.full(len(cust), K_IDENTIFY, dtype=np.int64),
        "sess": sess,
        "ident": which,
    }
    return id_ts, _Identities(
        events=events,
        first_name=rng.integers(0, len(_FIRST_NAMES), n),
        last_name=rng.integers(0, len(_LAST_NAMES), n),
        domain=rng.integers(0, len(_EMAIL_DOMAINS), n),
        created_us=created.astype(np.int64),
        birthday_days=birthday.astype(np.int64),
        plan=np.stack([plan1, plan2], axis=1),
        vip=np.stack([vip1, vip2], axis=1),
        consent=np.stack([consent1, consent2], axis=1),
        second_us=second,
    )


def _emails(
    world: _World, rng: np.random.Generator, pp: _People, ident: _Identities, id_ts: IntA
) -> dict[str, npt.NDArray[Any]]:
    """Campaign opens and clicks by identified customers who consented at send time."""
    n = len(pp.gid)
    send = world.campaign_send_us
    known = id_ts[:, None] < send[None, :]
    after_2 = ident.second_us[:, None] <= send[None, :]
    consent = np.where(after_2, ident.consent[:, 1:2], ident.consent[:, 0:1])
    stop_us = world.start_us + (pp.stop_d * US_PER_D).astype(np.int64)
    lively = send[None, :] <= (stop_us + 30 * US_PER_D)[:, None]
    p = pp.engagement[:, None] * np.where(lively, 1.0, 0.15)
    p = p * np.where(world.campaign_promo, 1.2, 1.0)[None, :]
    opened = known & consent & (rng.random((n, len(send))) < p)
    cust, camp = np.nonzero(opened)
    cust = cust.astype(np.int64)
    camp = camp.astype(np.int64)
    open_ts = send[camp] + (rng.exponential(6.0, len(camp)) * US_PER_H).astype(np.int64) + US_PER_S
    clicked = rng.random(len(camp)) < 0.12 + 0.5 * pp.engagement[cust]
    click_ts = open_ts[clicked] + (rng.exponential(90.0, int(clicked.sum())) * US_PER_S).astype(
        np.int64
    )
    return {
        "cust": np.concatenate([cust, cust[clicked]]),
        "ts": np.concatenate([open_ts, click_ts + US_PER_S]),
        "kind": np.concatenate(
            [np.full(len(camp), K_OPEN, np.int64), np.full(int(clicked.sum()), K_CLICK, np.int64)]
        ),
        "campaign": np.concatenate([camp, camp[clicked]]),
    }


_FILL: Final[dict[str, Any]] = {
    "sess": -1,
    "product": -1,
    "qty": -1,
    "amount": np.nan,
    "discount": np.nan,
    "coupon": -1,
    "ocat": -1,
    "query": -1,
    "results": -1,
    "page": -1,
    "ident": -1,
    "campaign": -1,
}


def _concat(parts: Sequence[dict[str, npt.NDArray[Any]]]) -> dict[str, npt.NDArray[Any]]:
    """Stack event sources column by column, filling what a source does not have."""
    keys = ["cust", "ts", "kind", *_FILL]
    out: dict[str, npt.NDArray[Any]] = {}
    for key in keys:
        arrays = []
        for part in parts:
            size = len(part["cust"])
            if key in part:
                arrays.append(part[key])
            else:
                fill = _FILL[key]
                arrays.append(np.full(size, fill, dtype=np.float64 if fill is np.nan else np.int64))
        out[key] = np.concatenate(arrays)
    return out


def _to_table(
    world: _World,
    rng: np.random.Generator,
    pp: _People,
    ss: _Sessions,
    ident: _Identities,
    id_ts: IntA,
    c: dict[str, npt.NDArray[Any]],
) -> pa.Table:
    """Turn the per-event index arrays into the flat, typed Arrow table."""
    e = len(c["ts"])
    cust, kind, sess, ts = c["cust"], c["kind"], c["sess"], c["ts"]
    counts = np.bincount(cust, minlength=len(pp.gid))
    firsts = np.concatenate([[0], np.cumsum(counts)[:-1]])
    seq = np.arange(e, dtype=np.int64) - firsts[cust]
    if e and int(seq.max()) >= 10**6:
        raise ValueError("a customer has more than 999,999 events; message ids would collide")
    gid_digits = _digits(pp.gid, 8)[cust]
    seed_tag = f"m{world.seed}-".encode()
    message_id = _fixed_strings([seed_tag, gid_digits, b"-", _small_digits(seq, 6)])

    email = kind >= K_OPEN
    user = email | (ts >= id_ts[cust])
    user_id = _fixed_strings([b"u", gid_digits], valid=user)
    anon_hex = _hex(rng.integers(0, 256, (len(pp.gid), 16), dtype=np.uint8))
    anonymous_id = _fixed_strings([anon_hex[cust]], valid=~email)

    s = np.where(sess >= 0, sess, 0)
    product, page, campaign = c["product"], c["page"], c["campaign"]
    is_product = product >= 0
    p = np.maximum(product, 0)
    is_order = (kind == K_ORDER) | (kind == K_CHECKOUT)
    category = np.where(is_product, world.product_cat[p], c["ocat"])
    order_id = _fixed_strings(
        [b"o", gid_digits, b"-", _small_digits(ss.rank[s], 5)], valid=is_order
    )
    # page name for pages, product name for product events (one dictionary holds both)
    n_pages = len(world.page_paths)
    name = np.where(page >= 0, page, np.where(is_product, n_pages + product, -1))
    src = np.where((sess >= 0) & ~email, ss.source[s], -1)
    ctx = src >= 0

    is_id = c["ident"] >= 0
    which = np.maximum(c["ident"], 0)
    id_cust = np.where(is_id, cust, -1)
    local = _join(
        [
            pc.utf8_lower(_FIRST_NAME_VALUES.take(ident.first_name)),
            pc.utf8_lower(_LAST_NAME_VALUES.take(ident.last_name)),
            pc.cast(pa.array(pp.gid), pa.string()),
        ],
        ".",
    )
    addresses = _join([local, _DOMAIN_VALUES.take(ident.domain)], "@")
    cols: dict[str, Arr] = {
        "message_id": message_id,
        "type": _take(_TYPE_VALUES, _TYPE_OF_KIND[kind]),
        "event": _take(_EVENT_VALUES, _EVENT_INDEX[kind]),
        "user_id": user_id,
        "anonymous_id": anonymous_id,
        "timestamp": pa.array(ts, pa.timestamp("us")),
        "properties.name": _take(world.names, name),
        "properties.path": _take(world.page_paths, page),
        "properties.url": _take(world.page_urls, page),
        "properties.referrer": _take(
            _REFERRER_VALUES, np.where((kind == K_LANDING) & ctx, _REFERRER_INDEX[src], -1)
        ),
        "properties.product_id": _take(world.product_ids, np.where(is_product, product, -1)),
        "properties.category": _take(_CATEGORY_VALUES, category),
        "properties.brand": _take(world.brands, np.where(is_product, world.product_brand[p], -1)),
        "properties.price": _floats(np.where(is_product, world.product_price[p], np.nan)),
        "properties.quantity": _ints(c["qty"]),
        "properties.currency": _take(_CURRENCY_VALUES, np.where(is_product | is_order, 0, -1)),
        "properties.query": _take(world.queries, c["query"]),
        "properties.results": _ints(c["results"]),
        "properties.order_id": order_id,
        "properties.revenue": _floats(c["amount"]),
        "properties.discount": _floats(c["discount"]),
        "properties.coupon": _take(_COUPON_VALUES, c["coupon"]),
        "properties.campaign_id": _take(world.campaign_ids, campaign),
        "properties.subject": _take(world.campaign_subjects, campaign),
        "context.device.type": _take(_DEVICE_VALUES, np.where(ctx, ss.device[s], -1)),
        "context.os.name": _take(_OS_VALUES, np.where(ctx, ss.os[s], -1)),
        "context.location.country": _take(world.countries, np.where(ctx, pp.country[cust], -1)),
        "context.location.city": _take(world.cities, np.where(ctx, pp.city[cust], -1)),
        "context.campaign.source": _take(_SOURCE_VALUES, src),
        "context.campaign.medium": _take(_MEDIUM_VALUES, src),
        "context.campaign.name": _take(_CAMPAIGN_VALUES, np.where(ctx, _CAMPAIGN_INDEX[src], -1)),
        "traits.email": _take(addresses, id_cust),
        "traits.first_name": _take(_FIRST_NAME_VALUES, np.where(is_id, ident.first_name[cust], -1)),
        "traits.last_name": _take(_LAST_NAME_VALUES, np.where(is_id, ident.last_name[cust], -1)),
        "traits.country": _take(world.countries, np.where(is_id, pp.country[cust], -1)),
        "traits.city": _take(world.cities, np.where(is_id, pp.city[cust], -1)),
        "traits.created_at": _take(_iso(ident.created_us, "s"), id_cust),
        "traits.birthday": _take(
            _iso(ident.birthday_days * US_PER_D, "D"),
            np.where(ident.birthday_days[cust] >= 0, id_cust, -1),
        ),
        "traits.plan": _take(_PLAN_VALUES, np.where(is_id, ident.plan[cust, which], -1)),
        "traits.vip": _bools(ident.vip[cust, which], is_id),
        "traits.consent_email": _bools(ident.consent[cust, which], is_id),
    }
    return pa.Table.from_arrays([cols[f.name] for f in _WRITE_SCHEMA], schema=_WRITE_SCHEMA)


# ---------------------------------------------------------------------------
# vectorised helpers


def _categorical(rng: np.random.Generator, p: npt.ArrayLike, n: int) -> IntA:
    """``n`` draws of an index with probabilities ``p`` (faster than ``choice`` for big n)."""
    cdf = np.cumsum(np.asarray(p, dtype=np.float64))
    cdf /= cdf[-1]
    return np.minimum(np.searchsorted(cdf, rng.random(n), side="right"), len(cdf) - 1).astype(
        np.int64
    )


def _within(cdf: FloatA, group: IntA, u: FloatA) -> IntA:
    """Draw an item of ``group`` from a stacked CDF (``group + within-group CDF``)."""
    idx = np.searchsorted(cdf, group + u, side="right")
    return np.minimum(idx, len(cdf) - 1).astype(np.int64)


def _diurnal(rng: np.random.Generator, n: int) -> FloatA:
    """Hours of day with an evening peak and quiet nights."""
    w = np.array(
        [2, 1, 1, 1, 1, 2, 3, 5, 6, 7, 7, 7, 8, 8, 7, 7, 7, 8, 9, 10, 11, 10, 7, 4], dtype=float
    )
    return _categorical(rng, w, n) + rng.random(n)


def _digits(values: IntA, width: int) -> U8A:
    """Zero-padded decimal digits of ``values`` as an (n, width) ASCII matrix."""
    pows = 10 ** np.arange(width - 1, -1, -1, dtype=np.int64)
    return ((values[:, None] // pows) % 10 + 48).astype(np.uint8)


_TRIPLETS: Final = np.array([[ord(c) for c in f"{i:03d}"] for i in range(1000)], dtype=np.uint8)


def _small_digits(values: IntA, width: int) -> U8A:
    """Like ``_digits`` for values below 10**6, by table look-up (no per-digit division)."""
    hi = _TRIPLETS[values // 1000]
    lo = _TRIPLETS[values % 1000]
    return np.concatenate([hi, lo], axis=1)[:, 6 - width :]


def _hex(raw: U8A) -> U8A:
    """UUID-shaped hex text (8-4-4-4-12) of 16 random bytes per row."""
    table = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)
    h = np.stack([table[raw >> 4], table[raw & 15]], axis=2).reshape(len(raw), 32)
    dash = np.full((len(raw), 1), ord("-"), dtype=np.uint8)
    return np.concatenate(
        [h[:, :8], dash, h[:, 8:12], dash, h[:, 12:16], dash, h[:, 16:20], dash, h[:, 20:]],
        axis=1,
    )


def _fixed_strings(parts: Sequence[U8A | bytes], valid: BoolA | None = None) -> Arr:
    """Build a string column from fixed-width ASCII pieces without Python string objects."""
    n = next(len(p) for p in parts if not isinstance(p, bytes))
    mats = [
        np.broadcast_to(np.frombuffer(p, dtype=np.uint8), (n, len(p)))
        if isinstance(p, bytes)
        else p
        for p in parts
    ]
    data = np.ascontiguousarray(np.concatenate(mats, axis=1))
    width = data.shape[1]
    offsets = np.arange(n + 1, dtype=np.int32) * width
    bitmap = None
    nulls = 0
    if valid is not None:
        bitmap = _buffer(np.packbits(valid, bitorder="little"))
        nulls = int(n - np.count_nonzero(valid))
    return pa.StringArray.from_buffers(n, _buffer(offsets), _buffer(data), bitmap, nulls)


def _buffer(a: npt.NDArray[Any]) -> pa.Buffer:
    """Zero-copy Arrow view of a NumPy array (the stubs only know ``__buffer__`` from 3.12)."""
    return pa.py_buffer(a)  # type: ignore[arg-type]


def _join(parts: Sequence[Arr], sep: str) -> Arr:
    """Element-wise string concatenation (nulls propagate)."""
    out: Arr = pc.call_function("binary_join_element_wise", [*parts, pa.scalar(sep)])
    return out


def _take(values: Arr, idx: IntA) -> Arr:
    """``values[idx]`` with -1 meaning null, as a dictionary column (no string copies)."""
    return pa.DictionaryArray.from_arrays(pa.array(idx, pa.int32(), mask=idx < 0), values)


def _floats(v: FloatA) -> Arr:
    return pa.array(v, pa.float64(), mask=np.isnan(v))


def _ints(v: IntA) -> Arr:
    return pa.array(v, pa.int64(), mask=v < 0)


def _bools(v: BoolA, valid: BoolA) -> Arr:
    return pa.array(v, pa.bool_(), mask=~valid)


def _iso(us: IntA, unit: str) -> Arr:
    """ISO 8601 text of epoch microseconds: ``...Z`` instants, or plain dates for unit ``D``."""
    text = np.datetime_as_string(us.astype("datetime64[us]"), unit=unit)  # type: ignore[call-overload]
    arr = pa.array(text, pa.string())
    if unit == "D":
        return arr
    return _join([arr, pa.array(np.full(len(us), "Z"), pa.string())], "")


def _days_since_epoch(year: int) -> int:
    return (datetime(year, 1, 1) - EPOCH).days


# ---------------------------------------------------------------------------
# JSON Lines


def _batches(source: ShopSummary | pa.Table | Path | Sequence[Path]) -> Iterator[pa.RecordBatch]:
    if isinstance(source, pa.Table):
        yield from source.to_batches(max_chunksize=10_000)
        return
    if isinstance(source, ShopSummary):
        paths: Sequence[Path] = source.paths
    elif isinstance(source, Path):
        paths = [source]
    else:
        paths = source
    for p in paths:
        yield from pq.ParquetFile(p).iter_batches(batch_size=10_000)


def _segment_message(row: dict[str, Any]) -> dict[str, Any]:
    """One flat row as a Segment-spec message (nested objects, camelCase ids)."""
    msg: dict[str, Any] = {"messageId": row["message_id"], "type": row["type"]}
    if row.get("event") is not None:
        msg["event"] = row["event"]
    if row.get("user_id") is not None:
        msg["userId"] = row["user_id"]
    if row.get("anonymous_id") is not None:
        msg["anonymousId"] = row["anonymous_id"]
    ts: datetime = row["timestamp"]
    msg["timestamp"] = ts.isoformat(timespec="microseconds") + "Z"
    if row["type"] == "page" and row.get("properties.name") is not None:
        msg["name"] = row["properties.name"]
    for key, value in row.items():
        if value is None or "." not in key:
            continue
        node = msg
        *parents, leaf = key.split(".")
        for p in parents:
            node = node.setdefault(p, {})
        node[leaf] = value
    return msg
