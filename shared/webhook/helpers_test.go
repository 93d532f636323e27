package webhook

import (
	"bytes"
	"encoding/hex"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"testing"

	"github.com/usekarma/karma/shared/besidetest"
)

const (
	testSecret = "It's a Secret to Everybody"
	zeroSHA    = "0000000000000000000000000000000000000000"
)

var testSecrets = StaticSecrets{
	"github:Codertocat/Hello-World": testSecret,
	"gitlab:*":                      testSecret,
	"gitea:*":                       testSecret,
	"forgejo:*":                     testSecret,
}

// sample reads a vendor-written sample kept beside the checkout (../shared/samples/<dir>/<name>):
// read in place, never copied into the project. Without ../shared/samples the test is skipped.
func sample(t testing.TB, dir, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(besidetest.Dir(t, "samples", dir), name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sampleNames(t testing.TB, dir string) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(besidetest.Dir(t, "samples", dir), "*.json"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, p := range m {
		names = append(names, filepath.Base(p))
	}
	return names
}

func newRequest(body []byte, contentType string, headers map[string]string) *http.Request {
	r := httptest.NewRequest(http.MethodPost, "/hooks", bytes.NewReader(body))
	if contentType != "" {
		r.Header.Set("Content-Type", contentType)
	}
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	return r
}

// githubRequest is a delivery as GitHub sends it, signed with secret.
func githubRequest(event, delivery string, body []byte, secret string) *http.Request {
	return newRequest(body, "application/json", map[string]string{
		"X-GitHub-Event":      event,
		"X-GitHub-Delivery":   delivery,
		"X-Hub-Signature-256": SignatureHeader([]byte(secret), body),
		"User-Agent":          "GitHub-Hookshot/abc123",
	})
}

// gitlabRequest is a delivery as GitLab sends it.
func gitlabRequest(event string, body []byte, token string) *http.Request {
	h := map[string]string{
		"X-Gitlab-Event":      event,
		"X-Gitlab-Event-UUID": "13792a34-cac6-4fda-95a8-c58e00a3954e",
		"Idempotency-Key":     "f5e5f430-f57b-4e6e-9fac-d9128cd7232f",
		"User-Agent":          "GitLab/17.0.0",
	}
	if token != "" {
		h["X-Gitlab-Token"] = token
	}
	return newRequest(body, "application/json", h)
}

// giteaRequest is a delivery as Gitea sends it: its own headers plus GitHub-compatible ones.
func giteaRequest(event string, body []byte, secret string) *http.Request {
	sig := hex.EncodeToString(Sign([]byte(secret), body))
	return newRequest(body, "application/json", map[string]string{
		"X-Gitea-Event":       event,
		"X-Gitea-Event-Type":  event,
		"X-Gitea-Delivery":    "a7d3c1c1-0d6b-4c9c-9f3a-0f2f0c3f8b11",
		"X-Gitea-Signature":   sig,
		"X-Gogs-Event":        event,
		"X-Gogs-Delivery":     "a7d3c1c1-0d6b-4c9c-9f3a-0f2f0c3f8b11",
		"X-Gogs-Signature":    sig,
		"X-GitHub-Event":      event,
		"X-GitHub-Delivery":   "a7d3c1c1-0d6b-4c9c-9f3a-0f2f0c3f8b11",
		"X-Hub-Signature-256": "sha256=" + sig,
	})
}

// forgejoRequest is a delivery as Forgejo sends it: its own headers, Gitea's and GitHub's.
func forgejoRequest(event string, body []byte, secret string) *http.Request {
	r := giteaRequest(event, body, secret)
	sig := r.Header.Get("X-Gitea-Signature")
	r.Header.Set("X-Forgejo-Event", event)
	r.Header.Set("X-Forgejo-Event-Type", event)
	r.Header.Set("X-Forgejo-Delivery", "0b0c7f4e-93a4-4b5e-8a0a-3c1c5f1f7e22")
	r.Header.Set("X-Forgejo-Signature", sig)
	return r
}

func wantStatus(t *testing.T, err error, status int) {
	t.Helper()
	e, ok := err.(*Error)
	if !ok {
		t.Fatalf("error = %v (%T), want *Error with status %d", err, err, status)
	}
	if e.Status != status {
		t.Fatalf("status = %d (%s), want %d", e.Status, e.Reason, status)
	}
}
