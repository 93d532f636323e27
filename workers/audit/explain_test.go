package audit_test

import (
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/audit"
	"github.com/usekarma/karma/shared/message"
	auditw "github.com/usekarma/karma/workers/audit"
	wt "github.com/usekarma/karma/workers/internal/workertest"
)

func TestExplain(t *testing.T) {
	t.Parallel()
	msgs := story(t)
	var planned message.DeploymentPlanned
	if err := json.Unmarshal(msgs[4].Payload, &planned); err != nil {
		t.Fatal(err)
	}
	approved := wt.FixedDerive(t, msgs[4], 8, message.TypeDeploymentApproved, "deployment.approved:x",
		message.DeploymentApproved{DeploymentPlanned: planned, ApprovedBy: "grace.hopper"})
	failed := wt.FixedDerive(t, msgs[4], 9, message.TypeDeploymentFailed, "deployment.failed:x",
		message.DeploymentFailed{DeploymentID: planned.DeploymentID, Component: "prod/vpc/core", Stage: "apply",
			Error: "terraform apply: exit 1\nError: AccessDenied"})
	dependent := wt.FixedDerive(t, msgs[5], 10, message.TypeDeploymentScheduled, "deployment.scheduled:y",
		message.DeploymentScheduled{DeploymentID: "dep-2", Component: "prod/ecs-cluster/core",
			CausedBy: []message.Cause{{Kind: message.CauseDeployment, ID: "dep-1", Keys: []string{"vpc_id", "subnets"}}}})
	edge := wt.FixedDerive(t, msgs[5], 11, message.TypeDeploymentScheduled, "deployment.scheduled:z",
		message.DeploymentScheduled{DeploymentID: "dep-3", Component: "prod/lambda/api",
			CausedBy: []message.Cause{{Kind: message.CauseDeployment, ID: "dep-1", Keys: []string{}, Trigger: message.TriggerOnAnyApply}}})
	param := msgs[0]
	param.Payload = []byte(`{"change_set_id":"x","source":"runtime","components":[],"parameter":{"name":"/iac/vpc/core/runtime","version":3},"auto_approve":false}`)
	withMessage := msgs[0]
	withMessage.Payload = []byte(`{"change_set_id":"x","source":"git","components":[],"commit":{"sha":"` + sha1 + `","author":"Ada","message":"Widen the VPC\n\nbecause"},"auto_approve":false}`)
	request := msgs[0]
	request.Payload = []byte(`{"change_set_id":"x","source":"request","components":[],"request":{"id":"req-7","configs":{}},"auto_approve":false}`)
	corrective := msgs[0]
	corrective.Payload = []byte(`{"change_set_id":"x","source":"drift","components":[{"type":"vpc","nickname":"core"}],"drift":["drift-4f1c9e20b7a35d68"],"auto_approve":false}`)
	drift := msgs[0]
	drift.Type, drift.Payload = message.TypeDriftDetected, []byte(`{"drift_id":"drift-4f1c9e20b7a35d68","component":"prod/vpc/core","kind":"runtime",`+
		`"reason":"differs","detail":"/iac/vpc/core/runtime version 5 is not what Karma published","commit":"`+sha1+`",`+
		`"parameter":{"name":"/iac/vpc/core/runtime","version":5},"action":"report"}`)
	rolledBack := msgs[0]
	rolledBack.Payload = []byte(`{"change_set_id":"x","source":"rollback","components":[{"type":"vpc","nickname":"core"}],"auto_approve":false,` +
		`"rollback":{"deployment_id":"dep-0123456789abcdef","change_set_id":"y","commit":"` + sha1 + `","config_hash":"h"}}`)
	promoted := withMessage
	promoted.Payload = []byte(`{"change_set_id":"x","source":"git","components":[],"commit":{"sha":"` + sha1 + `","author":"Ada"},"auto_approve":false,` +
		`"promotion":{"from":"x/dev","from_env":"dev","soak":"30m","soak_skipped":{"by":"grace","reason":"verified by hand\nin dev"}}}`)
	retried := withMessage
	retried.Payload = []byte(`{"change_set_id":"x","source":"git","components":[],"commit":{"sha":"` + sha1 + `","author":"Ada"},"auto_approve":false,` +
		`"promotion":{"from":"x/dev","from_env":"dev","attempt":2}}`)
	hotfixRetried := withMessage
	hotfixRetried.Payload = []byte(`{"change_set_id":"x","source":"git","components":[],"commit":{"sha":"` + sha1 + `","author":"Ada"},"auto_approve":false,` +
		`"retry":{"attempt":2}}`)
	held := msgs[1]
	held.Payload = []byte(`{"change_set_id":"x/prod","source":"git","root_causes":[{"kind":"commit","id":"` + sha1 + `"}],"roots":[],"affected":[],"waves":[],` +
		`"commit":"","held":"promotion held: prod was deployed since at commit 444444444444"}`)
	rollbackCause := wt.FixedDerive(t, msgs[1], 11, message.TypeDeploymentScheduled, "deployment.scheduled:z",
		message.DeploymentScheduled{DeploymentID: "dep-3", Component: "prod/vpc/core",
			CausedBy: []message.Cause{{Kind: message.CauseRollback, ID: "dep-0123456789abcdef"}}})
	newer := msgs[5]
	newer.Type, newer.Payload = "deployment.verified", []byte(`{"verdict":"ok"}`)
	git := "Ada Lovelace <ada@example.com> (git)"
	for _, tc := range []struct {
		name string
		in   message.Envelope
		want auditw.Explanation
	}{
		{"change.detected from a commit", msgs[0], auditw.Explanation{Author: git, Cause: "commit 512423cb3a48"}},
		{"change.detected with the commit's subject", withMessage, auditw.Explanation{Author: git, Cause: `commit 512423cb3a48 "Widen the VPC"`}},
		{"change.detected from a parameter", param, auditw.Explanation{Author: git, Cause: "parameter /iac/vpc/core/runtime@3"}},
		{"change.detected from a request", request, auditw.Explanation{Author: git, Cause: "request req-7"}},
		{"change.detected of a rollback", rolledBack, auditw.Explanation{Author: git, Cause: "rollback to dep-0123456789abcdef (commit 512423cb3a48)"}},
		{"change.detected of a promotion", promoted, auditw.Explanation{Author: git,
			Cause: "promoted from x/dev (dev, soak skipped by grace: verified by hand), commit 512423cb3a48"}},
		{"change.detected of a promotion tried again", retried, auditw.Explanation{Author: git,
			Cause: "promoted from x/dev (dev, try 2: the ones before were held), commit 512423cb3a48"}},
		{"change.detected of a held hotfix tried again", hotfixRetried, auditw.Explanation{Author: git,
			Cause: "try 2 (the ones before were held), commit 512423cb3a48"}},
		{"change.resolved of a held promotion", held, auditw.Explanation{Author: git,
			Cause: "held (tried again once the environments it waits for move): promotion held: prod was deployed since at commit 444444444444"}},
		{"deployment.scheduled by a rollback", rollbackCause, auditw.Explanation{Author: git, Cause: "rollback to dep-0123456789abcdef"}},
		{"change.resolved", msgs[1], auditw.Explanation{Author: git, Cause: "commit 512423cb3a48"}},
		{"deployment.scheduled", msgs[2], auditw.Explanation{Author: git, Cause: "commit 512423cb3a48"}},
		{"deployment.scheduled by an upstream deployment", dependent, auditw.Explanation{Author: git, Cause: "deployment dep-1 (keys vpc_id, subnets)"}},
		{"deployment.scheduled by an edge redeploying on any apply", edge, auditw.Explanation{Author: git, Cause: "deployment dep-1 (redeploy on any apply: no consumed key changed)"}},
		{"deployment.approved: approver distinct from author", approved, auditw.Explanation{Author: git, Approver: "grace.hopper", Cause: "commit 512423cb3a48"}},
		{"deployment.applied says nothing of its cause", msgs[5], auditw.Explanation{Author: git}},
		{"deployment.skipped", msgs[6], auditw.Explanation{Author: git, Cause: "no-consumed-key-changed: no runtime key it consumes changed upstream"}},
		{"deployment.failed", failed, auditw.Explanation{Author: git, Cause: "apply failed: terraform apply: exit 1"}},
		{"drift.detected", drift, auditw.Explanation{Author: git, Cause: "runtime drift (differs): /iac/vpc/core/runtime version 5 is not what Karma published"}},
		{"change.detected correcting drift", corrective, auditw.Explanation{Author: git, Cause: "correcting drift drift-4f1c9e20b7a35d68"}},
		{"a type newer than this build", newer, auditw.Explanation{Author: git}},
	} {
		r, err := auditw.Record(tc.in)
		if err != nil {
			t.Fatal(err)
		}
		if got := auditw.Explain(r); got != tc.want {
			t.Errorf("%s: Explain = %+v, want %+v", tc.name, got, tc.want)
		}
	}

	// Records written outside the pipeline: the webhook endpoint's, and checkpoints.
	at := time.Date(2026, 11, 22, 14, 3, 12, 0, time.UTC)
	webhook := audit.Record{Type: "security.webhook_rejected", ActorKind: "webhook", Actor: "webhook", OccurredAt: at,
		Body: json.RawMessage(`{"type":"security.webhook_rejected","detail":{"reason":"bad signature","remote_addr":"10.0.0.1"}}`)}
	if got := auditw.Explain(webhook); got != (auditw.Explanation{Author: "webhook (webhook)", Cause: "bad signature"}) {
		t.Errorf("webhook entry: %+v", got)
	}
	cp := audit.NewCheckpoint([]audit.Head{{Chain: "a", Seq: 1, Hash: "h"}}, at)
	log := newLog(t)
	if _, err := audit.SaveCheckpoint(t.Context(), log, cp, "cli", "auditor"); err != nil {
		t.Fatal(err)
	}
	saved, err := log.Query(t.Context(), audit.Query{})
	if err != nil || len(saved) != 1 {
		t.Fatalf("saved checkpoint: %d records, %v", len(saved), err)
	}
	if got := auditw.Explain(saved[0]); got.Author != "auditor (cli)" || got.Cause != "checkpoint "+cp.Digest[:12]+", part 1 of 1" {
		t.Errorf("checkpoint: %+v", got)
	}
	for _, body := range []string{``, `not json`, `{"payload":"a string"}`, `{"payload":{"caused_by":"nope"}}`} {
		r := audit.Record{Actor: "x", Body: json.RawMessage(body)}
		if got := auditw.Explain(r); got != (auditw.Explanation{Author: "x"}) {
			t.Errorf("body %q: %+v", body, got)
		}
	}
}

// FuzzExplain: any body explains without panicking, and the author is always the record's.
func FuzzExplain(f *testing.F) {
	for _, s := range []string{`{"payload":{"caused_by":[{"kind":"commit","id":""}]}}`, `{"detail":{"reason":"x"}}`, `{"digest":"ab","part":1}`, `[]`, `{"rejected":"a\nb"}`} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, body string) {
		e := auditw.Explain(audit.Record{Type: audit.CheckpointType, Actor: "a", ActorKind: "k", Body: json.RawMessage(body)})
		if e.Author != "a (k)" || strings.ContainsAny(e.Cause+e.Approver, "\r\n") {
			t.Errorf("Explain(%q) = %+v", body, e)
		}
	})
}
