package api

import (
	"errors"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"

	"github.com/usekarma/karma/shared/audit"
)

// Every route that needs a scope refuses a caller without credentials (401, with a Bearer
// challenge) and a caller lacking the scope (403), and audits both; the public routes need
// nothing.
func TestEveryRouteChecksItsScope(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	lacking := map[Scope]string{ScopeRead: "", ScopeWrite: "approver", ScopeApprove: "writer"}
	for _, rt := range (&server{}).table() {
		path := strings.NewReplacer("{env}", "prod", "{type}", "vpc", "{nickname}", "core", "{id}", "x").Replace(rt.pattern)
		if rt.scope == "" {
			if rt.pattern == "/webhooks/git" {
				continue // checks the sender's signature: shared/httpapi's tests
			}
			h.call(rt.method, path, "", nil).want(http.StatusOK)
			continue
		}
		r := h.call(rt.method, path, "", nil).want(http.StatusUnauthorized)
		r.problem()
		if r.Header.Get("WWW-Authenticate") != `Bearer realm="karma"` {
			t.Errorf("%s %s: WWW-Authenticate %q", rt.method, path, r.Header.Get("WWW-Authenticate"))
		}
		if who := lacking[rt.scope]; who != "" {
			p := h.call(rt.method, path, who, nil).want(http.StatusForbidden).problem()
			if !strings.Contains(p.Detail, string(rt.scope)) || !strings.Contains(p.Detail, who) {
				t.Errorf("%s %s as %s: %s", rt.method, path, who, p.Detail)
			}
		}
	}
	writes := 0 // the routes needing the write scope, which the approver lacks
	for _, rt := range (&server{}).table() {
		if rt.scope == ScopeWrite {
			writes++
		}
	}
	recs, err := h.audit.Query(t.Context(), audit.Query{Actor: "approver"})
	if err != nil || len(recs) != writes || writes < 2 {
		t.Fatalf("the approver's %d refusals are not audited: %+v %v", writes, recs, err)
	}
	for _, rec := range recs {
		if rec.Type != EntryForbidden || !strings.HasPrefix(rec.Chain, "security/") {
			t.Errorf("the approver's refusal is audited as %s in %s", rec.Type, rec.Chain)
		}
	}
}

func TestBadCredentials(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	for header, challenge := range map[string]string{
		"Basic dXNlcjpwYXNz":               `Bearer realm="karma", error="invalid_request"`,
		"Bearer":                           `Bearer realm="karma", error="invalid_request"`,
		"Bearer karma_unknown_":            `Bearer realm="karma", error="invalid_token"`,
		"bearer " + tokens["reader"] + "x": `Bearer realm="karma", error="invalid_token"`,
	} {
		r := h.call("GET", "/changes", "", nil, "Authorization", header).want(http.StatusUnauthorized)
		r.problem()
		if r.Header.Get("WWW-Authenticate") != challenge {
			t.Errorf("%q: challenge %q, want %q", header, r.Header.Get("WWW-Authenticate"), challenge)
		}
	}
	// The scheme is case-insensitive.
	h.call("GET", "/changes", "", nil, "Authorization", "bearer "+tokens["reader"]).want(http.StatusOK)
	recs, _ := h.audit.Query(t.Context(), audit.Query{})
	n := 0
	for _, r := range recs {
		if r.Type == EntryUnauthenticated {
			n++
		}
	}
	if n != 4 {
		t.Errorf("%d refusals audited, want 4", n)
	}
}

func TestTokensFile(t *testing.T) {
	t.Parallel()
	token, sum, err := NewToken()
	if err != nil || !strings.HasPrefix(token, "karma_") || len(token) < 40 || sum != HashToken(token) || len(sum) != 64 {
		t.Fatalf("NewToken = %q, %q, %v", token, sum, err)
	}
	for name, file := range map[string]string{
		"lines": "# comment\n\nci sha256:" + sum + " read,write   # trailing comment\n",
		"json":  `{"tokens": [{"name": "ci", "sha256": "` + sum + `", "scopes": ["read", "write"]}]}`,
	} {
		tk, err := ParseTokens([]byte(file))
		if err != nil {
			t.Fatalf("%s: %v", name, err)
		}
		r := httptest.NewRequest("GET", "/", nil)
		r.Header.Set("Authorization", "Bearer "+token)
		c, err := tk.Authenticate(r)
		if err != nil || c.Name != "ci" || c.Kind != "api" || !c.Has(ScopeWrite) || c.Has(ScopeApprove) {
			t.Errorf("%s: caller %+v, %v", name, c, err)
		}
	}

	bad := "ci sha256:" + sum + " read\n" + // fine
		"ci sha256:" + sum + " write\n" + // the same name, the same token
		"x " + token + " read\n" + // a token in clear
		"y sha256:" + strings.Repeat("0", 64) + " admin\n" + // no such scope
		"z sha256:" + strings.Repeat("1", 64) + "\n" // no scope
	_, err = ParseTokens([]byte(bad))
	for _, want := range []string{"line 2: name \"ci\" is also at line 1", "line 2: the same token as line 1", "line 3: \"" + token + "\" is not a SHA-256",
		"line 4: scope \"admin\"", "line 5: no scope"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("error %v does not say %q", err, want)
		}
	}
	for name, file := range map[string]string{
		"empty":           "# nobody\n",
		"token in clear":  `{"tokens": [{"name": "ci", "token": "` + token + `", "scopes": ["read"]}]}`,
		"json, bad scope": `{"tokens": [{"name": "ci", "sha256": "` + sum + `", "scopes": ["all"]}]}`,
	} {
		if _, err := ParseTokens([]byte(file)); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func TestInsecureLocalOnlyOnLoopback(t *testing.T) {
	t.Parallel()
	for addr, ok := range map[string]bool{
		"127.0.0.1:8080": true, "127.1.2.3:0": true, "[::1]:8080": true, "localhost:8080": true, "LOCALHOST:1": true,
		":8080": false, "0.0.0.0:8080": false, "[::]:8080": false, "10.0.0.5:8080": false, "example.com:80": false, "127.0.0.1": false,
	} {
		err := CheckInsecureLocal(addr)
		if (err == nil) != ok || (err != nil && !errors.Is(err, ErrNotLoopback)) {
			t.Errorf("CheckInsecureLocal(%q) = %v", addr, err)
		}
	}
	local := httptest.NewRequest("POST", "/request-change", nil)
	local.Host = "127.0.0.1:8080"
	c, err := InsecureLocal{User: "ada"}.Authenticate(local)
	if err != nil || c.Name != "ada" || c.Kind != "cli" || !c.Has(ScopeApprove) {
		t.Errorf("local caller %+v, %v", c, err)
	}
}

// A local server answers its own page and local clients, never another web site open in the
// same browser: a cross-site request (a POST without a body needs no preflight) or one reaching
// 127.0.0.1 through another site's name (DNS rebinding) has no caller, so it approves nothing
// in the local user's name.
func TestInsecureLocalRefusesOtherSites(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	cfg := h.config()
	cfg.Auth = InsecureLocal{User: "ada"}
	srv, err := New(cfg)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name, method, path, host string
		header                   map[string]string
		want                     int
	}{
		{"a local client", "GET", "/me", "127.0.0.1:8080", nil, http.StatusOK},
		{"localhost", "GET", "/me", "localhost:8080", nil, http.StatusOK},
		{"IPv6 loopback", "GET", "/me", "[::1]:8080", nil, http.StatusOK},
		{"its own page", "POST", "/changes/x/approve", "127.0.0.1:8080", map[string]string{"Origin": "http://127.0.0.1:8080", "Sec-Fetch-Site": "same-origin"}, http.StatusNotFound},
		{"its own page reading", "GET", "/me", "localhost:8080", map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusOK},
		{"typed in the address bar", "GET", "/me", "127.0.0.1:8080", map[string]string{"Sec-Fetch-Site": "none"}, http.StatusOK},
		{"another site's POST", "POST", "/changes/x/approve", "127.0.0.1:8080", map[string]string{"Origin": "https://evil.example", "Sec-Fetch-Site": "cross-site"}, http.StatusUnauthorized},
		{"another origin, no fetch metadata", "POST", "/changes/x/approve", "127.0.0.1:8080", map[string]string{"Origin": "http://127.0.0.1:9999"}, http.StatusUnauthorized},
		{"an opaque origin", "POST", "/changes/x/approve", "127.0.0.1:8080", map[string]string{"Origin": "null"}, http.StatusUnauthorized},
		{"a same-site page", "GET", "/me", "127.0.0.1:8080", map[string]string{"Sec-Fetch-Site": "same-site"}, http.StatusUnauthorized},
		{"DNS rebinding", "GET", "/me", "rebind.evil.example:8080", map[string]string{"Sec-Fetch-Site": "same-origin"}, http.StatusUnauthorized},
	} {
		r := httptest.NewRequest(tc.method, tc.path, nil)
		r.Host = tc.host
		for k, v := range tc.header {
			r.Header.Set(k, v)
		}
		w := httptest.NewRecorder()
		srv.ServeHTTP(w, r)
		if w.Code != tc.want {
			t.Errorf("%s: %s %s: %d, want %d: %s", tc.name, tc.method, tc.path, w.Code, tc.want, w.Body)
		}
		if tc.want == http.StatusUnauthorized && !strings.Contains(w.Body.String(), "--insecure-local") {
			t.Errorf("%s: the refusal does not say why: %s", tc.name, w.Body)
		}
	}
}

func TestConfigValidate(t *testing.T) {
	t.Parallel()
	err := Config{Writer: refusingWriter{}, MaxBody: -1}.Validate()
	for _, want := range []string{"Graphs", "ChangeSets", "Lineage", "Audit", "Publisher", "Auth", "Proposals and Writer", "MaxBody"} {
		if err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("Validate() = %v: does not mention %s", err, want)
		}
	}
	if _, err := New(Config{}); err == nil {
		t.Error("New accepts an empty config")
	}
}
