package main

// Webhook mode (KARMA_STAGE=webhook): the function is the target of an API Gateway HTTP API
// (payload format 2.0; route POST /webhooks/git) or of a Lambda function URL. Each event is
// turned into an *http.Request (webhook.LambdaRequest: headers canonicalised, base64 bodies
// decoded, the signature checked over the bytes as sent) and served by the same handler as
// `karma serve` (shared/httpapi.Webhooks): a verified push to a deploy branch is published as
// git.pushed to the EventBridge bus, whose rules route it to the ingest queue; replies
// are those of httpapi (202 queued, 200 ping/ignored/duplicate, 401 audited, 503 retry), and
// 504 (type timeout, cutOffDelivery) for a delivery cut off before the function's deadline.
//
// Environment (besides KARMA_STAGE=webhook):
//
//	KARMA_WEBHOOK_SECRETS      required: a JSON object {"github:owner/repo": "...", "gitlab:*": "..."}
//	                           (providers github, gitlab, gitea, forgejo). There is no
//	                           unauthenticated mode. In production it is not written in the
//	                           function's configuration by hand: it is resolved from Secrets Manager
//	                           (or an SSM SecureString) into the function's environment when the
//	                           function is deployed (e.g. a CloudFormation dynamic reference
//	                           {{resolve:secretsmanager:karma/webhook-secrets}}, or Terraform's
//	                           aws_secretsmanager_secret_version data source), encrypted at rest with
//	                           the function's KMS key; rotating a secret is a redeploy.
//	KARMA_BRANCHES             deploy branches, comma-separated (default main)
//	KARMA_EVENT_BUS            the EventBridge bus changes are published to (as for every stage)
//	KARMA_IDEMPOTENCY_TABLE    DynamoDB: delivery ids already accepted and the change each commit
//	                           started (default karma-idempotency)
//	KARMA_AUDIT_TABLE          DynamoDB: the audit log, for rejected and ignored deliveries
//	                           (default karma-audit)
//	KARMA_WEBHOOK_MODULES_DIR  the modules folder inside the config repository (default
//	                           components): a push changing a module redeploys its components
//	KARMA_AUTO_APPROVE         true: pushed changes are applied without review
//	KARMA_GIT_SUBDIR           the config repository's folder inside the git repository, if any
//
// A push whose payload is truncated (GitHub's commit cap or a commit sent without file lists;
// GitLab's and Gitea's newest-20 commits) is queued as truncated: the resolve function diffs
// before..after in its cache of the repository (KARMA_GIT_URL).

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/usekarma/karma/shared/app"
	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/gitrepo"
	"github.com/usekarma/karma/shared/httpapi"
	karmalambda "github.com/usekarma/karma/shared/lambda"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/problem"
	"github.com/usekarma/karma/shared/webhook"
)

// stageWebhook is the KARMA_STAGE of webhook mode.
const stageWebhook = "webhook"

// apiGatewayHandler handles one API Gateway HTTP API (2.0) or function URL event.
type apiGatewayHandler = func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error)

// lambdaHandler is the function's handler: API Gateway events in webhook mode, else the SQS
// handler of the stage KARMA_STAGE names.
func lambdaHandler(ctx context.Context, a *app.App, getenv func(string) string) (any, error) {
	switch getenv("KARMA_STAGE") {
	case stageWebhook:
		return setupWebhook(ctx, a, getenv)
	case stageAPI:
		return setupAPI(ctx, a)
	case stageReconcile:
		return setupReconcile(ctx, a, getenv)
	case stageDrift:
		return setupDrift(ctx, a, getenv)
	case stagePromote:
		return setupPromote(ctx, a)
	}
	return setup(ctx, a, getenv)
}

// webhookDeps are what the webhook handler talks to: AWS in the function, embedded stores in tests.
type webhookDeps struct {
	Publisher  pipeline.Publisher
	Deliveries pipeline.Seen
	Audit      audit.Log
	Log        *slog.Logger
}

// setupWebhook wires webhook mode: the event bus, the idempotency table (delivery ids and each
// commit's change) and the audit log.
func setupWebhook(ctx context.Context, a *app.App, getenv func(string) string) (apiGatewayHandler, error) {
	if a.Config.EventBus == "" {
		return nil, errors.New("KARMA_EVENT_BUS is not set: accepted pushes are published to an EventBridge bus")
	}
	d := webhookDeps{Log: a.Log()}
	var err error
	if d.Publisher, err = a.Publisher(ctx); err != nil {
		return nil, fmt.Errorf("webhook mode: %w", err)
	}
	if d.Deliveries, err = a.Seen(ctx); err != nil {
		return nil, fmt.Errorf("webhook mode: %w", err)
	}
	if d.Audit, err = a.Audit(ctx); err != nil {
		return nil, fmt.Errorf("webhook mode: %w", err)
	}
	// The repository and its folder as the configuration says them (KARMA_CONFIG's git.url and
	// git.subdir, the environment over it), as every other function reads them: read from the
	// environment alone, a repository named only in the file left Repo empty, and a push of any
	// repository a wildcard secret verified was taken for the config repository's.
	return webhookHandler(func(k string) string {
		switch k {
		case "KARMA_GIT_URL":
			return a.Config.Git.URL
		case "KARMA_GIT_SUBDIR":
			return a.Config.Git.Subdir
		}
		return getenv(k)
	}, d)
}

// webhookHandler reads webhook mode's settings and returns the event handler.
func webhookHandler(getenv func(string) string, d webhookDeps) (apiGatewayHandler, error) {
	secrets, err := webhookSecrets(getenv("KARMA_WEBHOOK_SECRETS"))
	if err != nil {
		return nil, err
	}
	branches := map[string]bool{}
	for _, b := range strings.Split(getenv("KARMA_BRANCHES"), ",") {
		if b = strings.TrimSpace(b); b != "" {
			branches[strings.TrimPrefix(b, "refs/heads/")] = true
		}
	}
	if len(branches) == 0 {
		branches["main"] = true
	}
	modules := getenv("KARMA_WEBHOOK_MODULES_DIR")
	if modules == "" {
		modules = "components"
	}
	auto, err := autoApprove(getenv)
	if err != nil {
		return nil, err
	}
	log := d.Log
	if log == nil {
		log = slog.Default()
	}
	changes, ok := d.Deliveries.(pipeline.Records)
	if !ok {
		return nil, fmt.Errorf("webhook mode: the idempotency store (%T) cannot record which change each commit started", d.Deliveries)
	}
	wh := &httpapi.Webhooks{Secrets: secrets, Branches: branches, Deliveries: d.Deliveries, Changes: changes, Publisher: d.Publisher,
		Subfolder: getenv("KARMA_GIT_SUBDIR"), Repo: (gitrepo.Remote{URL: getenv("KARMA_GIT_URL")}).FullName(), Audit: d.Audit, ModulesDir: strings.Trim(modules, "/"), AutoApprove: auto, Log: log}
	return serveAPIGateway(wh, log), nil
}

// webhookSecrets reads KARMA_WEBHOOK_SECRETS and refuses an empty or malformed one.
func webhookSecrets(v string) (webhook.StaticSecrets, error) {
	if strings.TrimSpace(v) == "" {
		return nil, errors.New(`KARMA_WEBHOOK_SECRETS is not set: a JSON object {"github:owner/repo": "secret", "gitlab:*": "secret"} ` +
			"(from Secrets Manager or SSM at deploy time); there is no unauthenticated mode")
	}
	var m map[string]string
	if err := json.Unmarshal([]byte(v), &m); err != nil {
		return nil, fmt.Errorf(`KARMA_WEBHOOK_SECRETS: want a JSON object {"provider:owner/repo": "secret", ...}: %v`, err)
	}
	out := webhook.StaticSecrets{}
	for k, s := range m {
		provider, repo, _ := strings.Cut(k, ":")
		switch provider {
		case webhook.GitHub, webhook.GitLab, webhook.Gitea, webhook.Forgejo:
		default:
			return nil, fmt.Errorf("KARMA_WEBHOOK_SECRETS: %q: want <provider>:<owner/repo> or <provider>:*, provider one of github, gitlab, gitea, forgejo", k)
		}
		if repo != "*" && (!strings.Contains(repo, "/") || strings.HasPrefix(repo, "/") || strings.HasSuffix(repo, "/")) {
			return nil, fmt.Errorf("KARMA_WEBHOOK_SECRETS: %q: the repository must be owner/name (or *)", k)
		}
		if s == "" {
			return nil, fmt.Errorf("KARMA_WEBHOOK_SECRETS: %s: empty secret", k)
		}
		out[k] = s
	}
	if len(out) == 0 {
		return nil, errors.New("KARMA_WEBHOOK_SECRETS holds no secret: there is no unauthenticated mode")
	}
	return out, nil
}

// serveAPIGateway serves each event with h. It always returns a response (an error returned
// to Lambda would be a bare 500 from API Gateway), before the function's deadline: h's work
// stops a tenth of the function's time before it (karmalambda.AnswerBeforeDeadline), and a
// delivery cut off is answered cutOffDelivery.
func serveAPIGateway(h http.Handler, log *slog.Logger) apiGatewayHandler {
	return func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		raw, err := json.Marshal(ev)
		if err != nil {
			return jsonResponse(http.StatusInternalServerError, "event: "+err.Error()), nil
		}
		r, _, err := webhook.LambdaRequest(ctx, raw)
		if err != nil {
			status := http.StatusBadRequest
			var we *webhook.Error
			if errors.As(err, &we) {
				status = we.Status
			}
			return jsonResponse(status, err.Error()), nil
		}
		// Behind a named API Gateway stage the path starts with the stage's name.
		if !strings.HasSuffix(r.URL.Path, "/webhooks/git") {
			return jsonResponse(http.StatusNotFound, "not found: POST /webhooks/git"), nil
		}
		r.RemoteAddr = ev.RequestContext.HTTP.SourceIP
		delivery := firstOf(r.Header.Get("X-GitHub-Delivery"), r.Header.Get("X-Gitea-Delivery"), r.Header.Get("X-Forgejo-Delivery"), r.Header.Get("Idempotency-Key"), r.Header.Get("X-Gitlab-Event-UUID"))
		serve := func(work context.Context) events.APIGatewayV2HTTPResponse {
			r := r.WithContext(work)
			w := &responseRecorder{header: http.Header{}}
			h.ServeHTTP(w, r)
			if w.status == 0 {
				w.status = http.StatusOK
			}
			if karmalambda.Expired(work) && w.status >= 500 {
				// Its failure is the cut: the sender is told to deliver it again.
				said := ""
				var d problem.Document
				if json.Unmarshal(w.body.Bytes(), &d) == nil {
					said = d.Detail
				}
				resp := cutOffDelivery(delivery, ev.RequestContext.RequestID, said)
				log.Warn("webhook", "status", resp.StatusCode, "request_id", ev.RequestContext.RequestID, "delivery", delivery, "reply", resp.Body)
				return resp
			}
			level := slog.LevelInfo
			if w.status >= 400 {
				level = slog.LevelWarn
			}
			log.Log(ctx, level, "webhook", "status", w.status, "request_id", ev.RequestContext.RequestID, "source_ip", ev.RequestContext.HTTP.SourceIP,
				"event", firstOf(r.Header.Get("X-GitHub-Event"), r.Header.Get("X-Gitlab-Event"), r.Header.Get("X-Gitea-Event"), r.Header.Get("X-Forgejo-Event")),
				"delivery", delivery, "reply", strings.TrimSpace(w.body.String()))
			resp := events.APIGatewayV2HTTPResponse{StatusCode: w.status, Headers: map[string]string{}, Body: w.body.String()}
			for k, v := range w.header {
				resp.Headers[k] = strings.Join(v, ", ")
			}
			return resp
		}
		return karmalambda.AnswerBeforeDeadline(ctx, serve, func() events.APIGatewayV2HTTPResponse {
			// The handler did not heed its context: it is left running, and answered for.
			resp := cutOffDelivery(delivery, ev.RequestContext.RequestID, "")
			log.Error("webhook: the delivery outlasted the function's time and is answered cut off, its handler still running",
				"status", resp.StatusCode, "request_id", ev.RequestContext.RequestID, "delivery", delivery)
			return resp
		}), nil
	}
}

// cutOffDelivery is the 504 timeout problem of a delivery the function stopped before its
// deadline (said: the handler's own answer once cut off, if any). Nothing of a push is
// half-ingested: its commit's change is recorded before it is published, and published again
// under the same id by a later delivery until it is known published (trigger.Commits), so the
// sender is told to deliver it again.
func cutOffDelivery(delivery, requestID, said string) events.APIGatewayV2HTTPResponse {
	detail := fmt.Sprintf("the delivery %q was cut off: it did not finish within the webhook function's time (the function stops a delivery's work a tenth of its time before its deadline, to answer)", delivery)
	if said != "" {
		detail += " (it said, once cut off: " + said + ")"
	}
	detail += fmt.Sprintf("; its commit's change may or may not have been queued: deliver it again (redeliver it), which queues the commit's change once, under the same change id; the function's log holds it under request id %q", requestID)
	resp := jsonResponse(http.StatusGatewayTimeout, detail)
	resp.Headers["Retry-After"] = "1"
	resp.Headers["Cache-Control"] = "no-store"
	return resp
}

// jsonResponse is a problem document (RFC 9457) of status with detail msg.
func jsonResponse(status int, msg string) events.APIGatewayV2HTTPResponse {
	return events.APIGatewayV2HTTPResponse{StatusCode: status, Headers: map[string]string{"Content-Type": problem.ContentType}, Body: string(problem.Body(status, msg))}
}

// responseRecorder is the http.ResponseWriter of one event.
type responseRecorder struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *responseRecorder) Header() http.Header { return w.header }
func (w *responseRecorder) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}
func (w *responseRecorder) Write(b []byte) (int, error) {
	if w.status == 0 {
		w.status = http.StatusOK
	}
	return w.body.Write(b)
}

func firstOf(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}
