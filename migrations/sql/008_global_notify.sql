-- tasker-core notifies every message-ready event on the global channel
-- pgmq_message_ready as well as on its namespace's pgmq_message_ready.<ns>, so a listener
-- can follow every queue at once. Every send path builds its event with
-- tasker.message_ready_event; it now also notifies the global channel. The payload rules
-- stay in the function renamed here.
ALTER FUNCTION tasker.message_ready_event(text, text, bigint, jsonb, jsonb, integer) RENAME TO message_ready_payload;

CREATE FUNCTION tasker.message_ready_event(
    queue_name text, ns text, msg_id bigint, message jsonb, headers jsonb, delay_seconds integer)
RETURNS jsonb LANGUAGE plpgsql VOLATILE AS $$
DECLARE
    event jsonb := tasker.message_ready_payload(queue_name, ns, msg_id, message, headers, delay_seconds);
BEGIN
    PERFORM pg_notify('pgmq_message_ready', event::text);
    RETURN event;
END
$$;
