// Package trigger builds the messages that start a change, for whoever receives the fact that
// may start one: the push webhook (shared/httpapi), the CLI, the HTTP API (shared/api), the
// Lambda adapter of Parameter Store events (shared/lambda), the reconcile job. It is pure: it
// validates and returns envelopes; Commits is the one part that talks to stores, to keep a
// commit one change however often it is delivered.
//
//   - Triggers, which the ingest stage (workers/ingest) turns into change.detected: git.pushed
//     (GitPushed) and parameter.changed (ParameterChanged). A trigger's correlation_id is the
//     id its change.detected will have, decided here, so that a receiver can name the change
//     before it exists (the webhook answers it as change_id).
//   - The change.detected of what needs no deciding, published as is: a change request
//     (FromRequest) and a rollback (FromRollback).
//
// Bad input is an error matching ErrInvalid that names the input and the problem: the caller
// answers 400 (or exit 2) and nothing enters the pipeline.
package trigger

import (
	"encoding/json"
	"errors"
	"fmt"
	"regexp"
	"sort"
	"strings"
	"time"

	"github.com/google/uuid"

	"github.com/usekarma/karma/shared/message"
)

// ErrInvalid marks bad input: the caller answers 400 / exit 2 and nothing enters the pipeline.
var ErrInvalid = errors.New("trigger: invalid input")

func invalid(format string, a ...any) error {
	return fmt.Errorf("%w: %s", ErrInvalid, fmt.Sprintf(format, a...))
}

// The names a change may carry, as the message schemas (and Parameter Store) allow them.
var (
	typeRe     = regexp.MustCompile(`^[a-z0-9][a-z0-9_-]*$`)
	nicknameRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]*$`)
	envRe      = regexp.MustCompile(`^[^/\s]+$`)
	shaRe      = regexp.MustCompile(`^[0-9a-f]{40}([0-9a-f]{24})?$`)
	depRe      = regexp.MustCompile(`^dep-[0-9a-f]{16}$`)
	hashRe     = regexp.MustCompile(`^[0-9a-f]{64}$`)
)

func validRef(t, n string) bool { return typeRe.MatchString(t) && nicknameRe.MatchString(n) }

// NewChangeID is a fresh change id (a UUIDv7): the id a trigger's change.detected will have.
func NewChangeID() string { return uuid.Must(uuid.NewV7()).String() }

// newTrigger builds a trigger: a message without a cause whose correlation id is changeID (a
// fresh one when ""), the change it starts; occurredAt when the fact happened (zero: now).
func newTrigger(typ, env string, actor message.Actor, idem string, payload any, changeID string, occurredAt time.Time) (message.Envelope, error) {
	e, err := message.New(typ, env, actor, idem, payload)
	if err != nil {
		return e, err
	}
	if changeID == "" {
		changeID = NewChangeID()
	} else if _, err := uuid.Parse(changeID); err != nil {
		return e, invalid("%s: change id %q is not a UUID", typ, changeID)
	}
	e.CorrelationID = changeID
	if !occurredAt.IsZero() {
		e.OccurredAt = occurredAt.UTC().Truncate(time.Millisecond)
	}
	return e, nil
}

// root builds a change.detected root whose change set id is its own id.
func root(env string, actor message.Actor, idem func(id string) string, p *message.ChangeDetected) (message.Envelope, error) {
	e, err := message.New(message.TypeChangeDetected, env, actor, "", struct{}{})
	if err != nil {
		return e, err
	}
	p.ChangeSetID = e.ID
	e.IdempotencyKey = idem(e.ID)
	e.Payload, err = json.Marshal(p)
	return e, err
}

func sortRefs(r []message.ComponentRef) {
	sort.Slice(r, func(i, j int) bool { return r[i].Type+"/"+r[i].Nickname < r[j].Type+"/"+r[j].Nickname })
}

func firstLine(s string) string {
	line, _, _ := strings.Cut(strings.TrimSpace(s), "\n")
	return line
}
