package api

import (
	"net/http"
	"strings"
	"testing"
)

// A query parameter an operation does not take (a misspelling) is a 400 naming it and what the
// operation takes — not an answer as if it were absent (GET /graph?environment=prod gave every
// environment's graph); one given twice is a 400 too. What each takes is openapi.json's.
func TestUnknownAndRepeatedQueryParametersAreRefused(t *testing.T) {
	t.Parallel()
	h := newHarness(t)
	p := h.call("GET", "/graph?environment=prod", "reader", nil).want(http.StatusBadRequest).problem()
	if len(p.Errors) != 1 || p.Errors[0].Pointer != "/query/environment" || !strings.Contains(p.Errors[0].Detail, "takes env, type") {
		t.Errorf("GET /graph?environment=: %+v", p.Errors)
	}
	p = h.call("GET", "/log?limit=1&limit=2&componnet=prod/vpc/core", "reader", nil).want(http.StatusBadRequest).problem()
	if len(p.Errors) != 2 || p.Errors[0].Pointer != "/query/componnet" || p.Errors[1].Pointer != "/query/limit" || !strings.Contains(p.Errors[1].Detail, "given 2 times") {
		t.Errorf("GET /log: %+v", p.Errors)
	}
	p = h.call("GET", "/me?verbose=1", "reader", nil).want(http.StatusBadRequest).problem()
	if len(p.Errors) != 1 || !strings.Contains(p.Errors[0].Detail, "takes none") {
		t.Errorf("GET /me?verbose=1: %+v", p.Errors)
	}
	h.call("GET", "/graph?env=prod&type=vpc", "reader", nil).want(http.StatusOK)
	h.call("GET", "/log?limit=5", "reader", nil).want(http.StatusOK)
	// Authentication comes first: a caller without credentials learns nothing of the parameters.
	h.call("GET", "/graph?environment=prod", "", nil).want(http.StatusUnauthorized)
}

// Every operation's parameters are read from openapi.json, $ref'd and path-level ones too.
func TestQueryParametersAreTheDocumentsOwn(t *testing.T) {
	t.Parallel()
	qp, err := documentedQueryParams(openAPI)
	if err != nil {
		t.Fatal(err)
	}
	for op, want := range map[string][]string{
		"GET /graph": {"env", "type"},
		"GET /log":   {"component", "deployment", "correlation", "actor", "since", "until", "limit", "cursor"},
		"GET /components/{env}/{type}/{nickname}": {"deployments"},
		"GET /events":          {"change"},
		"POST /request-change": {},
	} {
		got := qp[op]
		if got == nil || len(got) != len(want) {
			t.Errorf("%s takes %v, want %v", op, got, want)
			continue
		}
		for _, n := range want {
			if !got[n] {
				t.Errorf("%s: %s missing from %v", op, n, got)
			}
		}
	}
}
