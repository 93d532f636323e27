// Package client calls a Karma server's HTTP API (shared/api) for the CLI's --server URL /
// KARMA_SERVER mode: the same questions and writes as the local commands, answered by the
// server. Every error the server sends is an *Error carrying its problem document (status,
// detail, and the JSON pointer of each invalid input), so the CLI can say what to fix.
package client

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strconv"
	"strings"
	"time"

	"github.com/usekarma/karma/shared/api"
	"github.com/usekarma/karma/shared/drift"
	"github.com/usekarma/karma/shared/graph"
	"github.com/usekarma/karma/shared/lineage"
	"github.com/usekarma/karma/shared/promotion"
)

// Client is a Karma server's API.
type Client struct {
	base  *url.URL
	token string
	http  *http.Client
}

// Options tune a Client; zero values take the defaults.
type Options struct {
	// Token is the bearer token (service mode); "" sends none (a server on loopback with
	// --insecure-local).
	Token string
	// HTTP is the client to use (default: one with a 60 s timeout).
	HTTP *http.Client
}

// New returns a client of the server at base (http or https, e.g. https://karma.example.com).
func New(base string, o Options) (*Client, error) {
	u, err := url.Parse(strings.TrimRight(base, "/"))
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--server %q: want http(s)://host[:port][/path]", base)
	}
	if u.User != nil {
		return nil, fmt.Errorf("--server %s: credentials in the URL are refused: give the token with KARMA_TOKEN", u.Redacted())
	}
	c := &Client{base: u, token: o.Token, http: o.HTTP}
	if c.http == nil {
		c.http = &http.Client{Timeout: 60 * time.Second}
	}
	return c, nil
}

// Error is a problem document the server answered with.
type Error struct {
	api.Problem
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("server: %d %s: %s", e.Status, e.Title, e.Detail)
	for _, f := range e.Errors {
		msg += fmt.Sprintf("\n  %s: %s", f.Pointer, f.Detail)
	}
	return msg
}

// IsStatus reports whether err is the server's answer with that status.
func IsStatus(err error, status int) bool {
	var e *Error
	return errors.As(err, &e) && e.Status == status
}

// Graph is GET /graph: env and typ filter ("" = all).
func (c *Client) Graph(ctx context.Context, env, typ string) (*graph.Document, error) {
	var d graph.Document
	return &d, c.get(ctx, "/graph", query("env", env, "type", typ), &d)
}

// Component is GET /components/{env}/{type}/{nickname}.
func (c *Client) Component(ctx context.Context, env, typ, nick string) (*api.ComponentView, error) {
	var v api.ComponentView
	return &v, c.get(ctx, "/components/"+esc(env)+"/"+esc(typ)+"/"+esc(nick), nil, &v)
}

// Impact is GET /impact: component is <env>/<type>/<nickname>; keys, when given, the runtime
// keys that changed.
func (c *Client) Impact(ctx context.Context, component string, keys []string) (*graph.ImpactReport, error) {
	var r graph.ImpactReport
	return &r, c.get(ctx, "/impact", query("component", component, "keys", strings.Join(keys, ",")), &r)
}

// RequestChange is POST /request-change.
func (c *Client) RequestChange(ctx context.Context, req api.ChangeRequest) (*api.ChangeCreated, error) {
	var out api.ChangeCreated
	return &out, c.do(ctx, http.MethodPost, "/request-change", nil, req, &out)
}

// ChangesQuery filters GET /changes.
type ChangesQuery struct {
	Env, State string
	Limit      int    // 0 = the server's default
	Cursor     string // NextCursor of the previous page
}

// Changes is GET /changes: one page.
func (c *Client) Changes(ctx context.Context, q ChangesQuery) (*api.ChangeList, error) {
	var l api.ChangeList
	return &l, c.get(ctx, "/changes", query("env", q.Env, "state", q.State, "limit", itoa(q.Limit), "cursor", q.Cursor), &l)
}

// Change is GET /changes/{id}.
func (c *Client) Change(ctx context.Context, id string) (*api.ChangeDetail, error) {
	var d api.ChangeDetail
	return &d, c.get(ctx, "/changes/"+esc(id), nil, &d)
}

// Approve is POST /changes/{id}/approve.
func (c *Client) Approve(ctx context.Context, id string) (*api.Decision, error) {
	var d api.Decision
	return &d, c.do(ctx, http.MethodPost, "/changes/"+esc(id)+"/approve", nil, nil, &d)
}

// Reject is POST /changes/{id}/reject.
func (c *Client) Reject(ctx context.Context, id, reason string) (*api.Decision, error) {
	var d api.Decision
	return &d, c.do(ctx, http.MethodPost, "/changes/"+esc(id)+"/reject", nil, api.RejectRequest{Reason: reason}, &d)
}

// LogQuery filters GET /log.
type LogQuery struct {
	Component, Deployment, Correlation, Actor string
	Since, Until                              time.Time // zero = unbounded
	Limit                                     int       // 0 = the server's default
	Cursor                                    string    // NextCursor of the previous page
}

// Log is GET /log: one page, of at most q.Limit records. A page too large for the server to
// send (response-too-large: the Lambda function behind API Gateway returns at most 6 MB) is
// asked again half as large, down to one record: the page is then smaller, and its next_cursor
// goes on from its last record.
func (c *Client) Log(ctx context.Context, q LogQuery) (*api.LogPage, error) {
	for {
		var p api.LogPage
		err := c.get(ctx, "/log", query("component", q.Component, "deployment", q.Deployment, "correlation", q.Correlation,
			"actor", q.Actor, "since", timeParam(q.Since), "until", timeParam(q.Until), "limit", itoa(q.Limit), "cursor", q.Cursor), &p)
		var e *Error
		if !errors.As(err, &e) || e.Type != api.ProblemBase+api.TypeResponseTooLarge || q.Limit == 1 {
			return &p, err
		}
		if q.Limit == 0 {
			q.Limit = api.LogDefaultLimit
		}
		q.Limit /= 2
	}
}

// Deployment is GET /deployments/{id}.
func (c *Client) Deployment(ctx context.Context, id string) (*api.DeploymentDetail, error) {
	var d api.DeploymentDetail
	return &d, c.get(ctx, "/deployments/"+esc(id), nil, &d)
}

// Lineage is GET /deployments/{id}/lineage.
func (c *Client) Lineage(ctx context.Context, id string) (*lineage.Step, error) {
	var s lineage.Step
	return &s, c.get(ctx, "/deployments/"+esc(id)+"/lineage", nil, &s)
}

// Rollback is POST /deployments/{id}/rollback: roll back to deployment id.
func (c *Client) Rollback(ctx context.Context, id string) (*api.RollbackCreated, error) {
	var out api.RollbackCreated
	return &out, c.do(ctx, http.MethodPost, "/deployments/"+esc(id)+"/rollback", nil, nil, &out)
}

// Promotion is GET /changes/{id}/promotion.
func (c *Client) Promotion(ctx context.Context, id string) (*promotion.Report, error) {
	var r promotion.Report
	return &r, c.get(ctx, "/changes/"+esc(id)+"/promotion", nil, &r)
}

// Promote is POST /changes/{id}/promote; reason ends a soak ("" otherwise).
func (c *Client) Promote(ctx context.Context, id, reason string) (*api.PromoteReply, error) {
	var out api.PromoteReply
	var body any
	if reason != "" {
		body = api.PromoteRequest{Reason: reason}
	}
	return &out, c.do(ctx, http.MethodPost, "/changes/"+esc(id)+"/promote", nil, body, &out)
}

// Drift is GET /drift: the drift check as a read (parameters only; nothing recorded or queued).
// env and component ("<env>/<type>/<nickname>") narrow it; "" for all.
func (c *Client) Drift(ctx context.Context, env, component string) (*drift.Report, error) {
	q := url.Values{}
	if env != "" {
		q.Set("env", env)
	}
	if component != "" {
		q.Set("component", component)
	}
	var r drift.Report
	return &r, c.get(ctx, "/drift", q, &r)
}

func (c *Client) get(ctx context.Context, path string, q url.Values, out any) error {
	return c.do(ctx, http.MethodGet, path, q, nil, out)
}

// do sends one request and decodes a 2xx answer into out, or returns the problem as *Error.
func (c *Client) do(ctx context.Context, method, path string, q url.Values, body, out any) error {
	u := *c.base
	u.RawPath = c.base.EscapedPath() + path
	u.Path, _ = url.PathUnescape(u.RawPath)
	u.RawQuery = q.Encode()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			return err
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), rd)
	if err != nil {
		return err
	}
	req.Header.Set("Accept", "application/json")
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if c.token != "" {
		req.Header.Set("Authorization", "Bearer "+c.token)
	}
	resp, err := c.http.Do(req)
	if err != nil {
		return fmt.Errorf("server %s: %w", c.base.Redacted(), err)
	}
	defer resp.Body.Close()
	data, err := io.ReadAll(resp.Body)
	if err != nil {
		return fmt.Errorf("server %s: %s %s: reading the answer: %w", c.base.Redacted(), method, path, err)
	}
	if resp.StatusCode >= 300 {
		return problemOf(resp, data)
	}
	if err := json.Unmarshal(data, out); err != nil {
		return fmt.Errorf("server %s: %s %s: the answer is not what this client reads (a newer server?): %w", c.base.Redacted(), method, path, err)
	}
	return nil
}

// problemOf reads an error answer; one that is not a problem document keeps its status and text.
func problemOf(resp *http.Response, data []byte) error {
	e := &Error{}
	if json.Unmarshal(data, &e.Problem) != nil || e.Status == 0 {
		e.Problem = api.Problem{Status: resp.StatusCode, Title: http.StatusText(resp.StatusCode), Detail: strings.TrimSpace(string(data))}
	}
	return e
}

// query builds query parameters from name, value pairs, leaving out empty values.
func query(kv ...string) url.Values {
	q := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			q.Set(kv[i], kv[i+1])
		}
	}
	return q
}

func esc(s string) string { return url.PathEscape(s) }

func itoa(n int) string {
	if n == 0 {
		return ""
	}
	return strconv.Itoa(n)
}

func timeParam(t time.Time) string {
	if t.IsZero() {
		return ""
	}
	return t.UTC().Format(time.RFC3339Nano)
}
