package eventbridge_test

import (
	"encoding/json"
	"os"
	"path/filepath"
	"reflect"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/besidetest"
	"github.com/usekarma/karma/shared/eventbridge"
	"github.com/usekarma/karma/shared/message"
	"github.com/usekarma/karma/shared/pipeline"
)

func read(t *testing.T, path string) []byte {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// vendorSample reads a vendor sample kept beside the checkout (../shared/samples/aws), in place;
// without it the test is skipped.
func vendorSample(t *testing.T, name string) []byte {
	t.Helper()
	return read(t, filepath.Join(besidetest.Dir(t, "samples", "aws"), name))
}

// The vendor's generic event (../shared/samples/aws, read in place) decodes field by field.
func TestParseEventVendorSample(t *testing.T) {
	e, err := eventbridge.ParseEvent(vendorSample(t, "eventBridgeEvent.json"))
	if err != nil {
		t.Fatal(err)
	}
	want := eventbridge.Event{
		Version:    "0",
		ID:         "6a7e8feb-b491-4cf7-a9f1-bf3703467718",
		DetailType: "EC2 Instance State-change Notification",
		Source:     "aws.ec2",
		Account:    "111122223333",
		Time:       time.Date(2017, 12, 22, 18, 43, 48, 0, time.UTC),
		Region:     "us-west-1",
		Resources:  []string{"arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"},
		ReplayName: "replay_archive",
	}
	var detail map[string]string
	if err := json.Unmarshal(e.Detail, &detail); err != nil || detail["instance_id"] != "i-1234567890abcdef0" || detail["state"] != "terminated" {
		t.Errorf("detail = %s (%v)", e.Detail, err)
	}
	e.Detail = nil
	if !reflect.DeepEqual(e, want) {
		t.Errorf("ParseEvent =\n%+v\nwant\n%+v", e, want)
	}
}

func TestUnwrap(t *testing.T) {
	golden := read(t, "../../schemas/golden/deployment.applied.v1.json")
	want, err := message.Parse(golden)
	if err != nil {
		t.Fatal(err)
	}
	for _, tc := range []struct {
		name string
		body []byte
	}{
		{"EventBridge event (ours)", read(t, "testdata/karma-deployment.applied.event.json")},
		{"raw envelope", golden},
	} {
		t.Run(tc.name, func(t *testing.T) {
			b, err := eventbridge.Unwrap(tc.body)
			if err != nil {
				t.Fatalf("Unwrap: %v", err)
			}
			got, err := message.Parse(b)
			if err != nil {
				t.Fatalf("Parse(unwrapped): %v\n%s", err, b)
			}
			if !reflect.DeepEqual(normal(t, got), normal(t, want)) {
				t.Errorf("unwrapped %+v\nwant %+v", got, want)
			}
		})
	}

	for _, tc := range []struct {
		name, body, wantErr string
		sample              string // the body is this vendor sample (read in the subtest)
	}{
		{name: "vendor event of another source", sample: "eventBridgeEvent.json", wantErr: `"aws.ec2"`},
		{name: "not JSON (sqs-event.json's body)", body: "Message Body", wantErr: "not a JSON object"},
		{name: "empty", body: "", wantErr: "not a JSON object"},
		{name: "detail not an object", body: `{"version":"0","id":"x","detail-type":"deployment.applied","source":"karma","detail":"{}"}`, wantErr: "detail is not a JSON object"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			if tc.sample != "" {
				tc.body = string(vendorSample(t, tc.sample))
			}
			_, err := eventbridge.Unwrap([]byte(tc.body))
			if err == nil || !strings.Contains(err.Error(), tc.wantErr) {
				t.Fatalf("Unwrap = %v, want an error containing %s", err, tc.wantErr)
			}
			if pipeline.Classify(err) != pipeline.DeadLetter {
				t.Errorf("Unwrap error classified %v, want dead-letter", pipeline.Classify(err))
			}
		})
	}
}

// normal re-encodes the payload so that whitespace differences do not count.
func normal(t *testing.T, e message.Envelope) message.Envelope {
	t.Helper()
	var v any
	if err := json.Unmarshal(e.Payload, &v); err != nil {
		t.Fatal(err)
	}
	e.Payload, _ = json.Marshal(v)
	return e
}

func TestRules(t *testing.T) {
	arn := func(stage string) string {
		name := "karma-dev-" + stage
		if stage == pipeline.StageApply {
			name += ".fifo"
		}
		return "arn:aws:sqs:us-east-1:123456789012:" + name
	}
	rules := eventbridge.Rules("karma-dev", arn)
	seen := map[string]bool{}
	for _, r := range rules {
		if seen[r.Name] {
			t.Errorf("rule name %s twice", r.Name)
		}
		seen[r.Name] = true
		if r.Bus != "karma-dev" || r.Target.ARN != arn(r.Stage) || r.Target.ID == "" {
			t.Errorf("rule %+v", r)
		}
		if got, want := r.Target.MessageGroupID != "", r.Stage == pipeline.StageApply; got != want {
			t.Errorf("rule %s: MessageGroupID %q (FIFO target: %v)", r.Name, r.Target.MessageGroupID, want)
		}
		var p map[string][]string
		if err := json.Unmarshal([]byte(r.Pattern), &p); err != nil {
			t.Fatalf("rule %s pattern %s: %v", r.Name, r.Pattern, err)
		}
		if !slices.Equal(p["source"], []string{"karma"}) {
			t.Errorf("rule %s pattern %s: source", r.Name, r.Pattern)
		}
		if r.Stage == pipeline.StageAudit {
			if _, ok := p["detail-type"]; ok || len(p) != 1 {
				t.Errorf("audit rule pattern %s: want every karma event", r.Pattern)
			}
			continue
		}
		// Exactly the types Routes sends to this stage.
		var want []string
		for typ, stages := range pipeline.Routes {
			if slices.Contains(stages, r.Stage) {
				want = append(want, typ)
			}
		}
		slices.Sort(want)
		if !slices.Equal(p["detail-type"], want) {
			t.Errorf("rule %s detail-types %v, want %v", r.Name, p["detail-type"], want)
		}
	}
	stages := []string{pipeline.StageIngest, pipeline.StageResolve, pipeline.StageGraphWrite, pipeline.StagePlan, pipeline.StageApply, pipeline.StageAudit}
	for _, st := range stages {
		if !seen["karma-to-"+st] {
			t.Errorf("no rule for stage %s", st)
		}
	}
	if len(rules) != len(stages) {
		t.Errorf("%d rules, want %d", len(rules), len(stages))
	}
}
