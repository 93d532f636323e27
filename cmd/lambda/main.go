// Command lambda is Karma's AWS Lambda function: one binary ("bootstrap", for the provided.al2023
// runtime, arm64 or amd64) that runs the stage KARMA_STAGE names as the handler of an SQS event
// source mapping (shared/lambda: partial batch responses, poison messages to the queue's DLQ),
// publishing the stage's outputs to an EventBridge bus (shared/eventbridge) whose rules route
// them to the next stages' queues and the audit queue. Every store and stage comes from the one
// composition root (shared/app) built from the configuration (shared/config, docs/configuration.md),
// with every backend on AWS unless the environment says otherwise; a stage whose backend cannot
// be opened fails at startup naming it (a Lambda init error).
//
// Environment:
//
//	KARMA_STAGE         ingest | resolve | graph-write | plan | apply | audit, or webhook: Git webhooks
//	                    behind API Gateway (HTTP API) instead of SQS, see webhook.go; or api:
//	                    Karma's HTTP API (shared/api) behind API Gateway with IAM auth, see api.go;
//	                    reconcile: parameter versions events missed (ingest.go; ingest also
//	                    takes Parameter Store events, ingest.go); drift: the
//	                    scheduled drift check (drift.go); promote: on a schedule, starts the
//	                    promotions whose soak is over (promote.go)
//	KARMA_EVENT_BUS     the EventBridge bus outputs go to (name or ARN)
//	KARMA_QUEUE_PREFIX  the queues' name prefix, e.g. "karma-prod-" (dead letters are named by
//	                    the queue name without it, as `karma dlq list` shows them)
//	KARMA_GIT_URL (+ KARMA_GIT_*), KARMA_PREFIX, KARMA_MODULES_DIR, KARMA_WORK_DIR,
//	KARMA_CACHE_DIR, KARMA_TERRAFORM, the table names, KARMA_NEPTUNE_ENDPOINT: see stages.go
//	KARMA_LOG_LEVEL     debug | info | warn | error (default info); logs are JSON on stderr
//	AWS_REGION and credentials come from Lambda; AWS_ENDPOINT_URL(_<SERVICE>) override endpoints.
//
// Build (see the Makefile's lambda target):
//
//	GOOS=linux GOARCH=arm64 CGO_ENABLED=0 go build -tags lambda.norpc -o bootstrap ./cmd/lambda
//	zip karma-lambda-arm64.zip bootstrap
//
// Event source mapping: FunctionResponseTypes = ["ReportBatchItemFailures"], the queue's
// visibility timeout at least the function's timeout. On a FIFO queue a failed record stops its
// batch (the rest is reported failed, unprocessed). A batch stops a tenth of the function's time
// (at most 30 s: karmalambda.DeadlineReserve) before its deadline, reporting the record it cut
// off and the ones not started as failed, so that Lambda gets the response rather than
// retrying the whole batch.
package main

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"slices"
	"strings"

	awslambda "github.com/aws/aws-lambda-go/lambda"
	"github.com/aws/aws-sdk-go-v2/config"

	"github.com/usekarma/karma/shared/app"
	"github.com/usekarma/karma/shared/eventbridge"
	karmalambda "github.com/usekarma/karma/shared/lambda"
	"github.com/usekarma/karma/shared/pipeline"
)

func main() {
	log := slog.New(slog.NewJSONHandler(os.Stderr, &slog.HandlerOptions{Level: level(os.Getenv("KARMA_LOG_LEVEL"))}))
	slog.SetDefault(log)
	ctx := context.Background()
	cfg, err := config.LoadDefaultConfig(ctx)
	if err != nil {
		log.Error("karma lambda: cannot start: AWS config", "error", err)
		os.Exit(1)
	}
	a, err := newApp(os.Getenv, &cfg, log, nil)
	if err != nil {
		log.Error("karma lambda: cannot start: configuration", "error", err)
		os.Exit(1)
	}
	h, err := lambdaHandler(ctx, a, os.Getenv) // SQS batches, or API Gateway events for KARMA_STAGE=webhook
	if err != nil {
		log.Error("karma lambda: cannot start", "stage", os.Getenv("KARMA_STAGE"), "error", err)
		os.Exit(1)
	}
	log.Info("karma lambda: ready", "stage", os.Getenv("KARMA_STAGE"), "bus", os.Getenv("KARMA_EVENT_BUS"))
	awslambda.Start(h)
}

// setup builds the SQS handler of the stage KARMA_STAGE names.
func setup(ctx context.Context, a *app.App, getenv func(string) string) (karmalambda.Handler, error) {
	name := getenv("KARMA_STAGE")
	if !slices.Contains(app.StageNames, name) {
		return nil, fmt.Errorf("KARMA_STAGE=%q: want one of %s", name, strings.Join(append(slices.Clone(app.StageNames), stageReconcile, stageDrift, stagePromote, stageWebhook, stageAPI), ", "))
	}
	if name == stageIngest {
		return setupIngest(ctx, a, getenv)
	}
	if a.Config.EventBus == "" {
		return nil, errors.New("KARMA_EVENT_BUS is not set: the stage's outputs go to an EventBridge bus")
	}
	st, err := a.Stage(ctx, name)
	if err != nil {
		return nil, err
	}
	return sqsHandler(ctx, a, st)
}

// sqsHandler serves stage st as the handler of an SQS event source: outputs to the App's
// publisher (the event bus), poison messages to the queue's dead-letter queue.
func sqsHandler(ctx context.Context, a *app.App, st pipeline.Stage) (karmalambda.Handler, error) {
	return sqsHandlerUnwrapping(ctx, a, st, eventbridge.Unwrap)
}

// sqsHandlerUnwrapping is sqsHandler with the records' bodies unwrapped by unwrap.
func sqsHandlerUnwrapping(ctx context.Context, a *app.App, st pipeline.Stage, unwrap func([]byte) ([]byte, error)) (karmalambda.Handler, error) {
	pub, err := a.Publisher(ctx)
	if err != nil {
		return nil, err
	}
	dead, err := deadLetterer(ctx, a, st.Name)
	if err != nil {
		return nil, err
	}
	return karmalambda.SQSHandler(st, pub, dead, unwrap), nil
}

// deadLetterer is the App's queue, through which stage's function dead-letters its records.
func deadLetterer(ctx context.Context, a *app.App, stage string) (karmalambda.DeadLetterer, error) {
	q, err := a.Queue(ctx)
	if err != nil {
		return nil, err
	}
	dead, ok := q.(karmalambda.DeadLetterer)
	if !ok {
		return nil, fmt.Errorf("stage %s: the queue backend (%T) cannot take dead letters", stage, q)
	}
	return dead, nil
}

func level(s string) slog.Level {
	var l slog.Level
	if l.UnmarshalText([]byte(s)) != nil {
		return slog.LevelInfo
	}
	return l
}
