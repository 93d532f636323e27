package main

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/usekarma/karma/shared/app"
	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/drift"
	"github.com/usekarma/karma/shared/gitrepo/gittest"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/model"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/pipeline"
	"github.com/usekarma/karma/shared/queue"
)

// The scheduled drift function with its parameter store on SSM (moto), the other stores
// embedded: Karma's provenance is read with paged calls only (GetParametersByPath joined with
// DescribeParameters), so a /runtime someone overwrote — SSM keeps Karma's description, whose
// hash no longer matches — is runtime drift; an orphan /config is config drift; a second run
// publishes nothing new.
func TestDriftFunctionOnMoto(t *testing.T) {
	ep := os.Getenv("KARMA_TEST_MOTO_ENDPOINT")
	if ep == "" {
		t.Skip("KARMA_TEST_MOTO_ENDPOINT is not set: start moto (`scripts/peers.sh start`) and set it to http://127.0.0.1:15000")
	}
	ctx := t.Context()
	examples, _ := filepath.Abs(filepath.Join("..", "..", "examples"))
	origin := gittest.OriginFrom(t, "config.git", examples)
	prefix := fmt.Sprintf("/karma-drift-%06x", rand.Uint32()&0xffffff)
	vars := map[string]string{"KARMA_STAGE": "drift", "KARMA_BACKEND": "embedded", "KARMA_PARAMS_BACKEND": "aws", "KARMA_HOME": t.TempDir(),
		"KARMA_GIT_URL": origin.Bare, "KARMA_CACHE_DIR": t.TempDir(), "KARMA_TERRAFORM": "/bin/false", "KARMA_EVENT_BUS": "karma",
		"KARMA_ENV": "prod", "KARMA_PREFIX": prefix}
	a := lambdaApp(t, vars, awsConfig(ep))
	store, err := a.Params(ctx, "prod")
	if err != nil {
		t.Fatal(err)
	}
	res, err := model.Build(ctx, examples, model.BuildOptions{LoadOptions: model.LoadOptions{Env: "prod", Settings: model.Settings{Prefix: prefix}}})
	if err != nil {
		t.Fatal(err)
	}
	put := func(name, value, description string) {
		t.Helper()
		if _, err := store.Put(ctx, params.PutInput{Name: name, Value: value, Description: description}); err != nil {
			t.Fatal(err)
		}
	}
	for _, c := range res.Repo.Components { // every config published (karma params publish), vpc/core's by a deployment
		what := "commit=c file=" + c.File()
		if c.Ref() == "vpc/core" {
			what = "deployment=dep-core change=c"
		}
		put(model.ConfigParam(prefix, c.Type, c.Nickname), string(c.Resolved), params.Provenance(what, string(c.Resolved)))
	}
	runtime := model.RuntimeParam(prefix, "vpc", "core")
	put(runtime, `{"vpc_id":"vpc-1"}`, params.Provenance("deployment=dep-core change=c", `{"vpc_id":"vpc-1"}`))
	put(runtime, `{"vpc_id":"vpc-someone"}`, "") // overwritten outside Karma: SSM keeps the description
	put(model.ConfigParam(prefix, "s3-bucket", "old"), `{"name":"old"}`, "")

	h, err := lambdaHandler(ctx, a, env(vars))
	if err != nil {
		t.Fatal(err)
	}
	handler := h.(func(context.Context, events.EventBridgeEvent) error)
	if err := handler(ctx, events.EventBridgeEvent{}); err != nil {
		t.Fatal(err)
	}
	got := published(t, a, ctx)
	want := []string{"change.detected prod drift", "drift.detected prod/s3-bucket/old config orphan", "drift.detected prod/vpc/core runtime differs"}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("published:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if err := handler(ctx, events.EventBridgeEvent{}); err != nil {
		t.Fatal(err)
	}
	if again := published(t, a, ctx); len(again) != 0 {
		t.Errorf("the second run published %v: the same drift is one event", again)
	}
}

// published drains the embedded audit queue (every message goes there) and describes each
// message, sorted: its type, then its env and source (change.detected) or its component, kind
// and reason (drift.detected).
func published(t *testing.T, a *app.App, ctx context.Context) []string {
	t.Helper()
	q, err := a.EmbeddedQueue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	var ds []queue.Delivery
	for {
		batch, err := q.Receive(ctx, pipeline.StageAudit, 10, time.Minute, 0)
		if err != nil {
			t.Fatal(err)
		}
		if len(batch) == 0 {
			break
		}
		ds = append(ds, batch...)
	}
	var out []string
	for _, d := range ds {
		e, err := message.Parse(d.Body)
		if err != nil {
			t.Fatal(err)
		}
		switch e.Type {
		case message.TypeChangeDetected:
			var p message.ChangeDetected
			if err := message.Decode(e, &p); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%s %s %s", e.Type, e.Env, p.Source))
		case message.TypeDriftDetected:
			var p message.DriftDetected
			if err := message.Decode(e, &p); err != nil {
				t.Fatal(err)
			}
			out = append(out, fmt.Sprintf("%s %s %s %s", e.Type, p.Component, p.Kind, p.Reason))
		default:
			out = append(out, e.Type)
		}
		if err := q.Delete(ctx, pipeline.StageAudit, d.ReceiptHandle); err != nil {
			t.Fatal(err)
		}
	}
	slices.Sort(out)
	return out
}

// The scheduled drift check compares within the function's time less DeadlineReserve, and
// records what it found with the time left: a check whose refresh-only plans outlast the
// function is cut off with the workspaces not refreshed in its errors, and what it compared is
// recorded, rather than Lambda stopping the run before anything is.
func TestDriftRunRecordsWhatItComparedBeforeTheDeadline(t *testing.T) {
	fn := time.Now().Add(time.Second)
	ctx, cancel := context.WithDeadline(t.Context(), fn)
	defer cancel()
	var checkEnds time.Time
	var recorded *drift.Report
	rep, err := runDrift(ctx, func(ctx context.Context) (*drift.Report, error) {
		checkEnds, _ = ctx.Deadline()
		<-ctx.Done() // the refresh of the last workspace outlasts the function
		return &drift.Report{Commit: "c0ffee", Envs: []drift.EnvReport{{Env: "prod", Compared: 3,
			Findings: []drift.Finding{{}}, Errors: []string{"prod/vpc/core: interrupted (context cancelled or timed out)"}}}}, nil
	}, func(rctx context.Context, rep *drift.Report) error {
		if rctx.Err() != nil {
			return rctx.Err()
		}
		recorded = rep
		return nil
	})
	if err != nil || rep == nil {
		t.Fatalf("runDrift = %v, %v; want the report recorded", rep, err)
	}
	if !checkEnds.Before(fn) {
		t.Errorf("the check's context ends at %v, want before the function's %v", checkEnds, fn)
	}
	if recorded != rep {
		t.Errorf("recorded %v, want the report of what was compared", recorded)
	}
}

// A scheduled check that could not compare something (here: prod sets drift_refresh, and the
// workspace of a component Karma deployed has no state) still publishes what it found, and then
// fails the invocation naming what was not compared — never a successful run that looks like no
// drift (the function's errors, its retries and its alarms are how a schedule is watched).
func TestDriftFunctionFailsWhenSomethingWasNotCompared(t *testing.T) {
	ctx := t.Context()
	dir := t.TempDir()
	examples, _ := filepath.Abs(filepath.Join("..", "..", "examples"))
	if err := os.CopyFS(dir, os.DirFS(examples)); err != nil {
		t.Fatal(err)
	}
	prodFile := filepath.Join(dir, "account_environments", "prod.json")
	b, err := os.ReadFile(prodFile)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(prodFile, []byte(strings.Replace(string(b), `"allow_drift": false,`, `"allow_drift": false, "drift_refresh": true,`, 1)), 0o644); err != nil {
		t.Fatal(err)
	}
	origin := gittest.OriginFrom(t, "config.git", dir)
	vars := map[string]string{"KARMA_STAGE": "drift", "KARMA_BACKEND": "embedded", "KARMA_HOME": t.TempDir(), "KARMA_GIT_URL": origin.Bare,
		"KARMA_CACHE_DIR": t.TempDir(), "KARMA_TERRAFORM": "/bin/false", "KARMA_EVENT_BUS": "karma", "KARMA_ENV": "prod"}
	a := lambdaApp(t, vars, awsConfig("http://127.0.0.1:1"))
	store, err := a.ChangeSets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	n := &changeset.Node{Component: "prod/vpc/core", State: changeset.Applied, DeploymentID: "dep-0123456789abcdef", Config: []byte(`{}`),
		Outcome: &changeset.Outcome{RuntimeVersion: 1, RuntimeHash: strings.Repeat("ab", 32), Runtime: []byte(`{}`), Config: []byte(`{}`)}}
	cs := &changeset.ChangeSet{ID: "root-a", Env: "prod", CorrelationID: "root-a", Source: message.SourceGit, Commit: origin.Head(t),
		Nodes: map[string]*changeset.Node{n.Component: n}, Waves: [][]string{{n.Component}}}
	if _, err := store.Create(ctx, cs); err != nil {
		t.Fatal(err)
	}
	h, err := lambdaHandler(ctx, a, env(vars))
	if err != nil {
		t.Fatal(err)
	}
	err = h.(func(context.Context, events.EventBridgeEvent) error)(ctx, events.EventBridgeEvent{})
	if err == nil || !strings.Contains(err.Error(), "prod/vpc/core") || !strings.Contains(err.Error(), "not compared") {
		t.Fatalf("the invocation returned %v: want an error naming what was not compared", err)
	}
	if got := published(t, a, ctx); len(got) == 0 {
		t.Error("what was found was not published before the failure")
	}
}
