WITH agg AS (
  SELECT
    "profile_id",
    SUM("properties.revenue") FILTER(WHERE
      "event" IN ('Order Completed')
      AND "timestamp" > CAST('2026-05-05 12:00:00.000000' AS TIMESTAMP)) AS "f_062623729638",
    MAX("timestamp") FILTER(WHERE
      "event" IN ('Order Completed')) AS "f_0754d3942079",
    MAX("timestamp") FILTER(WHERE
      "event" IN ('Product Added')
      AND "timestamp" > CAST('2026-10-25 12:00:00.000000' AS TIMESTAMP)) AS "f_1e9bda9ea718",
    COUNT(*) FILTER(WHERE
      (
        "event" IN ('Product Viewed')
        AND COALESCE(
          COALESCE(
            "properties.category",
            CASE
              WHEN JSON_TYPE("extra", '/properties/category') = 'VARCHAR'
              THEN "extra" ->> '/properties/category'
            END
          ) = 'Luxury Watches',
          FALSE
        )
      )
      AND "timestamp" > CAST('2026-10-30 12:00:00.000000' AS TIMESTAMP)) AS "f_36fb34f654d5",
    COUNT(*) FILTER(WHERE
      "event" IN ('Order Completed')
      AND "timestamp" > CAST('2026-10-02 12:00:00.000000' AS TIMESTAMP)) AS "f_51af634a388b",
    COUNT(*) FILTER(WHERE
      "event" IN ('Order Completed')) AS "f_99371953c3f2"
  FROM events
  WHERE
    "timestamp" <= CAST('2026-11-01 12:00:00.000000' AS TIMESTAMP)
    AND "event" IN ('Order Completed', 'Product Added', 'Product Viewed')
  GROUP BY
    "profile_id"
), tr AS (
  SELECT
    "profile_id",
    MAX("kind") FILTER(WHERE
      "key" = 'country') AS "tk_b8c3f748baa6",
    MAX("num") FILTER(WHERE
      "key" = 'country') AS "tn_b8c3f748baa6",
    MAX("str") FILTER(WHERE
      "key" = 'country') AS "ts_b8c3f748baa6",
    MAX("bool") FILTER(WHERE
      "key" = 'country') AS "tb_b8c3f748baa6"
  FROM (
    SELECT
      profile_id,
      key,
      kind,
      num,
      str,
      bool,
      ROW_NUMBER() OVER (PARTITION BY "profile_id", "key" ORDER BY "timestamp" DESC, "message_id" DESC) AS rn
    FROM traits
    WHERE
      "timestamp" <= CAST('2026-11-01 12:00:00.000000' AS TIMESTAMP)
      AND "key" IN ('country')
  ) AS r
  WHERE
    "rn" = 1
  GROUP BY
    "profile_id"
), sq_4f540bd3a66a AS (
  SELECT
    "profile_id",
    BOOL_OR("ok") AS "matched"
  FROM (
    SELECT
      "e0"."profile_id",
      "e0"."ts" AS t0,
      "e1"."ts" <= "e0"."ts" + INTERVAL '3600000000' MICROSECONDS AS ok
    FROM (
      SELECT
        "profile_id",
        "timestamp" AS ts
      FROM events
      WHERE
        "timestamp" <= CAST('2026-11-01 12:00:00.000000' AS TIMESTAMP)
        AND "event" IN ('Product Viewed')
        AND "timestamp" > CAST('2026-10-25 12:00:00.000000' AS TIMESTAMP)
    ) AS e0
    ASOF JOIN (
      SELECT
        "profile_id",
        "timestamp" AS ts
      FROM events
      WHERE
        "timestamp" <= CAST('2026-11-01 12:00:00.000000' AS TIMESTAMP)
        AND "event" IN ('Order Completed')
        AND "timestamp" > CAST('2026-10-25 12:00:00.000000' AS TIMESTAMP)
    ) AS e1
      ON "e0"."profile_id" = "e1"."profile_id" AND "e0"."ts" < "e1"."ts"
  ) AS c
  GROUP BY
    "profile_id"
)
SELECT
  "p"."profile_id",
  COALESCE("sq_4f540bd3a66a"."matched", FALSE) AS s0,
  COALESCE(COALESCE("agg"."f_99371953c3f2", 0) >= 1.0, FALSE)
  AND NOT COALESCE(COALESCE("agg"."f_51af634a388b", 0) >= 1.0, FALSE) AS s1,
  COALESCE(COALESCE("agg"."f_062623729638", 0) > 5000.0, FALSE)
  AND COALESCE(COALESCE("agg"."f_36fb34f654d5", 0) >= 1.0, FALSE)
  AND COALESCE(
    "agg"."f_1e9bda9ea718" <= CAST('2026-10-31 12:00:00.000000' AS TIMESTAMP)
    AND (
      "agg"."f_0754d3942079" IS NULL
      OR "agg"."f_0754d3942079" <= "agg"."f_1e9bda9ea718"
    ),
    FALSE
  ) AS s2,
  COALESCE("tr"."ts_b8c3f748baa6" IN ('PL', 'it''s'), FALSE) AS s3,
  COALESCE(COALESCE("agg"."f_51af634a388b", 0) >= 1.0, FALSE) AS s4
FROM profiles AS p
LEFT JOIN agg
  ON "p"."profile_id" = "agg"."profile_id"
LEFT JOIN tr
  ON "p"."profile_id" = "tr"."profile_id"
LEFT JOIN sq_4f540bd3a66a
  ON "p"."profile_id" = "sq_4f540bd3a66a"."profile_id"
