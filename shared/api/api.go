// Package api is Karma's HTTP API: one net/http handler, served by `karma serve` and, through
// API Gateway (HTTP API, payload 2.0) events, by a Lambda function (LambdaHandler). It reads
// the graph, change sets, lineage and audit log, and turns the few writes it accepts — a change
// request, an approval, a rejection — into Git commits and pipeline messages; the workers do the
// rest. docs/api.md describes every route; openapi.json (served at /openapi.json) is the
// contract, and a test holds the routes and the document to each other both ways.
//
// Contract:
//   - Every error is an RFC 9457 problem document (problem.go) whose detail names the input
//     and what to do; invalid input is refused whole (4xx) before anything is written.
//   - Every route but the health checks, the OpenAPI document and the Git webhook needs a
//     caller holding a scope (auth.go); every write is audited with its caller, and every
//     refusal for want of credentials is audited as a security entry.
//   - Writes are idempotent where a client may retry: approving again releases what the first
//     approval left unreleased; rejecting again re-announces the rejection.
package api

import (
	"errors"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"time"

	"github.com/usekarma/karma/shared/rollback"
)

// Config is what the handler is built from. Fields marked required must be set (Validate).
type Config struct {
	Graphs     Graphs     // required: the current graph per environment
	ChangeSets ChangeSets // required
	Lineage    Lineage    // required
	Audit      AuditLog   // required: GET /log, and every write's record
	Publisher  Publisher  // required: the messages of writes
	Auth       Authenticator
	// Params reads an environment's parameter store (component runtimes); nil leaves runtimes
	// out of GET /components.
	Params func(env string) (ParamReader, error)
	// Proposals and Writer turn POST /request-change into a commit; nil refuses change
	// requests (409 read-only-repository), as KARMA_GIT_WRITE=none does.
	Proposals Proposals
	Writer    ProposalWriter
	// Drift serves GET /drift (drift.ReadOnly); nil answers 404.
	Drift DriftCheck
	// Rollbacks reads the config repository at commits to check rollbacks (configrepo.Source);
	// nil refuses POST /deployments/{id}/rollback (409).
	Rollbacks rollback.Repository
	// Webhooks serves POST /webhooks/git (shared/httpapi.Webhooks); nil answers 404.
	Webhooks http.Handler
	// Events streams the pipeline's progress on GET /events (the process running the pipeline
	// feeds it); nil answers 404.
	Events *Events
	// Metrics serves /metrics; nil answers 404.
	Metrics *Metrics
	// Ready are the Readiness checks of /readyz besides the stores' (name -> check).
	Ready map[string]func(*http.Request) error
	// MaxBody bounds request bodies (default 1 MiB).
	MaxBody int64
	Log     *slog.Logger
	Now     func() time.Time
}

// DefaultMaxBody bounds request bodies when Config.MaxBody is 0.
const DefaultMaxBody = 1 << 20

// Validate reports every missing dependency at once.
func (c Config) Validate() error {
	var errs []error
	for name, missing := range map[string]bool{
		"Graphs": c.Graphs == nil, "ChangeSets": c.ChangeSets == nil, "Lineage": c.Lineage == nil,
		"Audit": c.Audit == nil, "Publisher": c.Publisher == nil,
		"Auth (a tokens file, IAM, or --insecure-local on loopback: there is no unauthenticated mode)": c.Auth == nil,
	} {
		if missing {
			errs = append(errs, errors.New("api: "+name+" is required"))
		}
	}
	if (c.Proposals == nil) != (c.Writer == nil) {
		errs = append(errs, errors.New("api: Proposals and Writer go together (both, or neither to refuse change requests)"))
	}
	if c.MaxBody < 0 {
		errs = append(errs, errors.New("api: MaxBody must not be negative"))
	}
	return errors.Join(errs...)
}

// server is the handler.
type server struct {
	cfg    Config
	mux    *http.ServeMux
	routes []route
	graphs graphCache
	// requests remembers change requests accepted but not yet resolved into a change set, per
	// component: a second request for it is a conflict (409) meanwhile.
	mu       sync.Mutex
	requests map[string]pendingRequest
	// query: the query parameters each operation takes (queryparams.go).
	query queryParams
}

// New builds the handler.
func New(cfg Config) (http.Handler, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if cfg.MaxBody == 0 {
		cfg.MaxBody = DefaultMaxBody
	}
	if cfg.Log == nil {
		cfg.Log = slog.New(slog.DiscardHandler)
	}
	if cfg.Now == nil {
		cfg.Now = time.Now
	}
	qp, err := documentedQueryParams(openAPI)
	if err != nil {
		return nil, err
	}
	s := &server{cfg: cfg, mux: http.NewServeMux(), requests: map[string]pendingRequest{}, query: qp}
	s.routes = s.table()
	for _, rt := range s.routes {
		s.mux.Handle(rt.method+" "+rt.pattern, s.wrap(rt))
	}
	s.mux.HandleFunc("/", s.noRoute)
	return s, nil
}

func (s *server) ServeHTTP(w http.ResponseWriter, r *http.Request) { s.mux.ServeHTTP(w, r) }

// route is one documented operation.
type route struct {
	method, pattern string
	scope           Scope // "" = public
	handle          func(w http.ResponseWriter, r *http.Request, c Caller) error
	raw             http.Handler // instead of handle: served as is (the webhook)
}

// table lists every route: the OpenAPI document must describe exactly these.
func (s *server) table() []route {
	return []route{
		{method: "GET", pattern: "/graph", scope: ScopeRead, handle: s.getGraph},
		{method: "GET", pattern: "/components/{env}/{type}/{nickname}", scope: ScopeRead, handle: s.getComponent},
		{method: "GET", pattern: "/impact", scope: ScopeRead, handle: s.getImpact},
		{method: "POST", pattern: "/impact", scope: ScopeRead, handle: s.postImpact},
		{method: "POST", pattern: "/request-change", scope: ScopeWrite, handle: s.requestChange},
		{method: "GET", pattern: "/changes", scope: ScopeRead, handle: s.listChanges},
		{method: "GET", pattern: "/changes/{id}", scope: ScopeRead, handle: s.getChange},
		{method: "POST", pattern: "/changes/{id}/approve", scope: ScopeApprove, handle: s.approve},
		{method: "POST", pattern: "/changes/{id}/reject", scope: ScopeApprove, handle: s.reject},
		{method: "GET", pattern: "/log", scope: ScopeRead, handle: s.getLog},
		{method: "GET", pattern: "/deployments/{id}", scope: ScopeRead, handle: s.getDeployment},
		{method: "GET", pattern: "/deployments/{id}/lineage", scope: ScopeRead, handle: s.getLineage},
		{method: "GET", pattern: "/drift", scope: ScopeRead, handle: s.getDrift},
		{method: "POST", pattern: "/deployments/{id}/rollback", scope: ScopeWrite, handle: s.rollback},
		{method: "GET", pattern: "/changes/{id}/promotion", scope: ScopeRead, handle: s.getPromotion},
		{method: "POST", pattern: "/changes/{id}/promote", scope: ScopeApprove, handle: s.promote},
		{method: "GET", pattern: "/events", scope: ScopeRead, handle: s.getEvents},
		{method: "GET", pattern: "/me", scope: ScopeRead, handle: s.getMe},
		{method: "POST", pattern: "/webhooks/git", raw: s.webhooks()},
		{method: "GET", pattern: "/openapi.json", handle: serveOpenAPI},
		{method: "GET", pattern: "/healthz", handle: s.healthz},
		{method: "GET", pattern: "/readyz", handle: s.readyz},
		{method: "GET", pattern: "/metrics", scope: ScopeRead, raw: s.metrics()},
	}
}

// wrap authorizes, times and turns errors into problem documents.
func (s *server) wrap(rt route) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		sw := &statusWriter{ResponseWriter: w, status: http.StatusOK}
		defer func() { s.cfg.Metrics.observeRequest(rt.method+" "+rt.pattern, sw.status, time.Since(start)) }()
		var c Caller
		if rt.scope != "" {
			var p *Problem
			if c, p = s.authorize(r, rt.scope); p != nil {
				writeProblem(sw, p)
				return
			}
		}
		if ew, ok := w.(*eventWriter); ok { // in a Lambda function: the response must fit
			defer s.fitLambda(ew, sw, rt, r)
		}
		if rt.raw != nil {
			rt.raw.ServeHTTP(sw, r)
			return
		}
		if p := s.query.check(rt, r); p != nil {
			writeProblem(sw, p)
			return
		}
		if rt.scope == ScopeWrite || rt.scope == ScopeApprove { // a request that changes state
			ctx, cancel := detached(r)
			defer cancel()
			r = r.WithContext(ctx)
		}
		if err := rt.handle(sw, r, c); err != nil {
			p := asProblem(err)
			if p.Status >= 500 {
				s.cfg.Log.Error("api", "method", r.Method, "path", r.URL.Path, "status", p.Status, "error", err)
			}
			writeProblem(sw, p)
		}
	})
}

// fitLambda replaces a response the Lambda function could not return (MaxLambdaResponse) by
// the 500 response-too-large naming how to ask route rt for less: API Gateway would have
// answered a bare 500 naming nothing. The metrics count the 500.
func (s *server) fitLambda(w *eventWriter, sw *statusWriter, rt route, r *http.Request) {
	size, over := w.oversize()
	if !over {
		return
	}
	status, location := w.statusCode(), w.header.Get("Location")
	w.reset()
	p := responseTooLarge(r, status, size, w.gzip, s.narrower(rt, r, status, location))
	s.cfg.Log.Error("api: response too large for Lambda", "method", r.Method, "path", r.URL.Path, "status", status, "bytes", size)
	writeProblem(sw, p)
}

// noRoute answers what no route serves: 405 when the path is served for other methods.
func (s *server) noRoute(w http.ResponseWriter, r *http.Request) {
	var allowed []string
	for _, m := range []string{"GET", "POST"} {
		probe := r.Clone(r.Context())
		probe.Method = m
		if _, pattern := s.mux.Handler(probe); pattern != "/" && pattern != "" {
			allowed = append(allowed, m)
		}
	}
	if len(allowed) > 0 {
		w.Header().Set("Allow", strings.Join(allowed, ", "))
		writeProblem(w, problem(http.StatusMethodNotAllowed, TypeMethod, "%s %s: this path takes %s", r.Method, r.URL.Path, strings.Join(allowed, " or ")))
		return
	}
	writeProblem(w, notFound("no route %s %s: GET /openapi.json lists every route", r.Method, r.URL.Path))
}

func (s *server) webhooks() http.Handler {
	if s.cfg.Webhooks != nil {
		return s.cfg.Webhooks
	}
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, notFound("this server takes no Git webhooks: configure webhook secrets to enable POST /webhooks/git"))
	})
}

type statusWriter struct {
	http.ResponseWriter
	status int
}

func (w *statusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (flushing a stream of events).
func (w *statusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }
