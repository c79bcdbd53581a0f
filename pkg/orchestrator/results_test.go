package orchestrator

import (
	"context"
	"encoding/json"
	"os"
	"strconv"
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/jackc/pgx/v5"
	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/migrations"
	"github.com/tasker-sim/tasker-sim/pkg/messaging"
)

// A result message delivered twice into one batch (its notification and a poll that read
// it) is archived once, and only its first listing counts as consumed: the second must
// not be counted as a second receipt.
func TestBatchConsumesARepeatedMessageOnce(t *testing.T) {
	t.Parallel()
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	name := "orchestrator_repeat_" + strconv.FormatInt(time.Now().UnixNano(), 36)
	url, err := cluster.CreateDatabase(ctx, name, "")
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, cluster.DropDatabase(context.Background(), name)) })
	// No fallback poll during the test: it would take the message first.
	o, err := Start(ctx, &Config{DatabaseURL: url, BindAddress: "127.0.0.1:0", PollInterval: time.Hour,
		PGMQMode: migrations.PGMQMode(os.Getenv("TASKER_TEST_PGMQ_MODE"))})
	require.NoError(t, err)
	t.Cleanup(func() { require.NoError(t, o.Stop()) })

	body, err := json.Marshal(messaging.StepMessage{TaskUUID: uuid.New(), StepUUID: uuid.New(), CorrelationID: uuid.New()})
	require.NoError(t, err)
	var id int64
	require.NoError(t, o.pool.QueryRow(ctx, "SELECT pgmq.send($1, $2::jsonb)", messaging.QueueStepResults, body).Scan(&id))
	d := messaging.Delivery{Queue: messaging.QueueStepResults, MsgID: id, Body: body, Method: messaging.MethodPoll}
	items := o.openItems(ctx, []messaging.Delivery{d, d, {Queue: d.Queue, MsgID: id + 1000, Body: body}})
	require.NoError(t, pgx.BeginFunc(ctx, o.pool, func(tx pgx.Tx) error {
		_, _, err := o.loadBatch(ctx, tx, items)
		return err
	}))
	require.True(t, items[0].archived, "the first listing archived the message")
	require.False(t, items[1].archived, "the repeat consumed nothing")
	require.False(t, items[2].archived, "a message that is not there consumed nothing")
}
