package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-sdk-go-v2/config"
	"github.com/aws/aws-sdk-go-v2/credentials"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/dynamo"
	"github.com/usekarma/karma/shared/governance"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/neptune"
	"github.com/usekarma/karma/shared/params/ssm"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/sqs"
)

// The CLI on every AWS backend (the local stand-ins): graph build writes Neptune, params publish
// writes SSM, ingest queues on SQS, audit log and verify read DynamoDB, dlq list and redrive work
// on SQS, and apply <change-id> approves a change held in DynamoDB, publishing the approval for
// the functions. No embedded state file is created.
func TestCLIOnAWSBackends(t *testing.T) {
	motoEP, ddbEP, gremlinEP := os.Getenv("KARMA_TEST_MOTO_ENDPOINT"), os.Getenv("KARMA_TEST_DYNAMODB"), os.Getenv("KARMA_TEST_GREMLIN")
	if motoEP == "" || ddbEP == "" || gremlinEP == "" {
		t.Skip("needs KARMA_TEST_MOTO_ENDPOINT, KARMA_TEST_DYNAMODB and KARMA_TEST_GREMLIN (make test starts the servers)")
	}
	ctx := context.Background()
	prefix := fmt.Sprintf("cli%06x", rand.Uint32()&0xffffff)
	for k, v := range map[string]string{"AWS_ENDPOINT_URL": motoEP, "AWS_ENDPOINT_URL_DYNAMODB": ddbEP, "AWS_REGION": "us-east-1",
		"AWS_ACCESS_KEY_ID": "test", "AWS_SECRET_ACCESS_KEY": "test", "AWS_CONFIG_FILE": filepath.Join(t.TempDir(), "none"),
		"AWS_SHARED_CREDENTIALS_FILE": filepath.Join(t.TempDir(), "none")} {
		t.Setenv(k, v)
	}
	opts := []func(*config.LoadOptions) error{config.WithRegion("us-east-1"),
		config.WithCredentialsProvider(credentials.NewStaticCredentialsProvider("test", "test", "")),
		config.WithSharedConfigFiles([]string{}), config.WithSharedCredentialsFiles([]string{})}
	ddb, err := dynamo.NewClient(ctx, ddbEP, opts...)
	if err != nil {
		t.Fatal(err)
	}
	tables := dynamo.DefaultTableNames(prefix)
	if err := dynamo.CreateTables(ctx, ddb, tables); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = dynamo.DeleteTables(context.Background(), ddb, tables) })
	q, err := sqs.NewFromConfig(ctx, motoEP, sqs.Options{Prefix: prefix + "-"}, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if err := q.EnsureQueues(ctx, stageNames, 5); err != nil {
		t.Fatal(err)
	}
	for k, v := range map[string]string{"KARMA_BACKEND": "aws", "KARMA_QUEUE_PREFIX": prefix + "-", "KARMA_NEPTUNE_ENDPOINT": gremlinEP,
		"KARMA_NEPTUNE_NAMESPACE": prefix, "KARMA_AUDIT_TABLE": tables.Audit, "KARMA_CHANGE_SET_TABLE": tables.ChangeSets,
		"KARMA_IDEMPOTENCY_TABLE": tables.Seen, "KARMA_PREFIX": "/" + prefix + "/iac", "KARMA_EVENT_BUS": ""} {
		t.Setenv(k, v)
	}
	repo, state := demoRepo(t)
	base := []string{"--repo", repo, "--state-dir", state}
	g := &globals{}

	// graph build writes Neptune.
	karmaOK(t, g, append([]string{"graph", "build"}, base...)...)
	nep, err := neptune.Open(ctx, neptune.Options{Endpoint: gremlinEP})
	if err != nil {
		t.Fatal(err)
	}
	defer nep.Close()
	gr, err := neptune.NewGraphStore(nep, neptune.StoreOptions{Namespace: prefix}).Read(ctx)
	if err != nil || gr.Len() != 12 {
		t.Fatalf("Neptune holds %v components, %v; want the 12 of examples/", gr, err)
	}
	// params publish writes SSM.
	karmaOK(t, g, append([]string{"params", "publish", "--env", "prod"}, base...)...)
	store, err := ssm.NewFromConfig(ctx, motoEP, opts...)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := store.Get(ctx, "/"+prefix+"/iac/vpc/core/config"); err != nil {
		t.Errorf("SSM: %v", err)
	}
	// ingest commit queues the commit's git.pushed on SQS (for the ingest function); a failure of
	// it dead-letters there.
	out := karmaOK(t, g, append([]string{"ingest", "commit"}, base...)...)
	ds, err := q.Receive(ctx, pipeline.StageIngest, 1, time.Minute, 2*time.Second)
	if err != nil || len(ds) != 1 {
		t.Fatalf("the ingest queue holds %d messages, %v (ingest said %s)", len(ds), err, out)
	}
	if m, err := message.Parse(ds[0].Body); err != nil || m.Type != message.TypeGitPushed || !strings.Contains(out, "change "+m.CorrelationID+" queued") {
		t.Errorf("queued %v (%v); want the git.pushed of the change ingest named: %s", m.Type, err, out)
	}
	if err := q.Kill(ctx, pipeline.StageIngest, ds[0].ReceiptHandle, "ingest: repository unreachable (test)"); err != nil {
		t.Fatal(err)
	}
	if out := karmaOK(t, g, append([]string{"dlq", "list"}, base...)...); !strings.Contains(out, "repository unreachable (test)") {
		t.Errorf("dlq list: %s", out)
	}
	if out := karmaOK(t, g, append([]string{"dlq", "redrive", "--queue", "ingest"}, base...)...); !strings.HasPrefix(out, "1 message(s) redriven") {
		t.Errorf("dlq redrive: %s", out)
	}
	// audit log and verify read DynamoDB.
	log := dynamo.NewAuditLog(ddb, tables.Audit, dynamo.AuditOptions{})
	e, _ := message.New(message.TypeChangeDetected, "prod", message.Actor{Kind: "cli", Name: "ada"}, "request:r1", message.ChangeDetected{})
	body, _ := message.Encode(e)
	if _, err := log.Append(ctx, audit.Record{MessageID: e.ID, Type: e.Type, Version: e.Version, Env: "prod", Chain: "prod/vpc/core",
		Component: "prod/vpc/core", CorrelationID: e.ID, ActorKind: "cli", Actor: "ada", OccurredAt: e.OccurredAt, Body: body}); err != nil {
		t.Fatal(err)
	}
	if out := karmaOK(t, g, append([]string{"audit", "log", "--component", "prod/vpc/core"}, base...)...); !strings.Contains(out, e.ID[:8]) && !strings.Contains(out, "ada") {
		t.Errorf("audit log: %s", out)
	}
	karmaOK(t, g, append([]string{"audit", "verify"}, base...)...)
	// apply <change-id> approves a change held in DynamoDB and publishes the approval: prod is
	// protected (two approvals; its author may not approve), the decisions audited in DynamoDB.
	css := dynamo.NewChangeSets(ddb, tables.ChangeSets, dynamo.ChangeSetOptions{})
	root, _ := message.New(message.TypeChangeDetected, "prod", message.Actor{Kind: "git", Name: "Ada"}, "git:x", message.ChangeDetected{})
	plan := &message.DeploymentPlanned{DeploymentScheduled: message.DeploymentScheduled{ChangeSetID: root.ID, DeploymentID: "dep-1", Component: "prod/vpc/core",
		CausedBy: []message.Cause{{Kind: message.CauseCommit, ID: strings.Repeat("a", 40)}}, ConfigHash: "h"}, PlanFile: "/p", PlanHash: "ph"}
	cs := &changeset.ChangeSet{ID: root.ID, Env: "prod", CorrelationID: root.ID, Source: message.SourceGit, Actor: root.Actor, Started: true,
		CreatedAt: time.Now().UTC().Truncate(time.Millisecond), Waves: [][]string{{"prod/vpc/core"}},
		Nodes: map[string]*changeset.Node{"prod/vpc/core": {Component: "prod/vpc/core", State: changeset.Planned, DeploymentID: "dep-1", Root: true, Plan: plan, PlanMessageID: root.ID}}}
	cs.Govern(governance.Rules{Configured: true, Environment: governance.Environment{Protected: true, Approvals: 2}}, "Ada")
	if _, err := css.Create(ctx, cs); err != nil {
		t.Fatal(err)
	}
	if code, _, errOut := karmaWith(t, g, append([]string{"apply", root.ID, "--auto-approve", "--as", "ada"}, base...)...); code != 1 ||
		!strings.Contains(errOut, "ada may not approve change set "+root.ID+": Ada requested it") {
		t.Errorf("the requester approving on AWS: exit %d %s", code, errOut)
	}
	karmaOK(t, g, append([]string{"apply", root.ID, "--auto-approve", "--as", "grace"}, base...)...)
	if got, err := css.Get(ctx, root.ID); err != nil || got.Approved || len(got.Approvals) != 1 {
		t.Errorf("one approval of two on AWS: %+v, %v", got, err)
	}
	karmaOK(t, g, append([]string{"apply", root.ID, "--auto-approve", "--as", "linus"}, base...)...)
	decisions, err := log.Query(ctx, audit.Query{Correlation: root.ID})
	if err != nil {
		t.Fatal(err)
	}
	var kinds []string
	for _, r := range decisions {
		kinds = append(kinds, r.Type+":"+r.Actor)
	}
	if strings.Join(kinds, ",") != EntryCLIApprovalRefused+":ada,"+EntryCLIApproved+":grace,"+EntryCLIApproved+":linus" {
		t.Errorf("decisions audited in DynamoDB: %v", kinds)
	}
	got, err := css.Get(ctx, root.ID)
	if err != nil || !got.Approved {
		t.Errorf("change set after apply: %+v, %v; want approved", got, err)
	}
	ds, err = q.Receive(ctx, pipeline.StageApply, 1, time.Minute, 2*time.Second)
	if err != nil || len(ds) != 1 {
		t.Fatalf("the apply queue holds %d messages, %v; want the approval", len(ds), err)
	}
	if m, err := message.Parse(ds[0].Body); err != nil || m.Type != message.TypeDeploymentApproved {
		t.Errorf("apply queue: %v %v", m.Type, err)
	}
	if _, err := os.Stat(filepath.Join(state, "karma.db")); err == nil {
		t.Error("an all-AWS configuration created the embedded state file")
	}
}
