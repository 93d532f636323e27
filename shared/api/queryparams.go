package api

// Query parameters an operation does not take are refused (400, each named at /query/<name>),
// as unknown fields of a body are: GET /graph?environment=prod answered every environment's
// graph, as if asked for all, and GET /log?componnet=… the whole log. A parameter given twice is
// refused too (the handlers read the first). What each operation takes is openapi.json's list,
// read once: the document and the check cannot disagree.

import (
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"strings"
)

// queryParams maps "METHOD pattern" to the query parameters the operation takes.
type queryParams map[string]map[string]bool

// documentedQueryParams reads them from the OpenAPI document (path-level parameters included,
// $ref'd ones resolved).
func documentedQueryParams(doc []byte) (queryParams, error) {
	type param struct {
		Ref  string `json:"$ref"`
		Name string `json:"name"`
		In   string `json:"in"`
	}
	var d struct {
		Paths      map[string]map[string]json.RawMessage `json:"paths"`
		Components struct {
			Parameters map[string]param `json:"parameters"`
		} `json:"components"`
	}
	if err := json.Unmarshal(doc, &d); err != nil {
		return nil, fmt.Errorf("api: openapi.json: %w", err)
	}
	resolve := func(p param) (param, error) {
		if p.Ref == "" {
			return p, nil
		}
		r, ok := d.Components.Parameters[strings.TrimPrefix(p.Ref, "#/components/parameters/")]
		if !ok {
			return p, fmt.Errorf("api: openapi.json: parameter %s is not defined", p.Ref)
		}
		return r, nil
	}
	out := queryParams{}
	for path, item := range d.Paths {
		var shared []param
		if raw, ok := item["parameters"]; ok {
			if err := json.Unmarshal(raw, &shared); err != nil {
				return nil, fmt.Errorf("api: openapi.json: %s parameters: %w", path, err)
			}
		}
		for method, raw := range item {
			if method == "parameters" {
				continue
			}
			var op struct {
				Parameters []param `json:"parameters"`
			}
			if err := json.Unmarshal(raw, &op); err != nil {
				return nil, fmt.Errorf("api: openapi.json: %s %s: %w", method, path, err)
			}
			names := map[string]bool{}
			for _, p := range append(op.Parameters, shared...) {
				p, err := resolve(p)
				if err != nil {
					return nil, err
				}
				if p.In == "query" {
					names[p.Name] = true
				}
			}
			out[strings.ToUpper(method)+" "+path] = names
		}
	}
	return out, nil
}

// check is the 400 of a request's query parameters the operation does not take, or gives
// twice; nil when there is none. Public operations (the document, the health checks: probes
// may add what they like) and raw ones (the webhook, the metrics) are not checked.
func (qp queryParams) check(rt route, r *http.Request) *Problem {
	if r.URL.RawQuery == "" || rt.scope == "" {
		return nil
	}
	takes := qp[rt.method+" "+rt.pattern]
	var errs []FieldError
	values := r.URL.Query()
	for _, name := range slices.Sorted(maps.Keys(values)) {
		switch {
		case !takes[name]:
			detail := "unknown query parameter: this operation takes none"
			if len(takes) > 0 {
				detail = "unknown query parameter: this operation takes " + strings.Join(slices.Sorted(maps.Keys(takes)), ", ")
			}
			errs = append(errs, FieldError{Pointer: "/query/" + name, Detail: detail})
		case len(values[name]) > 1:
			errs = append(errs, FieldError{Pointer: "/query/" + name, Detail: fmt.Sprintf("given %d times: give it once", len(values[name]))})
		}
	}
	if len(errs) == 0 {
		return nil
	}
	p := badRequest("invalid query parameters: see errors")
	p.Errors = errs
	return p
}
