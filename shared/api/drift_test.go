package api

import (
	"context"
	"net/http"
	"slices"
	"testing"

	"github.com/usekarma/karma/shared/drift"
	"github.com/usekarma/karma/shared/embedded"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

// GET /drift is the drift check as a read: what drifted, and whether a run recorded it; nothing
// is published. Bad and unknown inputs are problems naming the query parameter.
func TestDrift(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	ctx := context.Background()
	get := func(query string) drift.Report {
		t.Helper()
		var rep drift.Report
		h.call("GET", "/drift"+query, "reader", nil).want(http.StatusOK).decode(&rep)
		return rep
	}
	only := func(rep drift.Report) drift.Finding {
		t.Helper()
		if len(rep.Envs) != 1 || len(rep.Envs[0].Findings) != 1 {
			t.Fatalf("report %+v: want one environment, one finding", rep)
		}
		return rep.Envs[0].Findings[0]
	}
	if f := only(get("?component=prod/vpc/core")); f.Kind != message.DriftConfig || f.Reason != message.DriftMissing || f.Recorded != nil {
		t.Errorf("nothing published yet: %+v", f)
	}
	if _, err := h.params("prod").Put(ctx, paramsPut("/iac/vpc/core/config", `{"cidr":"10.9.0.0/16"}`)); err != nil {
		t.Fatal(err)
	}
	f := only(get("?env=prod&component=vpc/core"))
	if f.Reason != message.DriftDiffers || f.Parameter == nil || f.Parameter.ModifiedBy != "test" || f.Action != "" {
		t.Errorf("changed outside Karma: %+v", f)
	}
	for _, name := range stageNames {
		if n, err := h.q.Depth(ctx, name); err != nil || n != 0 {
			t.Errorf("GET /drift queued %d message(s) for %s (%v): a read publishes nothing", n, name, err)
		}
	}

	// Once a run records it (karma drift, a schedule), the read says so.
	seen, err := embedded.NewSeen(ctx, h.db)
	if err != nil {
		t.Fatal(err)
	}
	rep, err := h.drift().Check(ctx, drift.Options{Component: "prod/vpc/core"})
	if err != nil {
		t.Fatal(err)
	}
	rec := &drift.Recorder{Records: seen, Publisher: pipeline.QueuePublisher{Queue: h.q}, Actor: message.Actor{Kind: "cli", Name: "grace"}}
	if err := rec.Record(ctx, rep); err != nil {
		t.Fatal(err)
	}
	again := only(get("?component=prod/vpc/core"))
	if again.DriftID != f.DriftID || again.Recorded == nil || again.Action != message.DriftCorrect || again.ChangeSetID != rep.Envs[0].Corrective {
		t.Errorf("recorded by a run: %+v", again)
	}

	whole := get("?env=prod")
	if len(whole.Envs) != 1 || whole.Envs[0].Compared != 8 || whole.Envs[0].Env != "prod" {
		t.Errorf("every prod component: %+v", whole.Envs)
	}
	for query, want := range map[string]struct {
		status  int
		pointer string
	}{
		"?component=vpc/core":        {http.StatusBadRequest, "/query/component"},
		"?component=prod/vpc":        {http.StatusBadRequest, "/query/component"},
		"?env=staging":               {http.StatusNotFound, "/query/env"},
		"?component=prod/vpc/absent": {http.StatusNotFound, "/query/component"},
	} {
		p := h.call("GET", "/drift"+query, "reader", nil).want(want.status).problem()
		if !slices.Contains(p.pointers(), want.pointer) {
			t.Errorf("%s: problem %+v, want a pointer %s", query, p, want.pointer)
		}
	}
}
