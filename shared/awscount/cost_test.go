package awscount

import (
	"math"
	"strings"
	"testing"
)

func near(a, b float64) bool { return math.Abs(a-b) < 1e-9 }

// Usage prices each kind of count with its price, n times; the figures are worked by hand.
func TestUsageArithmetic(t *testing.T) {
	per := Counts{
		{SQS, "ReceiveMessage"}: 2, {SQS, EmptyReceive}: 1, {SQS, DeliveredByRule}: 2,
		{Lambda, Invoke("plan")}: 1, {Lambda, Seconds("plan")}: 2,
		{DynamoDB, "PutItem"}: 1, {DynamoDB, WriteUnits}: 4, {DynamoDB, IndexWriteUnits}: 3, {DynamoDB, ReadUnits}: 8,
		{EventBridge, "PutEvents"}: 1, {EventBridge, PutEventsEntries}: 3,
		{SSM, "GetParameter"}: 5, {Neptune, "write edges"}: 2, {Logs, LogBytes}: 700,
	}
	b := Usage(per, 1e6, map[string]float64{"plan": 2048}, USEast1, 300)
	want := map[string]float64{
		"SQS":                5e6 * 0.40 / 1e6,           // 5 requests (the empty receive too)
		"Lambda invocations": 1e6 * 0.20 / 1e6,           // one invocation
		"Lambda plan":        1e6 * 2 * 2 * 0.0000133334, // 2 s at 2 GB
		"DynamoDB writes":    4e6 * 0.625 / 1e6,
		"DynamoDB reads":     8e6 * 0.125 / 1e6,
		"EventBridge":        3e6 * 1.00 / 1e6, // per event, not per request
		"SSM":                0,                // free at standard throughput: no line
		"Neptune":            0,
		"CloudWatch Logs":    1e6 * (700 + 300) / 1e9 * 0.50,
	}
	got := map[string]float64{}
	for _, l := range b {
		key := l.Service
		switch {
		case l.Service == Lambda && l.Item == "invocations":
			key = "Lambda invocations"
		case l.Service == Lambda:
			key = "Lambda " + strings.SplitN(l.Item, ":", 2)[0]
		case l.Service == DynamoDB:
			key = "DynamoDB " + strings.Fields(l.Item)[0]
		}
		got[key] += l.USD
	}
	var total float64
	for k, v := range want {
		if !near(got[k], v) {
			t.Errorf("%s: $%v, want $%v", k, got[k], v)
		}
		total += v
	}
	if !near(b.Total(), total) {
		t.Errorf("total $%v, want $%v", b.Total(), total)
	}
	if l := b.Largest(); l.Service != Lambda || !near(l.USD, want["Lambda plan"]) {
		t.Errorf("largest: %+v, want plan's GB-seconds", l)
	}
	if !strings.Contains(b.Table(), "writes (3,000,000 of them by the indexes)") {
		t.Errorf("table:\n%s", b.Table())
	}
}

// documentedIdle is the idle month docs/performance.md prices: terraform/'s defaults (six
// queues with an event source mapping; promote every minute, reconcile every 5 minutes, drift
// every hour; one Neptune instance), what one idle invocation of promote and reconcile asked of
// AWS in the end-to-end test (reconcile: one paged listing with the descriptions, and a GetItem
// per parameter Karma did not write, 1 there) and the stated
// assumptions (five pollers per mapping, the scheduled functions' durations, drift's requests
// left out, two secrets, 300 bytes of Lambda's own log lines).
var documentedIdle = Idle{Hours: 730, Mappings: 6, Pollers: 5, PollSeconds: 20,
	Scheduled:        map[string]float64{"promote": 730 * 60, "reconcile": 730 * 12, "drift": 730},
	ScheduledSeconds: map[string]float64{"promote": 0.2, "reconcile": 0.5, "drift": 20},
	ScheduledRequests: map[string]Counts{
		"promote":   {{DynamoDB, "BatchGetItem"}: 1, {DynamoDB, "Query"}: 1, {DynamoDB, ReadUnits}: 1.5},
		"reconcile": {{DynamoDB, "GetItem"}: 1, {DynamoDB, ReadUnits}: 1, {SSM, "DescribeParameters"}: 1, {SSM, "GetParametersByPath"}: 1},
	},
	NeptuneInstances: 1, Secrets: 2, PlatformLogBytes: 300}

// The idle month of docs/performance.md: go test ./shared/awscount -run IdleMonth -v prints it.
func TestIdleMonth(t *testing.T) {
	b := IdleMonth(documentedIdle, Memory, USEast1)
	t.Logf("an idle month at us-east-1 list prices:\n%s", b.Table())
	if l := b.Largest(); l.Service != Neptune || !near(l.USD, 730*0.082) {
		t.Errorf("largest item %+v, want Neptune's 730 instance-hours", l)
	}
	polls := 6 * 5 * 730 * 3600 / 20.0
	reads := 43800*1.5 + 8760*1.0
	for _, l := range b {
		if l.Service == SQS && (!near(l.Quantity, polls) || !near(l.USD, polls*0.40/1e6)) {
			t.Errorf("SQS: %+v, want %v empty receives", l, polls)
		}
		if l.Service == DynamoDB && (!near(l.Quantity, reads) || !near(l.USD, reads*0.125/1e6)) {
			t.Errorf("DynamoDB: %+v, want %v read units", l, reads)
		}
	}
	serverless := documentedIdle
	serverless.NeptuneInstances = 0
	floor := NeptuneServerless.Of(730)
	t.Logf("with Neptune serverless at its 1-NCU floor instead: $%.2f + $%.2f = $%.2f", IdleMonth(serverless, Memory, USEast1).Total(), floor,
		IdleMonth(serverless, Memory, USEast1).Total()+floor)
	if !near(floor, 730*0.1608) {
		t.Errorf("serverless floor $%v", floor)
	}
}

func TestFormatting(t *testing.T) {
	for v, want := range map[float64]string{0: "0", 12: "12", 1234567: "1,234,567", 1234.5: "1,234.5", -4321: "-4,321"} {
		if got := commas(v); got != want {
			t.Errorf("commas(%v) = %q, want %q", v, got, want)
		}
	}
	if got := quantity(0.00331); got != "0.00331" {
		t.Errorf("quantity = %q", got)
	}
	for p, want := range map[Price]string{{USD: 0.40, Per: 1e6, Unit: "requests"}: "$0.4 per 1,000,000 requests",
		{USD: 0.082, Per: 1, Unit: "instance-hour"}: "$0.082 per instance-hour", {Per: 1e4, Unit: "calls"}: "free", {Unit: "request"}: "not billed per request"} {
		if got := p.String(); got != want {
			t.Errorf("price %q, want %q", got, want)
		}
	}
}

// measuredPerDeployment are the counts per deployment of the end-to-end run quoted in
// docs/performance.md (cmd/lambda TestAWSEndToEnd, logged by the test; input, not a result).
var measuredPerDeployment = Counts{
	{DynamoDB, "BatchGetItem"}: 2, {DynamoDB, "GetItem"}: 14.5, {DynamoDB, "PutItem"}: 12, {DynamoDB, "Query"}: 1, {DynamoDB, "TransactWriteItems"}: 11,
	{DynamoDB, ReadUnits}: 15.25, {DynamoDB, IndexReadUnits}: 0.25, {DynamoDB, WriteUnits}: 148, {DynamoDB, IndexWriteUnits}: 89.5,
	{EventBridge, "PutEvents"}: 4.5, {EventBridge, PutEventsEntries}: 5,
	{Lambda, Invoke("apply")}: 1, {Lambda, Invoke("audit")}: 5, {Lambda, Invoke("graph-write")}: 2, {Lambda, Invoke("ingest")}: 0.5,
	{Lambda, Invoke("plan")}: 1, {Lambda, Invoke("resolve")}: 1.5,
	{Lambda, Seconds("apply")}: 0.34, {Lambda, Seconds("audit")}: 0.06, {Lambda, Seconds("graph-write")}: 0.13, {Lambda, Seconds("ingest")}: 0.02,
	{Lambda, Seconds("plan")}: 0.56, {Lambda, Seconds("resolve")}: 0.32,
	{Neptune, "read graph state"}: 0.5, {Neptune, "record change"}: 0.5, {Neptune, "record deployment"}: 1, {Neptune, "set outcome"}: 1,
	{Neptune, "write components"}: 0.5, {Neptune, "write edges"}: 0.5,
	{SQS, "DeleteMessage"}: 11.5, {SQS, "ReceiveMessage"}: 11, {SQS, DeliveredByRule}: 11.5,
	{SSM, "GetParameter"}: 7, {SSM, "GetParameterHistory"}: 0.5, {SSM, "GetParametersByPath"}: 0.5, {SSM, "PutParameter"}: 2,
	{Logs, LogBytes}: 0,
}

// The 1,000 deployments of docs/performance.md: go test ./shared/awscount -run Documented -v
// prints them, as measured (the example modules' Terraform runs take about a second) and with
// Terraform taking 30 s to plan and 2 minutes to apply, as against real AWS APIs.
func TestDocumentedDeployments(t *testing.T) {
	measured := Usage(measuredPerDeployment, 1000, Memory, USEast1, 300)
	t.Logf("1,000 deployments as measured (largest: %s %s):\n%s", measured.Largest().Service, measured.Largest().Item, measured.Table())
	slow := measuredPerDeployment.Plus(nil)
	slow[Key{Lambda, Seconds("plan")}], slow[Key{Lambda, Seconds("apply")}] = 30, 120
	real := Usage(slow, 1000, Memory, USEast1, 300)
	t.Logf("1,000 deployments, Terraform 30 s + 120 s (largest: %s %s):\n%s", real.Largest().Service, real.Largest().Item, real.Table())
	withThroughput := USEast1
	withThroughput.SSMInteractions = SSMHigherThroughput
	t.Logf("with Parameter Store's higher throughput on: $%.4f more", Usage(measuredPerDeployment, 1000, Memory, withThroughput, 300).Total()-measured.Total())
	if l := measured.Largest(); l.Service != DynamoDB {
		t.Errorf("largest as measured: %+v, want DynamoDB's writes", l)
	}
	if l := real.Largest(); l.Service != Lambda || !strings.HasPrefix(l.Item, "apply:") {
		t.Errorf("largest with real Terraform: %+v, want apply's GB-seconds", l)
	}
}
