package messaging

import (
	"fmt"
	"regexp"

	"github.com/jackc/pgx/v5"
)

// The hot path's queue statements, written per queue against pgmq's own tables (whose
// shape the migrations test pins to pgmq 1.5.1's), so that each is a plain statement
// that pgx prepares once per connection. pgmq's functions build the same statements with
// format() and run them with EXECUTE, which plans them on every call: on the hot path that
// cost more than the work itself.

// queueNameRE is pgmq's rule for queue names, which become table names.
var queueNameRE = regexp.MustCompile(`^[a-z_][a-z0-9_]{0,46}$`)

func queueTables(queue string) (q, a string, err error) {
	if !queueNameRE.MatchString(queue) {
		return "", "", fmt.Errorf("queue name %q: must match %s", queue, queueNameRE)
	}
	return pgx.Identifier{"pgmq", "q_" + queue}.Sanitize(), pgx.Identifier{"pgmq", "a_" + queue}.Sanitize(), nil
}

// ArchiveCTE is a WITH clause that archives the messages of queue whose ids are in the
// bigint[] parameter $<param> (pgmq.archive's work), exposing the ids it archived as
// archived(msg_id). A message another transaction archived first is simply not there, and
// one that another transaction holds is skipped, not waited for: every listener hears
// every notification, so processes that share a queue race for the same messages, and
// the loser would otherwise queue behind the winner's transaction only to find nothing.
// (Should the holder roll back, the message stays visible and the fallback poll delivers
// it.) The caller appends the statement that reads archived.
func ArchiveCTE(queue string, param int) (string, error) {
	q, a, err := queueTables(queue)
	if err != nil {
		return "", err
	}
	return fmt.Sprintf(`WITH taken AS (
	    DELETE FROM %[1]s WHERE msg_id IN (
	        SELECT msg_id FROM %[1]s WHERE msg_id = ANY ($%[2]d::bigint[]) FOR UPDATE SKIP LOCKED)
	    RETURNING msg_id, read_ct, enqueued_at, vt, message, headers),
	archived AS (
	    INSERT INTO %[3]s (msg_id, read_ct, enqueued_at, vt, message, headers)
	    SELECT msg_id, read_ct, enqueued_at, vt, message, headers FROM taken
	    RETURNING msg_id)`, q, param, a), nil
}

// ArchiveBatch queues on b the archive of ids from queue; after the batch runs, archived
// holds the ids this transaction archived.
func ArchiveBatch(b *pgx.Batch, queue string, ids []int64, archived map[int64]bool) error {
	cte, err := ArchiveCTE(queue, 1)
	if err != nil {
		return err
	}
	b.Queue(cte+" SELECT msg_id FROM archived", ids).Query(func(rows pgx.Rows) error {
		got, err := pgx.CollectRows(rows, pgx.RowTo[int64])
		for _, id := range got {
			archived[id] = true
		}
		return err
	})
	return nil
}

// SendBatch queues on b the send of msgs to queue, with one header each (nil for none),
// and a readiness notification per message, sent when the transaction commits (as
// tasker.pgmq_send_with_notify does for one).
func SendBatch(b *pgx.Batch, queue string, msgs, headers [][]byte) error {
	q, _, err := queueTables(queue)
	if err != nil {
		return err
	}
	if len(headers) != len(msgs) {
		return fmt.Errorf("send to %s: %d messages but %d headers", queue, len(msgs), len(headers))
	}
	// The channel comes from tasker.extract_queue_namespace, the one statement of that rule.
	b.Queue(fmt.Sprintf(`WITH sent AS (
	    INSERT INTO %s (vt, message, headers)
	    SELECT clock_timestamp(), m.msg, m.hdr
	      FROM unnest($1::jsonb[], $2::jsonb[]) WITH ORDINALITY AS m(msg, hdr, ord)
	     ORDER BY m.ord
	    RETURNING msg_id, message, headers),
	q AS (SELECT tasker.extract_queue_namespace($3) AS ns)
	SELECT count(*) FROM sent CROSS JOIN q
	 CROSS JOIN LATERAL (SELECT pg_notify($4 || q.ns,
	        tasker.message_ready_event($3, q.ns, sent.msg_id, sent.message, sent.headers, 0)::text)) AS n`,
		q), msgs, headers, queue, ChannelPrefix)
	return nil
}
