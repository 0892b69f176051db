WITH ev0 AS (
  SELECT
    "profile_id",
    SUM("properties.revenue") FILTER(WHERE
      "timestamp" > CAST('2026-05-05 12:00:00.000000' AS TIMESTAMP)) AS "f_062623729638",
    MAX("timestamp") AS "f_0754d3942079",
    COUNT_IF("timestamp" > CAST('2026-10-02 12:00:00.000000' AS TIMESTAMP)) AS "f_51af634a388b",
    COUNT(*) AS "f_99371953c3f2"
  FROM events
  WHERE
    "timestamp" <= CAST('2026-11-01 12:00:00.000000' AS TIMESTAMP)
    AND "event" = 'Order Completed'
  GROUP BY
    "profile_id"
), ev1 AS (
  SELECT
    "profile_id",
    MAX("timestamp") FILTER(WHERE
      "timestamp" > CAST('2026-10-25 12:00:00.000000' AS TIMESTAMP)) AS "f_1e9bda9ea718"
  FROM events
  WHERE
    "timestamp" <= CAST('2026-11-01 12:00:00.000000' AS TIMESTAMP)
    AND "timestamp" >= CAST('2026-10-25 12:00:00.000000' AS TIMESTAMP)
    AND "event" = 'Product Added'
  GROUP BY
    "profile_id"
), ev2 AS (
  SELECT
    "profile_id",
    COUNT_IF(
      COALESCE(
        "properties.category",
        CASE
          WHEN JSON_TYPE("extra", '/properties/category') = 'VARCHAR'
          THEN "extra" ->> '/properties/category'
        END
      ) = 'Luxury Watches'
      AND "timestamp" > CAST('2026-10-30 12:00:00.000000' AS TIMESTAMP)
    ) AS "f_36fb34f654d5"
  FROM events
  WHERE
    "timestamp" <= CAST('2026-11-01 12:00:00.000000' AS TIMESTAMP)
    AND "timestamp" >= CAST('2026-10-30 12:00:00.000000' AS TIMESTAMP)
    AND "event" = 'Product Viewed'
  GROUP BY
    "profile_id"
), tr_b8c3f748baa6 AS (
  SELECT
    "profile_id",
    "kind" AS "tk_b8c3f748baa6",
    "num" AS "tn_b8c3f748baa6",
    "str" AS "ts_b8c3f748baa6",
    "bool" AS "tb_b8c3f748baa6"
  FROM traits
  WHERE
    "timestamp" <= CAST('2026-11-01 12:00:00.000000' AS TIMESTAMP)
    AND (
      "valid_to" IS NULL
      OR "valid_to" > CAST('2026-11-01 12:00:00.000000' AS TIMESTAMP)
    )
    AND "key" = 'country'
), sq_4f540bd3a66a AS (
  SELECT
    "c"."profile_id",
    BOOL_OR("c"."ts" <= "c"."start" + INTERVAL '3600000000' MICROSECONDS) AS "matched"
  FROM (
    SELECT
      "e"."profile_id",
      "e"."ts",
      "c"."ts" AS start
    FROM (
      SELECT
        "profile_id",
        "timestamp" AS ts
      FROM events
      WHERE
        "timestamp" <= CAST('2026-11-01 12:00:00.000000' AS TIMESTAMP)
        AND "event" = 'Order Completed'
        AND "timestamp" > CAST('2026-10-25 12:00:00.000000' AS TIMESTAMP)
    ) AS e
    ASOF JOIN (
      SELECT
        "profile_id",
        "timestamp" AS ts
      FROM events
      WHERE
        "timestamp" <= CAST('2026-11-01 12:00:00.000000' AS TIMESTAMP)
        AND "event" = 'Product Viewed'
        AND "timestamp" > CAST('2026-10-25 12:00:00.000000' AS TIMESTAMP)
    ) AS c
      ON "e"."profile_id" = "c"."profile_id" AND "e"."ts" > "c"."ts"
  ) AS c
  GROUP BY
    "c"."profile_id"
)
SELECT
  "p"."profile_id",
  COALESCE("sq_4f540bd3a66a"."matched", FALSE) AS s0,
  COALESCE("ev0"."f_99371953c3f2", 0) >= 1
  AND NOT COALESCE("ev0"."f_51af634a388b", 0) >= 1 AS s1,
  COALESCE("ev0"."f_062623729638", 0) > 5000
  AND COALESCE("ev2"."f_36fb34f654d5", 0) >= 1
  AND COALESCE(
    "ev1"."f_1e9bda9ea718" <= CAST('2026-10-31 12:00:00.000000' AS TIMESTAMP)
    AND (
      "ev0"."f_0754d3942079" IS NULL
      OR "ev0"."f_0754d3942079" <= "ev1"."f_1e9bda9ea718"
    ),
    FALSE
  ) AS s2,
  COALESCE("tr_b8c3f748baa6"."ts_b8c3f748baa6" IN ('PL', 'it''s'), FALSE) AS s3,
  COALESCE("ev0"."f_51af634a388b", 0) >= 1 AS s4
FROM profiles AS p
LEFT JOIN ev0
  ON "p"."profile_id" = "ev0"."profile_id"
LEFT JOIN ev1
  ON "p"."profile_id" = "ev1"."profile_id"
LEFT JOIN ev2
  ON "p"."profile_id" = "ev2"."profile_id"
LEFT JOIN tr_b8c3f748baa6
  ON "p"."profile_id" = "tr_b8c3f748baa6"."profile_id"
LEFT JOIN sq_4f540bd3a66a
  ON "p"."profile_id" = "sq_4f540bd3a66a"."profile_id"
