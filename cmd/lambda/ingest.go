package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	awseb "github.com/aws/aws-sdk-go-v2/service/eventbridge"

	"github.com/usekarma/karma/shared/eventbridge"
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
func setupParameterEvents(ctx context.Context, cfg aws.Config, getenv func(string) string, b *backends) (any, error) {
	stage := getenv("KARMA_STAGE")
	bus := getenv("KARMA_EVENT_BUS")
	if bus == "" {
		return nil, errors.New("KARMA_EVENT_BUS is not set: changes are published to an EventBridge bus")
	}
	env := getenv("KARMA_ENV")
	if env == "" {
		return nil, fmt.Errorf("stage %s: KARMA_ENV (this account's environment) is not set", stage)
	}
	if err := b.need(stage, "Seen", "Params"); err != nil {
		return nil, err
	}
	seen, err := b.Seen(ctx)
	if err != nil {
		return nil, err
	}
	store, err := b.Params(ctx)
	if err != nil {
		return nil, err
	}
	pe := &ingest.ParameterEvents{Env: env, Prefix: b.ParamPrefix, Store: store,
		Publisher:   eventbridge.NewPublisher(awseb.NewFromConfig(cfg), bus, eventbridge.PublisherOptions{}),
		Ingested:    func(ctx context.Context, key string) (bool, error) { return seen.Done(ctx, "resolve|"+key) },
		AutoApprove: getenv("KARMA_AUTO_APPROVE") == "true"}
	if stage == stageReconcile {
		return func(ctx context.Context, _ events.EventBridgeEvent) error {
			msgs, err := pe.Reconcile(ctx)
			b.logger().Info("reconcile", "changes", len(msgs), "error", err)
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

func (b *backends) logger() *slog.Logger {
	if b.Log == nil {
		return slog.Default()
	}
	return b.Log
}
