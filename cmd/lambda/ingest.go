package main

import (
	"context"
	"errors"
	"fmt"

	"github.com/aws/aws-lambda-go/events"

	"github.com/usekarma/karma/shared/app"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/workers/ingest"
)

// Stages served by ingest.ParameterEvents rather than a pipeline handler.
const (
	// stageIngest consumes the ingest queue, fed by the rule on "Parameter Store Change" events.
	stageIngest = pipeline.StageIngest
	// stageReconcile is invoked on a schedule: it ingests parameter versions events missed.
	stageReconcile = "reconcile"
)

// setupParameterEvents builds the ingest (SQS batches of Parameter Store Change events) or
// reconcile (scheduled) handler. KARMA_ENV names this account's environment.
func setupParameterEvents(ctx context.Context, a *app.App, getenv func(string) string) (any, error) {
	stage := getenv("KARMA_STAGE")
	if a.Config.EventBus == "" {
		return nil, errors.New("KARMA_EVENT_BUS is not set: changes are published to an EventBridge bus")
	}
	env := a.Config.Env
	if env == "" {
		return nil, fmt.Errorf("stage %s: KARMA_ENV (this account's environment) is not set", stage)
	}
	seen, err := a.Seen(ctx)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", stage, err)
	}
	store, err := a.Params(ctx, env)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", stage, err)
	}
	pub, err := a.Publisher(ctx)
	if err != nil {
		return nil, fmt.Errorf("stage %s: %w", stage, err)
	}
	prefix, err := a.Prefix()
	if err != nil {
		return nil, err
	}
	pe := &ingest.ParameterEvents{Env: env, Prefix: prefix, Store: store, Publisher: pub,
		Ingested:    func(ctx context.Context, key string) (bool, error) { return seen.Done(ctx, "resolve|"+key) },
		AutoApprove: getenv("KARMA_AUTO_APPROVE") == "true"}
	if stage == stageReconcile {
		return func(ctx context.Context, _ events.EventBridgeEvent) error {
			msgs, err := pe.Reconcile(ctx)
			a.Log().Info("reconcile", "changes", len(msgs), "error", err)
			return err
		}, nil
	}
	return parameterEventsHandler(pe), nil
}

// parameterEventsHandler handles an SQS batch of EventBridge events; a malformed event is
// dropped (logged) rather than retried, a transient failure is reported for retry.
func parameterEventsHandler(pe *ingest.ParameterEvents) func(context.Context, events.SQSEvent) (events.SQSEventResponse, error) {
	return func(ctx context.Context, ev events.SQSEvent) (events.SQSEventResponse, error) {
		var resp events.SQSEventResponse
		for _, r := range ev.Records {
			_, err := pe.Handle(ctx, []byte(r.Body))
			if err != nil && pipeline.Classify(err) == pipeline.Retry {
				resp.BatchItemFailures = append(resp.BatchItemFailures, events.SQSBatchItemFailure{ItemIdentifier: r.MessageId})
			}
		}
		return resp, nil
	}
}
