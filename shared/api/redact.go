package api

import (
	"regexp"
	"sort"
	"strconv"
	"strings"
)

// Secrets are kept out of what the API shows. A component's config is shown as resolved, with
// its ${...} references not substituted, so the SecureString runtimes it reads never appear; a
// runtime stored as a SecureString is shown as "(sensitive value)" whole. As a second line of
// defence, values under keys named like secrets (password, secret, token, private key,
// credentials, api key; any case, any separator) are replaced too, wherever they are — in case
// someone wrote a literal secret into a config, or a module outputs one.

// Redacted replaces a value the API does not show.
const Redacted = "(sensitive value)"

var secretKey = regexp.MustCompile(`(?i)(pass(word|wd|phrase)?|secret|token|private[-_ ]?key|credential|api[-_ ]?key)`)

// redactSecrets copies v with the values of secret-named keys replaced.
func redactSecrets(v any) any {
	switch x := v.(type) {
	case map[string]any:
		out := make(map[string]any, len(x))
		for k, val := range x {
			if secretKey.MatchString(k) && val != nil {
				out[k] = Redacted
			} else {
				out[k] = redactSecrets(val)
			}
		}
		return out
	case []any:
		out := make([]any, len(x))
		for i, val := range x {
			out[i] = redactSecrets(val)
		}
		return out
	}
	return v
}

// redactedPointers lists the JSON pointers (under prefix) of every string equal to Redacted in
// v: a proposal built from a redacted environment file that still holds the placeholder would
// commit it as the secret's value, so such a proposal is refused.
func redactedPointers(v any, prefix string) []string {
	var out []string
	switch x := v.(type) {
	case string:
		if x == Redacted {
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
