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
// defence, in case someone wrote a literal secret into a config, or a module outputs one, the
// values shared/redact's rule hides are replaced too, wherever they are (redactDeep): under keys
// named like secrets, in name/value entries with such a name ({"name": "DB_PASSWORD", "value":
// …}), the passwords of URLs (postgres://app:…@db) and secret-named NAME=value pairs in strings,
// inside JSON documents held in strings as well.

// Redacted replaces a value the API does not show.
const Redacted = redact.Placeholder

// redactedPointers lists the JSON pointers (under prefix) of every string that is or holds
// Redacted in v (redactDeep redacts inside strings: a URL's password, DB_PASSWORD=… in a script,
// a JSON document held in a string): a proposal built from a redacted environment file that
// still holds the placeholder would commit it as the secret's value, so such a proposal is
// refused.
func redactedPointers(v any, prefix string) []string {
	var out []string
	switch x := v.(type) {
	case string:
		if redact.HoldsPlaceholder(x) {
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
// one that is not JSON as a JSON string, the passwords of its URLs and its secret-named
// NAME=value pairs redacted (redact.Text).
func RedactBody(body []byte) json.RawMessage {
	if !json.Valid(body) {
		text, _ := redact.Text(string(body))
		b, _ := json.Marshal(text)
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
// plans), shared/redact's: it copies v with the values that rule hides replaced, and says whether
// it replaced anything. v is not modified.
func redactDeep(v any) (any, bool) { return redact.Value(v) }

// marshalPlain is json.Marshal without escaping <, > and & (an author's "Name <email>" reads as
// written).
func marshalPlain(v any) []byte { return redact.MarshalPlain(v) }
