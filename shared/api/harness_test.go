package api

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/json"
	"io"
	"io/fs"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/configrepo"
	"github.com/usekarma/karma/shared/drift"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/gitrepo"
	"github.com/usekarma/karma/shared/gitrepo/gittest"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/terraform"
	"github.com/usekarma/karma/shared/trigger"
	"github.com/usekarma/karma/workers/apply"
	auditw "github.com/usekarma/karma/workers/audit"
	"github.com/usekarma/karma/workers/graphwrite"
	"github.com/usekarma/karma/workers/ingest"
	"github.com/usekarma/karma/workers/plan"
	"github.com/usekarma/karma/workers/resolve"
)

// harness is the API over real stores: the example repository in a real git repository (a bare
// "remote" the API commits proposals to, fast-forward, as karma serve does), the embedded state
// file, and the whole pipeline with terraform.Noop to run what the API queues.
type harness struct {
	t          *testing.T
	origin     *gittest.Origin
	src        *configrepo.Source
	q          *embedded.Queue
	changeSets *embedded.ChangeSets
	lineage    *embedded.Lineage
	audit      *embedded.AuditLog
	metrics    *Metrics
	runner     *pipeline.Runner
	handler    http.Handler
	// tf is the plan and apply stages' terraform; nil: terraform.Noop. Set it, then call
	// pipeline again.
	tf terraform.Runner

	mu     sync.Mutex
	db     *embedded.DB
	stores map[string]*embedded.ParamStore
}

// Tokens of the harness, by name: their scopes are their names' (admin: every scope).
var tokens = map[string]string{
	"reader":   "karma_reader-0000000000000000000000000000000000000",
	"writer":   "karma_writer-0000000000000000000000000000000000000",
	"approver": "karma_approver-00000000000000000000000000000000000",
	"admin":    "karma_admin-000000000000000000000000000000000000000",
	"second":   "karma_second-00000000000000000000000000000000000000",
	"third":    "karma_third-000000000000000000000000000000000000000",
}

const tokensFile = `# name  hash  scopes
reader    sha256:%s  read
writer    sha256:%s  read,write
approver  sha256:%s  read,approve
admin     %s         read,write,approve
second    sha256:%s  read,approve
third     sha256:%s  read,approve
`

func exampleFiles(t testing.TB) map[string]string {
	t.Helper()
	root := filepath.Join("..", "..", "examples")
	files := map[string]string{}
	err := filepath.WalkDir(root, func(path string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		rel, _ := filepath.Rel(root, path)
		if strings.Contains(rel, ".terraform") || strings.HasSuffix(rel, ".tfstate") {
			return nil
		}
		b, err := os.ReadFile(path)
		files[filepath.ToSlash(rel)] = string(b)
		return err
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

func newHarness(t *testing.T) *harness {
	t.Helper()
	return newHarnessWith(t, nil)
}

// newHarnessWith is newHarness over the example repository as edit leaves it.
func newHarnessWith(t *testing.T, edit func(files map[string]string)) *harness {
	t.Helper()
	ctx := context.Background()
	files := exampleFiles(t)
	if edit != nil {
		edit(files)
	}
	h := &harness{t: t, origin: gittest.NewOrigin(t, "config.git", files), stores: map[string]*embedded.ParamStore{}}
	repo, err := gitrepo.OpenCache(filepath.Join(t.TempDir(), "cache"), gitrepo.Remote{URL: h.origin.Bare}, "")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { repo.Close() })
	h.src = &configrepo.Source{Repo: repo, ModulesRoot: filepath.Join(t.TempDir(), "modules"), Params: func(env string) params.Store { return h.params(env) }}
	if h.db, err = embedded.Open(filepath.Join(t.TempDir(), "karma.db")); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { h.db.Close() })
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	h.q, err = embedded.NewQueue(ctx, h.db, embedded.QueueOptions{})
	must(err)
	h.changeSets, err = embedded.NewChangeSets(ctx, h.db)
	must(err)
	h.lineage, err = embedded.NewLineage(ctx, h.db)
	must(err)
	h.audit, err = embedded.NewAuditLog(ctx, h.db)
	must(err)
	h.metrics = NewMetrics(h.q, stageNames)
	h.pipeline()
	h.handler, err = New(h.config())
	must(err)
	return h
}

// config is the harness's API configuration: service mode, tokens, a writable repository.
func (h *harness) config() Config {
	auth, err := ParseTokens([]byte(tokensText()))
	if err != nil {
		h.t.Fatal(err)
	}
	return Config{Graphs: &HeadGraphs{Repo: h.src}, ChangeSets: h.changeSets, Lineage: h.lineage, Audit: h.audit,
		Publisher: pipeline.QueuePublisher{Queue: h.q}, Auth: auth, Metrics: h.metrics,
		Params:    func(env string) (ParamReader, error) { return h.params(env), nil },
		Proposals: h.src, Writer: &configrepo.Writer{Repo: h.src.Repo, Mode: configrepo.WriteBranch}, Rollbacks: h.src,
		Drift: h.drift()}
}

// drift is the drift check over the harness's repository and stores, as a read.
func (h *harness) drift() drift.ReadOnly {
	seen, err := embedded.NewSeen(context.Background(), h.db)
	if err != nil {
		h.t.Fatal(err)
	}
	c := &drift.Checker{Source: h.src, ChangeSets: h.changeSets, Params: func(env string) (params.Store, error) { return h.params(env), nil }}
	return drift.ReadOnly{Checker: c, Records: seen}
}

// tokensText is the harness's tokens file (the admin's hash without the sha256: prefix).
func tokensText() string {
	s := tokensFile
	for _, name := range []string{"reader", "writer", "approver", "admin", "second", "third"} {
		s = strings.Replace(s, "%s", HashToken(tokens[name]), 1)
	}
	return s
}

func (h *harness) params(env string) *embedded.ParamStore {
	h.mu.Lock()
	defer h.mu.Unlock()
	if st, ok := h.stores[env]; ok {
		return st
	}
	st, err := embedded.NewParamStore(h.db, env)
	if err != nil {
		h.t.Fatal(err)
	}
	h.stores[env] = st
	return st
}

var stageNames = []string{pipeline.StageIngest, pipeline.StageResolve, pipeline.StageGraphWrite, pipeline.StagePlan, pipeline.StageApply, pipeline.StageAudit}

// pipeline wires every stage as cmd/karma does, with terraform.Noop (or h.tf) and the metrics
// middleware.
func (h *harness) pipeline() {
	ctx := context.Background()
	seen, err := embedded.NewSeen(ctx, h.db)
	if err != nil {
		h.t.Fatal(err)
	}
	gs, err := embedded.NewGraphStore(ctx, h.db)
	if err != nil {
		h.t.Fatal(err)
	}
	paramsFor := func(env string) (params.Store, error) { return h.params(env), nil }
	ws := terraform.Workspaces{WorkDir: filepath.Join(h.t.TempDir(), "work"), Modules: h.src, Prefix: "/iac"}
	var tf terraform.Runner = &terraform.Noop{}
	if h.tf != nil {
		tf = h.tf
	}
	stage := func(name string, handler pipeline.Handler) pipeline.Stage {
		return pipeline.Stage{Name: name, Workers: 1, Seen: seen, Lease: time.Minute,
			Handler: pipeline.Chain(handler, h.metrics.Middleware(name), pipeline.Correlation())}
	}
	h.runner = &pipeline.Runner{Queue: h.q, Visibility: time.Minute, Stages: []pipeline.Stage{
		stage(pipeline.StageIngest, (&ingest.Worker{Parameters: history{h}, Prefix: "/iac"}).Handle),
		stage(pipeline.StageResolve, (&resolve.Worker{Graphs: h.src, Commits: h.src, ChangeSets: h.changeSets, Configs: configs{h}}).Handle),
		stage(pipeline.StageGraphWrite, (&graphwrite.Worker{Graphs: h.src, Store: gs, Lineage: h.lineage}).Handle),
		stage(pipeline.StagePlan, (&plan.Worker{ChangeSets: h.changeSets, Params: paramsFor, Runner: tf, Workspaces: ws}).Handle),
		stage(pipeline.StageApply, (&apply.Worker{ChangeSets: h.changeSets, Params: paramsFor, Runner: tf, Workspaces: ws}).Handle),
		stage(pipeline.StageAudit, (&auditw.Worker{Log: h.audit}).Handle),
	}}
}

// history reads a parameter's versions (ingest.ParameterReader).
type history struct{ h *harness }

func (r history) History(ctx context.Context, env, name string) ([]params.Parameter, error) {
	return r.h.params(env).History(ctx, name)
}

// configs reads a /config parameter (changes made in Parameter Store; unused by these tests).
type configs struct{ h *harness }

func (c configs) Config(ctx context.Context, env, component string, version int64, writtenAt time.Time) ([]byte, error) {
	parts := strings.SplitN(component, "/", 3)
	p, err := params.GetWritten(ctx, c.h.params(env), model.ConfigParam("/iac", parts[1], parts[2]), version, writtenAt)
	return []byte(p.Value), err
}

// runUntilIdle runs the pipeline until no queue holds a message and nothing is in flight.
func (h *harness) runUntilIdle() {
	h.t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { h.runner.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()
	for quiet := 0; quiet < 3; {
		select {
		case <-ctx.Done():
			h.t.Fatal("the pipeline is still busy after 2 minutes")
		case <-time.After(20 * time.Millisecond):
		}
		busy := h.runner.InFlight() > 0
		for _, name := range stageNames {
			n, err := h.q.Depth(ctx, name)
			if err != nil {
				h.t.Fatal(err)
			}
			busy = busy || n > 0
		}
		if quiet++; busy {
			quiet = 0
		}
	}
}

// call sends a request as the token's owner ("" = no credentials); the response must conform to
// openapi.json. body is JSON-encoded unless it is a string (sent as is) or nil.
func (h *harness) call(method, path, token string, body any, header ...string) *response {
	h.t.Helper()
	return h.callContext(context.Background(), method, path, token, body, header...)
}

// callContext is call with the request's context ctx (a caller that hangs up: a cancelled one).
func (h *harness) callContext(ctx context.Context, method, path, token string, body any, header ...string) *response {
	h.t.Helper()
	var rd io.Reader
	switch b := body.(type) {
	case nil:
	case string:
		rd = strings.NewReader(b)
	default:
		raw, err := json.Marshal(b)
		if err != nil {
			h.t.Fatal(err)
		}
		rd = bytes.NewReader(raw)
	}
	r := httptest.NewRequest(method, path, rd).WithContext(ctx)
	if body != nil {
		r.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		r.Header.Set("Authorization", "Bearer "+tokens[token])
	}
	for i := 0; i+1 < len(header); i += 2 {
		r.Header.Set(header[i], header[i+1])
	}
	w := httptest.NewRecorder()
	h.handler.ServeHTTP(w, r)
	resp := w.Result()
	resp.Request = r // (want names it)
	raw, _ := io.ReadAll(resp.Body)
	check := *resp
	check.Body = io.NopCloser(bytes.NewReader(raw))
	if resp.Header.Get("Content-Encoding") == "gzip" { // the validator reads plain JSON
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			h.t.Fatal(err)
		}
		check.Body = zr
	}
	conforms(h.t, r, &check)
	return &response{t: h.t, Response: resp, body: raw}
}

type response struct {
	*http.Response
	t    *testing.T
	body []byte
}

// want fails the test unless the status is status; it returns the response.
func (r *response) want(status int) *response {
	r.t.Helper()
	if r.StatusCode != status {
		r.t.Fatalf("%s %s: status %d, want %d: %s", r.Request.Method, r.Request.URL, r.StatusCode, status, r.body)
	}
	return r
}

// decode reads the JSON body.
func (r *response) decode(v any) {
	r.t.Helper()
	if err := json.Unmarshal(r.body, v); err != nil {
		r.t.Fatalf("%s: %v: %s", r.Request.URL, err, r.body)
	}
}

// problem reads a problem document and checks its media type and status.
func (r *response) problem() Problem {
	r.t.Helper()
	if ct := r.Header.Get("Content-Type"); ct != "application/problem+json" {
		r.t.Fatalf("%s: Content-Type %q, want application/problem+json: %s", r.Request.URL, ct, r.body)
	}
	var p Problem
	r.decode(&p)
	if p.Status != r.StatusCode || p.Detail == "" || !strings.HasPrefix(p.Type, ProblemBase) || p.Title == "" {
		r.t.Errorf("%s: problem %+v with status %d", r.Request.URL, p, r.StatusCode)
	}
	return p
}

// pointers lists the problem's JSON pointers.
func (p Problem) pointers() []string {
	var out []string
	for _, e := range p.Errors {
		out = append(out, e.Pointer)
	}
	return out
}

func paramsPut(name, value string) params.PutInput {
	return params.PutInput{Name: name, Value: value, User: "test"}
}

// push queues the git.pushed of a commit pushed to the deploy branch (as the webhook does) and
// returns the change set id its change will have in prod.
func (h *harness) push(sha string, files ...string) string {
	h.t.Helper()
	var changes []trigger.FileChange
	for _, f := range files {
		changes = append(changes, trigger.FileChange{Path: f})
	}
	pushed, err := trigger.GitPushed(trigger.Push{SHA: sha, Author: "Grace <grace@example.com>", Message: "push", Branch: "main", Files: changes}, "components", "")
	if err != nil {
		h.t.Fatalf("trigger: %v", err)
	}
	if err := pipeline.Publish(context.Background(), h.q, pushed); err != nil {
		h.t.Fatal(err)
	}
	return pushed.CorrelationID + "/prod"
}
