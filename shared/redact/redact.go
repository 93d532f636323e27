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

// urlPassword: the password of a URL's user information (scheme://user:password@host), wherever
// the URL is in a string (a connection string, a JDBC URL).
var urlPassword = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*:)([^@/\s]+)@`)

// URLPasswords is s with the password of every URL in it replaced by Placeholder
// ("postgres://app:(sensitive value)@db/app"), and whether any was: a password in a URL is a
// secret whatever key holds it. A reference (${…}) is not a password, and is kept.
func URLPasswords(s string) (string, bool) {
	if !strings.Contains(s, "://") {
		return s, false
	}
	changed := false
	out := urlPassword.ReplaceAllStringFunc(s, func(m string) string {
		sub := urlPassword.FindStringSubmatch(m)
		if sub[2] == Placeholder || strings.HasPrefix(sub[2], "${") {
			return m
		}
		changed = true
		return sub[1] + Placeholder + "@"
	})
	return out, changed
}

// HoldsURLPlaceholder says whether s holds a URL whose password is Placeholder (URLPasswords).
func HoldsURLPlaceholder(s string) bool { return strings.Contains(s, ":"+Placeholder+"@") }

// URLPasswordsIn lists the passwords URLPasswords replaces in s.
func URLPasswordsIn(s string) []string {
	if !strings.Contains(s, "://") {
		return nil
	}
	var out []string
	for _, sub := range urlPassword.FindAllStringSubmatch(s, -1) {
		if sub[2] != Placeholder && !strings.HasPrefix(sub[2], "${") {
			out = append(out, sub[2])
		}
	}
	return out
}
