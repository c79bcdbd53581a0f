package migrations_test

import (
	"bufio"
	"flag"
	"fmt"
	"os"
	"slices"
	"strings"
	"testing"

	"github.com/jackc/pgx/v5"
	"github.com/jackc/pgx/v5/pgxpool"
	"github.com/stretchr/testify/require"
)

// apiFile pins pgmq 1.5.1's public SQL surface. Regenerate it from the real extension with
//
//	TASKER_TEST_PGMQ_MODE=extension go test ./migrations -run TestPGMQAPIMatches -update-api
const apiFile = "testdata/pgmq-1.5.1-api.txt"

var updateAPI = flag.Bool("update-api", false, "rewrite "+apiFile+" from the pgmq extension on the test server")

// The queues the API test creates; their names are replaced by placeholders in the
// description so that it does not depend on them.
const (
	apiLoggedQueue   = "api_logged"
	apiUnloggedQueue = "api_unlogged"
)

// apiObject is one object of the pgmq surface: Key names it (a function by its argument
// types, as overloads are told apart), Definition is everything a caller relies on.
type apiObject struct {
	Key        string
	Definition string
}

// apiQuery describes the schema pgmq as "key | definition" rows: public functions (names not
// starting with "_"), composite types, the tables of a queue made by create and of one made
// by create_unlogged, pgmq.meta, and their indexes.
const apiQuery = `
SELECT 'function pgmq.' || p.proname || '(' || oidvectortypes(p.proargtypes) || ')',
       '(' || pg_get_function_arguments(p.oid) || ') returns ' || pg_get_function_result(p.oid)
  FROM pg_proc AS p
 WHERE p.pronamespace = 'pgmq'::regnamespace AND p.proname NOT LIKE '\_%'
UNION ALL
SELECT 'type pgmq.' || t.typname,
       '(' || string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod), ', ' ORDER BY a.attnum) || ')'
  FROM pg_type AS t
  JOIN pg_class AS c ON c.oid = t.typrelid AND c.relkind = 'c'
  JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
 WHERE t.typnamespace = 'pgmq'::regnamespace
 GROUP BY t.typname
UNION ALL
SELECT 'table pgmq.' || c.relname,
       CASE c.relpersistence WHEN 'u' THEN 'unlogged ' ELSE '' END || '(' ||
       string_agg(a.attname || ' ' || format_type(a.atttypid, a.atttypmod)
                  || CASE WHEN a.attnotnull THEN ' not null' ELSE '' END
                  || CASE WHEN a.attidentity <> '' THEN ' identity' ELSE '' END
                  || coalesce(' default ' || pg_get_expr(d.adbin, d.adrelid), ''),
                  ', ' ORDER BY a.attnum) || ')'
  FROM pg_class AS c
  JOIN pg_attribute AS a ON a.attrelid = c.oid AND a.attnum > 0 AND NOT a.attisdropped
  LEFT JOIN pg_attrdef AS d ON d.adrelid = c.oid AND d.adnum = a.attnum
 WHERE c.relnamespace = 'pgmq'::regnamespace AND c.relkind IN ('r', 'p')
 GROUP BY c.relname, c.relpersistence
UNION ALL
SELECT 'index pgmq.' || i.relname, pg_get_indexdef(x.indexrelid)
  FROM pg_index AS x
  JOIN pg_class AS i ON i.oid = x.indexrelid
 WHERE i.relnamespace = 'pgmq'::regnamespace`

// installedAPI describes the pgmq surface of the database behind pool.
func installedAPI(t *testing.T, pool *pgxpool.Pool) []apiObject {
	t.Helper()
	ctx := testContext(t)
	_, err := pool.Exec(ctx, "SELECT pgmq.create($1)", apiLoggedQueue)
	require.NoError(t, err)
	_, err = pool.Exec(ctx, "SELECT pgmq.create_unlogged($1)", apiUnloggedQueue)
	require.NoError(t, err)
	rows, err := pool.Query(ctx, apiQuery)
	require.NoError(t, err)
	objs, err := pgx.CollectRows(rows, pgx.RowToStructByPos[apiObject])
	require.NoError(t, err)
	placeholders := strings.NewReplacer(apiUnloggedQueue, "<unlogged_queue>", apiLoggedQueue, "<queue>")
	objs = slices.DeleteFunc(objs, func(o apiObject) bool {
		// Only the two queues made here describe the layout; others are the caller's.
		isQueueObject := strings.HasPrefix(o.Key, "table ") || strings.HasPrefix(o.Key, "index ")
		isMeta := o.Key == "table pgmq.meta" || strings.HasPrefix(o.Key, "index pgmq.meta_")
		return isQueueObject && !isMeta && placeholders.Replace(o.Key) == o.Key
	})
	for i := range objs {
		objs[i].Key = placeholders.Replace(objs[i].Key)
		objs[i].Definition = placeholders.Replace(objs[i].Definition)
	}
	slices.SortFunc(objs, func(a, b apiObject) int { return strings.Compare(a.Key, b.Key) })
	return objs
}

// readAPIFile parses apiFile: "key | definition" lines; "#" starts a comment.
func readAPIFile(t *testing.T) []apiObject {
	t.Helper()
	f, err := os.Open(apiFile)
	require.NoError(t, err)
	defer func() { _ = f.Close() }()
	var objs []apiObject
	sc := bufio.NewScanner(f)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		key, def, ok := strings.Cut(line, " | ")
		require.True(t, ok, "%s:%d: want \"key | definition\", got %q", apiFile, n, line)
		objs = append(objs, apiObject{Key: key, Definition: def})
	}
	require.NoError(t, sc.Err())
	return objs
}

func writeAPIFile(t *testing.T, objs []apiObject) {
	t.Helper()
	var b strings.Builder
	b.WriteString(`# pgmq 1.5.1's public SQL surface, read from the catalog of a database after CREATE EXTENSION pgmq
# and one pgmq.create('<queue>') and one pgmq.create_unlogged('<unlogged_queue>'). Functions whose
# names start with "_" are pgmq's internal helpers and are left out. One object a line:
#   key | definition
# TestPGMQAPIMatches1_5_1 compares whichever provider Migrate installed with this list.
`)
	for _, o := range objs {
		fmt.Fprintf(&b, "%s | %s\n", o.Key, o.Definition)
	}
	require.NoError(t, os.MkdirAll("testdata", 0o755))
	require.NoError(t, os.WriteFile(apiFile, []byte(b.String()), 0o644))
}

// apiDifferences says in words how got differs from want.
func apiDifferences(want, got []apiObject) []string {
	index := func(objs []apiObject) map[string]string {
		m := make(map[string]string, len(objs))
		for _, o := range objs {
			m[o.Key] = o.Definition
		}
		return m
	}
	wantBy, gotBy := index(want), index(got)
	var diffs []string
	for _, o := range want {
		def, ok := gotBy[o.Key]
		switch {
		case !ok:
			diffs = append(diffs, fmt.Sprintf("missing: pgmq 1.5.1 has %s %s, this database does not", o.Key, o.Definition))
		case def != o.Definition:
			diffs = append(diffs, fmt.Sprintf("different: %s is %s in pgmq 1.5.1 but %s here", o.Key, o.Definition, def))
		}
	}
	for _, o := range got {
		if _, ok := wantBy[o.Key]; !ok {
			diffs = append(diffs, fmt.Sprintf("extra: this database has %s %s, which pgmq 1.5.1 does not", o.Key, o.Definition))
		}
	}
	return diffs
}

// TestPGMQAPIMatches1_5_1 holds the installed provider to pgmq 1.5.1's public surface: every
// public function with its argument names, types and defaults and its result type, the
// composite types, and the layout of a queue's tables and indexes. On the compatible schema
// this proves the schema; on the real extension it proves the pinned list.
func TestPGMQAPIMatches1_5_1(t *testing.T) {
	t.Parallel()
	pool, _, provider := migratedDB(t)
	got := installedAPI(t, pool)
	if *updateAPI {
		require.Equal(t, "extension", provider, "-update-api reads the real extension: run with TASKER_TEST_PGMQ_MODE=extension")
		writeAPIFile(t, got)
		t.Logf("wrote %d objects to %s", len(got), apiFile)
		return
	}
	want := readAPIFile(t)
	require.NotEmpty(t, want)
	if diffs := apiDifferences(want, got); len(diffs) > 0 {
		t.Fatalf("the %s provider differs from pgmq 1.5.1 in %d ways:\n  %s", provider, len(diffs), strings.Join(diffs, "\n  "))
	}
	t.Logf("the %s provider matches pgmq 1.5.1's %d public objects", provider, len(want))
}

// The comparison itself must notice each kind of difference.
func TestAPIDifferencesNamesEachKind(t *testing.T) {
	t.Parallel()
	want := []apiObject{
		{"function pgmq.read(text, integer, integer, jsonb)", "(a) returns x"},
		{"function pgmq.pop(text)", "(queue_name text) returns SETOF pgmq.message_record"},
	}
	got := []apiObject{
		{"function pgmq.pop(text)", "(q text) returns SETOF pgmq.message_record"},
		{"function pgmq.extra()", "() returns void"},
	}
	diffs := apiDifferences(want, got)
	require.Len(t, diffs, 3)
	require.Contains(t, diffs[0], "missing: pgmq 1.5.1 has function pgmq.read(text, integer, integer, jsonb)")
	require.Contains(t, diffs[1], "different: function pgmq.pop(text)")
	require.Contains(t, diffs[2], "extra: this database has function pgmq.extra()")
	require.Empty(t, apiDifferences(want, want))
}
