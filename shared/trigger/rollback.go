package trigger

import (
	"strings"

	"github.com/usekarma/karma/shared/message"
)

// RollbackRequest asks to deploy again the config an applied deployment deployed (karma
// rollback, POST /deployments/{id}/rollback). Whether it can be is shared/rollback's question,
// asked by the caller first and by resolve again.
type RollbackRequest struct {
	Env       string
	Component string // "<env>/<type>/<nickname>"
	Target    message.Rollback
	Actor     message.Actor
	// AutoApprove is normally false: a rollback's plans are shown and approved first.
	AutoApprove bool
}

// FromRollback validates a rollback request and makes its change.detected (source rollback),
// keyed by its own change set id: each request is one change. A root, published as is.
func FromRollback(r RollbackRequest) (message.Envelope, error) {
	parts := strings.SplitN(r.Component, "/", 3)
	switch {
	case !envRe.MatchString(r.Env):
		return message.Envelope{}, invalid("rollback: environment %q: want a name without '/' or spaces", r.Env)
	case len(parts) != 3 || parts[0] != r.Env || !validRef(parts[1], parts[2]):
		return message.Envelope{}, invalid("rollback: %q is not a component <env>/<type>/<nickname> of %s", r.Component, r.Env)
	case !depRe.MatchString(r.Target.DeploymentID) || (r.Target.Replaces != "" && !depRe.MatchString(r.Target.Replaces)):
		return message.Envelope{}, invalid("rollback: deployment %q: want dep-<16 hex>", r.Target.DeploymentID)
	case !shaRe.MatchString(r.Target.Commit) || !hashRe.MatchString(r.Target.ConfigHash) || r.Target.ChangeSetID == "":
		return message.Envelope{}, invalid("rollback to %s: its change set, commit and config hash are required", r.Target.DeploymentID)
	case strings.TrimSpace(r.Actor.Name) == "":
		return message.Envelope{}, invalid("rollback to %s: who asks is required", r.Target.DeploymentID)
	}
	target := r.Target
	p := message.ChangeDetected{Source: message.SourceRollback, Components: []message.ComponentRef{{Type: parts[1], Nickname: parts[2]}},
		Rollback: &target, AutoApprove: r.AutoApprove}
	return root(r.Env, r.Actor, func(id string) string { return "rollback:" + id }, &p)
}
