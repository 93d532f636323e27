package terraform

// records_test.go: what Karma has to do and what it has recorded is kept — a stage queue's
// messages while its stage is stopped, the dead letters, the audit log and change sets, the
// lineage, the components' Terraform state — and what would be lost raises an alarm first.

import (
	"encoding/json"
	"maps"
	"math/big"
	"slices"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

// sqsMaxRetention is SQS's longest message retention, 14 days.
const sqsMaxRetention = 1209600

// TestStageQueuesKeepTheirMessages: SQS deletes a message nobody received when its retention
// ends, without passing it to the DLQ. A stage that is stopped — its event source mapping
// disabled, its function throttled to nothing — must not lose its messages (an audit copy, a
// deployment's next step) after SQS's default 4 days: every stage queue keeps them for SQS's
// maximum, every dead-letter queue at least as long as what feeds it (a moved message keeps its
// first enqueue time), and every stage queue has an alarm on the age of its oldest message
// that fires after a working stage would have handled or dead-lettered it and at least a week
// before SQS deletes it.
func TestStageQueuesKeepTheirMessages(t *testing.T) {
	checkQueueRetention(t, load(t, moduleDir()))
}

func checkQueueRetention(t tb, d *deployment) {
	t.Helper()
	retention := func(q instance) int64 {
		v, ok, err := d.m.arg(q, "message_retention_seconds")
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			return 345600 // SQS's default
		}
		return mustInt(t, v, q.addr+".message_retention_seconds")
	}
	ageAlarms := map[string][]int64{} // queue instance address -> thresholds
	alarms, err := d.m.allInstances("aws_cloudwatch_metric_alarm")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range alarms {
		if d.mustString(t, a, "namespace") != "AWS/SQS" || d.mustString(t, a, "metric_name") != "ApproximateAgeOfOldestMessage" {
			continue
		}
		if op := d.mustString(t, a, "comparison_operator"); op != "GreaterThanThreshold" && op != "GreaterThanOrEqualToThreshold" {
			t.Errorf("%s: comparison_operator %s: it must fire when the oldest message is old", a.addr, op)
			continue
		}
		dims, ok, err := d.m.arg(a, "dimensions")
		if err != nil || !ok || !dims.CanIterateElements() {
			t.Fatalf("%s.dimensions: %#v %v", a.addr, dims, err)
		}
		if qn, ok := dims.AsValueMap()["QueueName"]; ok {
			if in, ok := d.follow(t, qn, "aws_sqs_queue", "name", a.addr+".dimensions.QueueName"); ok {
				th, _, err := d.m.arg(a, "threshold")
				if err != nil {
					t.Fatal(err)
				}
				ageAlarms[in.addr] = append(ageAlarms[in.addr], mustInt(t, th, a.addr+".threshold"))
			}
		}
	}
	sources := 0
	for _, name := range slices.Sorted(maps.Keys(d.queues)) {
		q := d.queues[name]
		v, ok, err := d.m.arg(q, "redrive_policy")
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			continue
		}
		sources++
		var policy struct {
			Target   string `json:"deadLetterTargetArn"`
			Receives int64  `json:"maxReceiveCount"`
		}
		if err := json.Unmarshal([]byte(d.mustString(t, q, "redrive_policy")), &policy); err != nil {
			t.Fatalf("%s.redrive_policy %#v: %v", q.addr, v, err)
		}
		r := retention(q)
		if r != sqsMaxRetention {
			t.Errorf("queue %s keeps a message %d s, want %d (SQS's maximum): a stopped stage's messages would be deleted unseen", name, r, sqsMaxRetention)
		}
		if dlq, ok := d.follow(t, cty.StringVal(policy.Target), "aws_sqs_queue", "arn", q.addr+" redrive target"); ok {
			if dr := retention(dlq); dr < r {
				t.Errorf("queue %s: its DLQ %s keeps a message %d s, less than the queue (%d s)", name, dlq.addr, dr, r)
			}
		}
		vt, _, err := d.m.arg(q, "visibility_timeout_seconds")
		if err != nil {
			t.Fatal(err)
		}
		busy := policy.Receives * mustInt(t, vt, q.addr+".visibility_timeout_seconds") // handled or dead-lettered by then
		th := ageAlarms[q.addr]
		if len(th) == 0 {
			t.Errorf("queue %s has no alarm on ApproximateAgeOfOldestMessage: a stopped stage would go unnoticed until SQS deletes its messages", name)
		}
		for _, s := range th {
			if s <= busy || s > r-7*86400 {
				t.Errorf("queue %s: the age alarm's threshold %d s, want over %d s (%d receives of the visibility timeout: a working stage) and at least a week before the retention (%d s) ends", name, s, busy, policy.Receives, r)
			}
		}
	}
	if sources == 0 {
		t.Fatal("no queue with a redrive policy")
	}
	targets, err := d.m.allInstances("aws_cloudwatch_event_target")
	if err != nil {
		t.Fatal(err)
	}
	for _, tg := range targets {
		v, ok, err := d.m.arg(tg, "dead_letter_config", "arn")
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			continue
		}
		if dlq, ok := d.follow(t, v, "aws_sqs_queue", "arn", tg.addr+".dead_letter_config.arn"); ok {
			if r := retention(dlq); r != sqsMaxRetention {
				t.Errorf("%s: its dead-letter queue %s keeps a message %d s, want %d", tg.addr, dlq.addr, r, sqsMaxRetention)
			}
		}
	}
}

// TestBatchFailuresAreReportedOneByOne: every event source mapping reports failed records one by
// one (shared/lambda.SQSHandler answers partial batch responses): without
// ReportBatchItemFailures Lambda ignores the answer and deletes the whole batch, failed records
// included.
func TestBatchFailuresAreReportedOneByOne(t *testing.T) {
	d := load(t, moduleDir())
	esms, err := d.m.allInstances("aws_lambda_event_source_mapping")
	if err != nil {
		t.Fatal(err)
	}
	if len(esms) == 0 {
		t.Fatal("no event source mapping")
	}
	for _, e := range esms {
		v, ok, err := d.m.arg(e, "function_response_types")
		if err != nil {
			t.Fatal(err)
		}
		var got []string
		if ok && v.CanIterateElements() {
			for it := v.ElementIterator(); it.Next(); {
				_, s := it.Element()
				got = append(got, s.AsString())
			}
		}
		if !slices.Equal(got, []string{"ReportBatchItemFailures"}) {
			t.Errorf("%s: function_response_types %v, want [ReportBatchItemFailures]", e.addr, got)
		}
	}
}

// TestRecordsSurviveDeletion: the audit log and the change sets have point-in-time recovery and
// deletion protection and no TTL; a Neptune cluster created here (the lineage) has deletion
// protection, a final snapshot and backups kept as long as point-in-time recovery keeps the
// tables (35 days); the EFS file system of the workspaces (every component's Terraform state),
// which has no deletion protection, cannot be destroyed by a plan. And no function, whatever
// plan_policy_arns and apply_policy_arns attach (PowerUserAccess allows rds:* and
// elasticfilesystem:*), can delete these stores, turn off their backups, or change the cluster
// (ModifyDBCluster turns off deletion protection): the guard policy denies it.
func TestRecordsSurviveDeletion(t *testing.T) {
	d := load(t, moduleDir())
	for _, addr := range []string{"aws_dynamodb_table.audit", "aws_dynamodb_table.change_sets"} {
		insts, err := d.m.instances(addr)
		if err != nil || len(insts) != 1 {
			t.Fatalf("%s: %d instances, %v", addr, len(insts), err)
		}
		in := insts[0]
		if !mustBool(t, d, in, "deletion_protection_enabled") {
			t.Errorf("%s: deletion protection is off", addr)
		}
		if !mustBool(t, d, in, "point_in_time_recovery", "enabled") {
			t.Errorf("%s: point-in-time recovery is off", addr)
		}
		if v, ok, err := d.m.arg(in, "ttl", "enabled"); err != nil {
			t.Fatal(err)
		} else if ok && v.True() {
			t.Errorf("%s: TTL would delete records", addr)
		}
	}

	vars := testVars()
	vars["create_neptune"] = cty.True
	m, err := loadModule(moduleDir(), vars)
	if err != nil {
		t.Fatal(err)
	}
	insts, err := m.instances("aws_neptune_cluster.karma")
	if err != nil || len(insts) != 1 {
		t.Fatalf("aws_neptune_cluster.karma with create_neptune: %d instances, %v", len(insts), err)
	}
	dn := &deployment{m: m}
	c := insts[0]
	if !mustBool(t, dn, c, "deletion_protection") {
		t.Errorf("%s: deletion protection is off", c.addr)
	}
	if mustBool(t, dn, c, "skip_final_snapshot") {
		t.Errorf("%s: skips its final snapshot", c.addr)
	}
	v, _, err := m.arg(c, "backup_retention_period")
	if err != nil {
		t.Fatal(err)
	}
	if n := mustInt(t, v, c.addr+".backup_retention_period"); n < 35 {
		t.Errorf("%s: backups kept %d days, want 35 (as point-in-time recovery keeps the audit log): a lineage damaged longer ago could not be restored", c.addr, n)
	}

	// EFS: created here, and an existing access point's file system.
	for _, tc := range []struct {
		vars      map[string]cty.Value
		created   int
		fs, point string
	}{
		{vars, 1, "aws_efs_file_system.karma[0].arn", "aws_efs_access_point.karma[0].arn"},
		{withVar(testVars(), "efs_access_point_arn", cty.StringVal("arn:aws:elasticfilesystem:eu-west-1:123456789012:access-point/fsap-0123456789abcdef0")),
			0, "data.aws_efs_access_point.existing[0].file_system_arn", "arn:aws:elasticfilesystem:eu-west-1:123456789012:access-point/fsap-0123456789abcdef0"},
	} {
		m, err := loadModule(moduleDir(), tc.vars)
		if err != nil {
			t.Fatal(err)
		}
		fss := mustInstances(t, m, "aws_efs_file_system.karma")
		if len(fss) != tc.created {
			t.Fatalf("aws_efs_file_system.karma: %d instances, want %d", len(fss), tc.created)
		}
		for _, in := range fss {
			if v, ok, err := m.arg(in, "lifecycle", "prevent_destroy"); err != nil || !ok || !v.True() {
				t.Errorf("%s: no lifecycle prevent_destroy (%v): a plan could destroy every component's Terraform state", in.addr, err)
			}
		}
		sts := documentStatements(t, m, "data.aws_iam_policy_document.guard", "")
		for _, a := range []string{"elasticfilesystem:DeleteFileSystem", "elasticfilesystem:DeleteMountTarget", "elasticfilesystem:PutBackupPolicy"} {
			if !deniesOn(sts, a, tc.fs) {
				t.Errorf("the guard policy does not deny %s on %s, the workspaces' file system", a, tc.fs)
			}
		}
		if !deniesOn(sts, "elasticfilesystem:DeleteAccessPoint", tc.point) {
			t.Errorf("the guard policy does not deny elasticfilesystem:DeleteAccessPoint on %s", tc.point)
		}
	}
	sts := documentStatements(t, m, "data.aws_iam_policy_document.guard", "")
	for _, a := range []string{"rds:DeleteDBCluster", "rds:ModifyDBCluster"} {
		if !deniesOn(sts, a, c.addr+".arn") {
			t.Errorf("the guard policy does not deny %s on %s, the lineage's cluster", a, c.addr)
		}
	}
}

// deniesOn: a statement of sts denies action on resource (as the policy names it), unconditionally.
func deniesOn(sts []statement, action, resource string) bool {
	for _, st := range sts {
		if st.effect == "Deny" && len(st.conditions) == 0 && slices.Contains(st.actions, action) &&
			slices.ContainsFunc(st.resources, func(r string) bool { return r == "*" || arnLike(r, resource) }) {
			return true
		}
	}
	return false
}

func withVar(vars map[string]cty.Value, name string, v cty.Value) map[string]cty.Value {
	vars[name] = v
	return vars
}

func mustInstances(t tb, m *module, key string) []instance {
	t.Helper()
	insts, err := m.instances(key)
	if err != nil {
		t.Fatal(err)
	}
	return insts
}

func mustInt(t tb, v cty.Value, what string) int64 {
	t.Helper()
	if !v.IsWhollyKnown() || v.IsNull() || v.Type() != cty.Number {
		t.Fatalf("%s: want a known number, got %#v", what, v)
	}
	n, acc := v.AsBigFloat().Int64()
	if acc != big.Exact {
		t.Fatalf("%s: %s is not an integer", what, v.AsBigFloat())
	}
	return n
}

func mustBool(t tb, d *deployment, in instance, path ...string) bool {
	t.Helper()
	v, ok, err := d.m.arg(in, path...)
	if err != nil {
		t.Fatal(err)
	}
	if !ok || !v.IsKnown() || v.IsNull() || v.Type() != cty.Bool {
		t.Fatalf("%s: %v: want true or false, got %#v", in.addr, path, v)
	}
	return v.True()
}
