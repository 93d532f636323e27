package ssmevent

import (
	"encoding/json"
	"errors"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/usekarma/karma/shared/besidetest"
)

// sample reads a vendor-written sample kept beside the checkout (../shared/samples/aws/<name>):
// read in place, never copied into the project. Without ../shared/samples the test is skipped.
func sample(t testing.TB, name string) []byte {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(besidetest.Dir(t, "samples", "aws"), name))
	if err != nil {
		t.Fatal(err)
	}
	return b
}

func sampleNames(t testing.TB) []string {
	t.Helper()
	m, err := filepath.Glob(filepath.Join(besidetest.Dir(t, "samples", "aws"), "*.json"))
	if err != nil || len(m) == 0 {
		t.Fatalf("no samples: %v", err)
	}
	var names []string
	for _, p := range m {
		names = append(names, filepath.Base(p))
	}
	return names
}

func isPermanent(err error) bool {
	var p interface{ Permanent() bool }
	return errors.As(err, &p) && p.Permanent()
}

func change(id, op, at string) Event {
	t, _ := time.Parse(time.RFC3339, at)
	return Event{ID: id, Time: t.UTC(), Account: "123456789012", Region: "us-east-2", Source: "aws.ssm", DetailType: "Parameter Store Change",
		Resources: []string{"arn:aws:ssm:us-east-2:123456789012:parameter/MyExampleParameter"},
		Operation: op, Name: "MyExampleParameter", ParamType: "String", Description: "Sample Parameter"}
}

// TestSamples: every AWS sample, with what Decode does with it. Rule patterns are EventBridge
// patterns, not events: Decode refuses them (no id), and TestRulePatterns covers what they match.
func TestSamples(t *testing.T) {
	t.Parallel()
	ec2Time, _ := time.Parse(time.RFC3339, "2017-12-22T18:43:48Z")
	tests := []struct {
		name    string
		want    *Event // nil: a permanent error
		errPart string
	}{
		{"awsdocs__parameter-store-change__create-parameter.json", ptr(change("6a7e4feb-b491-4cf7-a9f1-bf3703497718", "Create", "2017-05-22T16:43:48Z")), ""},
		{"awsdocs__parameter-store-change__update-parameter.json", ptr(change("9547ef2d-3b7e-4057-b6cb-5fdf09ee7c8f", "Update", "2017-05-22T16:44:48Z")), ""},
		{"awsdocs__parameter-store-change__delete-parameter.json", ptr(change("80e9b391-6a9b-413c-839a-453b528053af", "Delete", "2017-05-22T16:45:48Z")), ""},
		{"eventBridgeEvent.json", &Event{ID: "6a7e8feb-b491-4cf7-a9f1-bf3703467718", Time: ec2Time.UTC(), Account: "111122223333", Region: "us-west-1",
			Source: "aws.ec2", DetailType: "EC2 Instance State-change Notification",
			Resources:  []string{"arn:aws:ec2:us-west-1:123456789012:instance/i-1234567890abcdef0"},
			ReplayName: "replay_archive",
			Ignored:    &Ignored{DetailType: "EC2 Instance State-change Notification", Source: "aws.ec2", Reason: "not a Parameter Store Change"}}, ""},
		{"awsdocs__rule-pattern__parameter-change-all-ops.json", nil, "not an EventBridge event"},
		{"awsdocs__rule-pattern__parameter-change-update-only.json", nil, "not an EventBridge event"},
		{"awsdocs__rule-pattern__policy-action-all-types.json", nil, "not an EventBridge event"},
		{"awsdocs__rule-pattern__policy-action-expiration.json", nil, "not an EventBridge event"},
		// Batches: one delivery per record, see TestSQSSamples.
		{"sqs-event.json", nil, "DecodeSQS"},
		{"sqsDlqTriggerEvent.json", nil, "DecodeSQS"},
		// HTTP requests (the webhook package's LambdaRequest handles them), not events.
		{"apigw-v2-request-iam.json", nil, "not an EventBridge event"},
		{"apigw-v2-request-jwt-authorizer.json", nil, "not an EventBridge event"},
		{"apigw-v2-request-lambda-authorizer.json", nil, "not an EventBridge event"},
		{"apigw-v2-request-no-authorizer.json", nil, "not an EventBridge event"},
		{"lambda-urls-request.json", nil, "not an EventBridge event"},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.name] = true
	}
	for _, n := range sampleNames(t) {
		if !covered[n] {
			t.Errorf("sample %s has no expectation", n)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			body := sample(t, tt.name)
			ev, err := Decode(body)
			if tt.want == nil {
				if err == nil || !isPermanent(err) || !strings.Contains(err.Error(), tt.errPart) {
					t.Fatalf("Decode = %+v, %v; want a permanent error containing %q", ev, err, tt.errPart)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if !reflect.DeepEqual(ev, *tt.want) {
				t.Errorf("got  %+v\nwant %+v", ev, *tt.want)
			}
			// The same event as an SQS body (the whole event as a JSON string), and quoted once more.
			quoted, _ := json.Marshal(string(body))
			for _, in := range [][]byte{quoted, snsWrap(body)} {
				again, err := Decode(in)
				if err != nil || !reflect.DeepEqual(again, ev) {
					t.Errorf("wrapped %.40s...: %+v, %v", in, again, err)
				}
			}
		})
	}
}

func ptr[T any](v T) *T { return &v }

func snsWrap(event []byte) []byte {
	b, _ := json.Marshal(map[string]string{"Type": "Notification", "MessageId": "m", "TopicArn": "arn:aws:sns:us-east-2:123456789012:t", "Message": string(event)})
	return b
}

// TestSQSSamples: the vendor batches decode record by record; their bodies ("Message Body",
// "hello world") are not events, so each record fails permanently. A batch whose body is a
// Parameter Store Change event (what an SQS target without input transformer receives) decodes.
func TestSQSSamples(t *testing.T) {
	t.Parallel()
	for _, tt := range []struct{ name, id string }{
		{"sqs-event.json", "MessageID_1"},
		{"sqsDlqTriggerEvent.json", "db37cc61-1bb0-4e77-b6f3-7cf87f44a72a"},
	} {
		recs, err := DecodeSQS(sample(t, tt.name))
		if err != nil {
			t.Fatal(err)
		}
		if len(recs) != 1 || recs[0].MessageID != tt.id || !isPermanent(recs[0].Err) {
			t.Errorf("%s: %+v", tt.name, recs)
		}
	}
	// The vendor batch, its body replaced by the create-parameter event as SQS delivers it.
	var batch map[string]any
	_ = json.Unmarshal(sample(t, "sqs-event.json"), &batch)
	rec := batch["Records"].([]any)[0].(map[string]any)
	rec["body"] = string(sample(t, "awsdocs__parameter-store-change__create-parameter.json"))
	second := map[string]any{"messageId": "MessageID_2", "body": string(sample(t, "eventBridgeEvent.json")), "eventSource": "aws:sqs"}
	third := map[string]any{"messageId": "MessageID_3", "body": "{", "eventSource": "aws:sqs"}
	batch["Records"] = append(batch["Records"].([]any), second, third)
	b, _ := json.Marshal(batch)
	recs, err := DecodeSQS(b)
	if err != nil {
		t.Fatal(err)
	}
	if len(recs) != 3 {
		t.Fatalf("records: %+v", recs)
	}
	if recs[0].Err != nil || recs[0].Event.Name != "MyExampleParameter" || recs[0].Event.Operation != "Create" || recs[0].Event.Ignored != nil {
		t.Errorf("record 1: %+v", recs[0])
	}
	if recs[1].Err != nil || recs[1].Event.Ignored == nil || recs[1].MessageID != "MessageID_2" {
		t.Errorf("record 2: %+v", recs[1])
	}
	if !isPermanent(recs[2].Err) {
		t.Errorf("record 3: %+v", recs[2])
	}
	for _, bad := range []string{`{}`, `[]`, `{"Records":7}`, `nope`} {
		if _, err := DecodeSQS([]byte(bad)); !isPermanent(err) {
			t.Errorf("DecodeSQS(%s) = %v", bad, err)
		}
	}
	if recs, _ := DecodeSQS([]byte(`{"Records":[{"messageId":"k","eventSource":"aws:kinesis","body":"{}"}]}`)); len(recs) != 1 || !isPermanent(recs[0].Err) {
		t.Errorf("non-SQS record: %+v", recs)
	}
}

// event builds an EventBridge event.
func event(detailType, source string, detail map[string]any) map[string]any {
	return map[string]any{"version": "0", "id": "0d1e2f3a-4b5c-6d7e-8f90-a1b2c3d4e5f6", "detail-type": detailType, "source": source,
		"account": "123456789012", "time": "2024-05-01T12:00:00Z", "region": "eu-west-1",
		"resources": []string{"arn:aws:ssm:eu-west-1:123456789012:parameter/x"}, "detail": detail}
}

func TestDecode(t *testing.T) {
	t.Parallel()
	enc := func(v any) []byte { b, _ := json.Marshal(v); return b }
	hier := event("Parameter Store Change", "aws.ssm", map[string]any{"operation": "Update", "name": "/karma/dev/app/web/config", "type": "SecureString", "description": ""})
	label := event("Parameter Store Change", "aws.ssm", map[string]any{"operation": "LabelParameterVersion", "name": "/karma/dev/app/web/config", "type": "String"})
	policy := event("Parameter Store Policy Action", "aws.ssm", map[string]any{"parameter-name": "/OncallDuties", "policy-type": "Expiration",
		"parameter-type": "String", "action-status": "Finished"})
	spoof := event("Parameter Store Change", "my.app", map[string]any{"operation": "Update", "name": "/karma/dev/app/web/config"})
	noName := event("Parameter Store Change", "aws.ssm", map[string]any{"operation": "Update"})
	noOp := event("Parameter Store Change", "aws.ssm", map[string]any{"name": "/a"})
	noDetail := event("Parameter Store Change", "aws.ssm", nil)
	badTime := event("Parameter Store Change", "aws.ssm", map[string]any{"operation": "Update", "name": "/a"})
	badTime["time"] = "yesterday"
	noTime := event("Parameter Store Change", "aws.ssm", map[string]any{"operation": "Update", "name": "/a"})
	delete(noTime, "time")
	noID := event("Parameter Store Change", "aws.ssm", map[string]any{"operation": "Update", "name": "/a"})
	delete(noID, "id")
	detailString := event("Parameter Store Change", "aws.ssm", nil)
	detailString["detail"] = "Update /a"
	tests := []struct {
		name                        string
		body                        []byte
		op, param, typ, ignoredType string
		zeroTime                    bool
		err                         bool
	}{
		{"hierarchical name keeps its slash", enc(hier), "Update", "/karma/dev/app/web/config", "SecureString", "", false, false},
		{"label operation passes through", enc(label), "LabelParameterVersion", "/karma/dev/app/web/config", "String", "", false, false},
		{"policy action is ignored", enc(policy), "", "", "", "Parameter Store Policy Action", false, false},
		{"change from another source is ignored", enc(spoof), "", "", "", "Parameter Store Change", false, false},
		{"no time", enc(noTime), "Update", "/a", "", "", true, false},
		{"no name", enc(noName), "", "", "", "", false, true},
		{"no operation", enc(noOp), "", "", "", "", false, true},
		{"no detail", enc(noDetail), "", "", "", "", false, true},
		{"detail not an object", enc(detailString), "", "", "", "", false, true},
		{"bad time", enc(badTime), "", "", "", "", false, true},
		{"no id", enc(noID), "", "", "", "", false, true},
		{"empty", nil, "", "", "", "", false, true},
		{"null", []byte("null"), "", "", "", "", false, true},
		{"truncated", enc(hier)[:50], "", "", "", "", false, true},
		{"string not an event", []byte(`"hello"`), "", "", "", "", false, true},
		{"nested too deep", nest(enc(hier), 5), "", "", "", "", false, true},
		{"nested within limit", nest(enc(hier), 3), "Update", "/karma/dev/app/web/config", "SecureString", "", false, false},
		{"sns message not a string", []byte(`{"Type":"Notification","Message":{}}`), "", "", "", "", false, true},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			ev, err := Decode(tt.body)
			if tt.err {
				if !isPermanent(err) {
					t.Fatalf("Decode = %+v, %v; want a permanent error", ev, err)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			if ev.Operation != tt.op || ev.Name != tt.param || ev.ParamType != tt.typ || ev.Time.IsZero() != tt.zeroTime {
				t.Errorf("got %+v", ev)
			}
			if (tt.ignoredType == "") != (ev.Ignored == nil) || (ev.Ignored != nil && ev.Ignored.DetailType != tt.ignoredType) {
				t.Errorf("Ignored = %+v, want detail type %q", ev.Ignored, tt.ignoredType)
			}
			if ev.ID == "" {
				t.Error("no id")
			}
		})
	}
}

func nest(b []byte, n int) []byte {
	for i := 0; i < n; i++ {
		b, _ = json.Marshal(string(b))
	}
	return b
}

func TestClassify(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, prefix string
		want         Target
	}{
		{"/karma/dev/app/web/config", "/karma/dev", Target{Kind: Config, Type: "app", Nickname: "web"}},
		{"/karma/dev/app/web/config", "/karma/dev/", Target{Kind: Config, Type: "app", Nickname: "web"}},
		{"/karma/dev/app/web/runtime", "/karma/dev", Target{Kind: Runtime, Type: "app", Nickname: "web"}},
		{"/karma/dev/environment", "/karma/dev", Target{Kind: Environment}},
		{"/karma/dev/app/web/secret", "/karma/dev", Target{Kind: Other}},
		{"/karma/dev/app/config", "/karma/dev", Target{Kind: Other}},
		{"/karma/dev/app/web/x/config", "/karma/dev", Target{Kind: Other}},
		{"/karma/dev//web/config", "/karma/dev", Target{Kind: Other}},
		{"/karma/dev/app//config", "/karma/dev", Target{Kind: Other}},
		{"/karma/prod/app/web/config", "/karma/dev", Target{Kind: Other}},
		{"/karma/devx/app/web/config", "/karma/dev", Target{Kind: Other}},
		{"/karma/dev", "/karma/dev", Target{Kind: Other}},
		{"/karma/dev/environment/x", "/karma/dev", Target{Kind: Other}},
		// Names are taken as given: no slash is added, so a top-level name never matches a
		// hierarchical prefix (the AWS sample's "MyExampleParameter").
		{"MyExampleParameter", "/karma/dev", Target{Kind: Other}},
		{"karma/dev/app/web/config", "/karma/dev", Target{Kind: Other}},
		{"/app/web/config", "", Target{Kind: Config, Type: "app", Nickname: "web"}},
		{"/environment", "", Target{Kind: Environment}},
		{"", "", Target{Kind: Other}},
	}
	for _, tt := range tests {
		if got := Classify(tt.name, tt.prefix); got != tt.want {
			t.Errorf("Classify(%q, %q) = %+v, want %+v", tt.name, tt.prefix, got, tt.want)
		}
	}
}
