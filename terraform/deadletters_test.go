package terraform

// deadletters_test.go: every dead-letter queue — the target of a stage queue's RedrivePolicy, or
// of an EventBridge target's dead_letter_config — has a CloudWatch alarm on its visible messages,
// so that what lands there (work the pipeline did not do) is not left where nobody looks.

import (
	"encoding/json"
	"slices"
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
