package main

import (
	"context"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/api"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/queue"
)

// `karma dlq list` prints a dead letter's body — the message as sent, a plan's master_password
// or a change request's proposed file in it — with secrets redacted as `karma audit log --json`
// and GET /log show the same message, in the text as with --json; the dead letter itself is
// untouched (redrive sends it as it was).
func TestDLQListRedactsSecrets(t *testing.T) {
	repo, state, db := demoRepoDB(t)
	ctx := context.Background()
	q, err := embedded.NewQueue(ctx, db, embedded.QueueOptions{})
	if err != nil {
		t.Fatal(err)
	}
	const secret, inJSON = "hunter2", "s3cr3t-in-a-proposal"
	body, _ := json.Marshal(map[string]any{"id": "m1", "type": "deployment.planned", "version": 2, "env": "prod",
		"payload": map[string]any{"master_password": secret, "request": map[string]any{"configs": map[string]any{"vpc/core": `{"db_password":"` + inJSON + `"}`}}}})
	if err := q.Send(ctx, "plan", queue.Message{Body: body}); err != nil {
		t.Fatal(err)
	}
	ds, err := q.Receive(ctx, "plan", 1, time.Minute, 0)
	if err != nil || len(ds) != 1 {
		t.Fatalf("receive: %v %d", err, len(ds))
	}
	if err := q.Kill(ctx, "plan", ds[0].ReceiptHandle, "unreadable"); err != nil {
		t.Fatal(err)
	}
	// a body that is not JSON (an environment file sent to the wrong queue), and a reason quoting
	// a connection string: their secrets are hidden as in a JSON body's strings
	const inText, inReason = "hunter3-in-text", "pg-pass-in-reason"
	if err := q.Send(ctx, "plan", queue.Message{Body: []byte("DB_PASSWORD=" + inText + "\nPORT=5432\n")}); err != nil {
		t.Fatal(err)
	}
	ds, err = q.Receive(ctx, "plan", 1, time.Minute, 0)
	if err != nil || len(ds) != 1 {
		t.Fatalf("receive: %v %d", err, len(ds))
	}
	if err := q.Kill(ctx, "plan", ds[0].ReceiptHandle, "dial postgres://app:"+inReason+"@db: refused"); err != nil {
		t.Fatal(err)
	}
	g := &globals{}
	for _, args := range [][]string{{"dlq", "list"}, {"dlq", "list", "--json"}} {
		code, out, errOut := karmaWith(t, g, append(args, "--repo", repo, "--state-dir", state)...)
		if code != 0 {
			t.Fatalf("%v: exit %d %s", args, code, errOut)
		}
		if strings.Contains(out, secret) || strings.Contains(out, inJSON) || !strings.Contains(out, "master_password") || !strings.Contains(out, api.Redacted) ||
			strings.Contains(out, inText) || strings.Contains(out, inReason) || !strings.Contains(out, "PORT=5432") {
			t.Errorf("%v shows a secret, or not the body:\n%s", args, out)
		}
	}
	kept, err := q.ListDead(ctx, "plan")
	if err != nil || len(kept) != 2 || string(kept[0].Body) != string(body) {
		t.Errorf("the dead letter changed: %v %+v", err, kept)
	}
}
