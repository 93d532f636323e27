package api

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"time"

	"github.com/google/uuid"

	"github.com/usekarma/karma/shared/audit"
)

// Audit entries of the API itself. Every write the API accepts is recorded with its caller, in
// the chain of the change it concerns ("change/<correlation id>"), beside the pipeline messages
// the write caused (which carry the caller too, but an approval's deployment.approved keeps the
// change's author as actor): api.change_requested, api.change_approved (also an approval that
// counts toward several needed), api.change_rejected, api.approval_refused (separation of
// duties), api.rollback_requested, api.change_promoted.
// Requests refused for want of credentials or scope go to the chains "security/00" …
// "security/15" (audit.SpreadChain: security.api_unauthenticated, security.api_forbidden), as
// refused webhooks do.

// Entry types.
const (
	EntryRequested       = "api.change_requested"
	EntryApproved        = "api.change_approved"
	EntryRejected        = "api.change_rejected"
	EntryRollback        = "api.rollback_requested"
	EntryPromoted        = "api.change_promoted"
	EntryApprovalRefused = "api.approval_refused" // separation of duties refused the caller
	EntryUnauthenticated = "security.api_unauthenticated"
	EntryForbidden       = "security.api_forbidden"
)

// entry is an API audit entry's body.
type entry struct {
	ID         string         `json:"id"`
	Type       string         `json:"type"`
	OccurredAt string         `json:"occurred_at"`
	Method     string         `json:"method"`
	Path       string         `json:"path"`
	Caller     Caller         `json:"caller"`
	Detail     map[string]any `json:"detail,omitempty"`
}

// record appends an entry about change (its correlation id) with the caller as actor.
func (s *server) record(ctx context.Context, r *http.Request, typ string, c Caller, env, correlation string, detail map[string]any) error {
	id := uuid.Must(uuid.NewV7()).String()
	chain := "change/" + correlation
	if correlation == "" {
		chain = audit.SpreadChain("security", id)
	}
	now := s.cfg.Now().UTC().Truncate(1e6)
	body, err := json.Marshal(entry{ID: id, Type: typ, OccurredAt: now.Format("2006-01-02T15:04:05.000Z07:00"), Method: r.Method, Path: r.URL.Path, Caller: c, Detail: detail})
	if err != nil {
		return err
	}
	kind, name := c.Kind, c.Name
	if kind == "" {
		kind, name = "anonymous", r.RemoteAddr
	}
	if correlation == "" {
		correlation = id
	}
	rec := audit.Record{MessageID: id, Type: typ, Version: 1, Env: env, Chain: chain, CorrelationID: correlation,
		ActorKind: kind, Actor: name, OccurredAt: now, Body: body}
	if _, err := s.cfg.Audit.Append(ctx, rec); err != nil {
		return fmt.Errorf("audit log: %w", err)
	}
	return nil
}

// writeTimeout bounds a request's writes once they have started (see detached).
const writeTimeout = 2 * time.Minute

// detached is the context of a request that changes state (the routes of the write and approve
// scopes) and of the security entries of refused ones. Once such a request has started, a caller hanging up — or a gateway giving up
// on it — must not stop it half-way: a decision stored without its audit entry, a commit
// without its queued change. Its writes run to their end, bounded by writeTimeout instead.
//
// In a Lambda function they end when its work does (LambdaHandler), at the latest: past it the
// function would be stopped wherever the writes are, its answer lost; cut off there, the handler
// answers what it did.
func detached(r *http.Request) (context.Context, context.CancelFunc) {
	end := time.Now().Add(writeTimeout)
	if d, ok := r.Context().Value(workDeadlineKey{}).(time.Time); ok && d.Before(end) {
		end = d
	}
	return context.WithDeadline(context.WithoutCancel(r.Context()), end)
}

// security records a refused request; a failure to record it is logged, not answered.
func (s *server) security(r *http.Request, typ string, c Caller, reason string) {
	ctx, cancel := detached(r)
	defer cancel()
	err := s.record(ctx, r, typ, c, "", "", map[string]any{"reason": reason, "remote_addr": r.RemoteAddr, "user_agent": r.UserAgent()})
	if err != nil {
		s.cfg.Log.Warn("api: security entry not written", "type", typ, "error", err)
	}
}
