// Package redact holds the one rule of which values Karma does not show: those under keys named
// like secrets. shared/api applies it to everything the API and the CLI show (api.RedactBody);
// shared/model to the diagnostics it writes, which quote values.
package redact

import (
	"regexp"
	"strings"
)

// Placeholder replaces a value Karma does not show.
const Placeholder = "(sensitive value)"

// secretKey: password, passwd, passphrase, secret, token, private key, credential, api key — any
// case, any separator, anywhere in the key.
var secretKey = regexp.MustCompile(`(?i)(pass(word|wd|phrase)?|secret|token|private[-_ ]?key|credential|api[-_ ]?key)`)

// SecretKey says whether the values under key k are not shown.
func SecretKey(k string) bool { return secretKey.MatchString(k) }

// SecretPointer says whether the value at JSON pointer ptr (RFC 6901) is under a secret-named
// key: any of its reference tokens is one.
func SecretPointer(ptr string) bool {
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		if SecretKey(unescape.Replace(tok)) {
			return true
		}
	}
	return false
}

var unescape = strings.NewReplacer("~1", "/", "~0", "~")
