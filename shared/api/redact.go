package api

import (
	"bytes"
	"encoding/json"
	"sort"
	"strconv"
	"strings"

	"github.com/usekarma/karma/shared/redact"
)

// Secrets are kept out of what the API shows. A component's config is shown as resolved, with
// its ${...} references not substituted, so the SecureString runtimes it reads never appear; a
// runtime stored as a SecureString is shown as "(sensitive value)" whole. As a second line of
// defence, values under keys named like secrets (password, secret, token, private key,
// credentials, api key; any case, any separator) are replaced too, wherever they are — inside
// JSON documents held in strings as well (redactDeep) — and so are the passwords of URLs
// (postgres://app:…@db), in case someone wrote a literal secret into a config, or a module
// outputs one.

// Redacted replaces a value the API does not show.
const Redacted = redact.Placeholder

// redactedPointers lists the JSON pointers (under prefix) of every string equal to Redacted in
// v, or holding a JSON document that holds it (redactDeep redacts inside those): a proposal
// built from a redacted environment file that still holds the placeholder would commit it as the
// secret's value, so such a proposal is refused.
func redactedPointers(v any, prefix string) []string {
	var out []string
	switch x := v.(type) {
	case string:
		if x == Redacted || redact.HoldsURLPlaceholder(x) {
			out = append(out, prefix)
		} else if doc, ok := embeddedJSON(x); ok && len(redactedPointers(doc, "")) > 0 {
			out = append(out, prefix)
		}
	case map[string]any:
		keys := make([]string, 0, len(x))
		for k := range x {
			keys = append(keys, k)
		}
		sort.Strings(keys)
		for _, k := range keys {
			out = append(out, redactedPointers(x[k], prefix+"/"+pointerToken.Replace(k))...)
		}
	case []any:
		for i, val := range x {
			out = append(out, redactedPointers(val, prefix+"/"+strconv.Itoa(i))...)
		}
	}
	return out
}

// pointerToken escapes a key as a JSON pointer reference token (RFC 6901).
var pointerToken = strings.NewReplacer("~", "~0", "/", "~1")

// RedactBody is an audit record's body as GET /log, `karma audit log --json` and the web page
// show it: the same secrets kept out as everywhere else in the API. Every message type and
// version is stored as received, and some carry configs as written — a change request's proposed
// environment files (change.detected v2, and v3 and v4 without a commit: request.configs, each a
// JSON document in a string) may hold a literal password — so values under secret-named keys are
// replaced wherever they are, inside such embedded JSON documents too. The stored record is not
// touched (its hash still verifies); a body with nothing to hide is returned byte for byte, and
// one that is not JSON as a JSON string.
func RedactBody(body []byte) json.RawMessage {
	if !json.Valid(body) {
		b, _ := json.Marshal(string(body))
		return b
	}
	dec := json.NewDecoder(bytes.NewReader(body))
	dec.UseNumber() // numbers as written
	var v any
	if err := dec.Decode(&v); err != nil {
		return body
	}
	out, changed := redactDeep(v)
	if !changed {
		return body
	}
	return marshalPlain(out)
}

// redactDeep is the one rule of what the API shows (RedactBody, GET /components, a change's
// plans): it copies v with the values of secret-named keys replaced, also inside strings holding
// a JSON object or array, and the passwords of URLs in any string (redact.URLPasswords), and
// says whether it replaced anything. A value already Redacted is not
// a replacement. v is not modified.
func redactDeep(v any) (any, bool) {
	switch x := v.(type) {
	case map[string]any:
		out, changed := make(map[string]any, len(x)), false
		for k, val := range x {
			if redact.SecretKey(k) && val != nil {
				out[k], changed = Redacted, changed || val != Redacted
				continue
			}
			r, c := redactDeep(val)
			out[k], changed = r, changed || c
		}
		return out, changed
	case []any:
		out, changed := make([]any, len(x)), false
		for i, val := range x {
			r, c := redactDeep(val)
			out[i], changed = r, changed || c
		}
		return out, changed
	case string:
		if doc, ok := embeddedJSON(x); ok {
			if r, c := redactDeep(doc); c {
				return string(marshalPlain(r)), true
			}
			return x, false
		}
		return redact.URLPasswords(x)
	}
	return v, false
}

// embeddedJSON is the JSON object or array a string holds (numbers as written); false when it
// holds none.
func embeddedJSON(x string) (any, bool) {
	s := strings.TrimSpace(x)
	if s == "" || (s[0] != '{' && s[0] != '[') || !json.Valid([]byte(s)) {
		return nil, false
	}
	dec := json.NewDecoder(strings.NewReader(s))
	dec.UseNumber()
	var doc any
	if dec.Decode(&doc) != nil {
		return nil, false
	}
	return doc, true
}

// marshalPlain is json.Marshal without escaping <, > and & (an author's "Name <email>" reads as
// written).
func marshalPlain(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // decoded JSON: always encodes
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
