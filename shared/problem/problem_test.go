package problem

import (
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"testing"
)

func TestWrite(t *testing.T) {
	w := httptest.NewRecorder()
	Write(w, http.StatusUnauthorized, "X-Hub-Signature-256 does not match the body")
	var d Document
	if err := json.Unmarshal(w.Body.Bytes(), &d); err != nil {
		t.Fatal(err)
	}
	want := Document{Type: Base + "unauthorized", Title: "Unauthorized", Status: 401, Detail: "X-Hub-Signature-256 does not match the body"}
	if w.Code != 401 || w.Header().Get("Content-Type") != ContentType || d != want {
		t.Errorf("%d %s %+v, want 401 %s %+v", w.Code, w.Header().Get("Content-Type"), d, ContentType, want)
	}
	if TypeFor(http.StatusTeapot) != "internal" || TypeFor(413) != "too-large" || TypeFor(415) != "unsupported-media-type" || TypeFor(504) != "timeout" {
		t.Error("TypeFor")
	}
}
