package terraform

// gateway_test.go: a function behind API Gateway answers before its own deadline
// (lambda.AnswerBeforeDeadline: a request still running a tenth of the function's time before
// it is answered a 504 problem document of type timeout), and API Gateway must still be waiting
// for that answer. With the function's timeout equal to the integration's, API Gateway gave up
// first or Lambda stopped the function, and the client got a bare
// {"message":"Internal Server Error"} or 503/504 naming nothing — a write not knowing whether it
// was done.

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
