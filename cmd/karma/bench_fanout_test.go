package main

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/changeset"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/params"
	"github.com/usekarma/karma/shared/terraform"
	"github.com/usekarma/karma/shared/trigger"
)

// fanOut is BenchmarkFanOut20k's shape: dependents of one hub, the first consumers of them
// consuming the hub's runtime key that the change changes, the others a key that stays.
const (
	fanOutDependents = 20000
	fanOutConsumers  = 10000
)

// BenchmarkFanOut20k: a component (prod/vpc/hub) with 20,000 dependents, 10,000 of which consume
// the runtime key its change changes (cfg_az_count, the no-op runner's output for the config's
// az_count; not cidr, whose change the example's policies send to review) and 10,000 a key that
// stays (cfg_cidr). One change request for the hub; measured, per
// iteration: from the hub's apply (its node's outcome recorded) until every dependent is decided
// — scheduled or skipped, recorded in the change set (decide-s), and from the request's publish
// until then (total-s: resolve's build of the 20,001-component graph, the hub's plan and apply).
// The scheduled dependents' own plans and applies are not waited for. Embedded default, no-op
// Terraform, 4 plan and apply workers.
func BenchmarkFanOut20k(b *testing.B) {
	var decide, total time.Duration
	for range b.N {
		b.StopTimer()
		s, st, event := fanOutStack(b)
		b.StartTimer()
		d, t := fanOutRun(b, s, st, event)
		decide, total = decide+d, total+t
	}
	b.ReportMetric(decide.Seconds()/float64(b.N), "decide-s")
	b.ReportMetric(total.Seconds()/float64(b.N), "total-s")
}

// fanOutStack writes the repository (the examples plus the hub and its dependents), commits it,
// publishes the hub's current runtime and returns the stack and the change request.
func fanOutStack(b *testing.B) (*session, *stack, message.Envelope) {
	ctx := context.Background()
	repo, state := demoRepo(b)
	write := func(rel, body string) {
		p := filepath.Join(repo, "iac", "prod", rel, "config.json")
		if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
			b.Fatal(err)
		}
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			b.Fatal(err)
		}
	}
	write("vpc/hub", `{"cidr": "10.30.0.0/16", "az_count": 3}`)
	for i := range fanOutDependents {
		key := "cfg_az_count"
		if i >= fanOutConsumers {
			key = "cfg_cidr"
		}
		write(fmt.Sprintf("ecs-service/fan-%05d", i), fmt.Sprintf(`{"karma": {"depends_on": [{"ref": "vpc/hub", "consumes": [%q]}]}, "desired_count": 1}`, key))
	}
	git(b, repo, "add", "-A")
	commitAs(b, repo, "Ada", "hub and dependents")
	git(b, repo, "repack", "-adq") // as a clone leaves it

	g := &globals{repo: repo, stateDir: state, paramsBackend: "embedded", testRunner: &terraform.Noop{}}
	s, err := g.open(ctx)
	if err != nil {
		b.Fatal(err)
	}
	b.Cleanup(s.close)
	st, err := s.stack(ctx, stackOptions{})
	if err != nil {
		b.Fatal(err)
	}
	if err := st.workers(ctx, stackOptions{parallelism: 4}); err != nil {
		b.Fatal(err)
	}
	// The hub is deployed already: its runtime as the no-op runner gave it for the old config.
	ps, err := s.params("prod")
	if err != nil {
		b.Fatal(err)
	}
	if _, err := ps.Put(ctx, params.PutInput{Name: "/iac/vpc/hub/runtime", Value: `{"id":"old","cfg_cidr":"10.30.0.0/16","cfg_az_count":3}`}); err != nil {
		b.Fatal(err)
	}
	event, err := trigger.FromRequest(trigger.Request{Env: "prod", Configs: map[string][]byte{"vpc/hub": []byte(`{"cidr": "10.30.0.0/16", "az_count": 4}`)},
		Actor: message.Actor{Kind: "cli", Name: "bench"}, AutoApprove: true})
	if err != nil {
		b.Fatal(err)
	}
	return s, st, event
}

// fanOutRun publishes the request, runs the pipeline until every dependent is decided, and
// returns how long that took after the hub's apply, and after the publish.
func fanOutRun(b *testing.B, s *session, st *stack, event message.Envelope) (decide, total time.Duration) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Minute)
	defer cancel()
	db, err := s.app.DB()
	if err != nil {
		b.Fatal(err)
	}
	runCtx, stop := context.WithCancel(ctx)
	done := make(chan struct{})
	go func() { st.runner.Run(runCtx); close(done) }()
	defer func() { stop(); <-done }()
	start := time.Now()
	if err := st.publish(ctx, event); err != nil {
		b.Fatal(err)
	}
	var applied time.Time
	for tick := time.NewTicker(50 * time.Millisecond); ; {
		select {
		case <-ctx.Done():
			b.Fatal("dependents still undecided after 10 minutes")
		case <-tick.C:
		}
		// Looked at in SQL (SQLite's JSON functions), not by decoding the 20,001-node document
		// in Go, and first only the hub and the first and last dependents: counting every node
		// every 50 ms took a large part of the CPU the pipeline needs. The full count is taken
		// once those are decided (resolve decides all of them in one update).
		var hubApplied, edgesDecided bool
		err := db.SQL.QueryRowContext(ctx, `SELECT
				json_extract(doc, '$.nodes."prod/vpc/hub".outcome') IS NOT NULL,
				json_extract(doc, '$.nodes."prod/ecs-service/fan-00000".state') != ?1 AND json_extract(doc, '$.nodes."prod/ecs-service/fan-19999".state') != ?1
			FROM change_sets ORDER BY created_at DESC LIMIT 1`, changeset.Pending).Scan(&hubApplied, &edgesDecided)
		if err != nil || !hubApplied {
			continue
		}
		if applied.IsZero() {
			applied = time.Now()
		}
		if !edgesDecided {
			continue
		}
		now := time.Now()
		var scheduled, skipped, undecided int
		err = db.SQL.QueryRowContext(ctx, `SELECT
				(SELECT count(*) FROM json_each(doc, '$.nodes') WHERE key != 'prod/vpc/hub' AND json_extract(value, '$.state') = ?),
				(SELECT count(*) FROM json_each(doc, '$.nodes') WHERE key != 'prod/vpc/hub' AND json_extract(value, '$.state') = ?)
			FROM change_sets ORDER BY created_at DESC LIMIT 1`, changeset.Pending, changeset.Skipped).Scan(&undecided, &skipped)
		if err != nil || undecided > 0 {
			continue
		}
		scheduled = fanOutDependents - skipped
		if scheduled != fanOutConsumers || skipped != fanOutDependents-fanOutConsumers {
			b.Fatalf("%d dependents scheduled and %d skipped, want %d and %d", scheduled, skipped, fanOutConsumers, fanOutDependents-fanOutConsumers)
		}
		tick.Stop()
		return now.Sub(applied), now.Sub(start)
	}
}
