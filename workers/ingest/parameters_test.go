package ingest_test

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/usekarma/karma/shared/besidetest"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/workers/ingest"
)

type published struct {
	mu   sync.Mutex
	msgs []message.Envelope
}

func (p *published) Publish(_ context.Context, m ...message.Envelope) error {
	p.mu.Lock()
	defer p.mu.Unlock()
	p.msgs = append(p.msgs, m...)
	return nil
}

func paramEvent(name, op string) []byte {
	return []byte(fmt.Sprintf(`{"version":"0","id":"ev-%s-%s","detail-type":"Parameter Store Change","source":"aws.ssm",
		"account":"123456789012","time":"2026-11-22T08:00:00Z","region":"us-east-1","resources":[],
		"detail":{"operation":%q,"name":%q,"type":"String"}}`, strings.ReplaceAll(name, "/", "_"), op, op, name))
}

func newEvents(t *testing.T) (*ingest.ParameterEvents, *embedded.ParamStore, *published, map[string]bool) {
	t.Helper()
	db, err := embedded.Open(filepath.Join(t.TempDir(), "k.db"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { db.Close() })
	st, err := embedded.NewParamStore(db, "prod")
	if err != nil {
		t.Fatal(err)
	}
	pub := &published{}
	done := map[string]bool{}
	pe := &ingest.ParameterEvents{Env: "prod", Prefix: "/iac", Store: st, Publisher: pub,
		Ingested: func(_ context.Context, key string) (bool, error) { return done[key], nil }}
	return pe, st, pub, done
}

func put(t *testing.T, st params.Store, name, value, user, desc string) {
	t.Helper()
	if _, err := st.Put(context.Background(), params.PutInput{Name: name, Value: value, User: user, Description: desc}); err != nil {
		t.Fatal(err)
	}
}

func TestParameterEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pe, st, pub, _ := newEvents(t)
	put(t, st, "/iac/route53-zone/main/runtime", `{"zone_id":"Z1","name_servers":["a"]}`, "karma:ci", params.Provenance("deployment=dep-1 change=c", `{"zone_id":"Z1","name_servers":["a"]}`))
	// Karma wrote it: its consequence is already under way.
	if msgs, err := pe.Handle(ctx, paramEvent("/iac/route53-zone/main/runtime", "Update")); err != nil || len(msgs) != 0 {
		t.Fatalf("karma's own write: %v %v", msgs, err)
	}
	put(t, st, "/iac/route53-zone/main/runtime", `{"zone_id":"Z2","name_servers":["a"]}`, "arn:aws:iam::1:user/dave", "")
	msgs, err := pe.Handle(ctx, paramEvent("/iac/route53-zone/main/runtime", "Update"))
	if err != nil || len(msgs) != 1 {
		t.Fatalf("outside write: %v %v", msgs, err)
	}
	var p message.ChangeDetected
	message.Decode(msgs[0], &p)
	if p.Source != message.SourceRuntime || strings.Join(p.ChangedKeys, ",") != "zone_id" || msgs[0].Actor.Name != "arn:aws:iam::1:user/dave" ||
		msgs[0].IdempotencyKey != "runtime:/iac/route53-zone/main/runtime@2" {
		t.Errorf("change = %+v actor %+v key %s", p, msgs[0].Actor, msgs[0].IdempotencyKey)
	}
	// A duplicate event names the same version: same idempotency key.
	again, _ := pe.Handle(ctx, paramEvent("/iac/route53-zone/main/runtime", "Update"))
	if len(again) != 1 || again[0].IdempotencyKey != msgs[0].IdempotencyKey {
		t.Errorf("duplicate event: %v", again)
	}
	for _, ignored := range [][]byte{paramEvent("/iac/route53-zone/main/runtime", "Delete"), paramEvent("/other/thing", "Update"), paramEvent("/iac/environment", "Update")} {
		if m, err := pe.Handle(ctx, ignored); err != nil || len(m) != 0 {
			t.Errorf("%s: %v %v", ignored, m, err)
		}
	}
	if len(pub.msgs) != 2 {
		t.Errorf("published %d", len(pub.msgs))
	}
}

func TestParameterSamplesAreHandled(t *testing.T) {
	t.Parallel()
	pe, _, _, _ := newEvents(t)
	dir := besidetest.Dir(t, "samples", "aws") // the vendor samples beside the checkout; skipped without them
	for _, f := range []string{"awsdocs__parameter-store-change__create-parameter.json", "awsdocs__parameter-store-change__update-parameter.json",
		"awsdocs__parameter-store-change__delete-parameter.json", "eventBridgeEvent.json"} {
		b, err := os.ReadFile(filepath.Join(dir, f))
		if err != nil {
			t.Fatal(err)
		}
		// Outside the prefix (or not a parameter change): recorded by the caller, nothing deployed.
		if m, err := pe.Handle(context.Background(), b); err != nil || len(m) != 0 {
			t.Errorf("%s: %v %v", f, m, err)
		}
	}
	if _, err := pe.Handle(context.Background(), []byte(`not json`)); err == nil {
		t.Error("malformed event accepted")
	}
}

func TestReconcileCatchesMissedEvents(t *testing.T) {
	t.Parallel()
	ctx := context.Background()
	pe, st, _, done := newEvents(t)
	put(t, st, "/iac/vpc/core/config", `{"cidr":"10.0.0.0/16"}`, "karma:ci", params.Provenance("commit=abc file=x", `{"cidr":"10.0.0.0/16"}`))
	put(t, st, "/iac/vpc/core/config", `{"cidr":"10.1.0.0/16"}`, "arn:aws:iam::1:user/eve", "")
	put(t, st, "/iac/unrelated", `x`, "eve", "")
	msgs, err := pe.Reconcile(ctx)
	if err != nil || len(msgs) != 1 || msgs[0].IdempotencyKey != "parameter:/iac/vpc/core/config@2" {
		t.Fatalf("reconcile: %v %v", msgs, err)
	}
	done["parameter:/iac/vpc/core/config@2"] = true
	if msgs, _ := pe.Reconcile(ctx); len(msgs) != 0 {
		t.Errorf("an ingested version was published again: %v", msgs)
	}
}
