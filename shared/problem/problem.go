// Package problem writes RFC 9457 problem documents for the handlers outside the API's router
// (the Git webhook, its Lambda adapter): the same base URI and type names as shared/api, whose
// Problem adds JSON-pointer errors and is what the API's routes return.
package problem

import (
	"encoding/json"
	"net/http"
)

// Base prefixes every problem type URI.
const Base = "https://usekarma.dev/problems/"

// Document is a problem document without per-field errors.
type Document struct {
	Type   string `json:"type"`
	Title  string `json:"title"`
	Status int    `json:"status"`
	Detail string `json:"detail"`
}

// TypeFor is the problem type of a status, as shared/api names it.
func TypeFor(status int) string {
	switch status {
	case http.StatusBadRequest:
		return "bad-request"
	case http.StatusUnauthorized:
		return "unauthorized"
	case http.StatusForbidden:
		return "forbidden"
	case http.StatusNotFound:
		return "not-found"
	case http.StatusMethodNotAllowed:
		return "method-not-allowed"
	case http.StatusRequestEntityTooLarge:
		return "too-large"
	case http.StatusUnsupportedMediaType:
		return "unsupported-media-type"
	case http.StatusServiceUnavailable:
		return "unavailable"
	case http.StatusGatewayTimeout:
		return "timeout"
	}
	return "internal"
}

// Of is the document of status with detail.
func Of(status int, detail string) Document {
	return Document{Type: Base + TypeFor(status), Title: http.StatusText(status), Status: status, Detail: detail}
}

// Body is the JSON of Of(status, detail), with a final newline.
func Body(status int, detail string) []byte {
	b, _ := json.Marshal(Of(status, detail))
	return append(b, '\n')
}

// ContentType is a problem document's media type.
const ContentType = "application/problem+json"

// Write sends Of(status, detail).
func Write(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("Cache-Control", "no-store")
	w.WriteHeader(status)
	_, _ = w.Write(Body(status, detail))
}
