package orchestrator

import (
	"testing"

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
	c.forgetNames() // a registration is heard while the lookup reads the row
	c.rememberName(k, old, epoch)
	got, epoch = c.named(k)
	require.Nil(t, got, "what was read before the registration is not kept")

	c.rememberName(k, fresh, epoch)
	got, _ = c.named(k)
	require.Same(t, fresh, got)

	c.forgetNames()
	got, _ = c.named(k)
	require.Nil(t, got, "a registration drops every resolved name")
}
