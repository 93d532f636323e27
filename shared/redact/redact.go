// Package redact holds the one rule of which values Karma does not show, in one place:
//
//   - the value under a key named like a secret (SecretKey), whole, wherever it is in a JSON
//     document;
//   - the value of a name/value entry whose name is named like a secret: {"name": "DB_PASSWORD",
//     "value": …}, the shape of ECS container definitions, Kubernetes and Lambda environment
//     lists, CloudFormation parameters; a Kubernetes Secret's data (shaped);
//   - in any string, the password of a URL (scheme://user:…@host) and the value of a
//     secret-named NAME=value pair (DB_PASSWORD=… in an environment file or a shell script,
//     Password=…; in a connection string, ?token=… in a query) (Text);
//   - all of these inside a JSON object or array held in a string (Terraform's
//     container_definitions, a tag made with jsonencode) too.
//
// Value applies it to a decoded JSON document (shared/api: everything the API and the CLI show),
// Secrets lists what it hides (shared/terraform scrubs those from Terraform's errors), SecretAt
// says whether a JSON pointer is hidden (shared/model: schema diagnostics, which quote values).
package redact

import (
	"bytes"
	"encoding/json"
	"regexp"
	"sort"
	"strings"
)

// Placeholder replaces a value Karma does not show.
const Placeholder = "(sensitive value)"

// secretKey is matched against a key lower-cased with its camelCase humps split by "_"
// (words): password, passwd, pass (anywhere: passphrase, and passenger too), pwd, secret,
// token, credential, private key, api key, connection string (conn_str, connstr), a webhook's
// URL (its path is its credential); dsn as a word only (it is too short to be looked for inside
// other words: rdsName); authorization as the whole key (an HTTP header: authorization_type is
// not matched); an access key or account key, not its id (Azure's primary_access_key,
// AccountKey=… and SharedAccessKey=… in its connection strings; not access_key_id) and a shared
// access signature. Not matched: key alone, certificate, signature, salt.
var secretKey = regexp.MustCompile(`pass|pwd|secret|token|credential|private_?key|api_?key|conn(ection)?_?str(ings?)?([^a-z]|$)|webhook_?url|(access|account)_?key([^_a-z]|$)|shared_?access_?signature|(^|[^a-z0-9])dsn([^a-z]|$)|^(proxy_)?authorization$`)

// SecretKey says whether the values under key k are not shown.
func SecretKey(k string) bool { return secretKey.MatchString(words(k)) }

// words is k lower-cased, with "_" between the words of camelCase (dbDSN: db_dsn, rdsName:
// rds_name, DSNString: dsn_string) and for every other separator (space, "-", ".").
func words(k string) string {
	var b strings.Builder
	rs := []rune(k)
	for i, r := range rs {
		lower := r >= 'a' && r <= 'z'
		upper := r >= 'A' && r <= 'Z'
		digit := r >= '0' && r <= '9'
		switch {
		case upper:
			if i > 0 {
				p := rs[i-1]
				if (p >= 'a' && p <= 'z') || (p >= '0' && p <= '9') ||
					(p >= 'A' && p <= 'Z' && i+1 < len(rs) && rs[i+1] >= 'a' && rs[i+1] <= 'z') {
					b.WriteByte('_')
				}
			}
			b.WriteRune(r + 'a' - 'A')
		case lower, digit:
			b.WriteRune(r)
		default:
			b.WriteByte('_')
		}
	}
	return b.String()
}

// Shapes whose values are secrets whatever their keys:
//   - name/value entries: an object with a name key (any case: name, key, parameterkey,
//     optionname) holding a secret-named string has its value key (any case: value,
//     parametervalue) hidden. ECS's and Kubernetes' valueFrom (a reference) is not a value key;
//   - a Kubernetes Secret (an object whose kind is "Secret") has its data and stringData hidden.
var (
	entryNames  = map[string]bool{"name": true, "key": true, "parameterkey": true, "optionname": true}
	entryValues = map[string]bool{"value": true, "parametervalue": true}
)

// shaped lists the keys of m whose values are hidden because of m's shape, not their names;
// nil when there is none.
func shaped(m map[string]any) map[string]bool {
	var out map[string]bool
	if m["kind"] == "Secret" {
		out = map[string]bool{"data": true, "stringData": true}
	}
	secret := false
	for k, v := range m {
		if s, ok := v.(string); ok && entryNames[strings.ToLower(k)] && SecretKey(s) {
			secret = true
			break
		}
	}
	if !secret {
		return out
	}
	for k := range m {
		if entryValues[strings.ToLower(k)] {
			if out == nil {
				out = map[string]bool{}
			}
			out[k] = true
		}
	}
	return out
}

// hidden says whether the value under key k of object m, whose shaped keys are e, is not shown.
func hidden(m map[string]any, e map[string]bool, k string) bool {
	return m[k] != nil && (SecretKey(k) || e[k])
}

// Value copies v (decoded JSON) with every value the rule hides replaced by Placeholder, and
// says whether it replaced anything (a value already Placeholder is not a replacement). A
// string holding a JSON object or array that holds a secret is replaced by that document,
// redacted, compact. v is not modified.
func Value(v any) (any, bool) {
	switch x := v.(type) {
	case map[string]any:
		out, changed, e := make(map[string]any, len(x)), false, shaped(x)
		for k, val := range x {
			if hidden(x, e, k) {
				out[k], changed = Placeholder, changed || val != Placeholder
				continue
			}
			r, c := Value(val)
			out[k], changed = r, changed || c
		}
		return out, changed
	case []any:
		out, changed := make([]any, len(x)), false
		for i, val := range x {
			r, c := Value(val)
			out[i], changed = r, changed || c
		}
		return out, changed
	case string:
		if doc, ok := JSONIn(x); ok {
			if r, c := Value(doc); c {
				return string(MarshalPlain(r)), true
			}
			return x, false
		}
		return Text(x)
	}
	return v, false
}

// Secrets lists the values Value hides in v: every string and number (as written, when v was
// decoded with UseNumber) under a hidden key, and what Text hides in every string, inside JSON
// held in strings too; longest first.
func Secrets(v any) []string {
	var out []string
	var walk func(v any, under bool)
	walk = func(v any, under bool) {
		switch x := v.(type) {
		case map[string]any:
			e := shaped(x)
			for k, val := range x {
				walk(val, under || hidden(x, e, k))
			}
		case []any:
			for _, e := range x {
				walk(e, under)
			}
		case string:
			if under && x != Placeholder {
				out = append(out, x)
			}
			if doc, ok := JSONIn(x); ok {
				walk(doc, under)
			} else {
				out = append(out, TextSecrets(x)...)
			}
		case json.Number:
			if under {
				out = append(out, x.String())
			}
		}
	}
	walk(v, false)
	sort.SliceStable(out, func(i, j int) bool { return len(out[i]) > len(out[j]) })
	return out
}

// SecretAt says whether the value at JSON pointer ptr (RFC 6901) of doc (decoded JSON) is hidden
// by the rule, whole or as part of what is hidden: one of the keys on its way is named like a
// secret, or is the value of a name/value entry with a secret-named name, or a Secret's data
// (shaped).
func SecretAt(doc any, ptr string) bool {
	if ptr == "" || ptr == "/" {
		return false
	}
	cur := doc
	for _, tok := range strings.Split(strings.TrimPrefix(ptr, "/"), "/") {
		tok = unescape.Replace(tok)
		if SecretKey(tok) {
			return true
		}
		switch x := cur.(type) {
		case map[string]any:
			if shaped(x)[tok] {
				return true
			}
			cur = x[tok]
		case []any:
			i, ok := index(tok, len(x))
			if !ok {
				cur = nil
				continue
			}
			cur = x[i]
		default:
			cur = nil
		}
	}
	return false
}

func index(tok string, n int) (int, bool) {
	if tok == "" || (len(tok) > 1 && tok[0] == '0') {
		return 0, false
	}
	i := 0
	for _, r := range tok {
		if r < '0' || r > '9' || i > n {
			return 0, false
		}
		i = i*10 + int(r-'0')
	}
	return i, i < n
}

var unescape = strings.NewReplacer("~1", "/", "~0", "~")

// urlPassword: the password of a URL's user information (scheme://user:password@host), wherever
// the URL is in a string (a connection string, a JDBC URL).
var urlPassword = regexp.MustCompile(`([A-Za-z][A-Za-z0-9+.-]*://[^/@:\s]*:)([^@/\s]+)@`)

// pair: NAME=value in text — an environment file, a shell script (export DB_PASSWORD=…), a
// key=value connection string (Server=…;Password=…; host=… password=…), a query (?token=…), a
// command line (--api-key=…); the value quoted ("…", '…') or up to a space, ";", "&", "," or a
// quote. Its name is judged by SecretKey.
var pair = regexp.MustCompile(`([A-Za-z_][A-Za-z0-9_.-]*)[ \t]*=[ \t]*("[^"\n]*"|'[^'\n]*'|[^\s;&,"'=][^\s;&,"']*)`)

// kept says whether the value found at s[i:] is left as it is: the placeholder already, or a
// reference (${…}).
func kept(s string, i int) bool {
	v := strings.TrimLeft(s[i:], `"'`)
	return strings.HasPrefix(v, Placeholder) || strings.HasPrefix(v, "${")
}

// spans lists the [start, end) of every secret in s (a secret-named pair's value without its
// quotes, a URL's password not inside one), in order, not overlapping.
func spans(s string) [][2]int {
	var out [][2]int
	for at := 0; strings.Contains(s[at:], "="); {
		m := pair.FindStringSubmatchIndex(s[at:])
		if m == nil {
			break
		}
		for k := range m {
			m[k] += at
		}
		if !SecretKey(s[m[2]:m[3]]) {
			at = m[4] // the value of a name no secret's may hold pairs: OPTS="a=1 token=…", Server=db;Password=…
			continue
		}
		at = m[5]
		if kept(s, m[4]) {
			continue
		}
		i, j := m[4], m[5]
		if q := s[i]; (q == '"' || q == '\'') && j-i >= 2 && s[j-1] == q {
			i, j = i+1, j-1
		}
		if i < j {
			out = append(out, [2]int{i, j})
		}
	}
	if strings.Contains(s, "://") {
		for _, m := range urlPassword.FindAllStringSubmatchIndex(s, -1) {
			if !kept(s, m[4]) && !overlaps(out, m[4], m[5]) {
				out = append(out, [2]int{m[4], m[5]})
			}
		}
	}
	sort.Slice(out, func(a, b int) bool { return out[a][0] < out[b][0] })
	return out
}

func overlaps(spans [][2]int, i, j int) bool {
	for _, sp := range spans {
		if i < sp[1] && sp[0] < j {
			return true
		}
	}
	return false
}

// Text is s with the secrets the rule finds in text replaced by Placeholder — the password of
// every URL ("postgres://app:(sensitive value)@db/app") and the value of every secret-named
// NAME=value pair ("DB_PASSWORD=(sensitive value)") — and whether any was. A reference (${…}) in
// their place is not a secret, and is kept.
func Text(s string) (string, bool) {
	sp := spans(s)
	if len(sp) == 0 {
		return s, false
	}
	var b strings.Builder
	last := 0
	for _, x := range sp {
		b.WriteString(s[last:x[0]])
		b.WriteString(Placeholder)
		last = x[1]
	}
	b.WriteString(s[last:])
	return b.String(), true
}

// TextSecrets lists the secrets Text replaces in s.
func TextSecrets(s string) []string {
	var out []string
	for _, x := range spans(s) {
		out = append(out, s[x[0]:x[1]])
	}
	return out
}

// HoldsPlaceholder says whether s holds Placeholder: it is, or holds, a value redacted for
// showing, not a value to write back.
func HoldsPlaceholder(s string) bool { return strings.Contains(s, Placeholder) }

// JSONIn is the JSON object or array string x holds (numbers as written); false when it holds
// none.
func JSONIn(x string) (any, bool) {
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

// MarshalPlain is json.Marshal of decoded JSON without escaping <, > and & (an author's
// "Name <email>" reads as written), and without a trailing newline.
func MarshalPlain(v any) []byte {
	var buf bytes.Buffer
	enc := json.NewEncoder(&buf)
	enc.SetEscapeHTML(false)
	_ = enc.Encode(v) // decoded JSON: always encodes
	return bytes.TrimSuffix(buf.Bytes(), []byte("\n"))
}
