package webhook

import (
	"context"
	"encoding/base64"
	"encoding/json"
	"reflect"
	"strings"
	"testing"
)

// TestLambdaSamples: the API Gateway HTTP API and function URL samples are requests, not
// webhooks. They convert (headers canonicalised, body as sent) and Parse refuses them as coming
// from an unknown provider.
func TestLambdaSamples(t *testing.T) {
	t.Parallel()
	tests := []struct {
		name, method, target, body, header, headerValue string
	}{
		{"apigw-v2-request-iam.json", "GET", "/my/path?parameter1=value1&parameter1=value2&parameter2=value", "{\r\n\t\"a\": 1\r\n}", "Header2", "value2"},
		{"apigw-v2-request-jwt-authorizer.json", "GET", "/my/path?parameter1=value1&parameter1=value2&parameter2=value", "{\r\n\t\"a\": 1\r\n}", "Header1", "value1"},
		{"apigw-v2-request-lambda-authorizer.json", "GET", "/my/path?parameter1=value1&parameter1=value2&parameter2=value", "{\r\n\t\"a\": 1\r\n}", "Header1", "value1"},
		{"apigw-v2-request-no-authorizer.json", "GET", "/", "", "X-Forwarded-Proto", "https"},
		{"lambda-urls-request.json", "POST", "/my/path?parameter1=value1&parameter1=value2&parameter2=value", "Hello from client!", "Header2", "value1,value2"},
	}
	covered := map[string]bool{}
	for _, tt := range tests {
		covered[tt.name] = true
	}
	for _, n := range sampleNames(t, "aws") {
		isRequest := strings.HasPrefix(n, "apigw-") || strings.HasPrefix(n, "lambda-urls")
		if isRequest && !covered[n] {
			t.Errorf("sample aws/%s has no expectation", n)
		}
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			t.Parallel()
			r, body, err := LambdaRequest(context.Background(), sample(t, "aws", tt.name))
			if err != nil {
				t.Fatal(err)
			}
			if r.Method != tt.method || r.URL.RequestURI() != tt.target || string(body) != tt.body || r.Header.Get(tt.header) != tt.headerValue {
				t.Errorf("got %s %s body %q %s=%q", r.Method, r.URL.RequestURI(), body, tt.header, r.Header.Get(tt.header))
			}
			if r.ContentLength != int64(len(body)) {
				t.Errorf("ContentLength = %d", r.ContentLength)
			}
			_, err = Parse(r, body, testSecrets)
			wantStatus(t, err, 400)
		})
	}
}

// TestLambdaWebhook: a signed GitHub push behind API Gateway, lower-cased headers, body base64
// encoded: verified over the decoded bytes.
func TestLambdaWebhook(t *testing.T) {
	t.Parallel()
	body := sample(t, "github", newBranchFile)
	event := func(b64 bool, sig string) []byte {
		e := map[string]any{}
		_ = json.Unmarshal(sample(t, "aws", "apigw-v2-request-no-authorizer.json"), &e)
		e["headers"] = map[string]string{
			"content-type":        "application/json",
			"x-github-event":      "push",
			"x-github-delivery":   "d1",
			"x-hub-signature-256": sig,
			"content-length":      "9999",
		}
		e["requestContext"].(map[string]any)["http"].(map[string]any)["method"] = "POST"
		e["isBase64Encoded"] = b64
		if b64 {
			e["body"] = base64.StdEncoding.EncodeToString(body)
		} else {
			e["body"] = string(body)
		}
		b, _ := json.Marshal(e)
		return b
	}
	good := SignatureHeader([]byte(testSecret), body)
	for _, b64 := range []bool{true, false} {
		r, raw, err := LambdaRequest(context.Background(), event(b64, good))
		if err != nil {
			t.Fatal(err)
		}
		ev, err := Parse(r, raw, testSecrets)
		if err != nil {
			t.Fatalf("base64=%v: %v", b64, err)
		}
		if !reflect.DeepEqual(ev, newBranch) {
			t.Errorf("base64=%v: %+v", b64, ev)
		}
	}
	// Signed over the base64 text instead of the bytes: refused.
	bad := SignatureHeader([]byte(testSecret), []byte(base64.StdEncoding.EncodeToString(body)))
	r, raw, err := LambdaRequest(context.Background(), event(true, bad))
	if err != nil {
		t.Fatal(err)
	}
	_, err = Parse(r, raw, testSecrets)
	wantStatus(t, err, 401)

	for _, in := range []string{`{}`, `[]`, `{"version":"1.0"}`, `{"version":"2.0","isBase64Encoded":true,"body":"%%%"}`} {
		_, _, err := LambdaRequest(context.Background(), []byte(in))
		wantStatus(t, err, 400)
	}
	if r, _, err := LambdaRequest(context.Background(), []byte(`{"version":"2.0","rawPath":"no-slash","body":"x"}`)); err != nil || r.URL.Path != "/no-slash" || r.Method != "POST" {
		t.Errorf("relative rawPath: %v", err)
	}
}
