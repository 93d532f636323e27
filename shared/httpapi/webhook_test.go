package httpapi

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/webhook"
)

const secret = "s3cret"

type capture struct {
	mu   sync.Mutex
	msgs []message.Envelope
	fail error
}

func (c *capture) Publish(_ context.Context, msgs ...message.Envelope) error {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.fail != nil {
		return c.fail
	}
	c.msgs = append(c.msgs, msgs...)
	return nil
}

func newHandler(t *testing.T) (*Webhooks, *capture, *embedded.AuditLog) {
	t.Helper()
	ctx := context.Background()
	db, err := embedded.Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	seen, err := embedded.NewSeen(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	log, err := embedded.NewAuditLog(ctx, db)
	if err != nil {
		t.Fatal(err)
	}
	c := &capture{}
	h := &Webhooks{Secrets: webhook.StaticSecrets{"github:*": secret, "gitlab:*": secret}, Branches: map[string]bool{"main": true},
		Deliveries: seen, Changes: seen, Publisher: c, Audit: log, ModulesDir: "components"}
	return h, c, log
}

func githubPush(ref, before, after string, files ...string) []byte {
	commit := map[string]any{"id": after, "message": "change", "timestamp": "2026-11-22T08:00:00Z",
		"author": map[string]any{"name": "Ada", "email": "ada@example.com", "username": "ada"},
		"added":  []string{}, "removed": []string{}, "modified": files}
	p := map[string]any{"ref": ref, "before": before, "after": after, "created": false, "deleted": false, "forced": false,
		"commits": []any{commit}, "head_commit": commit, "pusher": map[string]any{"name": "ada", "email": "ada@example.com"},
		"repository": map[string]any{"full_name": "acme/config", "name": "config", "clone_url": "https://example.com/acme/config.git",
			"owner": map[string]any{"login": "acme", "name": "acme"}}}
	b, _ := json.Marshal(p)
	return b
}

func sign(body []byte) string {
	m := hmac.New(sha256.New, []byte(secret))
	m.Write(body)
	return "sha256=" + hex.EncodeToString(m.Sum(nil))
}

func post(h http.Handler, body []byte, headers map[string]string) *httptest.ResponseRecorder {
	r := httptest.NewRequest(http.MethodPost, "/webhooks/git", bytes.NewReader(body))
	r.Header.Set("Content-Type", "application/json")
	for k, v := range headers {
		r.Header.Set(k, v)
	}
	w := httptest.NewRecorder()
	h.ServeHTTP(w, r)
	return w
}

var (
	sha1 = strings.Repeat("a", 40)
	sha2 = strings.Repeat("b", 40)
)

func TestWebhookReplies(t *testing.T) {
	t.Parallel()
	push := githubPush("refs/heads/main", sha1, sha2, "iac/prod/vpc/core/config.json")
	cases := []struct {
		name    string
		body    []byte
		headers map[string]string
		status  int
		want    string
		queued  int
	}{
		{"push to main", push, map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "d1", "X-Hub-Signature-256": sign(push)}, 202, `"queued"`, 1},
		{"bad signature", push, map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "d2", "X-Hub-Signature-256": "sha256=00"}, 401, `"type":"https://usekarma.dev/problems/unauthorized"`, 0},
		{"no signature", push, map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "d3"}, 401, `"status":401`, 0},
		{"other branch", githubPush("refs/heads/dev", sha1, sha2, "iac/prod/vpc/core/config.json"), nil, 200, "not a deploy branch", 0},
		{"tag", githubPush("refs/tags/v1", sha1, sha2), nil, 200, "only branches deploy", 0},
		{"nothing deployable", githubPush("refs/heads/main", sha1, sha2, "README.md"), nil, 200, "changes nothing", 0},
		{"truncated body", push[:len(push)/2], map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "d4", "X-Hub-Signature-256": sign(push[:len(push)/2])}, 400, `"type":"https://usekarma.dev/problems/bad-request"`, 0},
		{"unknown event", []byte(`{"zen":"x"}`), map[string]string{"X-GitHub-Event": "issues", "X-GitHub-Delivery": "d5", "X-Hub-Signature-256": sign([]byte(`{"zen":"x"}`))}, 200, "ignored", 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			t.Parallel()
			h, cap, _ := newHandler(t)
			headers := c.headers
			if headers == nil {
				headers = map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "dx", "X-Hub-Signature-256": sign(c.body)}
			}
			w := post(h, c.body, headers)
			if w.Code != c.status || !strings.Contains(w.Body.String(), c.want) {
				t.Errorf("status %d body %s, want %d containing %s", w.Code, w.Body, c.status, c.want)
			}
			if ct := w.Header().Get("Content-Type"); c.status >= 400 && ct != "application/problem+json" {
				t.Errorf("%d answered as %s, want an RFC 9457 problem document", c.status, ct)
			}
			if len(cap.msgs) != c.queued {
				t.Errorf("queued %d messages, want %d", len(cap.msgs), c.queued)
			}
		})
	}
}

// With the config repository known, a push of another repository — signed with the wildcard
// secret an organisation's webhook shares — is ignored (and recorded), never queued.
func TestWebhookPushOfAnotherRepositoryIsIgnored(t *testing.T) {
	t.Parallel()
	push := githubPush("refs/heads/main", sha1, sha2, "iac/prod/vpc/core/config.json")
	// The push is acme/config's; the key is the configured repository's path.
	for repo, queued := range map[string]int{"acme/other": 0, "other/config-x": 0, "ACME/Config": 1, "git/acme/config": 1, "config": 1, "": 1} {
		h, cap, _ := newHandler(t)
		h.Repo = repo
		w := post(h, push, map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "d-" + repo, "X-Hub-Signature-256": sign(push)})
		if len(cap.msgs) != queued || (queued == 0 && (w.Code != 200 || !strings.Contains(w.Body.String(), "this Karma deploys "+repo))) {
			t.Errorf("config repository %q: %d %s, %d queued; want %d", repo, w.Code, w.Body, len(cap.msgs), queued)
		}
	}
}

// A GitLab project in a subgroup that ends with the config repository's path (evil/acme/config,
// anyone's group "evil" with a subgroup "acme") is another repository: a system hook's wildcard
// token sends its pushes too, and its sha must not be queued as the config repository's.
func TestWebhookPushOfASubgroupProjectIsIgnored(t *testing.T) {
	t.Parallel()
	for project, queued := range map[string]int{"evil/acme/config": 0, "acme/config": 1, "ACME/config": 1} {
		h, cap, _ := newHandler(t)
		h.Repo = "acme/config"
		body := []byte(fmt.Sprintf(`{"object_kind":"push","event_name":"push","before":%q,"after":%q,"ref":"refs/heads/main",
		"user_username":"eve","project":{"path_with_namespace":%q},
		"commits":[{"id":%q,"message":"m","timestamp":"2026-11-22T08:00:00Z","author":{"name":"Eve","email":"eve@example.com"},
		"added":[],"modified":["iac/prod/vpc/core/config.json"],"removed":[]}],"total_commits_count":1}`, sha1, sha2, project, sha2))
		w := post(h, body, map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret, "Idempotency-Key": "k-" + project})
		if len(cap.msgs) != queued || (queued == 0 && (w.Code != 200 || !strings.Contains(w.Body.String(), "this Karma deploys acme/config"))) {
			t.Errorf("a push of %s to the config repository acme/config: %d %s, %d queued; want %d", project, w.Code, w.Body, len(cap.msgs), queued)
		}
	}
}

func TestWebhookReplayAndSecurityAudit(t *testing.T) {
	t.Parallel()
	h, cap, log := newHandler(t)
	push := githubPush("refs/heads/main", sha1, sha2, "iac/prod/vpc/core/config.json")
	headers := map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "same", "X-Hub-Signature-256": sign(push)}
	if w := post(h, push, headers); w.Code != 202 {
		t.Fatalf("first delivery: %d %s", w.Code, w.Body)
	}
	if w := post(h, push, headers); w.Code != 200 || !strings.Contains(w.Body.String(), "duplicate") {
		t.Errorf("replay: %d %s", w.Code, w.Body)
	}
	if len(cap.msgs) != 1 {
		t.Errorf("a replayed delivery entered the pipeline: %d messages", len(cap.msgs))
	}
	var p message.GitPushed
	if err := message.Decode(cap.msgs[0], &p); err != nil {
		t.Fatal(err)
	}
	if p.Commit.SHA != sha2 || p.Commit.Author != "Ada <ada@example.com>" || p.Commit.Branch != "main" || strings.Join(p.Files, ",") != "iac/prod/vpc/core/config.json" ||
		p.Provider != "github" || p.Delivery != "same" {
		t.Errorf("git.pushed = %+v %+v", p, p.Commit)
	}
	// Who pushed, and every author of the push: kept for separation of duties.
	if p.Commit.Pusher != "ada" || strings.Join(p.Commit.Authors, ",") != "Ada <ada@example.com>" {
		t.Errorf("git.pushed pusher %q, authors %v", p.Commit.Pusher, p.Commit.Authors)
	}
	headers["X-Hub-Signature-256"] = "sha256=" + strings.Repeat("0", 64)
	headers["X-GitHub-Delivery"] = "forged"
	if w := post(h, push, headers); w.Code != 401 {
		t.Fatalf("forged: %d", w.Code)
	}
	recs, err := log.Query(context.Background(), audit.Query{})
	if err != nil {
		t.Fatal(err)
	}
	var security int
	for _, r := range recs {
		if strings.HasPrefix(r.Chain, "security/") && r.Type == "security.webhook_rejected" {
			security++
		}
	}
	if security != 1 {
		t.Errorf("security entries = %d, want 1 (%+v)", security, recs)
	}
}

// A truncated push is queued as such: resolve lists its files by diffing before..after in the
// repository (workers/resolve, cmd/karma's serve test with a real git server).
func TestWebhookTruncatedPushIsQueuedForADiff(t *testing.T) {
	t.Parallel()
	h, cap, _ := newHandler(t)
	// GitLab: total_commits_count larger than the commits sent -> truncated.
	body := []byte(fmt.Sprintf(`{"object_kind":"push","event_name":"push","before":%q,"after":%q,"ref":"refs/heads/main",
		"user_username":"ada","project":{"path_with_namespace":"acme/config","git_http_url":"https://example.com/acme/config.git"},
		"commits":[{"id":%q,"message":"m","timestamp":"2026-11-22T08:00:00Z","author":{"name":"Ada","email":"ada@example.com"},
		"added":[],"modified":["README.md"],"removed":[]}],"total_commits_count":30,"repository":{"name":"config"}}`, sha1, sha2, sha2))
	w := post(h, body, map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret, "Idempotency-Key": "k1"})
	if w.Code != 202 {
		t.Fatalf("status %d %s", w.Code, w.Body)
	}
	var p message.GitPushed
	if err := message.Decode(cap.msgs[0], &p); err != nil {
		t.Fatal(err)
	}
	if !p.Truncated || p.Commit.Before != sha1 || p.Commit.SHA != sha2 {
		t.Errorf("git.pushed %+v: want a truncated push with before %s and sha %s", p, sha1, sha2)
	}
}

// A force push of main whose listed commit changes only README.md is still queued, truncated
// with its before: the commits it discarded may have changed configs, which the branch no longer
// holds as deployed; resolve diffs before..after. (It was answered "changes nothing" and the
// discarded change stayed deployed.)
func TestWebhookForcePushIsQueuedForADiff(t *testing.T) {
	t.Parallel()
	h, cap, _ := newHandler(t)
	var m map[string]any
	if err := json.Unmarshal(githubPush("refs/heads/main", sha1, sha2, "README.md"), &m); err != nil {
		t.Fatal(err)
	}
	m["forced"] = true
	body, _ := json.Marshal(m)
	w := post(h, body, map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "f1", "X-Hub-Signature-256": sign(body)})
	if w.Code != 202 || len(cap.msgs) != 1 {
		t.Fatalf("status %d %s (%d published): want the force push queued", w.Code, w.Body, len(cap.msgs))
	}
	var p message.GitPushed
	if err := message.Decode(cap.msgs[0], &p); err != nil {
		t.Fatal(err)
	}
	if !p.Truncated || p.Commit.Before != sha1 || p.Commit.SHA != sha2 {
		t.Errorf("git.pushed %+v: want a truncated push with before %s and sha %s", p, sha1, sha2)
	}
}

// The change names the pushed commit's author and message only when the payload lists that
// commit: GitLab lists 20 commits of a longer push, which need not include the head; the last one
// listed was taken for the head, and the change credited its author and message to the commit
// deployed. Without the head, the change names who pushed.
func TestWebhookPushNamesTheHeadsAuthorOnlyWhenListed(t *testing.T) {
	t.Parallel()
	middle := strings.Repeat("c", 40)
	body := func(listed string) []byte {
		return []byte(fmt.Sprintf(`{"object_kind":"push","event_name":"push","before":%q,"after":%q,"ref":"refs/heads/main",
		"user_username":"pat","project":{"path_with_namespace":"acme/config"},
		"commits":[{"id":%q,"message":"an older commit","timestamp":"2026-11-22T08:00:00Z","author":{"name":"Mallory","email":"mallory@example.com"},
		"added":[],"modified":["iac/prod/vpc/core/config.json"],"removed":[]}],"total_commits_count":150}`, sha1, sha2, listed))
	}
	for _, tt := range []struct{ listed, author, message string }{
		{middle, "pat", ""},
		{sha2, "Mallory <mallory@example.com>", "an older commit"},
	} {
		h, cap, _ := newHandler(t)
		w := post(h, body(tt.listed), map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret, "Idempotency-Key": "k-" + tt.listed})
		if w.Code != 202 || len(cap.msgs) != 1 {
			t.Fatalf("status %d %s", w.Code, w.Body)
		}
		var p message.GitPushed
		if err := message.Decode(cap.msgs[0], &p); err != nil {
			t.Fatal(err)
		}
		if p.Commit.SHA != sha2 || p.Commit.Author != tt.author || p.Commit.Message != tt.message || cap.msgs[0].Actor.Name != tt.author {
			t.Errorf("listed %s: commit %s by %q (%q), actor %q; want %s by %q (%q)", tt.listed[:7], p.Commit.SHA[:7], p.Commit.Author, p.Commit.Message,
				cap.msgs[0].Actor.Name, sha2[:7], tt.author, tt.message)
		}
	}
}

func TestWebhookSubfolderFilesAreMapped(t *testing.T) {
	t.Parallel()
	h, cap, _ := newHandler(t)
	h.Subfolder = "config"
	push := githubPush("refs/heads/main", sha1, sha2, "config/iac/prod/vpc/core/config.json", "iac/prod/vpc/other/config.json")
	w := post(h, push, map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "sub1", "X-Hub-Signature-256": sign(push)})
	if w.Code != 202 {
		t.Fatalf("status %d %s", w.Code, w.Body)
	}
	var p message.GitPushed
	if err := message.Decode(cap.msgs[0], &p); err != nil {
		t.Fatal(err)
	}
	if strings.Join(p.Files, ",") != "iac/prod/vpc/core/config.json" {
		t.Errorf("files = %v, want only the file inside the subfolder, relative to it", p.Files)
	}
}

func TestWebhookPipelineDownIs503(t *testing.T) {
	t.Parallel()
	h, cap, _ := newHandler(t)
	cap.fail = fmt.Errorf("queue unreachable")
	push := githubPush("refs/heads/main", sha1, sha2, "iac/prod/vpc/core/config.json")
	headers := map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "d9", "X-Hub-Signature-256": sign(push)}
	if w := post(h, push, headers); w.Code != 503 {
		t.Fatalf("status %d", w.Code)
	}
	cap.fail = nil
	if w := post(h, push, headers); w.Code != 202 {
		t.Errorf("the sender's retry must be accepted once the pipeline is back: %d %s", w.Code, w.Body)
	}
}

// A push listing more deployable files than one message can carry (SQS and EventBridge take
// 256 KiB; the Lambda webhook's publisher refuses more, and every delivery of the push would be
// answered 503) is queued truncated, without its files: resolve diffs before..after.
// A push already truncated (GitLab's total_commits_count above the 20 commits it sends) whose
// commits list more deployable files than one message carries is queued without them too: it
// was published with every file, over what SQS and EventBridge take, and every delivery of the
// push was answered 503 — the push never entered the pipeline.
func TestWebhookTruncatedPushTooLargeForOneMessageIsQueuedWithoutFiles(t *testing.T) {
	t.Parallel()
	h, cap, _ := newHandler(t)
	files := make([]string, 8000)
	for i := range files {
		files[i] = fmt.Sprintf("iac/prod/app/service-%05d/config.json", i)
	}
	list, _ := json.Marshal(files)
	body := []byte(fmt.Sprintf(`{"object_kind":"push","event_name":"push","before":%q,"after":%q,"ref":"refs/heads/main",
		"user_username":"ada","project":{"path_with_namespace":"acme/config"},
		"commits":[{"id":%q,"message":"m","timestamp":"2026-11-22T08:00:00Z","author":{"name":"Ada","email":"ada@example.com"},
		"added":%s,"modified":[],"removed":[]}],"total_commits_count":30}`, sha1, sha2, sha2, list))
	w := post(h, body, map[string]string{"X-Gitlab-Event": "Push Hook", "X-Gitlab-Token": secret, "Idempotency-Key": "big-truncated"})
	if w.Code != 202 || len(cap.msgs) != 1 {
		t.Fatalf("status %d %s, %d published: want the push queued", w.Code, w.Body, len(cap.msgs))
	}
	b, err := message.Encode(cap.msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxPushedBytes {
		t.Errorf("git.pushed is %d bytes encoded, over %d (SQS and EventBridge refuse 256 KiB)", len(b), MaxPushedBytes)
	}
	var p message.GitPushed
	if err := message.Decode(cap.msgs[0], &p); err != nil {
		t.Fatal(err)
	}
	if !p.Truncated || p.Commit.Before != sha1 || p.Commit.SHA != sha2 || len(p.Files) != 0 {
		t.Errorf("git.pushed truncated=%v before=%s sha=%s with %d files: want a truncated push with before %s and sha %s and no files",
			p.Truncated, p.Commit.Before, p.Commit.SHA, len(p.Files), sha1, sha2)
	}

	// The first push of a large configuration (a new branch: before all zeros) likewise: resolve
	// lists the whole tree of the commit.
	h, cap, _ = newHandler(t)
	zero := strings.Repeat("0", 40)
	first := githubPush("refs/heads/main", zero, sha2, files...)
	w = post(h, first, map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "big-first", "X-Hub-Signature-256": sign(first)})
	if w.Code != 202 || len(cap.msgs) != 1 {
		t.Fatalf("first push: status %d %s, %d published: want it queued", w.Code, w.Body, len(cap.msgs))
	}
	if b, _ := message.Encode(cap.msgs[0]); len(b) > MaxPushedBytes {
		t.Errorf("first push: git.pushed is %d bytes encoded, over %d", len(b), MaxPushedBytes)
	}
	p = message.GitPushed{}
	if err := message.Decode(cap.msgs[0], &p); err != nil {
		t.Fatal(err)
	}
	if !p.Truncated || p.Commit.Before != "" || len(p.Files) != 0 {
		t.Errorf("first push: truncated=%v before=%q with %d files: want truncated, no before (the whole tree), no files", p.Truncated, p.Commit.Before, len(p.Files))
	}
}

func TestWebhookPushTooLargeForOneMessageIsQueuedTruncated(t *testing.T) {
	t.Parallel()
	h, cap, _ := newHandler(t)
	files := make([]string, 8000)
	for i := range files {
		files[i] = fmt.Sprintf("iac/prod/app/service-%05d/config.json", i)
	}
	push := githubPush("refs/heads/main", sha1, sha2, files...)
	w := post(h, push, map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "big1", "X-Hub-Signature-256": sign(push)})
	if w.Code != 202 {
		t.Fatalf("status %d %s", w.Code, w.Body)
	}
	if len(cap.msgs) != 1 {
		t.Fatalf("published %d messages, want 1", len(cap.msgs))
	}
	b, err := message.Encode(cap.msgs[0])
	if err != nil {
		t.Fatal(err)
	}
	if len(b) > MaxPushedBytes {
		t.Errorf("git.pushed is %d bytes encoded, over %d (SQS and EventBridge refuse 256 KiB)", len(b), MaxPushedBytes)
	}
	var p message.GitPushed
	if err := message.Decode(cap.msgs[0], &p); err != nil {
		t.Fatal(err)
	}
	if !p.Truncated || p.Commit.Before != sha1 || p.Commit.SHA != sha2 || len(p.Files) != 0 {
		t.Errorf("git.pushed truncated=%v before=%s sha=%s with %d files: want a truncated push with before %s and sha %s and no files",
			p.Truncated, p.Commit.Before, p.Commit.SHA, len(p.Files), sha1, sha2)
	}

	// A push of a few files is still queued with them.
	small := githubPush("refs/heads/main", sha2, sha1, "iac/prod/app/one/config.json")
	if w := post(h, small, map[string]string{"X-GitHub-Event": "push", "X-GitHub-Delivery": "small1", "X-Hub-Signature-256": sign(small)}); w.Code != 202 {
		t.Fatalf("status %d %s", w.Code, w.Body)
	}
	var sp message.GitPushed
	if err := message.Decode(cap.msgs[1], &sp); err != nil {
		t.Fatal(err)
	}
	if sp.Truncated || len(sp.Files) != 1 {
		t.Errorf("small push: truncated=%v files=%v, want its one file listed", sp.Truncated, sp.Files)
	}
}
