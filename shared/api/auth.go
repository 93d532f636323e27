package api

import (
	"context"
	"errors"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"slices"
	"strings"

	"github.com/usekarma/karma/shared/message"
)

// Authentication and scopes. Every route but /healthz, /readyz, /openapi.json and the Git
// webhook (which checks its own signatures) needs a caller, and the caller a scope:
//
//	read     every GET (and /metrics)
//	write    POST /request-change
//	approve  POST /changes/{id}/approve, /reject, and a request-change with auto_approve
//
// Who the caller is depends on the mode: a bearer token of the tokens file in service mode
// (Tokens); the IAM principal API Gateway authenticated in serverless mode (IAM: the route's
// IAM policy authorizes, the handler records the ARN); or, only bound to loopback, the local
// user (InsecureLocal, `karma serve --insecure-local`). There is no mode without a caller.

// Scope is a permission a caller holds.
type Scope string

// Scopes.
const (
	ScopeRead    Scope = "read"
	ScopeWrite   Scope = "write"
	ScopeApprove Scope = "approve"
)

// AllScopes lists every scope.
var AllScopes = []Scope{ScopeRead, ScopeWrite, ScopeApprove}

// Caller is who sent a request, as recorded in the audit log and in messages.
type Caller struct {
	Kind   string  `json:"kind"` // message actor kind: "api" (a token), "iam" (an ARN), "cli" (insecure local)
	Name   string  `json:"name"` // the token's name, the ARN, the local user
	Scopes []Scope `json:"scopes,omitempty"`
}

// Has reports whether the caller holds s.
func (c Caller) Has(s Scope) bool { return slices.Contains(c.Scopes, s) }

// Actor is the caller as a message actor.
func (c Caller) Actor() message.Actor { return message.Actor{Kind: c.Kind, Name: c.Name} }

// Authenticator identifies the caller of a request, or returns an *AuthError.
type Authenticator interface {
	Authenticate(r *http.Request) (Caller, error)
}

// AuthError says why a request has no caller (401).
type AuthError struct {
	Reason string
	// Challenge is the WWW-Authenticate header to send ("" = none).
	Challenge string
}

func (e *AuthError) Error() string { return e.Reason }

// IAM is the serverless mode's Authenticator: API Gateway authenticated the request with IAM
// (SigV4) and authorized it by the route's IAM policy; the Lambda adapter put the caller's ARN in
// the request's context. A request without one (a route without IAM authorization) has no
// caller. The caller holds every scope: which routes an ARN may call is IAM's to say (grant
// execute-api:Invoke per route: docs/api.md).
type IAM struct{}

type callerKey struct{}

// withIAMCaller is how the Lambda adapter hands the caller's ARN to IAM.
func withIAMCaller(ctx context.Context, arn string) context.Context {
	return context.WithValue(ctx, callerKey{}, arn)
}

// Authenticate implements Authenticator.
func (IAM) Authenticate(r *http.Request) (Caller, error) {
	arn, _ := r.Context().Value(callerKey{}).(string)
	if arn == "" {
		return Caller{}, &AuthError{Reason: "the request carries no IAM principal: call the API through API Gateway with IAM authorization (SigV4-signed requests)"}
	}
	return Caller{Kind: "iam", Name: arn, Scopes: AllScopes}, nil
}

// InsecureLocal makes every request the local user's, with every scope. Only for a server
// bound to loopback: CheckInsecureLocal refuses any other address.
type InsecureLocal struct {
	User string // recorded as the actor (kind cli)
}

// Authenticate implements Authenticator. Binding loopback keeps other hosts out, but not other
// web sites open in the local user's browser: a page elsewhere may send a request here (a POST
// without a body needs no preflight: POST /changes/{id}/approve), or reach it through a name of
// its own that it makes resolve to 127.0.0.1 (DNS rebinding), and the request would be recorded
// as the local user's. So a request whose Host is not a loopback name or address, or that a
// browser says comes from another origin (Origin, Sec-Fetch-Site), has no caller; Karma's own
// page (same origin) and clients that are not browsers are the local user.
func (l InsecureLocal) Authenticate(r *http.Request) (Caller, error) {
	if err := sameOriginLoopback(r); err != nil {
		return Caller{}, err
	}
	return Caller{Kind: "cli", Name: l.User, Scopes: AllScopes}, nil
}

// sameOriginLoopback refuses a request that is not addressed to a loopback host, or that a
// browser sent from another origin.
func sameOriginLoopback(r *http.Request) error {
	if r.Host != "" && !loopbackHost(r.Host) {
		return &AuthError{Reason: fmt.Sprintf("Host %q is not a loopback address: --insecure-local answers only requests to localhost or 127.0.0.1 (a name resolving here may be another site's); use a tokens file to serve other names", r.Host)}
	}
	if site := r.Header.Get("Sec-Fetch-Site"); site != "" && site != "same-origin" && site != "none" {
		return &AuthError{Reason: fmt.Sprintf("the browser sent this request from another site (Sec-Fetch-Site: %s): --insecure-local answers only its own page and local clients", site)}
	}
	if origin := r.Header.Get("Origin"); origin != "" {
		u, err := url.Parse(origin)
		if err != nil || u.Host == "" || !strings.EqualFold(u.Host, r.Host) {
			return &AuthError{Reason: fmt.Sprintf("the browser sent this request from %q, another origin than %s: --insecure-local answers only its own page and local clients", origin, r.Host)}
		}
	}
	return nil
}

// loopbackHost reports whether a Host header (host or host:port) names this machine only.
func loopbackHost(hostport string) bool {
	host := hostport
	if h, _, err := net.SplitHostPort(hostport); err == nil {
		host = h
	}
	host = strings.TrimSuffix(strings.TrimPrefix(host, "["), "]")
	if strings.EqualFold(host, "localhost") {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// ErrNotLoopback refuses --insecure-local on an address other hosts can reach.
var ErrNotLoopback = errors.New("api: --insecure-local needs a loopback address")

// CheckInsecureLocal accepts a listen address (host:port) only if every address it binds is a
// loopback one: 127.0.0.0/8, ::1 or "localhost". An empty host, 0.0.0.0 or :: bind every
// interface and are refused, as are names other than localhost (they may resolve elsewhere).
func CheckInsecureLocal(addr string) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return fmt.Errorf("%w: %q is not host:port: %v", ErrNotLoopback, addr, err)
	}
	if strings.EqualFold(host, "localhost") {
		return nil
	}
	if ip := net.ParseIP(host); ip != nil && ip.IsLoopback() {
		return nil
	}
	return fmt.Errorf("%w: %q is reachable from other hosts without credentials; bind 127.0.0.1:<port>, or use a tokens file", ErrNotLoopback, addr)
}

// authorize finds the caller and checks the scope; the problem is what to send otherwise.
func (s *server) authorize(r *http.Request, need Scope) (Caller, *Problem) {
	c, err := s.cfg.Auth.Authenticate(r)
	if err != nil {
		var ae *AuthError
		if !errors.As(err, &ae) {
			return Caller{}, asProblem(err)
		}
		p := problem(http.StatusUnauthorized, TypeUnauthorized, "%s", ae.Reason)
		p.Challenge = ae.Challenge
		s.security(r, "security.api_unauthenticated", Caller{}, ae.Reason)
		return Caller{}, p
	}
	if !c.Has(need) {
		have := make([]string, len(c.Scopes))
		for i, sc := range c.Scopes {
			have[i] = string(sc)
		}
		detail := fmt.Sprintf("%s %s needs scope %q; %s holds %s: ask for a token with %q", r.Method, r.URL.Path, need, c.Name,
			orNone(strings.Join(have, ", ")), need)
		s.security(r, "security.api_forbidden", c, detail)
		return c, problem(http.StatusForbidden, TypeForbidden, "%s", detail)
	}
	return c, nil
}

func orNone(s string) string {
	if s == "" {
		return "no scope"
	}
	return "scopes " + s
}
