package orchestrator

import (
	"testing"
	"time"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"
)

// A lookup that read a template's row before a registration was heard must not cache
// what it read: it may be the older version.
func TestTemplateCacheForgetsAcrossARegistration(t *testing.T) {
	t.Parallel()
	c := newTemplateCache()
	k := templateKey{"ns", "name", "1.0.0"}
	old, fresh := &namedTask{}, &namedTask{}

	got, epoch := c.named(k)
	require.Nil(t, got)
	c.forget(uuid.New()) // a registration is heard while the lookup reads the row
	c.rememberName(k, old, epoch)
	got, epoch = c.named(k)
	require.Nil(t, got, "what was read before the registration is not kept")

	c.rememberName(k, fresh, epoch)
	got, _ = c.named(k)
	require.Same(t, fresh, got)

	c.forget(uuid.New())
	got, _ = c.named(k)
	require.Nil(t, got, "a registration drops every resolved name")
}

// Without any notification (a listener that is down), a resolved name is read again
// after templateNameTTL.
func TestTemplateCacheNamesExpire(t *testing.T) {
	t.Parallel()
	c := newTemplateCache()
	now := time.Unix(1000, 0)
	c.now = func() time.Time { return now }
	k := templateKey{"ns", "name", "1.0.0"}
	nt := &namedTask{}
	_, epoch := c.named(k)
	c.rememberName(k, nt, epoch)
	now = now.Add(templateNameTTL - time.Millisecond)
	got, _ := c.named(k)
	require.Same(t, nt, got)
	now = now.Add(time.Millisecond)
	got, _ = c.named(k)
	require.Nil(t, got, "expired")
}

// A slow reader of an older version does not replace a newer one; a registration's
// notification drops its template, a reconnect drops them all.
func TestTemplateCacheKeepsTheLatestVersion(t *testing.T) {
	t.Parallel()
	c := newTemplateCache()
	id, other := uuid.New(), uuid.New()
	at := time.Unix(1000, 0)
	newer := &namedTask{uuid: id, updatedAt: at.Add(time.Second)}
	older := &namedTask{uuid: id, updatedAt: at}
	_, epoch := c.task(id)
	require.Same(t, newer, c.keep(newer, epoch))
	require.Same(t, newer, c.keep(older, epoch), "the older version read late is not kept")
	require.Same(t, newer, c.byTask[id])
	c.keep(&namedTask{uuid: other, updatedAt: at}, epoch)

	c.forget(id)
	require.Nil(t, c.byTask[id])
	require.NotNil(t, c.byTask[other], "only the registered template is dropped")
	c.forget(uuid.Nil)
	require.Empty(t, c.byTask, "a reconnect drops every template")

	_, stale := c.task(id)
	c.forget(id) // a registration is heard while the template is read
	read := &namedTask{uuid: id, updatedAt: at.Add(2 * time.Second)}
	require.Same(t, read, c.keep(read, stale), "returned to its caller")
	require.Nil(t, c.byTask[id], "but not cached: it may be the older version")
}
