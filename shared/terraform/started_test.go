package terraform

import (
	"context"
	"errors"
	"strings"
	"testing"
	"time"
)

// The context a terraform command is given does not end with the caller's until the command
// was seen to start (its first output: terraform-exec reads it only once past its check of the
// context right after starting the process, which otherwise returns without waiting for a
// process that runs on), or startGrace after the caller's ended; then it ends with the caller's
// error, a deadline's included. A caller's context ended before the command runs nothing.
func TestCommandContextOutlivesTheCallersUntilTheCommandStarted(t *testing.T) {
	defer func(g time.Duration) { startGrace = g }(startGrace)
	startGrace = time.Hour
	s := &session{}
	out := s.watched(newTail())

	ctx, cancel := context.WithCancel(context.Background())
	err := s.command(ctx, func(cctx context.Context) error {
		cancel() // the caller's context ends while terraform is starting
		time.Sleep(20 * time.Millisecond)
		if cctx.Err() != nil {
			t.Error("the command's context ended before the command printed anything")
		}
		out.Write([]byte(`{"type":"version"}` + "\n")) // terraform-exec reads its first line
		select {
		case <-cctx.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("the command's context did not end once the command was seen to start")
		}
		return cctx.Err()
	})
	if !errors.Is(err, context.Canceled) {
		t.Errorf("err = %v, want the caller's context.Canceled", err)
	}

	startGrace = 30 * time.Millisecond
	dctx, dcancel := context.WithTimeout(context.Background(), time.Millisecond)
	defer dcancel()
	err = s.command(dctx, func(cctx context.Context) error {
		select { // nothing printed: ended startGrace after the caller's deadline
		case <-cctx.Done():
		case <-time.After(10 * time.Second):
			t.Fatal("a command that prints nothing kept its context after startGrace")
		}
		return cctx.Err()
	})
	if !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("err = %v, want the caller's context.DeadlineExceeded", err)
	}

	ran := false
	if err := s.command(ctx, func(context.Context) error { ran = true; return nil }); !errors.Is(err, context.Canceled) || ran {
		t.Errorf("a command with its caller's context ended: ran %v, err %v", ran, err)
	}
}

// startedAsEnded is terraform-exec's error for a command it started as the context ended and
// returned without waiting for: the context's error, wrapping nothing.
type startedAsEnded struct{}

func (startedAsEnded) Error() string        { return "context canceled" }
func (startedAsEnded) Is(target error) bool { return target == context.Canceled }

// An apply terraform-exec did not wait for says that what it changed is not known — not that
// it changed nothing — and is not permanent.
func TestAnApplyNotWaitedForSaysItsChangesAreUnknown(t *testing.T) {
	s := &session{ws: Workspace{Env: "prod", Type: "vpc", Nickname: "core"}, log: newTail(), ui: newUILog(newTail(), redactor{})}
	err := s.fail(OpApply, startedAsEnded{})
	var e *Error
	if !errors.As(err, &e) || e.Permanent() || !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want an interrupted apply", err)
	}
	if msg := err.Error(); !strings.Contains(msg, "not known") || strings.Contains(msg, "no resource change") {
		t.Errorf("Error() = %q, want what it changed said to be unknown", msg)
	}
}
