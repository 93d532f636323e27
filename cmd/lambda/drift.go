package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/usekarma/karma/shared/app"
	"github.com/usekarma/karma/shared/drift"
	karmalambda "github.com/usekarma/karma/shared/lambda"
	"github.com/usekarma/karma/shared/message"
)

// stageDrift is invoked on a schedule (terraform/events.tf): the drift check of this account's
// environment, KARMA_ENV (docs/drift.md).
const stageDrift = "drift"

// driftActor is who the scheduled drift check acts as.
var driftActor = message.Actor{Kind: "karma", Name: "drift check (lambda)"}

// setupDrift builds the scheduled drift handler: compare KARMA_ENV's parameters (and, where the
// account file sets drift_refresh, its workspaces) with the deploy branch's head, and publish
// what is new to the bus — corrective change sets approved up front only with
// KARMA_AUTO_APPROVE=true.
func setupDrift(ctx context.Context, a *app.App, getenv func(string) string) (func(context.Context, events.EventBridgeEvent) error, error) {
	if a.Config.EventBus == "" {
		return nil, errors.New("KARMA_EVENT_BUS is not set: drift events are published to an EventBridge bus")
	}
	env := a.Config.Env
	if env == "" {
		return nil, fmt.Errorf("stage %s: KARMA_ENV (this account's environment) is not set", stageDrift)
	}
	auto, err := autoApprove(getenv)
	if err != nil {
		return nil, err
	}
	checker, err := a.DriftChecker(ctx)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", stageDrift, err)
	}
	rec, err := a.DriftRecorder(ctx, driftActor, auto)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", stageDrift, err)
	}
	return func(ctx context.Context, _ events.EventBridgeEvent) error {
		rep, err := runDrift(ctx, func(ctx context.Context) (*drift.Report, error) { return checker.Check(ctx, drift.Options{Env: env}) }, rec.Record)
		if rep == nil {
			return err
		}
		var failed []string
		for _, e := range rep.Envs {
			level := slog.LevelInfo
			if len(e.Errors) > 0 || err != nil {
				level = slog.LevelWarn
			}
			a.Log().Log(ctx, level, "drift check", "env", e.Env, "commit", rep.Commit, "compared", e.Compared, "drifts", len(e.Findings),
				"corrective_change", e.Corrective, "errors", e.Errors, "error", err)
			failed = append(failed, e.Errors...)
		}
		if err == nil && len(failed) > 0 {
			// What was found is recorded; what could not be compared fails the invocation, so
			// that the function's errors (and their alarm, terraform/events.tf) show it: a run
			// that returned success would read as "no drift". It is not retried: the next
			// scheduled run compares again.
			err = fmt.Errorf("drift check of %s: %d comparison(s) failed: %s", env, len(failed), strings.Join(failed, "; "))
		}
		return err
	}, nil
}

// runDrift is one scheduled drift check: check compares within the function's time less
// karmalambda.DeadlineReserve, and record records what it found with the time left. A check
// still running then (the refresh-only plans of many workspaces) is cut off: the workspaces it
// did not refresh are in the report's errors, and what it did compare — the parameters, the
// workspaces refreshed — is recorded. Cut off by Lambda instead, the run recorded nothing,
// every time, and Lambda ran it again.
func runDrift(ctx context.Context, check func(context.Context) (*drift.Report, error), record func(context.Context, *drift.Report) error) (*drift.Report, error) {
	cctx, cancel := karmalambda.BeforeDeadline(ctx)
	defer cancel()
	rep, err := check(cctx)
	if err != nil {
		return nil, err
	}
	return rep, record(ctx, rep)
}
