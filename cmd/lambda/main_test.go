package main

import (
	"context"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"
	"github.com/aws/aws-sdk-go-v2/aws"
	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"
	"github.com/aws/aws-sdk-go-v2/service/secretsmanager"
	awssqs "github.com/aws/aws-sdk-go-v2/service/sqs"
	sqstypes "github.com/aws/aws-sdk-go-v2/service/sqs/types"

	"github.com/usekarma/karma/shared/app"
	"github.com/usekarma/karma/shared/eventbridge"
	"github.com/usekarma/karma/shared/gitrepo/gittest"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/sqs"
)

func env(vars map[string]string) func(string) string {
	return func(k string) string { return vars[k] }
}

func awsConfig(endpoint string) aws.Config {
	cfg := aws.Config{Region: "us-east-1", Credentials: credentials.NewStaticCredentialsProvider("test", "test", "")}
	if endpoint != "" {
		cfg.BaseEndpoint = aws.String(endpoint)
	}
	return cfg
}

// lambdaApp is newApp for tests: awsCfg as the AWS configuration.
func lambdaApp(t *testing.T, vars map[string]string, awsCfg aws.Config) *app.App {
	t.Helper()
	a, err := newApp(env(vars), &awsCfg, nil, nil)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { a.Close() })
	return a
}

func TestSetupErrors(t *testing.T) {
	for _, tc := range []struct {
		name string
		vars map[string]string
		want string
	}{
		{"no stage", map[string]string{"KARMA_EVENT_BUS": "b"}, `KARMA_STAGE="": want one of ingest, resolve, graph-write, plan, apply, audit, reconcile, drift, promote, webhook, api`},
		{"promote without a bus", map[string]string{"KARMA_STAGE": "promote"}, "KARMA_EVENT_BUS is not set: a promotion's change is published"},
		{"unknown stage", map[string]string{"KARMA_STAGE": "deploy", "KARMA_EVENT_BUS": "b"}, `KARMA_STAGE="deploy"`},
		{"no bus", map[string]string{"KARMA_STAGE": "audit"}, "KARMA_EVENT_BUS is not set"},
		{"graph-write without Neptune", map[string]string{"KARMA_STAGE": "graph-write", "KARMA_EVENT_BUS": "b", "KARMA_GIT_URL": "https://example.com/acme/config.git"},
			"stage graph-write: graph store: neptune: KARMA_NEPTUNE_ENDPOINT is not set"},
		{"resolve without a repository", map[string]string{"KARMA_STAGE": "resolve", "KARMA_EVENT_BUS": "b"}, "stage resolve: KARMA_GIT_URL is not set"},
		{"ingest without its environment", map[string]string{"KARMA_STAGE": "ingest", "KARMA_EVENT_BUS": "b"}, "KARMA_ENV (this account's environment) is not set"},
		{"drift without its environment", map[string]string{"KARMA_STAGE": "drift", "KARMA_EVENT_BUS": "b"}, "stage drift: KARMA_ENV (this account's environment) is not set"},
		{"drift without a bus", map[string]string{"KARMA_STAGE": "drift", "KARMA_ENV": "prod"}, "KARMA_EVENT_BUS is not set"},
		// KARMA_AUTO_APPROVE is read one way by every function: a value that is no boolean stops it
		// (it was false for ingest, reconcile and drift, and "1" true for the webhook only).
		{"ingest with auto-approve misspelt", map[string]string{"KARMA_STAGE": "ingest", "KARMA_EVENT_BUS": "b", "KARMA_ENV": "prod", "KARMA_AUTO_APPROVE": "yes"},
			`KARMA_AUTO_APPROVE="yes": want true or false`},
		{"reconcile with auto-approve misspelt", map[string]string{"KARMA_STAGE": "reconcile", "KARMA_EVENT_BUS": "b", "KARMA_ENV": "prod", "KARMA_AUTO_APPROVE": "ture"},
			`KARMA_AUTO_APPROVE="ture": want true or false`},
		{"drift with auto-approve misspelt", map[string]string{"KARMA_STAGE": "drift", "KARMA_EVENT_BUS": "b", "KARMA_ENV": "prod", "KARMA_AUTO_APPROVE": "on"},
			`KARMA_AUTO_APPROVE="on": want true or false`},
		{"webhook with auto-approve misspelt", map[string]string{"KARMA_STAGE": "webhook", "KARMA_EVENT_BUS": "b", "KARMA_WEBHOOK_SECRETS": `{"gitlab:*": "s"}`, "KARMA_AUTO_APPROVE": "always"},
			`KARMA_AUTO_APPROVE="always": want true or false`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			vars := map[string]string{"KARMA_CACHE_DIR": t.TempDir()}
			for k, v := range tc.vars {
				vars[k] = v
			}
			_, err := lambdaHandler(t.Context(), lambdaApp(t, vars, awsConfig("http://127.0.0.1:1")), env(vars))
			if err == nil || !strings.Contains(err.Error(), tc.want) {
				t.Errorf("setup = %v, want an error containing %q", err, tc.want)
			}
		})
	}
}

// Every SQS stage builds from the one composition root: here with every store embedded (a
// configuration may mix backends), the config repository a real git repository.
func TestEveryStageBuilds(t *testing.T) {
	examples, _ := filepath.Abs(filepath.Join("..", "..", "examples"))
	origin := gittest.OriginFrom(t, "config.git", examples)
	vars := map[string]string{"KARMA_BACKEND": "embedded", "KARMA_HOME": t.TempDir(), "KARMA_GIT_URL": origin.Bare,
		"KARMA_CACHE_DIR": t.TempDir(), "KARMA_TERRAFORM": "/bin/false", "KARMA_EVENT_BUS": "karma"}
	a := lambdaApp(t, vars, awsConfig("http://127.0.0.1:1"))
	for _, name := range app.StageNames {
		st, err := a.Stage(t.Context(), name)
		if err != nil || st.Name != name || st.Handler == nil {
			t.Errorf("stage %s: %+v, %v", name, st, err)
		}
	}
}

// The whole function on moto: records of the plan queue are handled, outputs reach the audit
// queue through the bus and its rule, and a poison record lands in the plan queue's DLQ.
func TestHandlerOnMoto(t *testing.T) {
	ep := os.Getenv("KARMA_TEST_MOTO_ENDPOINT")
	if ep == "" {
		t.Skip("KARMA_TEST_MOTO_ENDPOINT is not set: start moto (`scripts/peers.sh start`) and set it to http://127.0.0.1:15000")
	}
	ctx := t.Context()
	prefix := fmt.Sprintf("kfn%06x-", rand.Uint32()&0xffffff)
	q, err := sqs.NewFromConfig(ctx, ep, sqs.Options{Prefix: prefix},
		config.WithRegion("us-east-1"), config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
		config.WithSharedConfigFiles([]string{}), config.WithSharedCredentialsFiles([]string{}))
	if err != nil {
		t.Fatal(err)
	}
	if err := q.EnsureQueues(ctx, []string{pipeline.StagePlan, pipeline.StageAudit}, 5); err != nil {
		t.Fatal(err)
	}
	arn := func(name string) string {
		url, err := q.Client().GetQueueUrl(ctx, &awssqs.GetQueueUrlInput{QueueName: aws.String(q.QueueName(name))})
		if err != nil {
			t.Fatal(err)
		}
		out, err := q.Client().GetQueueAttributes(ctx, &awssqs.GetQueueAttributesInput{QueueUrl: url.QueueUrl,
			AttributeNames: []sqstypes.QueueAttributeName{sqstypes.QueueAttributeNameQueueArn}})
		if err != nil {
			t.Fatal(err)
		}
		return out.Attributes["QueueArn"]
	}
	bus := prefix + "bus"
	cfg := awsConfig(ep)
	eb, err := eventbridge.NewClient(ctx, ep, config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
		config.WithSharedConfigFiles([]string{}), config.WithSharedCredentialsFiles([]string{}))
	if err != nil {
		t.Fatal(err)
	}
	var rules []eventbridge.Rule
	for _, r := range eventbridge.Rules(bus, func(stage string) string {
		if stage != pipeline.StageAudit {
			return "" // only the audit rule is created
		}
		return arn(stage)
	}) {
		if r.Stage == pipeline.StageAudit {
			rules = append(rules, r)
		}
	}
	if err := eventbridge.EnsureRules(ctx, eb, rules); err != nil {
		t.Fatal(err)
	}

	planStage := pipeline.Stage{Name: pipeline.StagePlan, Handler: func(_ context.Context, in message.Envelope) ([]message.Envelope, error) {
		if in.IdempotencyKey == "poison" {
			return nil, pipeline.Permanent(errors.New("no such component"))
		}
		return []message.Envelope{in.MustDerive(message.TypeDeploymentPlanned, "planned-"+in.IdempotencyKey, struct{}{})}, nil
	}}
	a := lambdaApp(t, map[string]string{"KARMA_EVENT_BUS": bus, "KARMA_QUEUE_PREFIX": prefix}, cfg)
	h, err := sqsHandler(ctx, a, planStage)
	if err != nil {
		t.Fatalf("setup: %v", err)
	}
	record := func(id, key string) events.SQSMessage {
		e, err := message.New(message.TypeDeploymentRecorded, "dev", message.Actor{Kind: "cli", Name: "t"}, key, struct{}{})
		if err != nil {
			t.Fatal(err)
		}
		b, _ := message.Encode(e)
		return events.SQSMessage{MessageId: id, Body: string(b), EventSourceARN: arn(pipeline.StagePlan), EventSource: "aws:sqs",
			Attributes: map[string]string{"ApproximateReceiveCount": "1"}}
	}
	resp, err := h(ctx, events.SQSEvent{Records: []events.SQSMessage{record("r1", "ok"), record("r2", "poison")}})
	if err != nil || len(resp.BatchItemFailures) != 0 {
		t.Fatalf("handler: %+v, %v", resp, err)
	}
	dead, err := q.ListDead(ctx, pipeline.StagePlan)
	if err != nil || len(dead) != 1 || dead[0].MessageID != "r2" || dead[0].Reason != "no such component" {
		t.Errorf("plan DLQ: %+v, %v", dead, err)
	}
	ds, err := q.Receive(ctx, pipeline.StageAudit, 10, 30*time.Second, 2*time.Second)
	if err != nil || len(ds) != 1 {
		t.Fatalf("audit queue: %d messages, %v", len(ds), err)
	}
	body, err := eventbridge.Unwrap(ds[0].Body)
	if err != nil {
		t.Fatal(err)
	}
	if out, err := message.Parse(body); err != nil || out.IdempotencyKey != "planned-ok" {
		t.Errorf("audit got %+v, %v", out, err)
	}
}

// The repository's token comes from Secrets Manager (moto here) into a file only the function
// reads; the configuration then names that file.
func TestGitTokenFromSecretsManager(t *testing.T) {
	ep := os.Getenv("KARMA_TEST_MOTO_ENDPOINT")
	if ep == "" {
		t.Skip("KARMA_TEST_MOTO_ENDPOINT is not set: start moto (`scripts/peers.sh start`)")
	}
	cfg := awsConfig(ep)
	name := fmt.Sprintf("karma-git-token-%06x", rand.Uint32()&0xffffff)
	out, err := secretsmanager.NewFromConfig(cfg).CreateSecret(t.Context(), &secretsmanager.CreateSecretInput{Name: aws.String(name), SecretString: aws.String("ghp_s3cret\n")})
	if err != nil {
		t.Fatal(err)
	}
	cache := t.TempDir()
	a := lambdaApp(t, map[string]string{"KARMA_GIT_URL": "https://example.com/acme/config.git", "KARMA_GIT_TOKEN_SECRET": aws.ToString(out.ARN), "KARMA_CACHE_DIR": cache}, cfg)
	if _, err := a.Source(t.Context()); err != nil { // opening the repository fetches nothing yet
		t.Fatal(err)
	}
	token := filepath.Join(cache, "git-token")
	fi, err := os.Stat(token)
	if err != nil || fi.Mode().Perm() != 0o600 {
		t.Fatalf("token file %s: %v, %v; want 0600 under the cache folder", token, fi, err)
	}
	if got, _ := os.ReadFile(token); strings.TrimSpace(string(got)) != "ghp_s3cret" {
		t.Errorf("token file holds %q", got)
	}
	b := lambdaApp(t, map[string]string{"KARMA_GIT_URL": "https://example.com/acme/config.git", "KARMA_CACHE_DIR": t.TempDir(),
		"KARMA_GIT_TOKEN_SECRET": "arn:aws:secretsmanager:us-east-1:123456789012:secret:missing"}, cfg)
	if _, err := b.Source(t.Context()); err == nil || !strings.Contains(err.Error(), "KARMA_GIT_TOKEN_SECRET arn:aws:secretsmanager") || strings.Contains(err.Error(), "s3cret") {
		t.Errorf("a missing secret: %v", err)
	}
}

func TestAutoApproveIsReadOneWay(t *testing.T) {
	for v, want := range map[string]bool{"": false, "true": true, "1": true, "TRUE": true, "false": false, "0": false, " true ": true} {
		got, err := autoApprove(env(map[string]string{"KARMA_AUTO_APPROVE": v}))
		if err != nil || got != want {
			t.Errorf("KARMA_AUTO_APPROVE=%q: %v, %v; want %v", v, got, err, want)
		}
	}
}
