package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"os"
	"slices"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/usekarma/karma/shared/api"
	"github.com/usekarma/karma/shared/app"
	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/config"
	"github.com/usekarma/karma/shared/configrepo"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/gitrepo"
	"github.com/usekarma/karma/shared/httpapi"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/problem"
	"github.com/usekarma/karma/shared/trigger"
	"github.com/usekarma/karma/shared/web"
	"github.com/usekarma/karma/shared/webhook"
)

const serveLong = `Runs Karma as a long-lived service on the embedded default (one SQLite file under --state-dir).
One process serves:

  POST /webhooks/git  Git push webhooks from GitHub, GitLab, Gitea and Forgejo, verified with the
                      configured secret (shared/httpapi):
                        202 a push to a deploy branch (--branch) changing configs: change queued
                        200 ping; ignored (tag, other branch, nothing Karma deploys; audited);
                            "duplicate" (a redelivery of a delivery already accepted)
                        401 bad or missing signature: nothing queued, audited (chains "security/NN")
                        400/413/415 malformed, too large, wrong content type
                        503 not queued, retry later (see "The checkout" below)
  GET  /healthz       200 {"status":"ok","in_flight":N,"queued":N}
  GET  /              the web page (docs/web.md): the graph, components, proposals with their
                      blast radius, change review and approval, live progress, lineage, audit log
  and Karma's HTTP API (docs/api.md): GET /graph, /components/…, /impact, POST /impact,
  POST /request-change, /changes, approve/reject, /log, /deployments/…, /events (the pipeline's
  progress as server-sent events), /me, /readyz, /metrics, /openapi.json. Callers
  authenticate with bearer tokens (--tokens-file: one token per line with its scopes, SHA-256 at
  rest); --insecure-local serves without authentication, only on a loopback address. One of the
  two is required. The graphs the API answers from are kept in memory: rebuilt after each
  change's graph-write and at least every 10 s.

and, in the same process, every pipeline stage (resolve, graph-write, plan and apply with
--parallelism workers each, audit), plus, every --reconcile interval and once at start, a
comparison of each environment's parameter store with what was ingested: a /config or /runtime
parameter written outside Karma whose change was never ingested is ingested then; and, every
--promote-every interval and once at start, the promotions whose soak is over start their next
environment (karma.json "promotion"; the end of a soak is stored, so a restart loses nothing).

Drift. With --drift-every (off by default) the drift check of 'karma drift' runs at that
interval (first after one interval), acting as "drift check (karma serve)": each drift is
recorded once, and in environments whose allow_drift is false a corrective change set is queued
— applied without review only with --auto-approve. Off by default because, turned on with
allow_drift false, Karma undoes changes made outside it by itself; 1h is a sensible interval
(more often only where drift_refresh is off: a refresh runs terraform per component).

The repository. What a push deploys is exactly the pushed commit: serve keeps a cache clone of
the config repository under --state-dir/git and fetches each pushed commit into it (only the
objects it lacks) when the change is resolved; configs and Terraform modules are read from that
commit's tree, never from a working tree, so nobody needs to git pull. The remote is
KARMA_GIT_URL (https with KARMA_GIT_TOKEN_FILE, ssh with KARMA_GIT_SSH_KEY_FILE and
KARMA_GIT_KNOWN_HOSTS, file:// or a path; docs/configuration.md), by default the git repository
--repo is in. A push whose payload was truncated is diffed before..after in the cache. A commit
that cannot be fetched (unknown, removed by a force-push, refused credentials, unreachable
remote) is retried with backoff and then dead-lettered with the reason ('karma dlq list');
nothing is deployed from another tree.

Secrets are required: there is no unauthenticated mode. Keys are "<provider>:<owner/repo>" or
"<provider>:*" (providers github, gitlab, gitea, forgejo). Give them with --secret (repeatable;
visible to ps), --secrets-file (a JSON object such as {"github:acme/config": "...",
"gitlab:*": "..."}) or KARMA_WEBHOOK_SECRETS (the same JSON); they are merged, --secret winning.
Without any, serve refuses to start (exit 2).

Approval. With --auto-approve (CI-style) changes are applied once planned. Without it they stop
at their plans: review them with 'karma plan' and approve with 'karma apply CHANGE-ID' against the
same --state-dir.

Shutdown. On SIGINT or SIGTERM serve stops accepting webhooks (requests under way get
--shutdown-timeout), lets the stages finish the messages they are handling (a Terraform apply
under way completes), and exits 0. Messages not started stay queued for the next start.
Logs are text (log/slog) on stderr.`

type serveOptions struct {
	addr, addrFile  string
	branches        []string
	secrets         []string
	secretsFile     string
	reconcile       time.Duration
	driftEvery      time.Duration
	promoteEvery    time.Duration
	witnessEvery    time.Duration
	witness         witnessFlags
	auto            bool
	parallelism     int
	tokensFile      string
	insecureLocal   bool
	shutdownTimeout time.Duration
	logLevel        string
}

func newServeCmd(g *globals) *cobra.Command {
	var o serveOptions
	c := &cobra.Command{
		Use:   "serve",
		Short: "Run as a service: Git push webhooks in, the pipeline running, missed parameter changes reconciled",
		Long:  serveLong,
		Args:  argsUsage(cobra.NoArgs),
		RunE:  func(c *cobra.Command, _ []string) error { return serve(c, g, o) },
	}
	f := c.Flags()
	f.StringVar(&o.addr, "addr", envOr("KARMA_ADDR", "127.0.0.1:8080"), "listen address; port 0 picks a free port (see --addr-file) [KARMA_ADDR]")
	f.StringVar(&o.addrFile, "addr-file", "", "write the bound address (host:port) to this file once listening")
	f.StringVar(&o.tokensFile, "tokens-file", os.Getenv("KARMA_API_TOKENS_FILE"), "the API's bearer tokens and their scopes (docs/api.md) [KARMA_API_TOKENS_FILE]")
	f.BoolVar(&o.insecureLocal, "insecure-local", false, "serve the API without authentication: only on a loopback --addr")
	f.StringSliceVar(&o.branches, "branch", []string{"main"}, "branch whose pushes deploy (repeatable or comma-separated)")
	f.StringArrayVar(&o.secrets, "secret", nil, "webhook secret as provider:owner/repo=SECRET or provider:*=SECRET (repeatable)")
	f.StringVar(&o.secretsFile, "secrets-file", os.Getenv("KARMA_WEBHOOK_SECRETS_FILE"), `webhook secrets: a JSON object {"github:owner/repo": "...", "gitlab:*": "..."} [KARMA_WEBHOOK_SECRETS_FILE]`)
	f.DurationVar(&o.reconcile, "reconcile", time.Minute, "how often to ingest parameter changes whose events were missed (0 disables)")
	f.DurationVar(&o.driftEvery, "drift-every", 0, "how often to run the drift check (karma drift) and record what it finds (0 disables; e.g. 1h)")
	f.DurationVar(&o.promoteEvery, "promote-every", 10*time.Second, "how often to start the promotions whose soak is over (0 disables)")
	f.DurationVar(&o.witnessEvery, "witness-every", time.Hour, "how often to checkpoint the audit log's chain heads and write the digest to the witness parameter (0 disables)")
	o.witness.add(c)
	f.BoolVar(&o.auto, "auto-approve", false, "changes (pushes, reconciled parameters) are applied without review")
	f.IntVar(&o.parallelism, "parallelism", 4, "components planned and applied at once")
	f.DurationVar(&o.shutdownTimeout, "shutdown-timeout", 10*time.Second, "how long webhook requests under way get on shutdown")
	f.StringVar(&o.logLevel, "log-level", envOr("KARMA_LOG_LEVEL", "info"), "debug | info | warn | error [KARMA_LOG_LEVEL]")
	return c
}

func serve(c *cobra.Command, g *globals, o serveOptions) error {
	ctx := c.Context()
	usage := func(format string, a ...any) error {
		return &usageError{cmd: c.CommandPath(), err: fmt.Errorf(format, a...)}
	}
	if err := g.validateBackend(c); err != nil {
		return err
	}
	secrets, err := serveSecrets(o, os.Getenv)
	if err != nil {
		return usage("%v", err)
	}
	branches := map[string]bool{}
	for _, b := range o.branches {
		if b = strings.TrimSpace(b); b != "" {
			branches[strings.TrimPrefix(b, "refs/heads/")] = true
		}
	}
	switch {
	case len(branches) == 0:
		return usage("--branch: name at least one branch whose pushes deploy")
	case o.parallelism < 1:
		return usage("--parallelism %d: want 1 or more", o.parallelism)
	case o.reconcile < 0:
		return usage("--reconcile %s: want a positive interval, or 0 to disable", o.reconcile)
	case o.driftEvery < 0:
		return usage("--drift-every %s: want a positive interval, or 0 to disable", o.driftEvery)
	case o.promoteEvery < 0:
		return usage("--promote-every %s: want a positive interval, or 0 to disable", o.promoteEvery)
	case o.witnessEvery < 0:
		return usage("--witness-every %s: want a positive interval, or 0 to disable", o.witnessEvery)
	case o.shutdownTimeout <= 0:
		return usage("--shutdown-timeout %s: want a positive duration", o.shutdownTimeout)
	}
	auth, err := serveAuth(o)
	if err != nil {
		return usage("%v", err)
	}
	var level slog.Level
	if err := level.UnmarshalText([]byte(o.logLevel)); err != nil {
		return usage("--log-level %q: want debug, info, warn or error", o.logLevel)
	}
	log := slog.New(slog.NewTextHandler(c.ErrOrStderr(), &slog.HandlerOptions{Level: level}))
	if o.secretsFile != "" {
		if fi, err := os.Stat(o.secretsFile); err == nil && fi.Mode().Perm()&0o077 != 0 {
			log.Warn("the secrets file is readable by others than its owner", "file", o.secretsFile, "mode", fi.Mode().Perm())
		}
	}

	s, src, err := serveSource(ctx, g)
	if err != nil {
		return fmt.Errorf("karma serve: %w", err)
	}
	defer s.close()
	st, err := s.stack(ctx, stackOptions{})
	if err != nil {
		return err
	}

	// The witness is opened before anything runs: a serve that refuses to start has not listened
	// nor announced its address (--addr-file), and has run no stage, sweep or promotion.
	w, err := o.witness.open(c, s)
	if err != nil && o.witnessEvery > 0 {
		return err
	}

	// What a process that died (kill -9) held on the state file is handled now, not in 10 minutes.
	if err := st.leaseWatch(c.ErrOrStderr()).release(ctx); err != nil {
		return err
	}

	wh := &httpapi.Webhooks{
		Secrets:     secrets,
		Branches:    branches,
		Deliveries:  st.seen,
		Changes:     st.records,
		Publisher:   s.app,
		Audit:       st.audit,
		ModulesDir:  serveModulesDir(ctx, log, src),
		Subfolder:   src.Repo.Sub(),
		Repo:        (gitrepo.Remote{URL: s.app.Config.Git.URL}).FullName(),
		AutoApprove: o.auto,
		Log:         log,
	}
	events := &api.Events{}
	apiHandler, snapshot, err := s.app.API(ctx, app.APIOptions{Auth: auth, Webhooks: wh, Log: log, Events: events})
	if err != nil {
		return err
	}
	if err := st.workers(ctx, stackOptions{parallelism: o.parallelism, log: log, serve: true, observe: serveObserver(snapshot, events)}); err != nil {
		return err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /healthz", st.healthz) // the API's, with the pipeline's in-flight and queued counts
	mux.Handle("GET /{$}", web.Handler())      // the web page (docs/web.md): public files, calling the API
	mux.Handle("GET /ui/", web.Handler())
	mux.HandleFunc("/{$}", getOnly) // the page's paths answer other methods 405, not the API's 404
	mux.HandleFunc("/ui/", getOnly)
	mux.Handle("/", apiHandler)
	srv := &http.Server{Handler: serveAccessLog(log, mux), ReadHeaderTimeout: 10 * time.Second, ReadTimeout: time.Minute,
		WriteTimeout: 2 * time.Minute, IdleTimeout: 2 * time.Minute, ErrorLog: slog.NewLogLogger(log.Handler(), slog.LevelWarn)}
	ln, err := net.Listen("tcp", o.addr)
	if err != nil {
		return fmt.Errorf("listening on %s: %w", o.addr, err)
	}
	if o.addrFile != "" {
		if err := serveWriteFile(o.addrFile, []byte(ln.Addr().String()+"\n")); err != nil {
			ln.Close()
			return fmt.Errorf("--addr-file: %w", err)
		}
	}

	// The stages and the reconciler outlive the command's context by the drain: they are stopped
	// explicitly, after the HTTP server.
	runCtx, stopRunner := context.WithCancel(context.WithoutCancel(ctx))
	defer stopRunner()
	runnerDone := make(chan struct{})
	go func() { defer close(runnerDone); st.runner.Run(runCtx) }()
	recCtx, stopReconcile := context.WithCancel(runCtx)
	defer stopReconcile()
	reconcileDone := make(chan struct{})
	rec := &serveReconciler{st: st, log: log, auto: o.auto, stores: map[string]params.Store{}}
	go func() { defer close(reconcileDone); rec.run(recCtx, o.reconcile) }()
	promoteDone := make(chan struct{})
	go func() { defer close(promoteDone); servePromotions(recCtx, log, st, o.promoteEvery) }()
	witnessDone := make(chan struct{})
	go func() { defer close(witnessDone); serveWitness(recCtx, log, st, w, o.witnessEvery) }()
	driftDone := make(chan struct{})
	go func() { defer close(driftDone); serveDrift(recCtx, log, st, o.driftEvery, o.auto) }()
	expiryDone := make(chan struct{})
	go func() { defer close(expiryDone); serveExpiry(recCtx, log, st, serveExpiryEvery) }()
	serveErr := make(chan error, 1)
	go func() { serveErr <- srv.Serve(ln) }()
	log.Info("karma serve: listening", "addr", ln.Addr().String(), "repo", src.Repo.String(), "branches", slices.Sorted(maps.Keys(branches)),
		"auto_approve", o.auto, "parallelism", o.parallelism, "reconcile", o.reconcile, "drift_every", o.driftEvery, "promote_every", o.promoteEvery, "witness_every", o.witnessEvery, "state", g.dbPath())

	var failed error
	select {
	case <-ctx.Done():
		log.Info("karma serve: shutting down: no new webhooks; the pipeline finishes what it is handling", "in_flight", st.runner.InFlight())
	case err := <-serveErr:
		failed = fmt.Errorf("http server: %w", err)
		log.Error("karma serve: the HTTP server stopped", "error", err)
	}
	shCtx, cancel := context.WithTimeout(context.WithoutCancel(ctx), o.shutdownTimeout)
	if err := srv.Shutdown(shCtx); err != nil {
		log.Warn("karma serve: webhook requests still under way after --shutdown-timeout: closing them", "error", err)
		srv.Close()
	}
	cancel()
	stopReconcile()
	<-reconcileDone
	<-promoteDone
	<-witnessDone
	<-driftDone
	<-expiryDone
	stopRunner()
	<-runnerDone
	log.Info("karma serve: stopped")
	return failed
}

// serveModulesDir is the modules folder pushes are classified against: karma.json's modules_dir
// at the deploy branch's head (default components), so that a push changing only a Terraform
// module redeploys its type's components (docs/triggers.md). A head that cannot be read now
// leaves the default, said in the log.
func serveModulesDir(ctx context.Context, log *slog.Logger, src *configrepo.Source) string {
	head, err := src.Head(ctx)
	if err != nil {
		dir := model.Settings{}.Defaults().ModulesDir
		log.Warn("karma serve: the deploy branch's head cannot be read: pushes are classified against the default modules folder", "modules_dir", dir, "error", err)
		return dir
	}
	return pushModulesDir(ctx, src, head)
}

// serveSecrets merges the webhook secrets of --secrets-file, KARMA_WEBHOOK_SECRETS and --secret
// (in that order, later ones winning) and refuses an empty result.
func serveSecrets(o serveOptions, getenv func(string) string) (webhook.StaticSecrets, error) {
	out := webhook.StaticSecrets{}
	add := func(src string, m map[string]string) error {
		for k, v := range m {
			if err := serveCheckSecretKey(k); err != nil {
				return fmt.Errorf("%s: %w", src, err)
			}
			if v == "" {
				return fmt.Errorf("%s: %s: empty secret", src, k)
			}
			out[k] = v
		}
		return nil
	}
	if o.secretsFile != "" {
		data, err := os.ReadFile(o.secretsFile)
		if err != nil {
			return nil, fmt.Errorf("--secrets-file: %w", err)
		}
		m, err := serveDecodeSecrets(data)
		if err != nil {
			return nil, fmt.Errorf("--secrets-file %s: %w", o.secretsFile, err)
		}
		if err := add("--secrets-file "+o.secretsFile, m); err != nil {
			return nil, err
		}
	}
	if v := getenv("KARMA_WEBHOOK_SECRETS"); strings.TrimSpace(v) != "" {
		m, err := serveDecodeSecrets([]byte(v))
		if err != nil {
			return nil, fmt.Errorf("KARMA_WEBHOOK_SECRETS: %w", err)
		}
		if err := add("KARMA_WEBHOOK_SECRETS", m); err != nil {
			return nil, err
		}
	}
	for _, s := range o.secrets {
		k, v, ok := strings.Cut(s, "=")
		if !ok {
			return nil, fmt.Errorf("--secret %q: want provider:owner/repo=SECRET", serveRedact(s))
		}
		if err := add("--secret", map[string]string{k: v}); err != nil {
			return nil, err
		}
	}
	if len(out) == 0 {
		return nil, errors.New("no webhook secret: give --secret provider:owner/repo=SECRET, --secrets-file FILE or KARMA_WEBHOOK_SECRETS " +
			"(Karma has no unauthenticated mode)")
	}
	return out, nil
}

// serveDecodeSecrets reads a JSON object of strings.
func serveDecodeSecrets(data []byte) (map[string]string, error) {
	var m map[string]string
	if err := json.Unmarshal(data, &m); err != nil {
		return nil, fmt.Errorf(`want a JSON object {"provider:owner/repo": "secret", ...}: %v`, err)
	}
	return m, nil
}

func serveCheckSecretKey(k string) error {
	provider, repo, _ := strings.Cut(k, ":")
	switch provider {
	case webhook.GitHub, webhook.GitLab, webhook.Gitea, webhook.Forgejo:
	default:
		return fmt.Errorf("%q: want <provider>:<owner/repo> or <provider>:*, provider one of github, gitlab, gitea, forgejo", k)
	}
	if repo != "*" && (!strings.Contains(repo, "/") || strings.HasPrefix(repo, "/") || strings.HasSuffix(repo, "/")) {
		return fmt.Errorf("%q: the repository must be owner/name (or * for every repository of %s)", k, provider)
	}
	return nil
}

// serveRedact keeps a secret out of error messages.
func serveRedact(s string) string {
	if k, _, ok := strings.Cut(s, "="); ok {
		return k + "=…"
	}
	if len(s) > 4 {
		return s[:4] + "…"
	}
	return "…"
}

func serveWriteFile(path string, data []byte) error {
	tmp := path + ".tmp"
	if err := os.WriteFile(tmp, data, 0o644); err != nil {
		return err
	}
	return os.Rename(tmp, path)
}

// healthz reports liveness and how busy the pipeline is.
func (st *stack) healthz(w http.ResponseWriter, r *http.Request) {
	queued := 0
	for _, name := range stageNames {
		if st.eq == nil {
			break // SQS: queue depths are CloudWatch's (the API's /metrics reports them)
		}
		n, err := st.eq.Depth(r.Context(), name)
		if err != nil {
			w.Header().Set("Content-Type", "application/json")
			w.WriteHeader(http.StatusServiceUnavailable)
			_ = json.NewEncoder(w).Encode(map[string]string{"status": "unhealthy", "error": err.Error()})
			return
		}
		queued += n
	}
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(map[string]any{"status": "ok", "in_flight": st.runner.InFlight(), "queued": queued})
}

// serveAccessLog logs every request (health checks at debug level, refusals at warn).
func serveAccessLog(log *slog.Logger, next http.Handler) http.Handler {
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		start := time.Now()
		rec := &serveStatusWriter{ResponseWriter: w, status: http.StatusOK}
		next.ServeHTTP(rec, r)
		level := slog.LevelInfo
		switch {
		case r.URL.Path == "/healthz":
			level = slog.LevelDebug
		case rec.status >= 400:
			level = slog.LevelWarn
		}
		log.Log(r.Context(), level, "http", "method", r.Method, "path", r.URL.Path, "status", rec.status,
			"duration", time.Since(start).Round(time.Millisecond), "remote", r.RemoteAddr,
			"delivery", serveFirstNonEmpty(r.Header.Get("X-GitHub-Delivery"), r.Header.Get("X-Gitea-Delivery"), r.Header.Get("X-Forgejo-Delivery"),
				r.Header.Get("Idempotency-Key"), r.Header.Get("X-Gitlab-Event-UUID")))
	})
}

type serveStatusWriter struct {
	http.ResponseWriter
	status int
}

func (w *serveStatusWriter) WriteHeader(code int) {
	w.status = code
	w.ResponseWriter.WriteHeader(code)
}

// Unwrap lets http.ResponseController reach the connection (GET /events flushes each event).
func (w *serveStatusWriter) Unwrap() http.ResponseWriter { return w.ResponseWriter }

func serveFirstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// serveExpiryEvery is how often karma serve expires the change sets past their approval expiry.
const serveExpiryEvery = time.Minute

// serveExpiry expires, every interval (and once at start), the change sets not approved within
// their environment's approval expiry (changeset.Sweep, as karma expire does), then removes the
// saved plans no deployment will apply any more (app.SweepPlans).
func serveExpiry(ctx context.Context, log *slog.Logger, st *stack, every time.Duration) {
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		var b strings.Builder
		if n, err := st.sweep(ctx, &b); err != nil && ctx.Err() == nil {
			log.Warn("expiry: change sets not swept", "error", err)
		} else if n > 0 {
			log.Info("expiry: change sets expired", "count", n, "detail", strings.TrimSpace(b.String()))
		}
		// Saved plans no deployment will apply (its change set rejected, expired, superseded, its
		// plan refused): they hold the values of their variables, SecureString ones included.
		if n, err := st.s.app.SweepPlans(ctx); err != nil && ctx.Err() == nil {
			log.Warn("saved plans not swept", "error", err)
		} else if n > 0 {
			log.Info("saved plans that can no longer be applied removed", "count", n)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// serveWitness checkpoints the audit log every interval (and once at start) and writes the
// digest to the witness parameter, outside the log: docs/audit.md says what that proves.
func serveWitness(ctx context.Context, log *slog.Logger, st *stack, w audit.Witness, every time.Duration) {
	if every <= 0 || w == nil {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		cp, written, err := audit.WriteCheckpoint(ctx, st.audit, w, "karma", "karma serve", time.Now().UTC())
		switch {
		case err != nil && ctx.Err() == nil:
			log.Warn("audit witness: checkpoint not written", "error", err)
		case err == nil:
			log.Info("audit witness: checkpoint written", "digest", cp.Digest, "chains", len(cp.Heads), "witness_version", written.Version)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// serveReconciler runs trigger.Reconciler for every environment of the repository.
type serveReconciler struct {
	st     *stack
	log    *slog.Logger
	auto   bool
	stores map[string]params.Store // embedded stores by environment (used by one goroutine)
	warned bool
}

func (r *serveReconciler) run(ctx context.Context, every time.Duration) {
	if every <= 0 {
		return
	}
	t := time.NewTicker(every)
	defer t.Stop()
	for {
		r.once(ctx)
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

type serveReconcileTarget struct {
	env   string
	store params.Store
}

func (r *serveReconciler) once(ctx context.Context) {
	targets, err := r.targets(ctx)
	if err != nil {
		if ctx.Err() == nil {
			r.log.Warn("reconcile: cannot list the parameter stores", "error", err)
		}
		return
	}
	st := r.st
	for _, t := range targets {
		rc := trigger.Reconciler{Env: t.env, Prefix: st.settings.Prefix, Store: t.store, Seen: st.seen,
			Publisher: pipeline.QueuePublisher{Queue: st.transport}, AutoApprove: r.auto}
		msgs, err := rc.Run(ctx)
		if err != nil && ctx.Err() == nil {
			r.log.Warn("reconcile failed", "env", t.env, "error", err)
		}
		for _, m := range msgs {
			var p message.ParameterChanged
			_ = message.Decode(m, &p)
			r.log.Info("reconcile: a parameter version no event brought, queued for ingest", "env", t.env, "parameter", p.Name, "version", p.Version, "change", m.CorrelationID)
		}
	}
}

// targets are the parameter stores to compare: each environment's embedded store; with SSM the
// one account of the credentials, whose environment <prefix>/environment names.
func (r *serveReconciler) targets(ctx context.Context) ([]serveReconcileTarget, error) {
	s := r.st.s
	switch s.app.Config.Params {
	case "none":
		return nil, nil
	case config.AWS:
		store, err := s.params("")
		if err != nil {
			return nil, err
		}
		v, err := store.Get(ctx, model.EnvironmentParam(r.st.settings.Prefix))
		if err != nil {
			if !r.warned {
				r.log.Warn("reconcile: this account names no environment: skipped", "parameter", model.EnvironmentParam(r.st.settings.Prefix), "error", err)
				r.warned = true
			}
			return nil, nil
		}
		return []serveReconcileTarget{{env: strings.TrimSpace(v.Value), store: store}}, nil
	}
	src, err := s.source()
	if err != nil {
		return nil, err
	}
	head, err := src.Head(ctx)
	if err != nil {
		return nil, err
	}
	envs, err := src.Environments(ctx, head)
	if err != nil {
		return nil, err
	}
	db, err := s.embeddedDB()
	if err != nil {
		return nil, err
	}
	var out []serveReconcileTarget
	for _, env := range envs {
		store, ok := r.stores[env]
		if !ok {
			ps, err := embedded.NewParamStore(db, env)
			if err != nil {
				return nil, err
			}
			store, r.stores[env] = ps, ps
		}
		out = append(out, serveReconcileTarget{env: env, store: store})
	}
	return out, nil
}

// serveObserver keeps the API's graphs and events following the pipeline: a change's
// graph-write makes the graphs stale. Every message reaches the audit stage once: once recorded,
// it is streamed on GET /events. A deployment applied or failed has moved a runtime (published
// before the message was sent), so the graphs are made stale before its event is streamed: the
// web page reads GET /graph on that event, and graph-write, which acknowledges the same message
// on its own, may not have yet — the page was answered the graph built before the deployment,
// its colours then dated after it.
func serveObserver(snapshot interface{ Invalidate() }, events *api.Events) func(string, message.Envelope, []message.Envelope, pipeline.Action, error) {
	return func(stage string, in message.Envelope, _ []message.Envelope, action pipeline.Action, _ error) {
		switch {
		case action != pipeline.Ack:
		case stage == pipeline.StageGraphWrite:
			snapshot.Invalidate()
		case stage == pipeline.StageAudit:
			if in.Type == message.TypeDeploymentApplied || in.Type == message.TypeDeploymentFailed {
				snapshot.Invalidate()
			}
			events.Observe(in)
		}
	}
}

// serveAuth is how the API's callers authenticate: a tokens file, or --insecure-local on a
// loopback address. There is no other unauthenticated mode.
func serveAuth(o serveOptions) (api.Authenticator, error) {
	switch {
	case o.tokensFile != "" && o.insecureLocal:
		return nil, errors.New("--tokens-file and --insecure-local: choose one")
	case o.tokensFile != "":
		t, err := api.LoadTokens(o.tokensFile)
		if err != nil {
			return nil, fmt.Errorf("--tokens-file: %w", err)
		}
		return t, nil
	case o.insecureLocal:
		if err := api.CheckInsecureLocal(o.addr); err != nil {
			return nil, fmt.Errorf("--insecure-local: %w", err)
		}
		return api.InsecureLocal{User: localUser()}, nil
	}
	return nil, errors.New("the API needs --tokens-file FILE (bearer tokens with scopes) or --insecure-local (no authentication, loopback only): there is no other unauthenticated mode")
}

// getOnly answers a method the web page's paths do not serve: 405, as a problem document.
func getOnly(w http.ResponseWriter, r *http.Request) {
	w.Header().Set("Allow", "GET, HEAD")
	problem.Write(w, http.StatusMethodNotAllowed, r.Method+" "+r.URL.Path+": the web page's files are read with GET")
}
