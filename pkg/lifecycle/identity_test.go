package lifecycle_test

import (
	"bytes"
	"encoding/json"
	"regexp"
	"testing"

	"github.com/google/uuid"
	"github.com/stretchr/testify/require"

	"github.com/tasker-sim/tasker-sim/pkg/lifecycle"
)

func TestCanonicalJSON(t *testing.T) {
	t.Parallel()
	cases := []struct {
		name, in, want string
	}{
		{"sorted keys", `{"b":1,"a":2,"c":3}`, `{"a":2,"b":1,"c":3}`},
		{"sorted at every depth", `{"z":{"y":{"b":[{"d":1,"c":2}],"a":0}},"a":[{"n":1,"m":{"k":1,"j":2}}]}`,
			`{"a":[{"m":{"j":2,"k":1},"n":1}],"z":{"y":{"a":0,"b":[{"c":2,"d":1}]}}}`},
		{"whitespace stripped", " {\n\t\"a\" : [ 1 , 2 ,\r\n 3 ] ,  \"b\" : { } , \"c\":[ ] }\n ", `{"a":[1,2,3],"b":{},"c":[]}`},
		{"big integer kept exactly", `{"n":123456789012345678901234567890}`, `{"n":123456789012345678901234567890}`},
		{"trailing zero kept", `{"price":1.50}`, `{"price":1.50}`},
		{"number forms kept", `[0,-0,1e400,1E+2,2.5e-3,-12.000,9007199254740993]`, `[0,-0,1e400,1E+2,2.5e-3,-12.000,9007199254740993]`},
		{"scalars", `[true,false,null,"s"]`, `[true,false,null,"s"]`},
		{"top-level string", ` "hello" `, `"hello"`},
		{"top-level number", `  42  `, `42`},
		{"top-level null", `null`, `null`},
		{"array order kept", `[3,1,2]`, `[3,1,2]`},
		{"escapes normalised", `{"a":"\u0041\/\t"}`, `{"a":"A/\t"}`},
		{"keys sorted by bytes", `{"b":1,"B":2,"a":3,"_":4,"aa":5}`, `{"B":2,"_":4,"a":3,"aa":5,"b":1}`},
		{"unicode keys", `{"é":1,"e":2}`, `{"e":2,"é":1}`},
		{"escaped key equals plain key", `{"\u0062":1,"a":2}`, `{"a":2,"b":1}`},
		{"duplicate keys keep the last", `{"a":1,"a":2}`, `{"a":2}`},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			t.Parallel()
			got, err := lifecycle.CanonicalJSON([]byte(tc.in))
			require.NoError(t, err)
			require.Equal(t, tc.want, string(got))
			require.True(t, json.Valid(got), "output %q is not valid JSON", got)
			again, err := lifecycle.CanonicalJSON(got)
			require.NoError(t, err)
			require.Equal(t, string(got), string(again), "canonical form is not a fixed point")
		})
	}
}

func TestCanonicalJSONRejects(t *testing.T) {
	t.Parallel()
	for _, in := range []string{
		``,
		`   `,
		`{`,
		`{"a":}`,
		`{"a" 1}`,
		`{a:1}`,
		`[1,2,]`,
		`{"a":1,}`,
		`'a'`,
		`01`,
		`1.`,
		`.5`,
		`+1`,
		`NaN`,
		`tru`,
		`"unterminated`,
		`{"a":1} x`,
		`{"a":1}{"b":2}`,
		`[1] [2]`,
		`1 2`,
		`null null`,
		`"a" "b"`,
	} {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			out, err := lifecycle.CanonicalJSON([]byte(in))
			require.Error(t, err, "input %q gave %q", in, out)
			require.Nil(t, out)
		})
	}
}

// TestCanonicalJSONRejectsTrailingCloser covers trailing data that is a lone closing
// bracket or brace. json.Decoder.More reports false before ']' and '}', so the current
// trailing-data check lets these through.
func TestCanonicalJSONRejectsTrailingCloser(t *testing.T) {
	t.Parallel()
	for _, in := range []string{`{"a":1}}`, `[1]]`, `1]`, `"x"}`, `{} ]`} {
		t.Run(in, func(t *testing.T) {
			t.Parallel()
			out, err := lifecycle.CanonicalJSON([]byte(in))
			require.Error(t, err, "accepted as %q", out)
		})
	}
}

var hexHash = regexp.MustCompile(`^[0-9a-f]{64}$`)

func mustHash(t *testing.T, task uuid.UUID, ctx string, key string) string {
	t.Helper()
	var doc []byte
	if ctx != "" {
		doc = []byte(ctx)
	}
	h, err := lifecycle.IdentityHash(task, doc, key)
	require.NoError(t, err)
	require.Regexp(t, hexHash, h)
	return h
}

func TestIdentityHash(t *testing.T) {
	t.Parallel()
	taskA := uuid.MustParse("0b9f6a3e-8a52-4c1e-9a77-2f1d3c4b5a60")
	taskB := uuid.MustParse("7c2e1d40-3b5f-4e8a-b1c9-6d0a2f3e4b5c")
	const doc = `{"b":1,"a":{"y":2,"x":[3,{"q":1,"p":2}]}}`
	const reordered = "{\n  \"a\": {\n    \"x\": [ 3, { \"p\": 2, \"q\": 1 } ],\n    \"y\": 2\n  },\n  \"b\": 1\n}\n"

	t.Run("format", func(t *testing.T) {
		t.Parallel()
		for _, h := range []string{
			mustHash(t, taskA, doc, ""),
			mustHash(t, uuid.Nil, `{}`, ""),
			mustHash(t, taskA, "", "key-1"),
		} {
			require.Len(t, h, 64)
			require.Regexp(t, hexHash, h)
		}
	})

	t.Run("deterministic", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, mustHash(t, taskA, doc, ""), mustHash(t, taskA, doc, ""))
		require.Equal(t, mustHash(t, taskA, "", "k"), mustHash(t, taskA, "", "k"))
	})

	t.Run("reordered keys and whitespace give the same hash", func(t *testing.T) {
		t.Parallel()
		require.Equal(t, mustHash(t, taskA, doc, ""), mustHash(t, taskA, reordered, ""))
	})

	t.Run("changed value changes the hash", func(t *testing.T) {
		t.Parallel()
		base := mustHash(t, taskA, doc, "")
		for _, changed := range []string{
			`{"b":2,"a":{"y":2,"x":[3,{"q":1,"p":2}]}}`,
			`{"b":1,"a":{"y":2,"x":[3,{"q":1,"p":3}]}}`,
			`{"b":"1","a":{"y":2,"x":[3,{"q":1,"p":2}]}}`,
			`{"b":1.0,"a":{"y":2,"x":[3,{"q":1,"p":2}]}}`,
			`{"b":1,"a":{"y":2,"x":[3,{"q":1,"p":2}]},"c":null}`,
			`{"b":1,"a":{"y":2,"x":[3,{"q":1}]}}`,
			`{"B":1,"a":{"y":2,"x":[3,{"q":1,"p":2}]}}`,
		} {
			require.NotEqual(t, base, mustHash(t, taskA, changed, ""), "context %s", changed)
		}
	})

	t.Run("array order matters", func(t *testing.T) {
		t.Parallel()
		require.NotEqual(t,
			mustHash(t, taskA, doc, ""),
			mustHash(t, taskA, `{"b":1,"a":{"y":2,"x":[{"q":1,"p":2},3]}}`, ""))
		require.NotEqual(t, mustHash(t, taskA, `[1,2]`, ""), mustHash(t, taskA, `[2,1]`, ""))
	})

	t.Run("named task matters", func(t *testing.T) {
		t.Parallel()
		require.NotEqual(t, mustHash(t, taskA, doc, ""), mustHash(t, taskB, doc, ""))
		require.NotEqual(t, mustHash(t, taskA, "", "k"), mustHash(t, taskB, "", "k"))
	})

	t.Run("idempotency key ignores the context", func(t *testing.T) {
		t.Parallel()
		withKey := mustHash(t, taskA, doc, "order-42")
		require.Equal(t, withKey, mustHash(t, taskA, `{"completely":"different"}`, "order-42"))
		require.Equal(t, withKey, mustHash(t, taskA, "", "order-42"))
		// Even a context that is not JSON at all is ignored when a key is given.
		h, err := lifecycle.IdentityHash(taskA, []byte(`{not json`), "order-42")
		require.NoError(t, err)
		require.Equal(t, withKey, h)

		require.NotEqual(t, withKey, mustHash(t, taskA, doc, ""), "key-based and context-based hashes must differ")
		require.NotEqual(t, withKey, mustHash(t, taskA, doc, "order-43"))
	})

	t.Run("key equal to canonical context does not collide", func(t *testing.T) {
		t.Parallel()
		canon, err := lifecycle.CanonicalJSON([]byte(doc))
		require.NoError(t, err)
		require.NotEqual(t, mustHash(t, taskA, doc, ""), mustHash(t, taskA, "", string(canon)))
	})

	t.Run("malformed context is an error", func(t *testing.T) {
		t.Parallel()
		for _, bad := range []string{"", `{`, `{"a":1} x`, `nope`} {
			h, err := lifecycle.IdentityHash(taskA, []byte(bad), "")
			require.Error(t, err, "context %q", bad)
			require.Empty(t, h)
		}
		h, err := lifecycle.IdentityHash(taskA, nil, "")
		require.Error(t, err)
		require.Empty(t, h)
	})
}

func FuzzCanonicalJSON(f *testing.F) {
	for _, seed := range []string{
		`{"b":1,"a":{"y":2,"x":[3,{"q":1,"p":2}]}}`,
		`{"n":123456789012345678901234567890,"p":1.50}`,
		`[true,false,null,"s\u00e9\n",-0,1e400]`,
		" { \"z\" : [ ] , \"a\" : { } } ",
		`"<&>"`,
		`{"a":1,"a":2}`,
		`{"a":1} x`,
		`{`,
		``,
	} {
		f.Add([]byte(seed))
	}
	f.Fuzz(func(t *testing.T, in []byte) {
		out, err := lifecycle.CanonicalJSON(in)
		if json.Valid(in) {
			require.NoError(t, err, "valid input %q rejected", in)
		}
		if err != nil {
			require.Nil(t, out)
			return
		}
		require.True(t, json.Valid(out), "output %q of %q is not valid JSON", out, in)
		again, err := lifecycle.CanonicalJSON(out)
		require.NoError(t, err, "canonical form %q rejected", out)
		require.Equal(t, string(out), string(again), "not idempotent for %q", in)
		require.False(t, whitespaceOutsideStrings(out), "insignificant whitespace left in %q", out)

		// The canonical form means the same as the input (when the input is valid).
		if json.Valid(in) {
			require.Equal(t, decodeNumbers(t, in), decodeNumbers(t, out), "meaning changed: %q -> %q", in, out)
		}
	})
}

// whitespaceOutsideStrings reports whether out has whitespace that is not inside a
// JSON string.
func whitespaceOutsideStrings(out []byte) bool {
	inString, escaped := false, false
	for _, c := range out {
		switch {
		case escaped:
			escaped = false
		case inString && c == '\\':
			escaped = true
		case c == '"':
			inString = !inString
		case !inString && (c == ' ' || c == '\t' || c == '\r' || c == '\n'):
			return true
		}
	}
	return false
}

func decodeNumbers(t *testing.T, doc []byte) any {
	t.Helper()
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	require.NoError(t, dec.Decode(&v))
	return v
}
