package terraform

// deadletters_test.go: every dead-letter queue — the target of a stage queue's RedrivePolicy, or
// of an EventBridge target's dead_letter_config — has a CloudWatch alarm on its visible messages,
// so that what lands there (work the pipeline did not do) is not left where nobody looks.

import (
	"encoding/json"
	"slices"
	"strings"
	"testing"

	"github.com/zclconf/go-cty/cty"
)

func TestEveryDeadLetterQueueHasAnAlarm(t *testing.T) {
	d := load(t, moduleDir())
	checkDeadLetterAlarms(t, d)
}

func checkDeadLetterAlarms(t tb, d *deployment) {
	t.Helper()
	dlqs := map[string]bool{} // queue instance addresses
	queues, err := d.m.allInstances("aws_sqs_queue")
	if err != nil {
		t.Fatal(err)
	}
	for _, q := range queues {
		v, ok, err := d.m.arg(q, "redrive_policy")
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			continue
		}
		var policy struct {
			Target string `json:"deadLetterTargetArn"`
		}
		if err := json.Unmarshal([]byte(d.mustString(t, q, "redrive_policy")), &policy); err != nil {
			t.Fatalf("%s.redrive_policy %#v: %v", q.addr, v, err)
		}
		if in, ok := d.follow(t, cty.StringVal(policy.Target), "aws_sqs_queue", "arn", q.addr+" redrive target"); ok {
			dlqs[in.addr] = true
		}
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
		if in, ok := d.follow(t, v, "aws_sqs_queue", "arn", tg.addr+".dead_letter_config.arn"); ok {
			dlqs[in.addr] = true
		}
	}
	if len(dlqs) == 0 {
		t.Fatal("no dead-letter queue found")
	}
	alarmed := map[string]bool{}
	alarms, err := d.m.allInstances("aws_cloudwatch_metric_alarm")
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range alarms {
		if d.mustString(t, a, "namespace") != "AWS/SQS" || d.mustString(t, a, "metric_name") != "ApproximateNumberOfMessagesVisible" {
			continue
		}
		dims, ok, err := d.m.arg(a, "dimensions")
		if err != nil || !ok || !dims.CanIterateElements() {
			t.Fatalf("%s.dimensions: %#v %v", a.addr, dims, err)
		}
		qn, ok := dims.AsValueMap()["QueueName"]
		if !ok {
			continue
		}
		if in, ok := d.follow(t, qn, "aws_sqs_queue", "name", a.addr+".dimensions.QueueName"); ok {
			alarmed[in.addr] = true
		}
	}
	var missing []string
	for q := range dlqs {
		if !alarmed[q] {
			missing = append(missing, q)
		}
	}
	slices.Sort(missing)
	for _, q := range missing {
		t.Errorf("dead-letter queue %s has no alarm on ApproximateNumberOfMessagesVisible", q)
	}
}

// TestEveryEventTargetHasADeadLetterQueue: an event EventBridge cannot deliver to a target —
// a stage queue, or a scheduled function (its permission gone, Lambda refusing it) — is
// dropped after EventBridge's retries, unseen, unless the target has a dead-letter queue that
// lets the target's rule send to it (aws:SourceArn); the queue's alarm then says so.
func TestEveryEventTargetHasADeadLetterQueue(t *testing.T) {
	checkEventTargetDeadLetters(t, load(t, moduleDir()))
}

func checkEventTargetDeadLetters(t tb, d *deployment) {
	t.Helper()
	policies := map[string]instance{} // queue instance address -> its aws_sqs_queue_policy
	ps, err := d.m.allInstances("aws_sqs_queue_policy")
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range ps {
		if q, ok := d.follow(t, mustArg(t, d, p, "queue_url"), "aws_sqs_queue", "id", p.addr+".queue_url"); ok {
			policies[q.addr] = p
		}
	}
	targets, err := d.m.allInstances("aws_cloudwatch_event_target")
	if err != nil {
		t.Fatal(err)
	}
	if len(targets) == 0 {
		t.Fatal("no event target")
	}
	for _, tg := range targets {
		r, ok := d.follow(t, mustArg(t, d, tg, "rule"), "aws_cloudwatch_event_rule", "name", tg.addr+".rule")
		if !ok {
			continue
		}
		v, ok, err := d.m.arg(tg, "dead_letter_config", "arn")
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			t.Errorf("%s (rule %s): no dead_letter_config: an event EventBridge cannot deliver is dropped unseen after its retries", tg.addr, r.addr)
			continue
		}
		q, ok := d.follow(t, v, "aws_sqs_queue", "arn", tg.addr+".dead_letter_config.arn")
		if !ok {
			continue
		}
		p, ok := policies[q.addr]
		if !ok {
			t.Errorf("%s: its dead-letter queue %s has no queue policy: EventBridge may not send to it", tg.addr, q.addr)
			continue
		}
		doc, attr, ok := d.m.ref(mustArg(t, d, p, "policy"))
		if !ok || !strings.HasPrefix(doc.addr, "data.aws_iam_policy_document.") || attr != "json" {
			t.Fatalf("%s.policy: want the json of a policy document", p.addr)
		}
		key := doc.addr[:strings.IndexByte(doc.addr+"[", '[')]
		ruleArn, queueArn := r.addr+".arn", q.addr+".arn"
		lets := false
		for _, st := range documentStatements(t, d.m, key, doc.key) {
			if st.effect == "Allow" && slices.Contains(st.actions, "sqs:SendMessage") && slices.Contains(st.resources, queueArn) &&
				slices.Contains(st.conditions["ArnEquals aws:SourceArn"], ruleArn) {
				lets = true
			}
		}
		if !lets {
			t.Errorf("%s: its dead-letter queue %s does not let the rule %s send to it (%s: sqs:SendMessage with aws:SourceArn): its undelivered events would be dropped", tg.addr, q.addr, r.addr, doc.addr)
		}
	}
}
