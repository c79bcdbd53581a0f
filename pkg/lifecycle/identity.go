package lifecycle

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"sort"

	"github.com/google/uuid"
)

// CanonicalJSON re-encodes a JSON document so that equal documents give equal bytes:
// object keys sorted at every depth, no insignificant whitespace, and numbers kept
// exactly as written (never rounded through float64).
func CanonicalJSON(doc []byte) ([]byte, error) {
	dec := json.NewDecoder(bytes.NewReader(doc))
	dec.UseNumber()
	var v any
	if err := dec.Decode(&v); err != nil {
		return nil, fmt.Errorf("canonical json: %w", err)
	}
	// More() misses a stray closer such as the "]" in `1]`; decoding again must hit EOF.
	if _, err := dec.Token(); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("canonical json: trailing data after the document")
	}
	var buf bytes.Buffer
	if err := writeCanonical(&buf, v); err != nil {
		return nil, err
	}
	return buf.Bytes(), nil
}

func writeCanonical(buf *bytes.Buffer, v any) error {
	switch x := v.(type) {
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		buf.WriteByte('{')
		for i, k := range keys {
			if i > 0 {
				buf.WriteByte(',')
			}
			kb, _ := json.Marshal(k)
			buf.Write(kb)
			buf.WriteByte(':')
			if err := writeCanonical(buf, x[k]); err != nil {
				return err
			}
		}
		buf.WriteByte('}')
	case []any:
		buf.WriteByte('[')
		for i, e := range x {
			if i > 0 {
				buf.WriteByte(',')
			}
			if err := writeCanonical(buf, e); err != nil {
				return err
			}
		}
		buf.WriteByte(']')
	default:
		b, err := json.Marshal(x)
		if err != nil {
			return fmt.Errorf("canonical json: %w", err)
		}
		buf.Write(b)
	}
	return nil
}

// IdentityHash is a task's identity: SHA-256, hex encoded, over the named task and
// either the caller's idempotency key or the canonical form of the context. Two requests
// with the same identity are the same task, and the second is refused.
func IdentityHash(namedTask uuid.UUID, context []byte, idempotencyKey string) (string, error) {
	h := sha256.New()
	h.Write(namedTask[:])
	if idempotencyKey != "" {
		h.Write([]byte("\x00idempotency_key\x00"))
		h.Write([]byte(idempotencyKey))
	} else {
		canon, err := CanonicalJSON(context)
		if err != nil {
			return "", err
		}
		h.Write([]byte("\x00context\x00"))
		h.Write(canon)
	}
	return hex.EncodeToString(h.Sum(nil)), nil
}
