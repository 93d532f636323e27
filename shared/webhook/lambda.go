package webhook

import (
	"bytes"
	"context"
	"encoding/base64"
	"encoding/json"
	"io"
	"net/http"
	"strings"
)

// lambdaHTTP is the part of an API Gateway HTTP API (payload format 2.0) or Lambda function URL
// event that a webhook needs.
type lambdaHTTP struct {
	Version        string            `json:"version"`
	RawPath        string            `json:"rawPath"`
	RawQueryString string            `json:"rawQueryString"`
	Headers        map[string]string `json:"headers"`
	RequestContext struct {
		HTTP struct {
			Method string `json:"method"`
			Path   string `json:"path"`
		} `json:"http"`
	} `json:"requestContext"`
	Body            string `json:"body"`
	IsBase64Encoded bool   `json:"isBase64Encoded"`
}

// LambdaRequest turns an API Gateway HTTP API (payload 2.0) or Lambda function URL event into a
// request for Parse and the raw body to verify. Header names arrive lower-cased and are
// canonicalised here, so r.Header.Get works; a base64-encoded body is decoded, and the signature
// must then be checked over the decoded bytes exactly as the sender sent them, never over a
// re-encoding. Errors are *Error (400 for an event that is not such a request).
func LambdaRequest(ctx context.Context, event []byte) (*http.Request, []byte, error) {
	var e lambdaHTTP
	if err := json.Unmarshal(event, &e); err != nil {
		return nil, nil, errorf(http.StatusBadRequest, "lambda: event is not an HTTP request event: %v", err)
	}
	if e.Version != "2.0" {
		return nil, nil, errorf(http.StatusBadRequest, "lambda: payload format version %q: want 2.0", e.Version)
	}
	body := []byte(e.Body)
	if e.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(e.Body)
		if err != nil {
			return nil, nil, errorf(http.StatusBadRequest, "lambda: base64 body: %v", err)
		}
		body = b
	}
	method := first(e.RequestContext.HTTP.Method, http.MethodPost)
	path := first(e.RawPath, e.RequestContext.HTTP.Path, "/")
	if !strings.HasPrefix(path, "/") {
		path = "/" + path
	}
	target := path
	if e.RawQueryString != "" {
		target += "?" + e.RawQueryString
	}
	r, err := http.NewRequestWithContext(ctx, method, "http://lambda"+target, io.NopCloser(bytes.NewReader(body)))
	if err != nil {
		return nil, nil, errorf(http.StatusBadRequest, "lambda: request %s %q: %v", method, target, err)
	}
	r.Header = http.Header{}
	for k, v := range e.Headers {
		r.Header.Set(k, v) // canonicalises "x-hub-signature-256" to X-Hub-Signature-256
	}
	r.ContentLength = int64(len(body))
	r.Header.Del("Content-Length")
	return r, body, nil
}
