// Package httpapi is Karma's HTTP layer: handlers that turn requests into messages and replies,
// served by `karma serve` and, through API Gateway (HTTP API) events, by Lambda. Handlers know
// the pipeline only as a Publisher: they verify, decode, deduplicate, and publish the trigger
// (shared/trigger: a push is a git.pushed, which the ingest stage makes the change); everything
// downstream is the workers' business.
//
// POST /webhooks/git — Git push webhooks (GitHub, GitLab, Gitea, Forgejo):
//
//	202 {"status":"queued","change_id":…}      a push to a deploy branch changing configs
//	200 {"status":"ignored","reason":…}        a tag, another branch, a deleted ref, a push
//	                                            changing nothing Karma deploys (recorded in the
//	                                            audit log)
//	200 {"status":"pong"}                      ping
//	200 {"status":"duplicate","change_id":…}   a commit already accepted: the same delivery again,
//	                                            or a redelivery under a new delivery id; change_id
//	                                            is the change the commit already has
//	400 / 401 / 413 / 415 problem document     as shared/webhook decides; nothing enters the
//	                                            pipeline; a 401 is audited as a security entry
//	503 problem document                       the pipeline could not be reached: the sender
//	                                            retries the delivery
package httpapi

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net/http"
	"strings"
	"time"

	"github.com/google/uuid"
	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/problem"
	"github.com/usekarma/karma/shared/trigger"
	"github.com/usekarma/karma/shared/webhook"
)

// Webhooks handles POST /webhooks/git.
type Webhooks struct {
	Secrets    webhook.Secrets
	Branches   map[string]bool  // branches that deploy (e.g. {"main": true})
	Deliveries pipeline.Seen    // delivery ids already accepted
	Changes    pipeline.Records // the change each commit started ("change|git:<sha>")
	Publisher  pipeline.Publisher
	Audit      audit.Log // security entries and ignored pushes
	ModulesDir string
	// Subfolder is the config repository's folder inside the git repository ("" = its top):
	// push payloads name files from the top, and files outside it are left out.
	Subfolder string
	// Repo is the config repository's path on its host (gitrepo.Remote.FullName), "" when
	// unknown (a local path). A push of another repository is ignored (sameRepo), whatever secret
	// verified it: an organisation's webhook with a wildcard secret (provider:*) sends every
	// repository's pushes, and a sha of theirs must not be taken for the config repository's.
	Repo string
	// AutoApprove: changes from pushes are applied without a review step (CI-driven teams).
	AutoApprove bool
	MaxBody     int64
	Log         *slog.Logger
	Now         func() time.Time
}

type reply struct {
	Status   string `json:"status,omitempty"`
	ChangeID string `json:"change_id,omitempty"`
	Reason   string `json:"reason,omitempty"`
	Error    string `json:"-"` // a refusal: sent as a problem document whose detail it is (write)
}

// write sends a reply; an error as an RFC 9457 problem document, its detail the reply's error.
func write(w http.ResponseWriter, status int, r reply) {
	if r.Error != "" {
		problem.Write(w, status, r.Error)
		return
	}
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(r)
}

func (h *Webhooks) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	if r.Method != http.MethodPost {
		w.Header().Set("Allow", http.MethodPost)
		write(w, http.StatusMethodNotAllowed, reply{Error: "POST only"})
		return
	}
	ctx := r.Context()
	limit := h.MaxBody
	if limit <= 0 {
		limit = webhook.DefaultMaxBody
	}
	body, err := webhook.ReadBody(r, limit)
	if err != nil {
		h.fail(ctx, w, r, err)
		return
	}
	ev, err := webhook.Parse(r, body, h.Secrets)
	if err != nil {
		h.fail(ctx, w, r, err)
		return
	}
	switch ev := ev.(type) {
	case webhook.Ping:
		write(w, http.StatusOK, reply{Status: "pong"})
	case webhook.Ignored:
		h.record(ctx, "trigger.ignored", ev.Provider, map[string]any{"kind": ev.Kind, "reason": ev.Reason})
		write(w, http.StatusOK, reply{Status: "ignored", Reason: ev.Reason})
	case webhook.Push:
		h.push(ctx, w, ev)
	default:
		write(w, http.StatusBadRequest, reply{Error: fmt.Sprintf("unsupported event %T", ev)})
	}
}

func (h *Webhooks) push(ctx context.Context, w http.ResponseWriter, p webhook.Push) {
	ignore := func(reason string) {
		h.record(ctx, "trigger.ignored", p.Provider, map[string]any{"ref": p.Ref, "after": p.After, "repo": p.Repo.FullName, "reason": reason})
		write(w, http.StatusOK, reply{Status: "ignored", Reason: reason})
	}
	switch {
	case h.Repo != "" && !sameRepo(p.Repo.FullName, h.Repo):
		ignore("a push of " + p.Repo.FullName + ": this Karma deploys " + h.Repo)
		return
	case p.Tag != "":
		ignore("tag " + p.Tag + ": only branches deploy")
		return
	case p.Deleted:
		ignore("branch " + p.Branch + " deleted: nothing to deploy")
		return
	case !h.Branches[p.Branch]:
		ignore("branch " + p.Branch + " is not a deploy branch")
		return
	}
	key := "webhook|" + webhook.DeliveryKey(p)
	if webhook.DeliveryKey(p) != "" {
		done, err := h.Deliveries.Done(ctx, key)
		if err != nil {
			write(w, http.StatusServiceUnavailable, reply{Error: "delivery store: " + err.Error()})
			return
		}
		if done {
			// "" only for a delivery accepted before changes were recorded.
			change, _ := h.Changes.Recorded(ctx, trigger.RecordKey(p.After))
			write(w, http.StatusOK, reply{Status: "duplicate", ChangeID: change})
			return
		}
	}
	// The change names the pushed commit's author and message when the payload lists that
	// commit; a payload listing only part of a long push (GitLab's 20) need not list the head,
	// and another commit's author is not the head's: then it names who pushed.
	author, msg := p.Pusher, ""
	for _, c := range p.Commits {
		if strings.EqualFold(c.ID, p.After) {
			author, msg = c.Author, c.Message
		}
	}
	authors := make([]string, 0, len(p.Commits))
	for _, c := range p.Commits {
		authors = append(authors, c.Author)
	}
	tp := trigger.Push{SHA: p.After, Author: author, Message: msg, Branch: p.Branch, Repo: p.Repo.FullName,
		Pusher: p.Pusher, Authors: authors,
		Files: h.files(p), Truncated: p.Truncated, Before: p.Before, AutoApprove: h.AutoApprove, Provider: p.Provider, Delivery: p.DeliveryID,
		OccurredAt: h.now()}
	pushed, err := trigger.GitPushed(tp, h.ModulesDir, "")
	switch {
	case errors.Is(err, trigger.ErrNothingDeployable):
		ignore(err.Error())
		return
	case err != nil:
		write(w, http.StatusBadRequest, reply{Error: err.Error()})
		return
	}
	if size := encodedSize(pushed); size > MaxPushedBytes {
		// Too long a list of files for the queues (SQS and EventBridge take 256 KiB): the push
		// is queued without it, truncated, and resolve diffs before..after in the repository —
		// a push truncated already is diffed whatever files it lists, and a new branch's (before
		// all zeros) is its whole tree, what its first push lists.
		tp.Truncated, tp.Files = true, nil
		small, err := trigger.GitPushed(tp, h.ModulesDir, "")
		if err != nil {
			write(w, http.StatusBadRequest, reply{Error: err.Error()})
			return
		}
		if h.Log != nil {
			h.Log.Info("webhook: a push listing too many files for one message is queued truncated", "sha", p.After, "bytes", size, "limit", MaxPushedBytes)
		}
		pushed = small
	}
	h.queue(ctx, w, p, pushed)
}

// MaxPushedBytes bounds a push's git.pushed, encoded: a push whose list of deployable files
// would make it larger (a first push of a large configuration, a mass rename) is queued
// truncated, without its files, for resolve to diff before..after in the repository — as a
// push whose payload was truncated by its sender. It keeps the message far below the 256 KiB
// that SQS and EventBridge take, whose refusal would otherwise answer every delivery of the
// push 503.
const MaxPushedBytes = 128 << 10

// encodedSize is the size of e encoded (0 if it cannot be: the publisher will say why).
func encodedSize(e message.Envelope) int {
	b, err := message.Encode(e)
	if err != nil {
		return 0
	}
	return len(b)
}

// queue publishes a commit's git.pushed as the commit's change (trigger.Commits): the first
// change recorded for the commit. Once it is published, every later delivery of the commit (a
// redelivery under a new delivery id) answers with it and publishes nothing; a delivery after a
// failed publish publishes that same change.
func (h *Webhooks) queue(ctx context.Context, w http.ResponseWriter, p webhook.Push, pushed message.Envelope) {
	q, err := trigger.Commits{Records: h.Changes, Marks: h.Deliveries, Publisher: h.Publisher}.Queue(ctx, pushed)
	if err != nil {
		write(w, http.StatusServiceUnavailable, reply{Error: err.Error()})
		return
	}
	h.markDelivery(ctx, p)
	if q.Duplicate {
		write(w, http.StatusOK, reply{Status: "duplicate", ChangeID: q.ChangeID})
		return
	}
	write(w, http.StatusAccepted, reply{Status: "queued", ChangeID: q.ChangeID})
}

// markDelivery records the push's delivery id as accepted (a lost mark only lets a replay of the
// same delivery through to the commit's own checks).
func (h *Webhooks) markDelivery(ctx context.Context, p webhook.Push) {
	if k := webhook.DeliveryKey(p); k != "" {
		_ = h.Deliveries.Mark(ctx, "webhook|"+k)
	}
}

// files are the push's net changes, relative to the config repository. A truncated push's list
// may be incomplete: resolve diffs before..after in the repository itself (it fetches them, and
// retries while the remote cannot be reached).
func (h *Webhooks) files(p webhook.Push) []trigger.FileChange {
	var out []trigger.FileChange
	for _, f := range webhook.ChangedFiles(p) {
		path := f.Path
		if h.Subfolder != "" {
			var ok bool
			if path, ok = strings.CutPrefix(path, strings.Trim(h.Subfolder, "/")+"/"); !ok {
				continue
			}
		}
		out = append(out, trigger.FileChange{Path: path, Removed: f.Removed})
	}
	return out
}

func short(sha string) string {
	if len(sha) > 12 {
		return sha[:12]
	}
	return sha
}

// fail replies with the status a webhook error carries; a 401 is audited as a security entry.
func (h *Webhooks) fail(ctx context.Context, w http.ResponseWriter, r *http.Request, err error) {
	var we *webhook.Error
	status := http.StatusBadRequest
	if errors.As(err, &we) {
		status = we.Status
	}
	if status == http.StatusUnauthorized {
		h.record(ctx, "security.webhook_rejected", "webhook", map[string]any{
			"reason": err.Error(), "remote_addr": r.RemoteAddr, "user_agent": r.UserAgent(),
			"event": firstNonEmpty(r.Header.Get("X-GitHub-Event"), r.Header.Get("X-Gitlab-Event"), r.Header.Get("X-Gitea-Event"), r.Header.Get("X-Forgejo-Event")),
		})
	}
	write(w, status, reply{Error: err.Error()})
}

// record writes an audit entry outside any change (chains "security/…" or "triggers/…",
// audit.SpreadChain).
func (h *Webhooks) record(ctx context.Context, typ, actor string, detail map[string]any) {
	if h.Audit == nil {
		return
	}
	// A sender that hangs up does not take the entry with it.
	ctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), time.Minute)
	defer cancel()
	now := h.now()
	id, _ := uuid.NewV7()
	body, _ := json.Marshal(map[string]any{"type": typ, "occurred_at": now, "detail": detail})
	kind := "triggers"
	if typ == "security.webhook_rejected" {
		kind = "security"
	}
	chain := audit.SpreadChain(kind, id.String())
	rec := audit.Record{MessageID: id.String(), Type: typ, Version: 1, Chain: chain, CorrelationID: id.String(),
		ActorKind: "webhook", Actor: actor, OccurredAt: now, Body: body}
	if _, err := h.Audit.Append(ctx, rec); err != nil && h.Log != nil {
		h.Log.Warn("audit entry not written", "type", typ, "error", err)
	}
}

func (h *Webhooks) now() time.Time {
	if h.Now != nil {
		return h.Now().UTC()
	}
	return time.Now().UTC()
}

func firstNonEmpty(ss ...string) string {
	for _, s := range ss {
		if s != "" {
			return s
		}
	}
	return ""
}

// sameRepo reports whether a push's repository (its full name, "owner/name") is the config
// repository whose URL path is configured: equal, case aside, or one a suffix of the other at a
// "/" — a server under a path prefix (https://host/git/acme/config) or a URL naming the
// repository alone (https://host/config) still matches acme/config; acme/other never does. A
// pushed name longer than a configured one naming its owner is another repository: a GitLab
// project in a subgroup (evil/acme/config is not acme/config).
func sameRepo(pushed, configured string) bool {
	a, b := strings.ToLower(strings.Trim(pushed, "/")), strings.ToLower(strings.Trim(configured, "/"))
	return a == b || strings.HasSuffix(b, "/"+a) || (!strings.Contains(b, "/") && strings.HasSuffix(a, "/"+b))
}
