package api

import (
	"bytes"
	"crypto/rand"
	"crypto/sha256"
	"crypto/subtle"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"os"
	"regexp"
	"slices"
	"strings"
)

// Tokens is service mode's Authenticator: bearer tokens listed in a tokens file by name, scopes
// and the SHA-256 of the token — never the token itself. SHA-256 rather than bcrypt or argon2:
// the tokens are 256 random bits (NewToken), so a fast hash leaves nothing to guess, while a
// deliberately slow hash would cost tens of milliseconds on every request. A presented token is
// hashed and compared with every entry in constant time, so timing tells nothing of which
// entry (or which prefix) came close.
//
// The file is JSON —
//
//	{"tokens": [{"name": "ci", "sha256": "<64 hex>", "scopes": ["read", "write"]}]}
//
// — or one token per line, "#" starting a comment:
//
//	ci        sha256:<64 hex>  read,write
//	release   sha256:<64 hex>  read,approve
type Tokens struct {
	entries []tokenEntry
}

type tokenEntry struct {
	name   string
	hash   [sha256.Size]byte
	scopes []Scope
}

type tokenJSON struct {
	Name   string   `json:"name"`
	SHA256 string   `json:"sha256"`
	Scopes []string `json:"scopes"`
}

var tokenNameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._@:+-]*$`)

// NewToken makes a token of 256 random bits and the SHA-256 (hex) to put in the tokens file.
func NewToken() (token, sha string, err error) {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		return "", "", err
	}
	token = "karma_" + base64.RawURLEncoding.EncodeToString(b)
	return token, HashToken(token), nil
}

// HashToken is the hex SHA-256 of a token, as the tokens file holds it.
func HashToken(token string) string {
	sum := sha256.Sum256([]byte(token))
	return hex.EncodeToString(sum[:])
}

// LoadTokens reads a tokens file.
func LoadTokens(path string) (*Tokens, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("tokens file: %w", err)
	}
	t, err := ParseTokens(data)
	if err != nil {
		return nil, fmt.Errorf("tokens file %s: %w", path, err)
	}
	return t, nil
}

// ParseTokens reads the JSON or the line format, reporting every problem at once.
func ParseTokens(data []byte) (*Tokens, error) {
	var raw []tokenJSON
	var where []string
	if trimmed := bytes.TrimSpace(data); len(trimmed) > 0 && trimmed[0] == '{' {
		var doc struct {
			Tokens []tokenJSON `json:"tokens"`
		}
		dec := json.NewDecoder(bytes.NewReader(data))
		dec.DisallowUnknownFields() // a "token" field would be a token kept in clear
		if err := dec.Decode(&doc); err != nil {
			return nil, fmt.Errorf("not the JSON tokens file {\"tokens\": [{\"name\", \"sha256\", \"scopes\"}]} (tokens themselves are never stored, only their sha256): %v", err)
		}
		raw = doc.Tokens
		for i := range raw {
			where = append(where, fmt.Sprintf("/tokens/%d", i))
		}
	} else {
		for i, line := range strings.Split(string(data), "\n") {
			line, _, _ = strings.Cut(line, "#")
			f := strings.Fields(line)
			if len(f) == 0 {
				continue
			}
			tj := tokenJSON{Name: f[0]}
			if len(f) > 1 {
				tj.SHA256 = f[1]
			}
			if len(f) > 2 {
				tj.Scopes = strings.Split(f[2], ",")
			}
			if len(f) > 3 {
				tj.Scopes = append(tj.Scopes, "(extra field "+f[3]+")")
			}
			raw = append(raw, tj)
			where = append(where, fmt.Sprintf("line %d", i+1))
		}
	}
	return checkTokens(raw, where)
}

func checkTokens(raw []tokenJSON, where []string) (*Tokens, error) {
	t := &Tokens{}
	var errs []error
	names, hashes := map[string]string{}, map[string]string{}
	for i, tj := range raw {
		bad := func(format string, a ...any) {
			errs = append(errs, fmt.Errorf("%s: "+format, append([]any{where[i]}, a...)...))
		}
		e := tokenEntry{name: tj.Name}
		if !tokenNameRe.MatchString(tj.Name) {
			bad("name %q: want letters, digits and ._@:+- (it is recorded as the actor)", tj.Name)
		} else if prev, dup := names[tj.Name]; dup {
			bad("name %q is also at %s", tj.Name, prev)
		}
		names[tj.Name] = where[i]
		hexHash := strings.TrimPrefix(tj.SHA256, "sha256:")
		if sum, err := hex.DecodeString(hexHash); err != nil || len(sum) != sha256.Size {
			bad("%q is not a SHA-256 (64 hex digits, optionally after sha256:): store the token's hash, never the token", tj.SHA256)
		} else {
			copy(e.hash[:], sum)
			if prev, dup := hashes[hexHash]; dup {
				bad("the same token as %s", prev)
			}
			hashes[hexHash] = where[i]
		}
		if len(tj.Scopes) == 0 {
			bad("no scope: give read, write and/or approve")
		}
		for _, sc := range tj.Scopes {
			if !slices.Contains(AllScopes, Scope(sc)) {
				bad("scope %q: want read, write or approve", sc)
			}
			e.scopes = append(e.scopes, Scope(sc))
		}
		t.entries = append(t.entries, e)
	}
	if len(raw) == 0 {
		errs = append(errs, errors.New("no token: a service without tokens could not be called (there is no unauthenticated mode)"))
	}
	if err := errors.Join(errs...); err != nil {
		return nil, err
	}
	return t, nil
}

// Authenticate implements Authenticator: "Authorization: Bearer <token>".
func (t *Tokens) Authenticate(r *http.Request) (Caller, error) {
	h := r.Header.Get("Authorization")
	scheme, token, ok := strings.Cut(h, " ")
	if h == "" {
		return Caller{}, &AuthError{Reason: "no credentials: send Authorization: Bearer <token> (a token of this server's tokens file)",
			Challenge: `Bearer realm="karma"`}
	}
	if !ok || !strings.EqualFold(scheme, "Bearer") || strings.TrimSpace(token) == "" {
		return Caller{}, &AuthError{Reason: "the Authorization header is not \"Bearer <token>\"",
			Challenge: `Bearer realm="karma", error="invalid_request"`}
	}
	sum := sha256.Sum256([]byte(strings.TrimSpace(token)))
	found := -1
	for i := range t.entries { // every entry, whatever matched: the time does not depend on which
		if subtle.ConstantTimeCompare(sum[:], t.entries[i].hash[:]) == 1 {
			found = i
		}
	}
	if found < 0 {
		return Caller{}, &AuthError{Reason: "unknown token: it is not in this server's tokens file (or was revoked)",
			Challenge: `Bearer realm="karma", error="invalid_token"`}
	}
	e := t.entries[found]
	return Caller{Kind: "api", Name: e.name, Scopes: e.scopes}, nil
}
