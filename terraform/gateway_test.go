package terraform

// gateway_test.go: a function behind API Gateway answers before its own deadline
// (lambda.AnswerBeforeDeadline: a request still running a tenth of the function's time before
// it is answered a 504 problem document of type timeout), and API Gateway must still be waiting
// for that answer. With the function's timeout equal to the integration's, API Gateway gave up
// first or Lambda stopped the function, and the client got a bare
// {"message":"Internal Server Error"} or 503/504 naming nothing — a write not knowing whether it
// was done. And what API Gateway answers itself is recorded in its stage's access log.

import (
	"strings"
	"testing"
)

const (
	// maxIntegrationTimeoutMs is the most an HTTP API waits for its integration (and its
	// default): 30 s.
	maxIntegrationTimeoutMs = 30000
	// gatewayMarginMs is what API Gateway's wait must leave beyond the function's timeout: a
	// cold start's init (not counted in the timeout; Lambda allows it 10 s, the API's takes well
	// under 1 s: docs/api.md) and the invocation's own way in and out.
	gatewayMarginMs = 5000
)

// TestGatewayOutwaitsItsFunctions: every API Gateway integration's timeout_milliseconds is at
// most 30,000 and exceeds its function's timeout by gatewayMarginMs at least.
func TestGatewayOutwaitsItsFunctions(t *testing.T) {
	checkGatewayWaits(t, load(t, moduleDir()))
}

func checkGatewayWaits(t tb, d *deployment) {
	t.Helper()
	ins, err := d.m.allInstances("aws_apigatewayv2_integration")
	if err != nil {
		t.Fatal(err)
	}
	if len(ins) == 0 {
		t.Fatal("no aws_apigatewayv2_integration")
	}
	for _, in := range ins {
		uri, ok, err := d.m.arg(in, "integration_uri")
		if err != nil || !ok {
			t.Fatalf("%s: integration_uri: %v", in.addr, err)
		}
		fn, attr, ok := d.m.ref(uri)
		if !ok || !strings.HasPrefix(fn.addr, "aws_lambda_function.") || attr != "invoke_arn" {
			t.Errorf("%s: integration_uri is %#v, want a function's invoke_arn", in.addr, uri)
			continue
		}
		wait := int64(maxIntegrationTimeoutMs) // HTTP API's default
		if v, ok, err := d.m.arg(in, "timeout_milliseconds"); err != nil {
			t.Fatal(err)
		} else if ok {
			wait = mustInt(t, v, in.addr+".timeout_milliseconds")
		}
		v, ok, err := d.m.arg(fn, "timeout")
		if err != nil || !ok {
			t.Fatalf("%s: timeout: %v", fn.addr, err)
		}
		timeout := mustInt(t, v, fn.addr+".timeout") * 1000
		switch {
		case wait > maxIntegrationTimeoutMs:
			t.Errorf("%s: timeout_milliseconds = %d, more than the %d an HTTP API takes", in.addr, wait, maxIntegrationTimeoutMs)
		case timeout+gatewayMarginMs > wait:
			t.Errorf("%s waits %d ms for %s, whose timeout is %d ms: API Gateway must wait %d ms longer than the function's timeout (its init, the way in and out), "+
				"or the function's answer before its deadline (a 504 problem document) never reaches the client, who gets API Gateway's bare 5xx",
				in.addr, wait, fn.addr, timeout, gatewayMarginMs)
		}
	}
}

// TestGatewayStagesKeepAnAccessLog: what API Gateway answers itself never reaches a function,
// so only its access log records it — a caller IAM refused (403 {"message":"Forbidden"}, no
// security entry in the audit log), a throttled one (429), a function that failed or did not
// answer in time (5xx and the integration's error). Every stage has one, into a log group of
// this module, and it names the status, API Gateway's and the integration's errors and, for the
// IAM API, the caller.
func TestGatewayStagesKeepAnAccessLog(t *testing.T) {
	checkAccessLogs(t, load(t, moduleDir()))
}

func checkAccessLogs(t tb, d *deployment) {
	t.Helper()
	stages, err := d.m.allInstances("aws_apigatewayv2_stage")
	if err != nil {
		t.Fatal(err)
	}
	if len(stages) == 0 {
		t.Fatal("no aws_apigatewayv2_stage")
	}
	for _, st := range stages {
		dest, ok, err := d.m.arg(st, "access_log_settings", "destination_arn")
		if err != nil {
			t.Fatal(err)
		}
		if !ok {
			t.Errorf("%s has no access_log_settings: what API Gateway answers itself (IAM's 403, throttling's 429, a failed or late function's 5xx) is recorded nowhere", st.addr)
			continue
		}
		d.follow(t, dest, "aws_cloudwatch_log_group", "arn", st.addr+".access_log_settings.destination_arn")
		format := d.mustString(t, st, "access_log_settings", "format")
		want := []string{"$context.requestId", "$context.status", "$context.routeKey", "$context.identity.sourceIp", "$context.integrationErrorMessage",
			"$context.error.message"}
		api, _, err := d.m.arg(st, "api_id")
		if err != nil {
			t.Fatal(err)
		}
		if in, _, ok := d.m.ref(api); ok && in.addr == "aws_apigatewayv2_api.karma[0]" {
			want = append(want, "$context.identity.userArn")
		}
		for _, w := range want {
			if !strings.Contains(format, w) {
				t.Errorf("%s: the access log's format does not record %s", st.addr, w)
			}
		}
	}
}
