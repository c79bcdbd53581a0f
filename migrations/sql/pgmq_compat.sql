-- tasker-sim's pgmq-compatible schema.
--
-- Installed only when the pgmq extension is not available on the server. It offers the
-- subset of pgmq's documented SQL API that tasker-sim and the pgmq-go client call, with
-- the same function names, argument lists and result columns, so the same Go code runs
-- on either. Queue storage follows pgmq's documented layout: pgmq.q_<queue> holds live
-- messages and pgmq.a_<queue> holds archived ones.
--
-- Every function builds its SQL with format('%I') after validating the queue name, so a
-- queue name can never inject SQL.

CREATE SCHEMA IF NOT EXISTS pgmq;

CREATE TABLE IF NOT EXISTS pgmq.meta (
    queue_name     varchar NOT NULL PRIMARY KEY,
    is_partitioned boolean NOT NULL DEFAULT false,
    is_unlogged    boolean NOT NULL DEFAULT false,
    created_at     timestamptz NOT NULL DEFAULT now()
);

DO $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE n.nspname = 'pgmq' AND t.typname = 'message_record') THEN
        CREATE TYPE pgmq.message_record AS (
            msg_id      bigint,
            read_ct     integer,
            enqueued_at timestamptz,
            vt          timestamptz,
            message     jsonb,
            headers     jsonb
        );
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE n.nspname = 'pgmq' AND t.typname = 'metrics_result') THEN
        CREATE TYPE pgmq.metrics_result AS (
            queue_name         text,
            queue_length       bigint,
            newest_msg_age_sec integer,
            oldest_msg_age_sec integer,
            total_messages     bigint,
            scrape_time        timestamptz
        );
    END IF;
    IF NOT EXISTS (SELECT 1 FROM pg_type t JOIN pg_namespace n ON n.oid = t.typnamespace
                   WHERE n.nspname = 'pgmq' AND t.typname = 'queue_record') THEN
        CREATE TYPE pgmq.queue_record AS (
            queue_name     varchar,
            is_partitioned boolean,
            is_unlogged    boolean,
            created_at     timestamptz
        );
    END IF;
END
$$;

-- Queue names become part of table names (q_ / a_ prefixes), so they are limited to
-- lower-case identifiers short enough to stay under PostgreSQL's 63-byte limit.
CREATE OR REPLACE FUNCTION pgmq.validate_queue_name(queue_name text)
RETURNS void LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF queue_name IS NULL OR queue_name !~ '^[a-z_][a-z0-9_]{0,47}$' THEN
        RAISE EXCEPTION 'invalid queue name %: must match ^[a-z_][a-z0-9_]{0,47}$', quote_literal(coalesce(queue_name, 'NULL'))
            USING ERRCODE = '22023';
    END IF;
END
$$;

CREATE OR REPLACE FUNCTION pgmq.create(queue_name text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    qtable text := 'q_' || queue_name;
    atable text := 'a_' || queue_name;
BEGIN
    PERFORM pgmq.validate_queue_name(queue_name);
    -- Two processes creating the same queue at once would race on the catalog; a
    -- transaction-scoped advisory lock per queue makes creation idempotent and safe.
    PERFORM pg_advisory_xact_lock(hashtext('pgmq.create'), hashtext(queue_name));
    EXECUTE format(
        'CREATE TABLE IF NOT EXISTS pgmq.%I (
            msg_id      bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            read_ct     integer NOT NULL DEFAULT 0,
            enqueued_at timestamptz NOT NULL DEFAULT now(),
            vt          timestamptz NOT NULL,
            message     jsonb,
            headers     jsonb)', qtable);
    EXECUTE format(
        'CREATE TABLE IF NOT EXISTS pgmq.%I (
            msg_id      bigint PRIMARY KEY,
            read_ct     integer NOT NULL DEFAULT 0,
            enqueued_at timestamptz NOT NULL DEFAULT now(),
            archived_at timestamptz NOT NULL DEFAULT now(),
            vt          timestamptz NOT NULL,
            message     jsonb,
            headers     jsonb)', atable);
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON pgmq.%I (vt ASC)', qtable || '_vt_idx', qtable);
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON pgmq.%I (archived_at)', atable || '_archived_at_idx', atable);
    INSERT INTO pgmq.meta (queue_name) VALUES (queue_name) ON CONFLICT DO NOTHING;
END
$$;

CREATE OR REPLACE FUNCTION pgmq.send(queue_name text, msg jsonb, delay integer DEFAULT 0)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgmq.validate_queue_name(queue_name);
    RETURN QUERY EXECUTE format(
        'INSERT INTO pgmq.%I (vt, message) VALUES (clock_timestamp() + make_interval(secs => $2), $1) RETURNING msg_id',
        'q_' || queue_name) USING msg, greatest(delay, 0);
END
$$;

CREATE OR REPLACE FUNCTION pgmq.send(queue_name text, msg jsonb, delay timestamptz)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgmq.validate_queue_name(queue_name);
    RETURN QUERY EXECUTE format(
        'INSERT INTO pgmq.%I (vt, message) VALUES ($2, $1) RETURNING msg_id',
        'q_' || queue_name) USING msg, delay;
END
$$;

CREATE OR REPLACE FUNCTION pgmq.send_batch(queue_name text, msgs jsonb[], delay integer DEFAULT 0)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgmq.validate_queue_name(queue_name);
    RETURN QUERY EXECUTE format(
        'INSERT INTO pgmq.%I (vt, message)
         SELECT clock_timestamp() + make_interval(secs => $2), m FROM unnest($1) AS m
         RETURNING msg_id',
        'q_' || queue_name) USING msgs, greatest(delay, 0);
END
$$;

CREATE OR REPLACE FUNCTION pgmq.send_batch(queue_name text, msgs jsonb[], delay timestamptz)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgmq.validate_queue_name(queue_name);
    RETURN QUERY EXECUTE format(
        'INSERT INTO pgmq.%I (vt, message) SELECT $2, m FROM unnest($1) AS m RETURNING msg_id',
        'q_' || queue_name) USING msgs, delay;
END
$$;

-- read hides up to qty visible messages for vt seconds. SKIP LOCKED lets concurrent
-- readers take disjoint messages instead of queueing behind each other.
CREATE OR REPLACE FUNCTION pgmq.read(queue_name text, vt integer, qty integer)
RETURNS SETOF pgmq.message_record LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgmq.validate_queue_name(queue_name);
    RETURN QUERY EXECUTE format(
        'WITH visible AS (
             SELECT msg_id FROM pgmq.%1$I
             WHERE vt <= clock_timestamp()
             ORDER BY msg_id
             LIMIT $1
             FOR UPDATE SKIP LOCKED)
         UPDATE pgmq.%1$I AS q
            SET vt = clock_timestamp() + make_interval(secs => $2),
                read_ct = q.read_ct + 1
           FROM visible
          WHERE q.msg_id = visible.msg_id
         RETURNING q.msg_id, q.read_ct, q.enqueued_at, q.vt, q.message, q.headers',
        'q_' || queue_name) USING qty, vt;
END
$$;

CREATE OR REPLACE FUNCTION pgmq.pop(queue_name text)
RETURNS SETOF pgmq.message_record LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgmq.validate_queue_name(queue_name);
    RETURN QUERY EXECUTE format(
        'WITH first_visible AS (
             SELECT msg_id FROM pgmq.%1$I
             WHERE vt <= clock_timestamp()
             ORDER BY msg_id
             LIMIT 1
             FOR UPDATE SKIP LOCKED)
         DELETE FROM pgmq.%1$I AS q
          USING first_visible
          WHERE q.msg_id = first_visible.msg_id
         RETURNING q.msg_id, q.read_ct, q.enqueued_at, q.vt, q.message, q.headers',
        'q_' || queue_name);
END
$$;

CREATE OR REPLACE FUNCTION pgmq.archive(queue_name text, msg_id bigint)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    moved bigint;
BEGIN
    PERFORM pgmq.validate_queue_name(queue_name);
    EXECUTE format(
        'WITH gone AS (DELETE FROM pgmq.%I WHERE msg_id = $1 RETURNING *)
         INSERT INTO pgmq.%I (msg_id, read_ct, enqueued_at, vt, message, headers)
         SELECT msg_id, read_ct, enqueued_at, vt, message, headers FROM gone
         RETURNING msg_id',
        'q_' || queue_name, 'a_' || queue_name) USING msg_id INTO moved;
    RETURN moved IS NOT NULL;
END
$$;

CREATE OR REPLACE FUNCTION pgmq.archive(queue_name text, msg_ids bigint[])
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgmq.validate_queue_name(queue_name);
    RETURN QUERY EXECUTE format(
        'WITH gone AS (DELETE FROM pgmq.%I WHERE msg_id = ANY($1) RETURNING *)
         INSERT INTO pgmq.%I (msg_id, read_ct, enqueued_at, vt, message, headers)
         SELECT msg_id, read_ct, enqueued_at, vt, message, headers FROM gone
         RETURNING msg_id',
        'q_' || queue_name, 'a_' || queue_name) USING msg_ids;
END
$$;

CREATE OR REPLACE FUNCTION pgmq.delete(queue_name text, msg_id bigint)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    removed bigint;
BEGIN
    PERFORM pgmq.validate_queue_name(queue_name);
    EXECUTE format('DELETE FROM pgmq.%I WHERE msg_id = $1 RETURNING msg_id', 'q_' || queue_name)
        USING msg_id INTO removed;
    RETURN removed IS NOT NULL;
END
$$;

CREATE OR REPLACE FUNCTION pgmq.delete(queue_name text, msg_ids bigint[])
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgmq.validate_queue_name(queue_name);
    RETURN QUERY EXECUTE format('DELETE FROM pgmq.%I WHERE msg_id = ANY($1) RETURNING msg_id', 'q_' || queue_name)
        USING msg_ids;
END
$$;

CREATE OR REPLACE FUNCTION pgmq.set_vt(queue_name text, msg_id bigint, vt integer)
RETURNS SETOF pgmq.message_record LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgmq.validate_queue_name(queue_name);
    RETURN QUERY EXECUTE format(
        'UPDATE pgmq.%I AS q SET vt = clock_timestamp() + make_interval(secs => $2)
          WHERE q.msg_id = $1
         RETURNING q.msg_id, q.read_ct, q.enqueued_at, q.vt, q.message, q.headers',
        'q_' || queue_name) USING msg_id, vt;
END
$$;

CREATE OR REPLACE FUNCTION pgmq.metrics(queue_name text)
RETURNS pgmq.metrics_result LANGUAGE plpgsql AS $$
DECLARE
    result pgmq.metrics_result;
    seq    text;
BEGIN
    PERFORM pgmq.validate_queue_name(queue_name);
    -- total_messages counts every message ever sent: the id sequence, which deletes never lower.
    seq := pg_get_serial_sequence('pgmq.' || quote_ident('q_' || queue_name), 'msg_id');
    EXECUTE format(
        'SELECT $1::text,
                count(*)::bigint,
                extract(epoch FROM now() - max(enqueued_at))::integer,
                extract(epoch FROM now() - min(enqueued_at))::integer,
                coalesce(pg_sequence_last_value($2::regclass), 0)::bigint,
                now()
           FROM pgmq.%1$I',
        'q_' || queue_name) USING queue_name, seq INTO result;
    RETURN result;
END
$$;

CREATE OR REPLACE FUNCTION pgmq.metrics_all()
RETURNS SETOF pgmq.metrics_result LANGUAGE plpgsql AS $$
DECLARE
    q record;
BEGIN
    FOR q IN SELECT m.queue_name FROM pgmq.meta AS m ORDER BY m.queue_name LOOP
        RETURN NEXT pgmq.metrics(q.queue_name);
    END LOOP;
END
$$;

CREATE OR REPLACE FUNCTION pgmq.list_queues()
RETURNS SETOF pgmq.queue_record LANGUAGE sql STABLE AS $$
    SELECT m.queue_name, m.is_partitioned, m.is_unlogged, m.created_at FROM pgmq.meta AS m ORDER BY m.queue_name;
$$;

CREATE OR REPLACE FUNCTION pgmq.purge_queue(queue_name text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    removed bigint;
BEGIN
    PERFORM pgmq.validate_queue_name(queue_name);
    EXECUTE format('WITH gone AS (DELETE FROM pgmq.%I RETURNING 1) SELECT count(*) FROM gone', 'q_' || queue_name)
        INTO removed;
    RETURN removed;
END
$$;

CREATE OR REPLACE FUNCTION pgmq.drop_queue(queue_name text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgmq.validate_queue_name(queue_name);
    PERFORM pg_advisory_xact_lock(hashtext('pgmq.create'), hashtext(queue_name));
    IF NOT EXISTS (SELECT 1 FROM pgmq.meta AS m WHERE m.queue_name = drop_queue.queue_name) THEN
        RETURN false;
    END IF;
    EXECUTE format('DROP TABLE IF EXISTS pgmq.%I', 'q_' || queue_name);
    EXECUTE format('DROP TABLE IF EXISTS pgmq.%I', 'a_' || queue_name);
    DELETE FROM pgmq.meta AS m WHERE m.queue_name = drop_queue.queue_name;
    RETURN true;
END
$$;
