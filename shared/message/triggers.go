package message

import (
	"strconv"
	"time"
)

// Triggers are what the ingest stage consumes: facts from outside Karma that may start a change.
// Whoever receives the fact (the push webhook, the Lambda adapter of Parameter Store events,
// the CLI, the reconcile job) publishes the trigger; the ingest stage decides whether it is a
// change and answers change.detected. A trigger's correlation_id is the id its change.detected
// will have (and its change set id): the receiver decides it, so that it can name the change
// before the change exists (the webhook answers it as change_id).

// GitPushed (git.pushed v1): a commit pushed to a deploy branch (a push webhook), or handed over
// by `karma ingest commit`, with the files Karma deploys from that it changed. The receiver
// leaves out pushes that change nothing deployable (it answers them "ignored"), so Files and
// Removed are already the deployable ones (model.DeployableChanges).
type GitPushed struct {
	// Commit is the pushed commit (the branch's new head): its first line of message, and
	// Before when Truncated.
	Commit Commit `json:"commit"`
	// Files are the deployable repository paths the push changed, sorted (nil = none listed:
	// a truncated push).
	Files []string `json:"files"`
	// Removed are the components whose config.json the push deleted.
	Removed []ComponentRef `json:"removed,omitempty"`
	// Truncated: the push's payload did not list every file; resolve diffs Before..SHA.
	Truncated bool `json:"truncated,omitempty"`
	// AutoApprove: the change's plans may be applied without review (the receiver's setting).
	AutoApprove bool `json:"auto_approve"`
	// Provider is the Git host that sent the push (github, gitlab, gitea, forgejo); "" for a
	// commit handed over by the CLI.
	Provider string `json:"provider,omitempty"`
	// Delivery is the provider's id of the delivery that brought it, for the record.
	Delivery string `json:"delivery,omitempty"`
}

// ParameterChanged (parameter.changed v1): a parameter under the prefix was written (or
// deleted, or labelled) by someone: a Parameter Store Change event, `karma params put`, or a
// version the reconcile job found that no event brought. It says neither the value nor, for an
// event, the version: the ingest stage reads the parameter's history.
type ParameterChanged struct {
	Name string `json:"name"` // as Parameter Store names it, e.g. /iac/vpc/core/config
	// Operation is Parameter Store's: Create, Update, Delete, LabelParameterVersion (others
	// are passed through, and ignored by ingest).
	Operation string `json:"operation"`
	// Version is the version written, when the writer knows it (the CLI, reconcile); 0: the
	// event does not say, the current version counts.
	Version int64 `json:"version,omitempty"`
	// WrittenAt is the time Version was written (its LastModifiedDate), when the writer knows
	// it: a parameter deleted and created again starts again at version 1, and the number
	// alone does not say which life of the parameter the version is of. Zero: not said (an
	// event; a trigger made before it was added). Added to version 1: optional.
	WrittenAt time.Time `json:"written_at,omitzero"`
	// EventID is the EventBridge event's id, for an event (the same on every delivery).
	EventID string `json:"event_id,omitempty"`
	// AutoApprove: the change's plans may be applied without review (the receiver's setting).
	AutoApprove bool `json:"auto_approve"`
}

// GitPushedKey is the idempotency key of a commit's git.pushed: every delivery of the commit
// (by any provider, or the CLI) is one trigger.
func GitPushedKey(sha string) string { return TypeGitPushed + ":" + sha }

// ParameterChangedKey is the idempotency key of a parameter.changed: the version written when it
// is known, with the time it was written when that is known too
// ("parameter.changed:<name>@<version>@2026-12-05T10:04:01.123Z", as ParameterVersionKey), else
// the event that says so ("parameter.changed:<name>@event:<event id>"). Without the time, the
// version 1 of a parameter deleted and created again would be keyed like the version 1 before
// the deletion, handled already, and dropped as a duplicate. Triggers made before the time was
// added have none.
func ParameterChangedKey(p ParameterChanged) string {
	if p.Version > 0 {
		return TypeParameterChanged + ":" + p.Name + "@" + strconv.FormatInt(p.Version, 10) + keyTime(p.WrittenAt)
	}
	return TypeParameterChanged + ":" + p.Name + "@event:" + p.EventID
}

// ParameterVersionKey is the idempotency key of the change of a parameter version (source
// SourceParameter for a /config, SourceRuntime for a /runtime): "<source>:<name>@<version>", and
// the time the version was written when known ("@2026-12-05T10:04:01.123Z", UTC, milliseconds).
// A parameter deleted and created again starts again at version 1: without the time, each of its
// new versions would be taken for the version of that number before the deletion, done already,
// and dropped as a duplicate. Keys made before the time was added have none (ingest made them
// alike for every version).
func ParameterVersionKey(source, name string, version int64, writtenAt time.Time) string {
	return source + ":" + name + "@" + strconv.FormatInt(version, 10) + keyTime(writtenAt)
}

// keyTime is the "@<time>" of a parameter version's key: UTC, milliseconds (Parameter Store's
// precision); "" for the zero time (not known).
func keyTime(writtenAt time.Time) string {
	if writtenAt.IsZero() {
		return ""
	}
	return "@" + writtenAt.UTC().Format("2006-01-02T15:04:05.000Z07:00")
}

// SameWriteTime reports whether two times of a parameter version's writing are one as its key
// has them (to the millisecond).
func SameWriteTime(a, b time.Time) bool {
	return a.Truncate(time.Millisecond).Equal(b.Truncate(time.Millisecond))
}
