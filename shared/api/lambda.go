package api

import (
	"bytes"
	"context"
	"encoding/base64"
	"net/http"
	"strings"
	"unicode/utf8"

	"github.com/aws/aws-lambda-go/events"
)

// LambdaHandler serves the API from a Lambda function behind an API Gateway HTTP API (payload
// format 2.0): each event becomes an *http.Request for h — the same handler `karma serve`
// serves — and the response an event response. The caller's ARN, which API Gateway's IAM
// authorization put in the request context, reaches the IAM authenticator through the
// request's context, never through a header a client could send. Behind a named stage the
// path starts with the stage's name, which is removed. Bodies that are not UTF-8 text
// (gzip-compressed ones) are sent base64-encoded.
func LambdaHandler(h http.Handler) func(context.Context, events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
	return func(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (events.APIGatewayV2HTTPResponse, error) {
		r, err := lambdaRequest(ctx, ev)
		if err != nil {
			return problemResponse(badRequest("the API Gateway event is not a request: %v", err)), nil
		}
		w := &eventWriter{header: http.Header{}}
		h.ServeHTTP(w, r)
		return w.response(), nil
	}
}

func lambdaRequest(ctx context.Context, ev events.APIGatewayV2HTTPRequest) (*http.Request, error) {
	if a := ev.RequestContext.Authorizer; a != nil && a.IAM != nil && a.IAM.UserARN != "" {
		ctx = withIAMCaller(ctx, a.IAM.UserARN)
	}
	body := []byte(ev.Body)
	if ev.IsBase64Encoded {
		b, err := base64.StdEncoding.DecodeString(ev.Body)
		if err != nil {
			return nil, err
		}
		body = b
	}
	path := ev.RawPath
	if path == "" {
		path = ev.RequestContext.HTTP.Path
	}
	if st := ev.RequestContext.Stage; st != "" && st != "$default" {
		if rest, ok := strings.CutPrefix(path, "/"+st+"/"); ok {
			path = "/" + rest
		}
	}
	target := "https://" + ev.RequestContext.DomainName + path
	if ev.RawQueryString != "" {
		target += "?" + ev.RawQueryString
	}
	r, err := http.NewRequestWithContext(ctx, ev.RequestContext.HTTP.Method, target, bytes.NewReader(body))
	if err != nil {
		return nil, err
	}
	for k, v := range ev.Headers {
		r.Header.Set(k, v)
	}
	if len(ev.Cookies) > 0 {
		r.Header.Set("Cookie", strings.Join(ev.Cookies, "; "))
	}
	r.Header.Del("Content-Length")
	r.ContentLength = int64(len(body))
	r.RemoteAddr = ev.RequestContext.HTTP.SourceIP
	r.RequestURI = r.URL.RequestURI()
	return r, nil
}

// eventWriter is the http.ResponseWriter of one event.
type eventWriter struct {
	header http.Header
	status int
	body   bytes.Buffer
}

func (w *eventWriter) Header() http.Header { return w.header }

func (w *eventWriter) WriteHeader(status int) {
	if w.status == 0 {
		w.status = status
	}
}

func (w *eventWriter) Write(b []byte) (int, error) {
	w.WriteHeader(http.StatusOK)
	return w.body.Write(b)
}

func (w *eventWriter) response() events.APIGatewayV2HTTPResponse {
	resp := events.APIGatewayV2HTTPResponse{StatusCode: w.status, Headers: map[string]string{}}
	if resp.StatusCode == 0 {
		resp.StatusCode = http.StatusOK
	}
	for k, v := range w.header {
		if k == "Set-Cookie" {
			resp.Cookies = v
			continue
		}
		resp.Headers[k] = strings.Join(v, ", ")
	}
	b := w.body.Bytes()
	if w.header.Get("Content-Encoding") != "" || !utf8.Valid(b) {
		resp.Body, resp.IsBase64Encoded = base64.StdEncoding.EncodeToString(b), true
	} else {
		resp.Body = string(b)
	}
	return resp
}

func problemResponse(p *Problem) events.APIGatewayV2HTTPResponse {
	w := &eventWriter{header: http.Header{}}
	writeProblem(w, p)
	return w.response()
}
