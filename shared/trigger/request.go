package trigger

import (
	"bytes"
	"encoding/json"
	"strings"

	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/params"
)

// Request is a proposed config change (karma propose-change, POST /request-change).
type Request struct {
	ID          string            // change request id ("" = the message id)
	Env         string            // environment
	Configs     map[string][]byte // "<type>/<nickname>" -> the new environment file (a JSON object)
	Actor       message.Actor
	AutoApprove bool
	// Commit is the commit the request became (its tree holds Configs): what is deployed. Its
	// idempotency key is the commit's ("git:<sha>"), so the push of that commit arriving later
	// is recognised as the same change.
	Commit *message.Commit
}

// FromRequest validates a change request and makes its change.detected (source request): a
// root, published as is — a request needs no deciding by the ingest stage.
func FromRequest(r Request) (message.Envelope, error) {
	if !envRe.MatchString(r.Env) {
		return message.Envelope{}, invalid("change request: environment %q: want a name without '/' or spaces", r.Env)
	}
	if len(r.Configs) == 0 {
		return message.Envelope{}, invalid("change request: no component")
	}
	cr := &message.ChangeRequest{ID: r.ID, Configs: map[string]string{}}
	var comps []message.ComponentRef
	for ref, cfg := range r.Configs {
		t, n, ok := strings.Cut(ref, "/")
		if !ok || !validRef(t, n) {
			return message.Envelope{}, invalid("change request: %q is not <type>/<nickname>", ref)
		}
		if off := params.FirstInvalidUTF8(cfg); off >= 0 {
			return message.Envelope{}, invalid("change request: config for %s: invalid UTF-8 at byte offset %d", ref, off)
		}
		var obj map[string]any
		if err := json.Unmarshal(cfg, &obj); err != nil || obj == nil {
			return message.Envelope{}, invalid("change request: config for %s is not a JSON object: %v", ref, err)
		}
		var buf bytes.Buffer
		if err := json.Compact(&buf, cfg); err != nil {
			return message.Envelope{}, invalid("change request: config for %s: %v", ref, err)
		}
		cr.Configs[ref] = buf.String()
		comps = append(comps, message.ComponentRef{Type: t, Nickname: n})
	}
	sortRefs(comps)
	p := message.ChangeDetected{Source: message.SourceRequest, Components: comps, Request: cr, AutoApprove: r.AutoApprove}
	if r.Commit != nil {
		if !shaRe.MatchString(r.Commit.SHA) || r.ID == "" {
			return message.Envelope{}, invalid("change request: a request's commit needs its full sha and the request id it names")
		}
		p.Commit, cr.Configs = r.Commit, nil // the commit holds the configs
	}
	return root(r.Env, r.Actor, func(id string) string {
		if cr.ID == "" {
			cr.ID = id
		}
		if p.Commit != nil {
			return CommitKey(p.Commit.SHA)
		}
		return "request:" + cr.ID
	}, &p)
}
