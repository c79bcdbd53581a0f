-- tasker-sim's pgmq-compatible schema: pgmq 1.5.1's public SQL API on a server that does not
-- have the pgmq extension.
--
-- Installed only when the extension is not available. Every public function of pgmq 1.5.1 is
-- here with the same name, argument names, argument types, defaults and result type, and the
-- composite types and queue tables have 1.5.1's layout: pgmq.q_<queue> holds live messages,
-- pgmq.a_<queue> archived ones, pgmq.meta one row per queue. migrations/testdata/pgmq-1.5.1-api.txt
-- pins that surface and a test compares this schema with it.
--
-- Where this schema answers differently it refuses with a clear error instead of guessing:
--   * queue names must match ^[a-z_][a-z0-9_]{0,46}$ (pgmq folds case and quotes the rest);
--   * partitioned queues (create_partitioned, convert_archive_partitioned) need pg_partman and
--     the real extension, so both refuse;
--   * send_batch with headers needs exactly one header (or NULL) per message.
-- drop_queue of a queue that does not exist returns false rather than raising.
--
-- The file is idempotent: it installs the API on a fresh database and brings an earlier copy of
-- this schema up to date. Every function builds its SQL with format('%I') from a validated
-- queue name, so a queue name can never inject SQL.

CREATE SCHEMA IF NOT EXISTS pgmq;

CREATE TABLE IF NOT EXISTS pgmq.meta (
    queue_name     varchar NOT NULL UNIQUE,
    is_partitioned boolean NOT NULL,
    is_unlogged    boolean NOT NULL,
    created_at     timestamptz NOT NULL DEFAULT now()
);

-- Monitoring roles may read every queue, as with the extension.
GRANT USAGE ON SCHEMA pgmq TO pg_monitor;
GRANT SELECT ON ALL TABLES IN SCHEMA pgmq TO pg_monitor;
GRANT SELECT ON ALL SEQUENCES IN SCHEMA pgmq TO pg_monitor;
ALTER DEFAULT PRIVILEGES IN SCHEMA pgmq GRANT SELECT ON TABLES TO pg_monitor;
ALTER DEFAULT PRIVILEGES IN SCHEMA pgmq GRANT SELECT ON SEQUENCES TO pg_monitor;

DO $$
BEGIN
    IF to_regtype('pgmq.message_record') IS NULL THEN
        CREATE TYPE pgmq.message_record AS (
            msg_id      bigint,
            read_ct     integer,
            enqueued_at timestamptz,
            vt          timestamptz,
            message     jsonb,
            headers     jsonb
        );
    END IF;
    IF to_regtype('pgmq.queue_record') IS NULL THEN
        CREATE TYPE pgmq.queue_record AS (
            queue_name     varchar,
            is_partitioned boolean,
            is_unlogged    boolean,
            created_at     timestamptz
        );
    END IF;
    IF to_regtype('pgmq.metrics_result') IS NULL THEN
        CREATE TYPE pgmq.metrics_result AS (
            queue_name           text,
            queue_length         bigint,
            newest_msg_age_sec   integer,
            oldest_msg_age_sec   integer,
            total_messages       bigint,
            scrape_time          timestamptz,
            queue_visible_length bigint
        );
    ELSIF NOT EXISTS (SELECT 1 FROM pg_attribute
                       WHERE attrelid = (SELECT typrelid FROM pg_type WHERE oid = 'pgmq.metrics_result'::regtype)
                         AND attname = 'queue_visible_length' AND NOT attisdropped) THEN
        ALTER TYPE pgmq.metrics_result ADD ATTRIBUTE queue_visible_length bigint;
    END IF;

    -- An earlier copy of this schema had read without its conditional argument and gave
    -- send's and send_batch's delay a default; pgmq 1.5.1 has neither, and a function's
    -- defaults cannot be removed in place.
    DROP FUNCTION IF EXISTS pgmq.read(text, integer, integer);
    IF (SELECT pronargdefaults FROM pg_proc WHERE oid = to_regprocedure('pgmq.send(text,jsonb,integer)')) > 0 THEN
        DROP FUNCTION pgmq.send(text, jsonb, integer);
    END IF;
    IF (SELECT pronargdefaults FROM pg_proc WHERE oid = to_regprocedure('pgmq.send_batch(text,jsonb[],integer)')) > 0 THEN
        DROP FUNCTION pgmq.send_batch(text, jsonb[], integer);
    END IF;
END
$$;

------------------------------------------------------------------------------------------------
-- Names
------------------------------------------------------------------------------------------------

-- Queue names become part of table and index names, so they are limited to lower-case
-- identifiers short enough for PostgreSQL's 63-byte limit once prefixed.
CREATE OR REPLACE FUNCTION pgmq.validate_queue_name(queue_name text)
RETURNS void LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    IF queue_name IS NULL OR queue_name !~ '^[a-z_][a-z0-9_]{0,46}$' THEN
        RAISE EXCEPTION 'invalid queue name %: must match ^[a-z_][a-z0-9_]{0,46}$ (lower-case, at most 47 characters)',
            quote_literal(coalesce(queue_name, 'NULL'))
            USING ERRCODE = '22023';
    END IF;
END
$$;

-- format_table_name gives the table that holds a queue's messages: prefix 'q' for live ones,
-- 'a' for the archive.
CREATE OR REPLACE FUNCTION pgmq.format_table_name(queue_name text, prefix text)
RETURNS text LANGUAGE plpgsql IMMUTABLE AS $$
BEGIN
    PERFORM pgmq.validate_queue_name(queue_name);
    RETURN lower(prefix) || '_' || queue_name;
END
$$;

------------------------------------------------------------------------------------------------
-- Creating and dropping queues
------------------------------------------------------------------------------------------------

-- _create_queue is the body of create, create_non_partitioned and create_unlogged. Two
-- sessions creating one queue at once would collide in the catalog; a transaction-scoped
-- advisory lock per queue name makes creation idempotent under concurrency.
CREATE OR REPLACE FUNCTION pgmq._create_queue(queue_name text, unlogged boolean)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    live    text := pgmq.format_table_name(queue_name, 'q');
    archive text := pgmq.format_table_name(queue_name, 'a');
BEGIN
    PERFORM pg_advisory_xact_lock(hashtext('pgmq.create'), hashtext(queue_name));
    EXECUTE format(
        'CREATE %s TABLE IF NOT EXISTS pgmq.%I (
            msg_id      bigint PRIMARY KEY GENERATED ALWAYS AS IDENTITY,
            read_ct     integer NOT NULL DEFAULT 0,
            enqueued_at timestamptz NOT NULL DEFAULT now(),
            vt          timestamptz NOT NULL,
            message     jsonb,
            headers     jsonb)',
        CASE WHEN unlogged THEN 'UNLOGGED' ELSE '' END, live);
    EXECUTE format(
        'CREATE TABLE IF NOT EXISTS pgmq.%I (
            msg_id      bigint PRIMARY KEY,
            read_ct     integer NOT NULL DEFAULT 0,
            enqueued_at timestamptz NOT NULL DEFAULT now(),
            archived_at timestamptz NOT NULL DEFAULT now(),
            vt          timestamptz NOT NULL,
            message     jsonb,
            headers     jsonb)', archive);
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON pgmq.%I (vt)', live || '_vt_idx', live);
    EXECUTE format('CREATE INDEX IF NOT EXISTS %I ON pgmq.%I (archived_at)', 'archived_at_idx_' || queue_name, archive);
    INSERT INTO pgmq.meta (queue_name, is_partitioned, is_unlogged)
    VALUES (queue_name, false, unlogged)
    ON CONFLICT DO NOTHING;
END
$$;

CREATE OR REPLACE FUNCTION pgmq.create_non_partitioned(queue_name text)
RETURNS void LANGUAGE sql AS $$
    SELECT pgmq._create_queue(queue_name, false);
$$;

CREATE OR REPLACE FUNCTION pgmq.create(queue_name text)
RETURNS void LANGUAGE sql AS $$
    SELECT pgmq._create_queue(queue_name, false);
$$;

-- create_unlogged keeps live messages in an unlogged table: faster, but emptied by a crash.
-- The archive stays logged.
CREATE OR REPLACE FUNCTION pgmq.create_unlogged(queue_name text)
RETURNS void LANGUAGE sql AS $$
    SELECT pgmq._create_queue(queue_name, true);
$$;

-- _refuse_partitioning raises the error that the partitioned-queue functions give here.
CREATE OR REPLACE FUNCTION pgmq._refuse_partitioning(what text)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    IF NOT EXISTS (SELECT 1 FROM pg_extension WHERE extname = 'pg_partman') THEN
        RAISE EXCEPTION '%: pg_partman is required for partitioned queues, and this server has neither pg_partman nor the pgmq extension', what
            USING ERRCODE = '0A000',
                  HINT = 'Use pgmq.create or pgmq.create_unlogged, or install the pgmq extension and pg_partman on the server.';
    END IF;
    RAISE EXCEPTION '%: tasker-sim''s pgmq-compatible schema does not make partitioned queues', what
        USING ERRCODE = '0A000',
              HINT = 'Use pgmq.create or pgmq.create_unlogged, or install the pgmq extension on the server.';
END
$$;

CREATE OR REPLACE FUNCTION pgmq.create_partitioned(
    queue_name text,
    partition_interval text DEFAULT '10000',
    retention_interval text DEFAULT '100000')
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgmq.validate_queue_name(queue_name);
    PERFORM pgmq._refuse_partitioning('create_partitioned');
END
$$;

CREATE OR REPLACE FUNCTION pgmq.convert_archive_partitioned(
    table_name text,
    partition_interval text DEFAULT '10000',
    retention_interval text DEFAULT '100000',
    leading_partition integer DEFAULT 10)
RETURNS void LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgmq.validate_queue_name(table_name);
    PERFORM pgmq._refuse_partitioning('convert_archive_partitioned');
END
$$;

-- drop_queue removes a queue, its archive and its meta row. It returns false when there was
-- no such queue.
CREATE OR REPLACE FUNCTION pgmq.drop_queue(queue_name text)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    PERFORM pgmq.validate_queue_name(queue_name);
    PERFORM pg_advisory_xact_lock(hashtext('pgmq.create'), hashtext(queue_name));
    IF NOT EXISTS (SELECT 1 FROM pgmq.meta AS m WHERE m.queue_name = drop_queue.queue_name) THEN
        RETURN false;
    END IF;
    EXECUTE format('DROP TABLE IF EXISTS pgmq.%I', pgmq.format_table_name(queue_name, 'q'));
    EXECUTE format('DROP TABLE IF EXISTS pgmq.%I', pgmq.format_table_name(queue_name, 'a'));
    DELETE FROM pgmq.meta AS m WHERE m.queue_name = drop_queue.queue_name;
    RETURN true;
END
$$;

-- The two-argument form is deprecated in pgmq 1.5.1; it warns and drops the queue.
CREATE OR REPLACE FUNCTION pgmq.drop_queue(queue_name text, partitioned boolean)
RETURNS boolean LANGUAGE plpgsql AS $$
BEGIN
    RAISE WARNING 'drop_queue(queue_name, partitioned) is deprecated: call drop_queue(queue_name)';
    RETURN pgmq.drop_queue(queue_name);
END
$$;

-- detach_archive exists so that a queue's archive outlives DROP EXTENSION pgmq. Without the
-- extension no table belongs to one, so there is nothing to detach: it checks that the
-- archive exists and changes nothing.
CREATE OR REPLACE FUNCTION pgmq.detach_archive(queue_name text)
RETURNS void LANGUAGE plpgsql AS $$
DECLARE
    archive text := pgmq.format_table_name(queue_name, 'a');
BEGIN
    IF to_regclass(format('pgmq.%I', archive)) IS NULL THEN
        RAISE EXCEPTION 'detach_archive: queue % has no archive table pgmq.%', quote_literal(queue_name), archive
            USING ERRCODE = '42P01';
    END IF;
END
$$;

------------------------------------------------------------------------------------------------
-- Sending
------------------------------------------------------------------------------------------------

-- Every send form comes down to this one: the message becomes visible at delay.
CREATE OR REPLACE FUNCTION pgmq.send(queue_name text, msg jsonb, headers jsonb, delay timestamptz)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY EXECUTE format(
        'INSERT INTO pgmq.%I (vt, message, headers) VALUES ($2, $1, $3) RETURNING msg_id',
        pgmq.format_table_name(queue_name, 'q')) USING msg, delay, headers;
END
$$;

CREATE OR REPLACE FUNCTION pgmq.send(queue_name text, msg jsonb)
RETURNS SETOF bigint LANGUAGE sql AS $$
    SELECT pgmq.send(queue_name, msg, NULL::jsonb, clock_timestamp());
$$;

CREATE OR REPLACE FUNCTION pgmq.send(queue_name text, msg jsonb, headers jsonb)
RETURNS SETOF bigint LANGUAGE sql AS $$
    SELECT pgmq.send(queue_name, msg, headers, clock_timestamp());
$$;

-- delay in seconds from now.
CREATE OR REPLACE FUNCTION pgmq.send(queue_name text, msg jsonb, delay integer)
RETURNS SETOF bigint LANGUAGE sql AS $$
    SELECT pgmq.send(queue_name, msg, NULL::jsonb, clock_timestamp() + make_interval(secs => delay));
$$;

CREATE OR REPLACE FUNCTION pgmq.send(queue_name text, msg jsonb, delay timestamptz)
RETURNS SETOF bigint LANGUAGE sql AS $$
    SELECT pgmq.send(queue_name, msg, NULL::jsonb, delay);
$$;

CREATE OR REPLACE FUNCTION pgmq.send(queue_name text, msg jsonb, headers jsonb, delay integer)
RETURNS SETOF bigint LANGUAGE sql AS $$
    SELECT pgmq.send(queue_name, msg, headers, clock_timestamp() + make_interval(secs => delay));
$$;

-- Every send_batch form comes down to this one. Ids come back in the order of msgs; headers,
-- when given, pairs with msgs by position.
CREATE OR REPLACE FUNCTION pgmq.send_batch(queue_name text, msgs jsonb[], headers jsonb[], delay timestamptz)
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
    IF headers IS NOT NULL AND cardinality(headers) <> coalesce(cardinality(msgs), 0) THEN
        RAISE EXCEPTION 'send_batch: headers has % entries for % messages: give one header per message, or NULL',
            cardinality(headers), coalesce(cardinality(msgs), 0)
            USING ERRCODE = '22023';
    END IF;
    RETURN QUERY EXECUTE format(
        'INSERT INTO pgmq.%I (vt, message, headers)
         SELECT $2, b.msg, $3[b.pos] FROM unnest($1) WITH ORDINALITY AS b (msg, pos) ORDER BY b.pos
         RETURNING msg_id',
        pgmq.format_table_name(queue_name, 'q')) USING msgs, delay, headers;
END
$$;

CREATE OR REPLACE FUNCTION pgmq.send_batch(queue_name text, msgs jsonb[])
RETURNS SETOF bigint LANGUAGE sql AS $$
    SELECT pgmq.send_batch(queue_name, msgs, NULL::jsonb[], clock_timestamp());
$$;

CREATE OR REPLACE FUNCTION pgmq.send_batch(queue_name text, msgs jsonb[], headers jsonb[])
RETURNS SETOF bigint LANGUAGE sql AS $$
    SELECT pgmq.send_batch(queue_name, msgs, headers, clock_timestamp());
$$;

CREATE OR REPLACE FUNCTION pgmq.send_batch(queue_name text, msgs jsonb[], delay integer)
RETURNS SETOF bigint LANGUAGE sql AS $$
    SELECT pgmq.send_batch(queue_name, msgs, NULL::jsonb[], clock_timestamp() + make_interval(secs => delay));
$$;

CREATE OR REPLACE FUNCTION pgmq.send_batch(queue_name text, msgs jsonb[], delay timestamptz)
RETURNS SETOF bigint LANGUAGE sql AS $$
    SELECT pgmq.send_batch(queue_name, msgs, NULL::jsonb[], delay);
$$;

CREATE OR REPLACE FUNCTION pgmq.send_batch(queue_name text, msgs jsonb[], headers jsonb[], delay integer)
RETURNS SETOF bigint LANGUAGE sql AS $$
    SELECT pgmq.send_batch(queue_name, msgs, headers, clock_timestamp() + make_interval(secs => delay));
$$;

------------------------------------------------------------------------------------------------
-- Reading
------------------------------------------------------------------------------------------------

-- read hides up to qty visible messages for vt seconds and returns them. With a non-empty
-- conditional only messages that contain it (jsonb @>) are read. SKIP LOCKED lets concurrent
-- readers take disjoint messages instead of queueing behind each other.
CREATE OR REPLACE FUNCTION pgmq.read(queue_name text, vt integer, qty integer, conditional jsonb DEFAULT '{}')
RETURNS SETOF pgmq.message_record LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY EXECUTE format(
        'WITH visible AS (
             SELECT msg_id FROM pgmq.%1$I
              WHERE vt <= clock_timestamp()
                AND ($3 IS NULL OR $3 = ''{}''::jsonb OR message @> $3)
              ORDER BY msg_id
              LIMIT $1
                FOR UPDATE SKIP LOCKED)
         UPDATE pgmq.%1$I AS q
            SET vt = clock_timestamp() + make_interval(secs => $2),
                read_ct = q.read_ct + 1
           FROM visible
          WHERE q.msg_id = visible.msg_id
         RETURNING q.msg_id, q.read_ct, q.enqueued_at, q.vt, q.message, q.headers',
        pgmq.format_table_name(queue_name, 'q')) USING qty, vt, conditional;
END
$$;

-- read_with_poll reads like read; while nothing is visible it tries again every
-- poll_interval_ms, for at most max_poll_seconds.
CREATE OR REPLACE FUNCTION pgmq.read_with_poll(
    queue_name text,
    vt integer,
    qty integer,
    max_poll_seconds integer DEFAULT 5,
    poll_interval_ms integer DEFAULT 100,
    conditional jsonb DEFAULT '{}')
RETURNS SETOF pgmq.message_record LANGUAGE plpgsql AS $$
DECLARE
    give_up_at timestamptz := clock_timestamp() + make_interval(secs => max_poll_seconds);
BEGIN
    LOOP
        RETURN QUERY SELECT * FROM pgmq.read(queue_name, vt, qty, conditional);
        IF FOUND OR clock_timestamp() >= give_up_at THEN
            RETURN;
        END IF;
        PERFORM pg_sleep(least(greatest(poll_interval_ms, 1) / 1000.0,
                               extract(epoch FROM give_up_at - clock_timestamp())));
    END LOOP;
END
$$;

-- pop reads and deletes the first visible message.
CREATE OR REPLACE FUNCTION pgmq.pop(queue_name text)
RETURNS SETOF pgmq.message_record LANGUAGE plpgsql AS $$
BEGIN
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
        pgmq.format_table_name(queue_name, 'q'));
END
$$;

-- set_vt makes a message visible vt seconds from now and returns it.
CREATE OR REPLACE FUNCTION pgmq.set_vt(queue_name text, msg_id bigint, vt integer)
RETURNS SETOF pgmq.message_record LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY EXECUTE format(
        'UPDATE pgmq.%I AS q SET vt = clock_timestamp() + make_interval(secs => $2)
          WHERE q.msg_id = $1
         RETURNING q.msg_id, q.read_ct, q.enqueued_at, q.vt, q.message, q.headers',
        pgmq.format_table_name(queue_name, 'q')) USING msg_id, vt;
END
$$;

------------------------------------------------------------------------------------------------
-- Archiving and deleting
------------------------------------------------------------------------------------------------

CREATE OR REPLACE FUNCTION pgmq.archive(queue_name text, msg_id bigint)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    moved bigint;
BEGIN
    EXECUTE format(
        'WITH gone AS (DELETE FROM pgmq.%I WHERE msg_id = $1 RETURNING *)
         INSERT INTO pgmq.%I (msg_id, read_ct, enqueued_at, vt, message, headers)
         SELECT msg_id, read_ct, enqueued_at, vt, message, headers FROM gone
         RETURNING msg_id',
        pgmq.format_table_name(queue_name, 'q'), pgmq.format_table_name(queue_name, 'a'))
        USING msg_id INTO moved;
    RETURN moved IS NOT NULL;
END
$$;

CREATE OR REPLACE FUNCTION pgmq.archive(queue_name text, msg_ids bigint[])
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY EXECUTE format(
        'WITH gone AS (DELETE FROM pgmq.%I WHERE msg_id = ANY($1) RETURNING *)
         INSERT INTO pgmq.%I (msg_id, read_ct, enqueued_at, vt, message, headers)
         SELECT msg_id, read_ct, enqueued_at, vt, message, headers FROM gone
         RETURNING msg_id',
        pgmq.format_table_name(queue_name, 'q'), pgmq.format_table_name(queue_name, 'a'))
        USING msg_ids;
END
$$;

CREATE OR REPLACE FUNCTION pgmq.delete(queue_name text, msg_id bigint)
RETURNS boolean LANGUAGE plpgsql AS $$
DECLARE
    removed bigint;
BEGIN
    EXECUTE format('DELETE FROM pgmq.%I WHERE msg_id = $1 RETURNING msg_id', pgmq.format_table_name(queue_name, 'q'))
        USING msg_id INTO removed;
    RETURN removed IS NOT NULL;
END
$$;

CREATE OR REPLACE FUNCTION pgmq.delete(queue_name text, msg_ids bigint[])
RETURNS SETOF bigint LANGUAGE plpgsql AS $$
BEGIN
    RETURN QUERY EXECUTE format('DELETE FROM pgmq.%I WHERE msg_id = ANY($1) RETURNING msg_id',
        pgmq.format_table_name(queue_name, 'q')) USING msg_ids;
END
$$;

-- purge_queue deletes every live message (the archive stays) and says how many went.
CREATE OR REPLACE FUNCTION pgmq.purge_queue(queue_name text)
RETURNS bigint LANGUAGE plpgsql AS $$
DECLARE
    removed bigint;
BEGIN
    EXECUTE format('WITH gone AS (DELETE FROM pgmq.%I RETURNING 1) SELECT count(*) FROM gone',
        pgmq.format_table_name(queue_name, 'q')) INTO removed;
    RETURN removed;
END
$$;

------------------------------------------------------------------------------------------------
-- Inspecting
------------------------------------------------------------------------------------------------

-- metrics: queue_length counts live messages, hidden or not; queue_visible_length only those
-- a read could take now; total_messages every message ever sent (the id sequence, which
-- deletes never lower).
CREATE OR REPLACE FUNCTION pgmq.metrics(queue_name text)
RETURNS pgmq.metrics_result LANGUAGE plpgsql AS $$
DECLARE
    live   text := pgmq.format_table_name(queue_name, 'q');
    result pgmq.metrics_result;
BEGIN
    EXECUTE format(
        'SELECT $1::text,
                count(*)::bigint,
                extract(epoch FROM now() - max(enqueued_at))::integer,
                extract(epoch FROM now() - min(enqueued_at))::integer,
                coalesce(pg_sequence_last_value($2::regclass), 0)::bigint,
                now(),
                count(*) FILTER (WHERE vt <= now())::bigint
           FROM pgmq.%I',
        live) USING queue_name, pg_get_serial_sequence(format('pgmq.%I', live), 'msg_id') INTO result;
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
