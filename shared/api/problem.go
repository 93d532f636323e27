package api

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/usekarma/karma/shared/pipeline"
	problems "github.com/usekarma/karma/shared/problem"
)

// Every error is an RFC 9457 problem document (application/problem+json): a type URI naming
// the kind of problem, its title, the status, a detail a person can act on (what input, what to
// do), and for invalid input the errors one by one, each with the JSON pointer of what it is
// about (RFC 6901; in the request body, or "#/..." style names such as "/query/env" for query
// parameters).

// ProblemBase prefixes every problem type.
const ProblemBase = problems.Base

// Problem types (the suffix of the type URI).
const (
	TypeBadRequest        = "bad-request"            // 400: a query parameter or a body that cannot be read
	TypeUnauthorized      = "unauthorized"           // 401: no or unknown credentials
	TypeForbidden         = "forbidden"              // 403: the caller lacks a scope
	TypeSeparation        = "separation-of-duties"   // 403: the approver requested the change or wrote its commit
	TypeNotFound          = "not-found"              // 404: no such route or resource
	TypeMethod            = "method-not-allowed"     // 405
	TypeConflict          = "conflict"               // 409: the resource's state refuses the request
	TypePendingChange     = "pending-change"         // 409: the component has a change not settled yet
	TypeReadOnly          = "read-only-repository"   // 409: this server may not write the config repository
	TypeRepositoryChanged = "repository-changed"     // 409: the file changed in the repository meanwhile
	TypeTooLarge          = "too-large"              // 413
	TypeMediaType         = "unsupported-media-type" // 415
	TypeValidation        = "validation"             // 422: well-formed but invalid; errors lists why
	TypeInternal          = "internal"               // 500
	TypeResponseTooLarge  = "response-too-large"     // 500: more than a Lambda function may return (lambda.go)
	TypeUnavailable       = "unavailable"            // 503: a store or the pipeline could not be reached
	TypeTimeout           = "timeout"                // 504: cut off before the Lambda function's deadline (lambda.go)
)

// Problem is an RFC 9457 problem document; it is also the error handlers return.
type Problem struct {
	Type   string       `json:"type"`
	Title  string       `json:"title"`
	Status int          `json:"status"`
	Detail string       `json:"detail"`
	Errors []FieldError `json:"errors,omitempty"`
	// RetryAfter, in seconds, is sent as the Retry-After header (503).
	RetryAfter int `json:"-"`
	// Challenge is sent as the WWW-Authenticate header (401).
	Challenge string `json:"-"`
}

// FieldError is one invalid input.
type FieldError struct {
	Pointer string `json:"pointer"` // JSON pointer into the body, or /query/<name>
	Detail  string `json:"detail"`
}

func (p *Problem) Error() string { return fmt.Sprintf("%d %s: %s", p.Status, p.Title, p.Detail) }

// problem builds a Problem of one of the types above.
func problem(status int, typ, detail string, a ...any) *Problem {
	if len(a) > 0 {
		detail = fmt.Sprintf(detail, a...)
	}
	return &Problem{Type: ProblemBase + typ, Title: http.StatusText(status), Status: status, Detail: detail}
}

func badRequest(detail string, a ...any) *Problem {
	return problem(http.StatusBadRequest, TypeBadRequest, detail, a...)
}
func notFound(detail string, a ...any) *Problem {
	return problem(http.StatusNotFound, TypeNotFound, detail, a...)
}
func conflict(detail string, a ...any) *Problem {
	return problem(http.StatusConflict, TypeConflict, detail, a...)
}

// invalid is a 422 listing every problem of the input.
func invalid(detail string, errs ...FieldError) *Problem {
	p := problem(http.StatusUnprocessableEntity, TypeValidation, detail)
	p.Errors = errs
	return p
}

// asProblem turns any error into a problem: a *Problem as it is; otherwise the one error
// classifier decides (pipeline.Classify): what is worth retrying (a store or the queue not
// reachable, a timeout, anything unknown) is 503, try again; what never works is 500.
func asProblem(err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	if pipeline.Classify(err) == pipeline.DeadLetter {
		return problem(http.StatusInternalServerError, TypeInternal, "%v", err)
	}
	p = problem(http.StatusServiceUnavailable, TypeUnavailable, "%v: nothing was changed by this failure's step; try again", err)
	p.RetryAfter = 1
	return p
}

// writeProblem sends p.
func writeProblem(w http.ResponseWriter, p *Problem) {
	h := w.Header()
	h.Set("Content-Type", "application/problem+json")
	h.Set("Cache-Control", "no-store")
	if p.Challenge != "" {
		h.Set("WWW-Authenticate", p.Challenge)
	}
	if p.RetryAfter > 0 {
		h.Set("Retry-After", fmt.Sprint(p.RetryAfter))
	}
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}
