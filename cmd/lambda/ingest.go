package main

import (
	"context"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/aws/aws-lambda-go/events"

	"github.com/usekarma/karma/shared/app"
	karmalambda "github.com/usekarma/karma/shared/lambda"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/trigger"
)

const (
	// stageIngest is the ingest stage (workers/ingest), whose queue is fed by Karma's bus
	// (git.pushed, parameter.changed) and by the default bus's Parameter Store Change events,
	// which karmalambda.PublishParameterEvents turns into parameter.changed published to the bus.
	stageIngest = pipeline.StageIngest
	// stageReconcile is invoked on a schedule: it publishes the parameter.changed of the
	// parameter versions events missed (trigger.Reconciler).
	stageReconcile = "reconcile"
)

// setupIngest builds the ingest stage's SQS handler. KARMA_ENV names this account's
// environment: the environment of the Parameter Store events; KARMA_AUTO_APPROVE=true makes
// their changes auto-approved.
func setupIngest(ctx context.Context, a *app.App, getenv func(string) string) (karmalambda.Handler, error) {
	env, err := accountEnv(a, stageIngest)
	if err != nil {
		return nil, err
	}
	prefix, err := a.Prefix()
	if err != nil {
		return nil, err
	}
	st, err := a.Stage(ctx, stageIngest)
	if err != nil {
		return nil, err
	}
	auto, err := autoApprove(getenv)
	if err != nil {
		return nil, err
	}
	next, err := sqsHandlerUnwrapping(ctx, a, st, karmalambda.ParameterEvents(env, prefix, auto))
	if err != nil {
		return nil, err
	}
	pub, err := a.Publisher(ctx)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", stageIngest, err)
	}
	dead, err := deadLetterer(ctx, a, stageIngest)
	if err != nil {
		return nil, err
	}
	// A Parameter Store event's trigger is published (audited, routed back here), not handled
	// in place: the cause its change names is in the audit log.
	return karmalambda.PublishParameterEvents(env, prefix, auto, pub, dead, next), nil
}

// setupReconcile builds the scheduled reconcile handler.
func setupReconcile(ctx context.Context, a *app.App, getenv func(string) string) (func(context.Context, events.EventBridgeEvent) error, error) {
	env, err := accountEnv(a, stageReconcile)
	if err != nil {
		return nil, err
	}
	auto, err := autoApprove(getenv)
	if err != nil {
		return nil, err
	}
	seen, err := a.Seen(ctx)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", stageReconcile, err)
	}
	store, err := a.Params(ctx, env)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", stageReconcile, err)
	}
	pub, err := a.Publisher(ctx)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", stageReconcile, err)
	}
	prefix, err := a.Prefix()
	if err != nil {
		return nil, err
	}
	rc := trigger.Reconciler{Env: env, Prefix: prefix, Store: store, Seen: seen, Publisher: pub, AutoApprove: auto}
	return func(ctx context.Context, _ events.EventBridgeEvent) error {
		msgs, err := rc.Run(ctx)
		a.Log().Info("reconcile", "triggers", len(msgs), "error", err)
		return err
	}, nil
}

// accountEnv is this account's environment (KARMA_ENV); the bus must be set too.
func accountEnv(a *app.App, stage string) (string, error) {
	if a.Config.EventBus == "" {
		return "", errors.New("KARMA_EVENT_BUS is not set: triggers are published to an EventBridge bus")
	}
	if a.Config.Env == "" {
		return "", fmt.Errorf("stage %s: KARMA_ENV (this account's environment) is not set", stage)
	}
	return a.Config.Env, nil
}

// autoApprove reads KARMA_AUTO_APPROVE, the same way for every function (webhook, ingest,
// reconcile, drift): unset is false; true/false, 1/0 and the other spellings of
// strconv.ParseBool; anything else refuses to start, naming the value, rather than being taken
// as false by one function and true by another.
func autoApprove(getenv func(string) string) (bool, error) {
	v := strings.TrimSpace(getenv("KARMA_AUTO_APPROVE"))
	if v == "" {
		return false, nil
	}
	b, err := strconv.ParseBool(v)
	if err != nil {
		return false, fmt.Errorf("KARMA_AUTO_APPROVE=%q: want true or false", v)
	}
	return b, nil
}
