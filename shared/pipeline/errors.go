package pipeline

import (
	"context"
	"errors"
)

// Action is what the runtime does with a message whose handler returned an error.
type Action int

const (
	// Ack: success; publish the outputs and delete the message.
	Ack Action = iota
	// Retry: leave the message; it comes back after its visibility timeout, and goes to the
	// dead-letter queue after MaxReceives receives.
	Retry
	// DeadLetter: move the message to the dead-letter queue now, with the error as reason.
	DeadLetter
	// Duplicate: the work was already done; delete the message, publish nothing.
	Duplicate
)

func (a Action) String() string {
	return [...]string{"ack", "retry", "dead-letter", "duplicate"}[a]
}

// ErrDuplicate is returned (wrapped) by handlers and middleware that find the work done.
var ErrDuplicate = errors.New("pipeline: duplicate")

// permanent and transient are the behaviours errors may have; errors.As finds them anywhere in a
// wrapped chain, so packages mark their errors without importing this one.
type permanent interface{ Permanent() bool }
type transient interface{ Transient() bool }

// Classify is the one place that sorts errors:
//   - nil -> Ack
//   - ErrDuplicate -> Duplicate
//   - an error with Permanent() true (malformed message, unknown version, invalid input) ->
//     DeadLetter
//   - everything else (Transient() true, timeouts, unknown errors) -> Retry, bounded by the
//     queue's receive count. A context cancelled by shutdown is a Retry too: the message comes
//     back to the next process.
func Classify(err error) Action {
	if err == nil {
		return Ack
	}
	if errors.Is(err, ErrDuplicate) {
		return Duplicate
	}
	var p permanent
	if errors.As(err, &p) && p.Permanent() {
		return DeadLetter
	}
	return Retry
}

// IsTransient reports whether a retry in-process is worth it (Retry middleware): the error says
// so itself, or it is a deadline exceeded.
func IsTransient(err error) bool {
	var t transient
	if errors.As(err, &t) {
		return t.Transient()
	}
	return errors.Is(err, context.DeadlineExceeded)
}

// PermanentError marks any error as permanent (dead-letter at once).
type PermanentError struct{ Err error }

func (e *PermanentError) Error() string   { return e.Err.Error() }
func (e *PermanentError) Unwrap() error   { return e.Err }
func (e *PermanentError) Permanent() bool { return true }

// Permanent wraps err so that Classify dead-letters it.
func Permanent(err error) error {
	if err == nil {
		return nil
	}
	return &PermanentError{Err: err}
}

// TransientError marks an error as worth an in-process retry.
type TransientError struct{ Err error }

func (e *TransientError) Error() string   { return e.Err.Error() }
func (e *TransientError) Unwrap() error   { return e.Err }
func (e *TransientError) Transient() bool { return true }

// Transient wraps err so that the Retry middleware retries it.
func Transient(err error) error {
	if err == nil {
		return nil
	}
	return &TransientError{Err: err}
}
