-- utc_timestamp(ts): any timestamp-like value as a naive UTC TIMESTAMP, the
-- way every timestamp in this warehouse is stored. Independent of the
-- session's TimeZone setting:
--   TIMESTAMPTZ            -> that instant in UTC
--   'YYYY-MM-DD'           -> midnight UTC of that day
--   '... HH:MM[:SS]'       -> read as UTC (no offset given)
--   '...+02:00', '...Z'    -> the offset (or zone name) is honoured
--   TIMESTAMP, DATE        -> already naive UTC
CREATE MACRO utc_timestamp(ts) AS
CASE typeof(ts)
    WHEN 'TIMESTAMP WITH TIME ZONE' THEN timezone('UTC', CAST(ts AS TIMESTAMPTZ))
    WHEN 'VARCHAR' THEN
        CASE
            WHEN regexp_full_match(trim(CAST(ts AS VARCHAR)), '\d{4}-\d{2}-\d{2}')
                THEN CAST(CAST(trim(CAST(ts AS VARCHAR)) AS DATE) AS TIMESTAMP)
            ELSE coalesce(
                -- no zone in the text: appending one parses, and means UTC
                timezone('UTC', try_cast(CAST(ts AS VARCHAR) || ' UTC' AS TIMESTAMPTZ)),
                -- a zone in the text: honour it
                timezone('UTC', CAST(CAST(ts AS VARCHAR) AS TIMESTAMPTZ)))
        END
    ELSE CAST(ts AS TIMESTAMP)
END;
