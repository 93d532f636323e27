package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/google/uuid"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/config"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/gitrepo"
	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/terraform"
	"github.com/usekarma/karma/shared/webhook"
)

const serveSecret = "It's a secret to everybody"

// served is `karma serve` running in-process.
type served struct {
	url    string
	cancel context.CancelFunc
	done   chan int
	once   sync.Once
	code   int
	logs   string // the log file (serve's stderr)
}

// startServe runs `karma serve` on a free port with args until the test ends (or stop). Its
// stderr (the slog text log) goes to a file, shown when the test fails.
func startServe(t *testing.T, g *globals, args ...string) *served {
	t.Helper()
	dir := t.TempDir()
	addrFile := filepath.Join(dir, "addr")
	sv := &served{done: make(chan int, 1), logs: filepath.Join(dir, "serve.log")}
	logf, err := os.Create(sv.logs)
	if err != nil {
		t.Fatal(err)
	}
	oldErr := os.Stderr
	os.Stderr = logf // restored once serve has returned (the channel orders both)
	ctx, cancel := context.WithCancel(context.Background())
	sv.cancel = cancel
	if !slices.Contains(args, "--tokens-file") {
		args = append(args, "--insecure-local")
	}
	go func() {
		sv.done <- runWith(ctx, g, append([]string{"serve", "--addr", "127.0.0.1:0", "--addr-file", addrFile}, args...))
	}()
	t.Cleanup(func() {
		sv.stop(t)
		os.Stderr = oldErr
		logf.Close()
		if t.Failed() {
			t.Logf("karma serve log:\n%s", sv.log(t))
		}
	})
	// Generous: serve builds the graph and migrates its store before it listens, and a loaded CI
	// machine has taken over 30 s for the 5,000-component page test. Not a speed check.
	deadline := time.Now().Add(3 * time.Minute)
	for {
		if b, err := os.ReadFile(addrFile); err == nil && len(bytes.TrimSpace(b)) > 0 {
			sv.url = "http://" + strings.TrimSpace(string(b))
			return sv
		}
		select {
		case code := <-sv.done:
			sv.done <- code
			t.Fatalf("karma serve exited %d before listening", code)
		case <-time.After(20 * time.Millisecond):
		}
		if time.Now().After(deadline) {
			t.Fatal("karma serve did not listen within 3 minutes")
		}
	}
}

// stop cancels serve's context (as SIGTERM does) and returns its exit code once it has drained.
func (sv *served) stop(t *testing.T) int {
	t.Helper()
	sv.once.Do(func() {
		sv.cancel()
		select {
		case sv.code = <-sv.done:
		case <-time.After(90 * time.Second):
			sv.code = -1
			t.Error("karma serve did not drain and return within 90 s")
		}
	})
	return sv.code
}

func (sv *served) log(t *testing.T) string {
	b, err := os.ReadFile(sv.logs)
	if err != nil {
		t.Fatal(err)
	}
	return string(b)
}

type serveHealth struct {
	Status   string `json:"status"`
	InFlight int64  `json:"in_flight"`
	Queued   int    `json:"queued"`
}

func (sv *served) health(t *testing.T) serveHealth {
	t.Helper()
	resp, err := http.Get(sv.url + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	var h serveHealth
	if err := json.NewDecoder(resp.Body).Decode(&h); err != nil || resp.StatusCode != 200 {
		t.Fatalf("healthz: %d %v", resp.StatusCode, err)
	}
	return h
}

// waitIdle polls /healthz until nothing is queued or in flight three times in a row and cond
// holds (bounded by the deadline).
func (sv *served) waitIdle(t *testing.T, deadline time.Time, cond func() bool) {
	t.Helper()
	quiet := 0
	var idleSince time.Time // idle without cond holding: the pipeline is done, and wrong
	for quiet < 3 {
		if time.Now().After(deadline) {
			t.Fatalf("the pipeline is still busy: %+v", sv.health(t))
		}
		time.Sleep(50 * time.Millisecond)
		h := sv.health(t)
		idle := h.InFlight == 0 && h.Queued == 0
		switch {
		case idle && (cond == nil || cond()):
			quiet++
		case idle:
			quiet = 0
			if idleSince.IsZero() {
				idleSince = time.Now()
			} else if time.Since(idleSince) > 15*time.Second {
				t.Fatal("the pipeline is idle but the expected state was not reached")
			}
		default:
			quiet, idleSince = 0, time.Time{}
		}
	}
}

// post sends a webhook delivery and returns the status and body.
func (sv *served) post(t *testing.T, body []byte, headers map[string]string) (int, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodPost, sv.url+"/webhooks/git", bytes.NewReader(body))
	if err != nil {
		t.Fatal(err)
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "GitHub-Hookshot/karma-test")
	for k, v := range headers {
		req.Header.Set(k, v)
	}
	resp, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer resp.Body.Close()
	b, _ := io.ReadAll(resp.Body)
	return resp.StatusCode, string(b)
}

// ghHeaders are the headers of a GitHub delivery, signed with secret.
func ghHeaders(event, delivery, secret string, body []byte) map[string]string {
	return map[string]string{"X-GitHub-Event": event, "X-GitHub-Delivery": delivery,
		"X-Hub-Signature-256": webhook.SignatureHeader([]byte(secret), body)}
}

// ghCommitOf describes a commit of repo as GitHub's push payload does (files relative to the
// repository root, classified against before).
func ghCommitOf(t *testing.T, repo, before, sha string) map[string]any {
	t.Helper()
	info, err := gitrepo.ReadCommit(repo, sha)
	if err != nil {
		t.Fatal(err)
	}
	added, modified, removed := []string{}, []string{}, []string{}
	for _, f := range info.Files {
		switch {
		case f.Removed:
			removed = append(removed, f.Path)
		case webhook.IsZeroSHA(before) || exec.Command("git", "-C", repo, "cat-file", "-e", before+":"+f.Path).Run() != nil:
			added = append(added, f.Path)
		default:
			modified = append(modified, f.Path)
		}
	}
	name, email, _ := strings.Cut(strings.TrimSuffix(info.Author, ">"), " <")
	user := map[string]any{"name": name, "email": email, "username": strings.ToLower(name)}
	return map[string]any{"id": info.SHA, "distinct": true, "message": info.Message, "timestamp": time.Now().UTC().Format(time.RFC3339),
		"url": "https://github.com/acme/config/commit/" + info.SHA, "author": user, "committer": user,
		"added": added, "modified": modified, "removed": removed}
}

// ghPush is a GitHub push payload of acme/config.
func ghPush(ref, before, after, pusher string, commits ...map[string]any) []byte {
	p := map[string]any{"ref": ref, "before": before, "after": after, "created": webhook.IsZeroSHA(before), "deleted": false, "forced": false,
		"base_ref": nil, "compare": "https://github.com/acme/config/compare/" + serveShortSHA(before) + "..." + serveShortSHA(after),
		"commits": commits, "head_commit": nil,
		"repository": map[string]any{"id": 1, "name": "config", "full_name": "acme/config", "private": true, "default_branch": "main",
			"html_url": "https://github.com/acme/config", "clone_url": "https://github.com/acme/config.git",
			"owner": map[string]any{"login": "acme", "name": "acme"}},
		"pusher": map[string]any{"name": pusher, "email": pusher + "@example.com"}, "sender": map[string]any{"login": pusher}}
	if n := len(commits); n > 0 {
		p["head_commit"] = commits[n-1]
	}
	b, _ := json.Marshal(p)
	return b
}

const zeroSHA = "0000000000000000000000000000000000000000"

func serveShortSHA(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

func auditRecords(t *testing.T, a *embedded.AuditLog, q audit.Query, keep func(audit.Record) bool) []audit.Record {
	t.Helper()
	recs, err := a.Query(context.Background(), q)
	if err != nil {
		t.Fatal(err)
	}
	var out []audit.Record
	for _, r := range recs {
		if keep(r) {
			out = append(out, r)
		}
	}
	return out
}

// stubTerraform is a terraform that is never expected to run.
type stubTerraform struct{}

func (stubTerraform) Plan(context.Context, terraform.Workspace) (terraform.PlanResult, error) {
	return terraform.PlanResult{}, fmt.Errorf("stub terraform: no plan expected")
}
func (stubTerraform) Apply(context.Context, terraform.Workspace, terraform.PlanResult) (terraform.Outputs, error) {
	return nil, fmt.Errorf("stub terraform: no apply expected")
}

func TestServeRefusesToStart(t *testing.T) {
	t.Setenv("KARMA_WEBHOOK_SECRETS", "")
	t.Setenv("KARMA_WEBHOOK_SECRETS_FILE", "")
	ex := examples(t)
	bad := filepath.Join(t.TempDir(), "secrets.json")
	os.WriteFile(bad, []byte(`["github:acme/config"]`), 0o600)
	empty := filepath.Join(t.TempDir(), "empty.json")
	os.WriteFile(empty, []byte(`{"github:acme/config": ""}`), 0o600)
	notGit := t.TempDir()
	for _, c := range []struct {
		name string
		args []string
		code int
		want string
	}{
		{"no secret", ex, 2, "no webhook secret: give --secret provider:owner/repo=SECRET, --secrets-file FILE or KARMA_WEBHOOK_SECRETS (Karma has no unauthenticated mode)"},
		{"secret without value", append([]string{"--secret", "github:acme/config"}, ex...), 2, `--secret "gith…": want provider:owner/repo=SECRET`},
		{"unknown provider", append([]string{"--secret", "bitbucket:acme/config=x"}, ex...), 2, `"bitbucket:acme/config": want <provider>:<owner/repo>`},
		{"repo not owner/name", append([]string{"--secret", "github:config=x"}, ex...), 2, "the repository must be owner/name"},
		{"secrets file not an object", append([]string{"--secrets-file", bad}, ex...), 2, "want a JSON object"},
		{"empty secret in file", append([]string{"--secrets-file", empty}, ex...), 2, "github:acme/config: empty secret"},
		{"no branch", append([]string{"--secret", "github:*=x", "--branch", ""}, ex...), 2, "--branch: name at least one branch"},
		{"parallelism", append([]string{"--secret", "github:*=x", "--parallelism", "0"}, ex...), 2, "--parallelism 0"},
		{"no API authentication", []string{"--secret", "github:*=x", "--no-insecure"}, 2, "the API needs --tokens-file FILE (bearer tokens with scopes) or --insecure-local"},
		{"insecure off loopback", []string{"--secret", "github:*=x", "--addr", "0.0.0.0:0"}, 2, "--insecure-local"},
		{"tokens and insecure", []string{"--secret", "github:*=x", "--tokens-file", "/nonexistent"}, 2, "choose one"},
		{"unreadable tokens file", []string{"--secret", "github:*=x", "--tokens-file", "/nonexistent", "--no-insecure"}, 2, "--tokens-file"},
		{"not a git checkout", []string{"--secret", "github:*=x", "--repo", notGit, "--state-dir", t.TempDir()}, 1, "karma serve: the config repository is fetched from KARMA_GIT_URL, or from the git repository " + notGit + " is in"},
	} {
		t.Run(c.name, func(t *testing.T) {
			args := append([]string{"serve", "--addr", "127.0.0.1:0"}, c.args...)
			if i := slices.Index(args, "--no-insecure"); i >= 0 {
				args = slices.Delete(args, i, i+1)
			} else {
				args = append(args, "--insecure-local")
			}
			code, _, stderr := karmaWith(t, &globals{testRunner: stubTerraform{}}, args...)
			if code != c.code || !strings.Contains(stderr, c.want) {
				t.Errorf("exit %d, stderr %q; want exit %d containing %q", code, stderr, c.code, c.want)
			}
			if strings.Contains(stderr, "=x") {
				t.Errorf("a secret leaked into the message: %s", stderr)
			}
		})
	}
}

// Everything serve refuses, on a stub terraform: nothing is deployed, the refusal is audited,
// dead-lettered or says why, and SIGTERM drains and exits 0.
func TestServeRefusals(t *testing.T) {
	repo, state := demoRepo(t)
	initial := git(t, repo, "rev-parse", "HEAD")
	secrets := filepath.Join(t.TempDir(), "secrets.json")
	os.WriteFile(secrets, []byte(`{"github:acme/config": "`+serveSecret+`"}`), 0o600)
	sv := startServe(t, &globals{testRunner: stubTerraform{}, testRetryBase: 10 * time.Millisecond},
		"--repo", repo, "--state-dir", state, "--secrets-file", secrets, "--reconcile", "0", "--witness-every", "100ms")

	if h := sv.health(t); h.Status != "ok" || h.Queued != 0 {
		t.Fatalf("healthz: %+v", h)
	}
	// The web page's paths: another method is a 405 problem document, a missing file a 404 one.
	for _, c := range []struct {
		method, path string
		status       int
	}{{"POST", "/", 405}, {"DELETE", "/ui/app.js", 405}, {"GET", "/ui/nope.js", 404}} {
		req, _ := http.NewRequest(c.method, sv.url+c.path, nil)
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode != c.status || resp.Header.Get("Content-Type") != "application/problem+json" || (c.status == 405 && resp.Header.Get("Allow") != "GET, HEAD") {
			t.Errorf("%s %s: %d %s (Allow %q), want %d as a problem document", c.method, c.path, resp.StatusCode, resp.Header.Get("Content-Type"), resp.Header.Get("Allow"), c.status)
		}
	}
	ping := []byte(`{"zen":"Keep it logically awesome.","hook_id":1,"repository":{"full_name":"acme/config"}}`)
	if code, body := sv.post(t, ping, ghHeaders("ping", uuid.NewString(), serveSecret, ping)); code != 200 || !strings.Contains(body, "pong") {
		t.Errorf("ping: %d %s", code, body)
	}
	ok := ghPush("refs/heads/main", zeroSHA, initial, "ada", ghCommitOf(t, repo, zeroSHA, initial))
	if code, body := sv.post(t, ok, ghHeaders("push", uuid.NewString(), "not the secret", ok)); code != 401 {
		t.Errorf("bad signature: %d %s", code, body)
	}
	noSig := ghHeaders("push", uuid.NewString(), serveSecret, ok)
	delete(noSig, "X-Hub-Signature-256")
	if code, body := sv.post(t, ok, noSig); code != 401 {
		t.Errorf("no signature: %d %s", code, body)
	}
	other := ghPush("refs/heads/feature", zeroSHA, initial, "ada", ghCommitOf(t, repo, zeroSHA, initial))
	if code, body := sv.post(t, other, ghHeaders("push", uuid.NewString(), serveSecret, other)); code != 200 || !strings.Contains(body, "not a deploy branch") {
		t.Errorf("other branch: %d %s", code, body)
	}
	// Commits the repository does not have (an unknown sha, or one a force-push removed), one
	// with its file list and one truncated: queued, fetched, retried with backoff, then
	// dead-lettered with a reason naming the repository and the commit. Nothing is deployed
	// from another tree.
	ghost := strings.Repeat("ab", 20)
	missing := ghPush("refs/heads/main", initial, ghost, "ada", map[string]any{"id": ghost, "message": "m", "timestamp": "2026-01-01T00:00:00Z",
		"author": map[string]any{"name": "Ada", "email": "ada@example.com"}, "added": []string{}, "removed": []string{}, "modified": []string{"iac/prod/vpc/core/config.json"}})
	if code, body := sv.post(t, missing, ghHeaders("push", uuid.NewString(), serveSecret, missing)); code != 202 {
		t.Errorf("unknown commit: %d %s", code, body)
	}
	ghost2 := strings.Repeat("cd", 20)
	truncated := ghPush("refs/heads/main", initial, ghost2, "ada", map[string]any{"id": ghost2, "message": "m", "timestamp": "2026-01-01T00:00:00Z",
		"author": map[string]any{"name": "Ada", "email": "ada@example.com"}})
	if code, body := sv.post(t, truncated, ghHeaders("push", uuid.NewString(), serveSecret, truncated)); code != 202 {
		t.Errorf("truncated push of an unknown commit: %d %s", code, body)
	}
	_, a, q := stores(t, state)
	deadline := time.Now().Add(60 * time.Second)
	for {
		dead, err := q.ListDead(context.Background(), "resolve")
		if err != nil {
			t.Fatal(err)
		}
		if len(dead) == 2 {
			for _, d := range dead {
				if !strings.Contains(d.Reason, "not found after fetching every branch") || !strings.Contains(d.Reason, repo) ||
					!(strings.Contains(d.Reason, ghost) || strings.Contains(d.Reason, ghost2)) {
					t.Errorf("dead letter reason %q does not name the repository and the commit", d.Reason)
				}
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d dead letters on resolve after 60 s, want the 2 unknown commits", len(dead))
		}
		time.Sleep(50 * time.Millisecond)
	}
	if code := sv.stop(t); code != 0 {
		t.Errorf("serve exit %d after SIGTERM, want 0", code)
	}
	logs := sv.log(t)
	for _, want := range []string{"karma serve: listening", "karma serve: shutting down", "karma serve: stopped", "status=401", "dead-lettered",
		"audit witness: checkpoint written"} {
		if !strings.Contains(logs, want) {
			t.Errorf("log lacks %q", want)
		}
	}
	if strings.Contains(logs, serveSecret) {
		t.Error("the secret is in the log")
	}
	// The periodic witness: the log verifies against the digest serve wrote outside it.
	if code, out, errOut := karmaWith(t, &globals{}, "audit", "verify", "--against", "witness", "--repo", repo, "--state-dir", state); code != 0 {
		t.Errorf("audit verify --against witness: exit %d\n%s%s", code, out, errOut)
	}
	if n := len(auditRecords(t, a, audit.Query{}, func(r audit.Record) bool {
		return strings.HasPrefix(r.Chain, "security/") && r.Type == "security.webhook_rejected"
	})); n != 2 {
		t.Errorf("security audit entries = %d, want 2", n)
	}
	if n := len(auditRecords(t, a, audit.Query{}, func(r audit.Record) bool { return r.Type == message.TypeDeploymentScheduled })); n != 0 {
		t.Errorf("%d deployments were scheduled", n)
	}
}

// The config repository as a subfolder of the git repository: serve's cache reads the subfolder
// of each commit, and diffs are mapped to it.
func TestServeSourceInSubfolder(t *testing.T) {
	root := t.TempDir()
	repo := filepath.Join(root, "infra")
	if out, err := exec.Command("cp", "-r", filepath.Join("..", "..", "examples"), repo).CombinedOutput(); err != nil {
		t.Fatalf("cp: %v %s", err, out)
	}
	os.WriteFile(filepath.Join(root, "README.md"), []byte("app\n"), 0o644)
	git(t, root, "init", "-q", "-b", "main")
	git(t, root, "add", "-A")
	first := commitAs(t, root, "Ada", "initial")
	editJSON(t, filepath.Join(repo, "iac", "prod", "vpc", "core", "config.json"), func(d map[string]any) { d["az_count"] = 4 })
	os.WriteFile(filepath.Join(root, "README.md"), []byte("app v2\n"), 0o644)
	second := commitAs(t, root, "Bob", "more AZs")
	s, src, err := serveSource(context.Background(), &globals{cfg: config.Defaults(), repo: repo, stateDir: t.TempDir(), paramsBackend: "none"})
	if err != nil {
		t.Fatal(err)
	}
	defer s.close()
	if src.Repo.Sub() != "infra" || src.Repo.Local() {
		t.Fatalf("source %s: sub %q, local %v; want a cache of the subfolder", src.Repo, src.Repo.Sub(), src.Repo.Local())
	}
	files, err := src.Diff(context.Background(), first, second)
	if err != nil || len(files) != 1 || files[0].Path != "iac/prod/vpc/core/config.json" {
		t.Errorf("diff = %+v, %v", files, err)
	}
	res, err := src.Build(context.Background(), "prod", first, nil)
	if err != nil {
		t.Fatalf("build at the first commit: %v", err)
	}
	if errs := res.Diagnostics.Errors(); len(errs) > 0 {
		t.Fatalf("build at the first commit: %v", errs)
	}
	if _, err := src.Diff(context.Background(), first, strings.Repeat("cd", 20)); err == nil {
		t.Error("diff to a missing commit succeeded")
	}
}

// The whole service on real Terraform: pushes arrive as signed GitHub webhooks, the served
// pipeline deploys them, a parameter written outside Karma is reconciled, SIGTERM drains.
func TestServeEndToEnd(t *testing.T) {
	needTerraform(t)
	start := time.Now()
	deadline := start.Add(2 * time.Minute)
	repo, state := demoRepo(t)
	initial := git(t, repo, "rev-parse", "HEAD")
	sv := startServe(t, &globals{}, "--repo", repo, "--state-dir", state, "--secret", "github:acme/config="+serveSecret,
		"--branch", "main", "--auto-approve", "--parallelism", "4", "--reconcile", "200ms")
	l, a, _ := stores(t, state)
	applied := func(c string) int { return appliedCount(t, l, c) }

	// (a) The first push creates main: everything deploys.
	first := ghPush("refs/heads/main", zeroSHA, initial, "ada", ghCommitOf(t, repo, zeroSHA, initial))
	code, body := sv.post(t, first, ghHeaders("push", uuid.NewString(), serveSecret, first))
	if code != 202 || !strings.Contains(body, `"queued"`) {
		t.Fatalf("first push: %d %s", code, body)
	}
	sv.waitIdle(t, deadline, func() bool { return applied("prod/vpc/core") == 1 && applied("dev/vpc/core") == 1 })
	t.Logf("initial deployment: %s", time.Since(start).Round(time.Millisecond))

	// (b) Bob adds an AZ.
	editJSON(t, filepath.Join(repo, "iac", "prod", "vpc", "core", "config.json"), func(d map[string]any) { d["az_count"] = 4 })
	bob := commitAs(t, repo, "Bob", "one more AZ")
	second := ghPush("refs/heads/main", initial, bob, "bob", ghCommitOf(t, repo, initial, bob))
	headers := ghHeaders("push", uuid.NewString(), serveSecret, second)
	if code, body := sv.post(t, second, headers); code != 202 {
		t.Fatalf("Bob's push: %d %s", code, body)
	}
	// (c) The same delivery again: a duplicate, nothing new.
	if code, body := sv.post(t, second, headers); code != 200 || !strings.Contains(body, `"duplicate"`) {
		t.Errorf("redelivery: %d %s", code, body)
	}
	// (d) A forged delivery: 401, nothing queued, a security entry.
	forged := ghHeaders("push", uuid.NewString(), "guessed", second)
	if code, body := sv.post(t, second, forged); code != 401 {
		t.Errorf("bad signature: %d %s", code, body)
	}
	security := auditRecords(t, a, audit.Query{}, func(r audit.Record) bool {
		return strings.HasPrefix(r.Chain, "security/") && r.Type == "security.webhook_rejected" && strings.Contains(string(r.Body), "X-Hub-Signature-256 does not match the body")
	})
	if len(security) != 1 {
		t.Errorf("security audit entries = %d, want 1", len(security))
	}

	// (e) Idle: what Bob's change redeployed, and why.
	want := map[string]int{"prod/vpc/core": 2, "prod/lambda/handlers": 2, "prod/ecs-service/api": 2, "prod/ecs-cluster/core": 1,
		"prod/serverless-api/public": 1, "dev/vpc/core": 1}
	sv.waitIdle(t, deadline, func() bool { return applied("prod/ecs-service/api") >= 2 && applied("prod/lambda/handlers") >= 2 })
	t.Logf("Bob's change deployed: %s", time.Since(start).Round(time.Millisecond))
	for c, n := range want {
		if got := applied(c); got != n {
			t.Errorf("%s applied %d times, want %d", c, got, n)
		}
	}
	ctx := context.Background()
	ds, err := l.Deployments(ctx, "prod/ecs-service/api")
	if err != nil || len(ds) == 0 {
		t.Fatalf("deployments of prod/ecs-service/api: %v", err)
	}
	latest := ds[0]
	if latest.Status != lineage.StatusApplied || len(latest.CausedBy) != 1 || latest.CausedBy[0].Kind != message.CauseDeployment ||
		strings.Join(latest.CausedBy[0].Keys, ",") != "private_subnet_ids" {
		t.Fatalf("prod/ecs-service/api's latest deployment: %+v", latest)
	}
	up, err := l.Deployment(ctx, latest.CausedBy[0].ID)
	if err != nil || up.Component != "prod/vpc/core" || len(up.CausedBy) != 1 || up.CausedBy[0].Kind != message.CauseCommit || up.CausedBy[0].ID != bob {
		t.Errorf("upstream of prod/ecs-service/api: %+v %v", up, err)
	}
	if up.Actor.Name != "Bob <bob@example.com>" {
		t.Errorf("actor of Bob's change: %+v", up.Actor)
	}
	changes := auditRecords(t, a, audit.Query{}, func(r audit.Record) bool { return r.Type == message.TypeChangeDetected })
	if len(changes) != 2 {
		t.Errorf("change.detected audited %d times, want 2 (the two accepted pushes)", len(changes))
	}
	types := map[string]int{}
	for _, r := range auditRecords(t, a, audit.Query{Component: "prod/vpc/core"}, func(audit.Record) bool { return true }) {
		types[r.Type]++
	}
	for _, typ := range []string{message.TypeDeploymentScheduled, message.TypeDeploymentRecorded, message.TypeDeploymentPlanned, message.TypeDeploymentApplied} {
		if types[typ] != 2 {
			t.Errorf("audit of prod/vpc/core: %d %s, want 2 (%v)", types[typ], typ, types)
		}
	}

	// A parameter written outside Karma, whose change event never came: the reconciler finds it.
	db, err := embedded.Open(filepath.Join(state, "karma.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	devParams, err := embedded.NewParamStore(db, "dev")
	if err != nil {
		t.Fatal(err)
	}
	const name = "/iac/s3-bucket/assets/config"
	cur, err := devParams.Get(ctx, name)
	if err != nil {
		t.Fatal(err)
	}
	var cfg map[string]any
	json.Unmarshal([]byte(cur.Value), &cfg)
	cfg["tags"].(map[string]any)["Owner"] = "alice"
	b, _ := json.Marshal(cfg)
	put, err := devParams.Put(ctx, params.PutInput{Name: name, Value: string(b), User: "alice"})
	if err != nil || !put.Changed {
		t.Fatalf("put: %+v %v", put, err)
	}
	sv.waitIdle(t, deadline, func() bool { return applied("dev/s3-bucket/assets") == 2 })
	ds, _ = l.Deployments(ctx, "dev/s3-bucket/assets")
	if c := ds[0].CausedBy; len(c) != 1 || c[0].Kind != message.CauseParameter || c[0].ID != fmt.Sprintf("%s@%d", name, put.Version) || ds[0].Actor.Name != "alice" {
		t.Errorf("reconciled deployment: %+v", ds[0])
	}
	t.Logf("reconciled parameter deployed: %s", time.Since(start).Round(time.Millisecond))

	// SIGTERM right after a push is accepted: serve drains and exits 0; what was not started
	// stays queued, and the next start finishes it.
	editJSON(t, filepath.Join(repo, "iac", "prod", "vpc", "core", "config.json"), func(d map[string]any) {
		d["flow_logs"].(map[string]any)["log_group_name"] = "/aws/vpc/prod-core-flows"
	})
	carol := commitAs(t, repo, "Carol", "name the flow log group")
	third := ghPush("refs/heads/main", bob, carol, "carol", ghCommitOf(t, repo, bob, carol))
	if code, body := sv.post(t, third, ghHeaders("push", uuid.NewString(), serveSecret, third)); code != 202 {
		t.Fatalf("Carol's push: %d %s", code, body)
	}
	if code := sv.stop(t); code != 0 {
		t.Errorf("serve exit %d after SIGTERM, want 0", code)
	}
	logs := sv.log(t)
	if !strings.Contains(logs, "karma serve: shutting down") || !strings.Contains(logs, "karma serve: stopped") {
		t.Errorf("no drain in the log:\n%s", logs)
	}
	for _, line := range strings.Split(logs, "\n") {
		if strings.Contains(line, "shutting down") {
			t.Log(line[strings.Index(line, "msg="):])
		}
	}
	sv = startServe(t, &globals{}, "--repo", repo, "--state-dir", state, "--secret", "github:acme/config="+serveSecret, "--auto-approve")
	sv.waitIdle(t, deadline, func() bool { return applied("prod/vpc/core") == 3 })
	caused, _ := l.CausedBy(ctx, message.CauseCommit, carol)
	if len(caused) != 1 || caused[0].Component != "prod/vpc/core" || strings.Join(caused[0].ChangedKeys, ",") != "flow_log_group" {
		t.Errorf("Carol's commit caused %+v", caused)
	}
	if len(caused) == 1 {
		if more, _ := l.CausedBy(ctx, message.CauseDeployment, caused[0].ID); len(more) != 0 {
			t.Errorf("a key nobody consumes redeployed %+v", more)
		}
	}
	if code := sv.stop(t); code != 0 {
		t.Errorf("serve exit %d, want 0", code)
	}
	t.Logf("drained, restarted, Carol's change deployed: %s", time.Since(start).Round(time.Millisecond))
	chains, _ := a.Chains(ctx)
	for _, c := range chains {
		if err := a.Verify(ctx, c); err != nil {
			t.Error(err)
		}
	}
	t.Logf("total: %s", time.Since(start).Round(time.Millisecond))
}
