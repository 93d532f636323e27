package api

import (
	"regexp"
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
