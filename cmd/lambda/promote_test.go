package main

import (
	"testing"
	"time"

	"github.com/aws/aws-lambda-go/events"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

// The scheduled function starts what is due — once — and leaves a soak that is not over.
func TestPromoteFunctionStartsDuePromotions(t *testing.T) {
	vars := map[string]string{"KARMA_STAGE": stagePromote, "KARMA_BACKEND": "embedded", "KARMA_HOME": t.TempDir(),
		"KARMA_CACHE_DIR": t.TempDir(), "KARMA_EVENT_BUS": "karma"}
	a := lambdaApp(t, vars, awsConfig("http://127.0.0.1:1"))
	ctx := t.Context()
	store, err := a.ChangeSets(ctx)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now().UTC().Truncate(time.Millisecond)
	for id, due := range map[string]time.Time{"root-a": now.Add(-time.Minute), "root-b": now.Add(time.Hour)} {
		cs := &changeset.ChangeSet{ID: id + "/dev", Env: "dev", CorrelationID: id, Source: message.SourceGit, CreatedAt: now,
			Actor: message.Actor{Kind: "git", Name: "Ada"}, Nodes: map[string]*changeset.Node{},
			Promotion: &changeset.Promotion{Next: "prod", Commit: &message.Commit{SHA: "512423cb3a4857a38f472862b51e4ab1a1730f06", Author: "Ada"},
				Files: []string{"components/vpc/main.tf"}, DueAt: due}}
		if _, err := store.Create(ctx, cs); err != nil {
			t.Fatal(err)
		}
	}
	h, err := lambdaHandler(ctx, a, env(vars))
	if err != nil {
		t.Fatal(err)
	}
	run := h.(scheduledHandler)
	for range 2 {
		if err := run(ctx, events.EventBridgeEvent{}); err != nil {
			t.Fatal(err)
		}
	}
	q, err := a.EmbeddedQueue(ctx)
	if err != nil {
		t.Fatal(err)
	}
	if n, err := q.Depth(ctx, pipeline.StageResolve); err != nil || n != 1 {
		t.Errorf("resolve queue holds %d messages (%v), want the one promotion that is due", n, err)
	}
	a1, _ := store.Get(ctx, "root-a/dev")
	b1, _ := store.Get(ctx, "root-b/dev")
	if a1.Promotion.PromotedAt.IsZero() || !b1.Promotion.PromotedAt.IsZero() {
		t.Errorf("promoted: a %v, b %v; want a only", a1.Promotion.PromotedAt, b1.Promotion.PromotedAt)
	}
}
