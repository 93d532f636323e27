package model

import (
	"bytes"
	"encoding/json"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/redact"
)

// RuntimeDiff is how the changed keys of two runtime documents (changed: the keys whose value
// differs, sorted) changed, for the policies of the dependents the change redeploys (policy input
// runtime_diff) — a runtime written outside Karma (ingest) or by an apply (its outcome) —, in the
// shape of a config's diff: op add, change or remove, the values as JSON text, with the values
// of secret-named keys and the passwords of URLs replaced (redact.Value): they are recorded in the
// change and its change set. A SecureString's values are never copied: a SecureString cur has
// its keys all count as changed, and no value given; a prev that was one (prevSecure) gives no
// value before.
func RuntimeDiff(prev, cur []byte, changed []string, prevSecure, secure bool) []message.KeyChange {
	var a, b map[string]json.RawMessage
	if !secure {
		if json.Unmarshal(prev, &a) != nil {
			a = nil // none, or a bare string: everything is new
		}
		if json.Unmarshal(cur, &b) != nil {
			b = nil
		}
	}
	out := make([]message.KeyChange, 0, len(changed))
	for _, k := range changed {
		kc := message.KeyChange{Key: k, Op: "change"}
		if secure {
			out = append(out, kc)
			continue
		}
		before, had := a[k]
		after, has := b[k]
		switch {
		case !had:
			kc.Op = "add"
		case !has:
			kc.Op = "remove"
		}
		if had && !prevSecure {
			kc.Before = shown(k, before)
		}
		if has {
			kc.After = shown(k, after)
		}
		out = append(out, kc)
	}
	return out
}

// shown is a runtime value as Karma records it: the placeholder for a secret-named key, else the
// value with its secrets replaced (redact.Value), as JSON text.
func shown(key string, v json.RawMessage) string {
	if redact.SecretKey(key) {
		return string(redact.MarshalPlain(redact.Placeholder))
	}
	dec := json.NewDecoder(bytes.NewReader(v))
	dec.UseNumber()
	var doc any
	if dec.Decode(&doc) != nil {
		return ""
	}
	r, _ := redact.Value(doc)
	return string(redact.MarshalPlain(r))
}
