package client_test

import (
	"context"
	"encoding/json"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/api"
	"github.com/usekarma/karma/shared/api/client"
	"github.com/usekarma/karma/shared/configrepo"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/gitrepo"
	"github.com/usekarma/karma/shared/gitrepo/gittest"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/terraform"
	"github.com/usekarma/karma/workers/apply"
	auditw "github.com/usekarma/karma/workers/audit"
	"github.com/usekarma/karma/workers/graphwrite"
	"github.com/usekarma/karma/workers/plan"
	"github.com/usekarma/karma/workers/resolve"
)

const token = "karma_client-test-token-000000000000000000000000000"

// server is a Karma server over real stores — the example repository in a git remote, the
// embedded state file — and the pipeline (terraform.Noop) to run what it queues.
type server struct {
	url    string
	q      *embedded.Queue
	runner *pipeline.Runner
}

func newServer(t *testing.T) *server {
	t.Helper()
	ctx := context.Background()
	files := map[string]string{}
	root := filepath.Join("..", "..", "..", "examples")
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		rel, _ := filepath.Rel(root, p)
		files[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	origin := gittest.NewOrigin(t, "config.git", files)
	repo, err := gitrepo.OpenCache(filepath.Join(t.TempDir(), "cache"), gitrepo.Remote{URL: origin.Bare}, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repo.Close() })
	db, err := embedded.Open(filepath.Join(t.TempDir(), "karma.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	stores := map[string]*embedded.ParamStore{}
	var mu sync.Mutex
	paramsFor := func(env string) (params.Store, error) {
		mu.Lock()
		defer mu.Unlock()
		if st, ok := stores[env]; ok {
			return st, nil
		}
		st, err := embedded.NewParamStore(db, env)
		stores[env] = st
		return st, err
	}
	src := &configrepo.Source{Repo: repo, ModulesRoot: filepath.Join(t.TempDir(), "modules")}
	s := &server{}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	s.q, err = embedded.NewQueue(ctx, db, embedded.QueueOptions{})
	must(err)
	changeSets, err := embedded.NewChangeSets(ctx, db)
	must(err)
	lin, err := embedded.NewLineage(ctx, db)
	must(err)
	auditLog, err := embedded.NewAuditLog(ctx, db)
	must(err)
	seen, err := embedded.NewSeen(ctx, db)
	must(err)
	gs, err := embedded.NewGraphStore(ctx, db)
	must(err)
	ws := terraform.Workspaces{WorkDir: filepath.Join(t.TempDir(), "work"), Modules: src, Prefix: "/iac"}
	tf := &terraform.Noop{}
	stage := func(name string, h pipeline.Handler) pipeline.Stage {
		return pipeline.Stage{Name: name, Workers: 1, Seen: seen, Lease: time.Minute, Handler: pipeline.Chain(h, pipeline.Correlation())}
	}
	s.runner = &pipeline.Runner{Queue: s.q, Visibility: time.Minute, Stages: []pipeline.Stage{
		stage(pipeline.StageResolve, (&resolve.Worker{Graphs: src, Commits: src, ChangeSets: changeSets}).Handle),
		stage(pipeline.StageGraphWrite, (&graphwrite.Worker{Graphs: src, Store: gs, Lineage: lin}).Handle),
		stage(pipeline.StagePlan, (&plan.Worker{ChangeSets: changeSets, Params: paramsFor, Runner: tf, Workspaces: ws}).Handle),
		stage(pipeline.StageApply, (&apply.Worker{ChangeSets: changeSets, Params: paramsFor, Runner: tf, Workspaces: ws}).Handle),
		stage(pipeline.StageAudit, (&auditw.Worker{Log: auditLog}).Handle),
	}}
	auth, err := api.ParseTokens([]byte("cli sha256:" + api.HashToken(token) + " read,write,approve\n"))
	must(err)
	h, err := api.New(api.Config{Graphs: &api.HeadGraphs{Repo: src}, ChangeSets: changeSets, Lineage: lin, Audit: auditLog,
		Publisher: pipeline.QueuePublisher{Queue: s.q}, Auth: auth, Proposals: src, Writer: &configrepo.Writer{Repo: repo, Mode: configrepo.WriteBranch}, Rollbacks: src,
		Params: func(env string) (api.ParamReader, error) { return paramsFor(env) }})
	must(err)
	ts := httptest.NewServer(http.StripPrefix("/karma", h)) // behind a path prefix, as a proxy may put it
	t.Cleanup(ts.Close)
	s.url = ts.URL + "/karma"
	return s
}

// runUntilIdle runs the pipeline until the queues are empty and nothing is in flight.
func (s *server) runUntilIdle(t *testing.T) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { s.runner.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()
	for quiet := 0; quiet < 3; {
		select {
		case <-ctx.Done():
			t.Fatal("the pipeline is still busy after 2 minutes")
		case <-time.After(20 * time.Millisecond):
		}
		busy := s.runner.InFlight() > 0
		for _, name := range []string{pipeline.StageResolve, pipeline.StageGraphWrite, pipeline.StagePlan, pipeline.StageApply, pipeline.StageAudit} {
			n, _ := s.q.Depth(ctx, name)
			busy = busy || n > 0
		}
		if quiet++; busy {
			quiet = 0
		}
	}
}

func TestClientAgainstARealServer(t *testing.T) {
	t.Parallel()
	s := newServer(t)
	ctx := t.Context()
	c, err := client.New(s.url, client.Options{Token: token})
	if err != nil {
		t.Fatal(err)
	}
	g, err := c.Graph(ctx, "prod", "")
	if err != nil || len(g.Components) == 0 {
		t.Fatalf("Graph: %d components, %v", len(g.Components), err)
	}
	if comp, err := c.Component(ctx, "prod", "vpc", "core"); err != nil || comp.ID != "prod/vpc/core" {
		t.Fatalf("Component: %+v, %v", comp, err)
	}
	imp, err := c.Impact(ctx, "prod/vpc/core", []string{"vpc_id"})
	if err != nil || imp.Seeds[0] != "prod/vpc/core" {
		t.Fatalf("Impact: %+v, %v", imp, err)
	}

	proposal := []byte(`{"cidr": "10.20.0.0/16", "az_count": 2}`)
	created, err := c.RequestChange(ctx, api.ChangeRequest{Component: "prod/vpc/core", ProposedChange: proposal, RequestedBy: "Ada <ada@example.com>"})
	if err != nil || len(created.Commit) != 40 {
		t.Fatalf("RequestChange: %+v, %v", created, err)
	}
	// A refusal is the server's problem document, pointers included.
	_, err = c.RequestChange(ctx, api.ChangeRequest{Component: "prod/vpc/core", ProposedChange: []byte(`{"az_count": "many"}`), RequestedBy: "Ada"})
	var perr *client.Error
	if !client.IsStatus(err, http.StatusUnprocessableEntity) || !asError(err, &perr) || len(perr.Errors) == 0 || !strings.Contains(err.Error(), "/proposed_change") {
		t.Fatalf("an invalid request: %v", err)
	}
	s.runUntilIdle(t)

	list, err := c.Changes(ctx, client.ChangesQuery{Env: "prod", State: api.StateAwaiting})
	if err != nil || len(list.Changes) != 1 || list.Changes[0].ID != created.ChangeID {
		t.Fatalf("Changes: %+v, %v", list, err)
	}
	detail, err := c.Change(ctx, created.ChangeID)
	if err != nil || len(detail.Plans) != 1 || !detail.Plans[0].Held {
		t.Fatalf("Change: %+v, %v", detail, err)
	}
	dec, err := c.Approve(ctx, created.ChangeID)
	if err != nil || dec.Released != 1 || dec.Change.ApprovedBy != "cli" {
		t.Fatalf("Approve: %+v, %v", dec, err)
	}
	s.runUntilIdle(t)
	if _, err := c.Reject(ctx, created.ChangeID, "too late"); !client.IsStatus(err, http.StatusConflict) {
		t.Fatalf("rejecting an approved change: %v", err)
	}
	detail, _ = c.Change(ctx, created.ChangeID)
	dep := detail.Deployments[0].DeploymentID
	if d, err := c.Deployment(ctx, dep); err != nil || d.Status != "applied" {
		t.Fatalf("Deployment: %+v, %v", d, err)
	}
	if step, err := c.Lineage(ctx, dep); err != nil || len(step.Causes) != 1 || step.Causes[0].Change == nil {
		t.Fatalf("Lineage: %+v, %v", step, err)
	}
	// Rolling back to what runs now is refused; the change has no promotion (one environment).
	if _, err := c.Rollback(ctx, dep); !client.IsStatus(err, http.StatusConflict) || !strings.Contains(err.Error(), "runs now") {
		t.Fatalf("Rollback to what runs now: %v", err)
	}
	if _, err := c.Promotion(ctx, created.ChangeID); !client.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("Promotion of a change of one environment: %v", err)
	}
	if _, err := c.Promote(ctx, created.ChangeID, "why"); !client.IsStatus(err, http.StatusNotFound) {
		t.Fatalf("Promote of a change of one environment: %v", err)
	}
	// The log, page by page.
	var n int
	q := client.LogQuery{Correlation: created.ChangeID, Limit: 2}
	for pages := 0; ; pages++ {
		page, err := c.Log(ctx, q)
		if err != nil || pages > 50 {
			t.Fatalf("Log: %v after %d pages", err, pages)
		}
		n += len(page.Records)
		if q.Cursor = page.NextCursor; q.Cursor == "" {
			break
		}
	}
	if n < 5 {
		t.Errorf("%d log records of the change", n)
	}
}

func TestClientErrors(t *testing.T) {
	t.Parallel()
	for _, bad := range []string{"karma.example.com", "ftp://x", "https://user:pass@karma.example.com", "http://"} {
		if _, err := client.New(bad, client.Options{}); err == nil {
			t.Errorf("New(%q) accepted", bad)
		}
	}
	s := newServer(t)
	ctx := t.Context()
	anon, _ := client.New(s.url, client.Options{})
	if _, err := anon.Changes(ctx, client.ChangesQuery{}); !client.IsStatus(err, http.StatusUnauthorized) {
		t.Errorf("without a token: %v", err)
	}
	c, _ := client.New(s.url, client.Options{Token: token})
	if _, err := c.Change(ctx, "nope"); !client.IsStatus(err, http.StatusNotFound) {
		t.Errorf("an unknown change: %v", err)
	}
	// Not a problem document (a proxy's page): the status and text are kept.
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { http.Error(w, "bad gateway", http.StatusBadGateway) }))
	defer ts.Close()
	proxy, _ := client.New(ts.URL, client.Options{})
	if _, err := proxy.Graph(ctx, "", ""); !client.IsStatus(err, http.StatusBadGateway) || !strings.Contains(err.Error(), "bad gateway") {
		t.Errorf("a proxy's error: %v", err)
	}
	// Down: the error names the server.
	down, _ := client.New("http://127.0.0.1:1", client.Options{})
	if _, err := down.Graph(ctx, "", ""); err == nil || !strings.Contains(err.Error(), "127.0.0.1:1") {
		t.Errorf("a server that is down: %v", err)
	}
}

func asError(err error, target **client.Error) bool {
	e, ok := err.(*client.Error)
	*target = e
	return ok
}

// A page of GET /log too large for the server to send (the Lambda function returns at most
// 6 MB) failed `karma audit log --server` with no way to ask for less; the client now asks for
// half as many records until the page fits, and gives up at one.
func TestClientLogAsksForSmallerPagesWhileTooLarge(t *testing.T) {
	t.Parallel()
	var mu sync.Mutex
	var asked []string
	fits := 10
	ts := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		limit := r.URL.Query().Get("limit")
		mu.Lock()
		asked = append(asked, limit)
		max := fits
		mu.Unlock()
		n := api.LogDefaultLimit
		if limit != "" {
			n, _ = strconv.Atoi(limit)
		}
		if n > max {
			w.Header().Set("Content-Type", "application/problem+json")
			w.WriteHeader(http.StatusInternalServerError)
			json.NewEncoder(w).Encode(api.Problem{Type: api.ProblemBase + api.TypeResponseTooLarge, Title: "Internal Server Error", Status: 500, Detail: "too large"})
			return
		}
		page := api.LogPage{NextCursor: "next"}
		for range n {
			page.Records = append(page.Records, api.LogRecord{Body: json.RawMessage(`{}`)})
		}
		json.NewEncoder(w).Encode(page)
	}))
	defer ts.Close()
	c, _ := client.New(ts.URL, client.Options{})
	page, err := c.Log(t.Context(), client.LogQuery{Limit: 1000})
	if err != nil || len(page.Records) != 7 || page.NextCursor != "next" || strings.Join(asked, " ") != "1000 500 250 125 62 31 15 7" {
		t.Errorf("limit 1000: %v, %d records, asked %v", err, len(page.Records), asked)
	}
	mu.Lock()
	asked = nil
	mu.Unlock()
	if page, err := c.Log(t.Context(), client.LogQuery{}); err != nil || len(page.Records) != 6 || strings.Join(asked, " ") != " 50 25 12 6" {
		t.Errorf("the default limit: %v, asked %q", err, asked)
	}
	mu.Lock()
	fits = 0
	mu.Unlock()
	if _, err := c.Log(t.Context(), client.LogQuery{Limit: 2}); !client.IsStatus(err, http.StatusInternalServerError) || !strings.Contains(err.Error(), "too large") {
		t.Errorf("a record too large alone: %v", err)
	}
}
